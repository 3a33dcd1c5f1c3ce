//! Durable projections: `#[projection]` impl blocks whose handlers are `async` or borrow a unit
//! of work implement `DurableProjection<U>`, run here by a `ProjectionRunner` over a
//! `MemoryStore` (unit `()`) and called directly with a hand-made unit.

use std::sync::Mutex;
use std::time::Duration;

use eventweave_core::prelude::*;
use eventweave_core::registry::ProjectionKind;
use eventweave_core::runner::{
    DurableProjection, MemorySink, OnFailure, ProjectionRunner, RetryPolicy, RunnerState,
};
use eventweave_core::{
    EventStore, ExpectedVersion, NewEvent, Payload, ProjectionFailure, QueryError, RecordedEvent,
    StreamId, UserMetadata, new_id, registry,
};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(5);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "till.paid")]
pub struct Paid {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "till.refunded")]
pub struct Refunded {
    pub amount: u64,
}

#[derive(Debug)]
pub struct Overdrawn {
    pub missing: u64,
}

impl std::fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refund exceeds the takings by {}", self.missing)
    }
}

impl std::error::Error for Overdrawn {}

/// Takings per till: async and sync handlers, no unit of work (so it is a durable projection
/// over every unit), a fallible handler and a reset hook.
#[derive(Default)]
pub struct Takings {
    pub total: u64,
    /// Stream of each payment, in order.
    pub tills: Vec<String>,
    pub resets: u32,
}

#[projection(name = "takings")]
impl Takings {
    async fn on_paid(&mut self, e: &Paid, meta: &EventMeta) {
        // Another task runs here: the handler's future must be `Send`, and the decoded event
        // must outlive the `.await`.
        tokio::task::yield_now().await;
        self.total += e.amount;
        self.tills.push(meta.stream.to_string());
    }

    fn on_refunded(&mut self, e: &Refunded) -> Result<(), Overdrawn> {
        self.total = self.total.checked_sub(e.amount).ok_or_else(|| Overdrawn {
            missing: e.amount - self.total,
        })?;
        Ok(())
    }

    #[reset]
    fn clear(&mut self) {
        self.total = 0;
        self.tills.clear();
        self.resets += 1;
    }
}

/// A hand-made unit of work: statements are lines of a journal, behind a lock because the sink
/// lends the unit by shared reference.
#[derive(Default)]
pub struct Journal {
    pub lines: Mutex<Vec<String>>,
}

impl Journal {
    async fn write(&self, line: String) {
        tokio::task::yield_now().await;
        self.lines.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Writes through the unit of work: a durable projection over `Journal` only.
#[derive(Default)]
pub struct Ledger {
    pub handled: u32,
}

#[projection]
impl Ledger {
    async fn on_paid(&mut self, e: &Paid, meta: &EventMeta, db: &Journal) {
        db.write(format!("paid {} at {}", e.amount, meta.position))
            .await;
        self.handled += 1;
    }

    fn on_refunded(&mut self, e: &Refunded, db: &Journal) -> Result<(), std::io::Error> {
        if e.amount == 0 {
            return Err(std::io::Error::other("empty refund"));
        }
        db.lines
            .lock()
            .unwrap()
            .push(format!("refunded {}", e.amount));
        self.handled += 1;
        Ok(())
    }

    #[reset]
    async fn wipe(&mut self, db: &Journal) -> Result<(), std::io::Error> {
        db.write("wiped".into()).await;
        self.handled = 0;
        Ok(())
    }
}

fn new_event<E: Event>(event: &E) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: E::NAME.into(),
        event_version: E::VERSION,
        payload: Payload::from_json(serde_json::to_string(event).unwrap()),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

async fn record(store: &MemoryStore, till: &str, event: NewEvent) -> RecordedEvent {
    store
        .append(&StreamId::new(till), ExpectedVersion::Any, vec![event])
        .await
        .unwrap()
        .remove(0)
}

fn fail_at_once() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    }
}

#[test]
fn durable_projection_constants_and_registration() {
    assert_eq!(<Takings as DurableProjection>::NAME, "takings");
    assert_eq!(
        <Takings as DurableProjection>::EVENTS,
        ["till.paid", "till.refunded"]
    );
    // No handler takes a unit: the same impl serves every unit.
    assert_eq!(<Takings as DurableProjection<Journal>>::NAME, "takings");
    assert_eq!(<Ledger as DurableProjection<Journal>>::NAME, "ledger");

    let projections = registry::projections();
    for name in ["takings", "ledger"] {
        let registration = projections.iter().find(|r| r.name == name).unwrap();
        assert_eq!(registration.kind, ProjectionKind::Durable, "{name}");
        assert!(registration.create.is_none(), "{name} is not discoverable");
    }
    let ledger = projections.iter().find(|r| r.name == "ledger").unwrap();
    assert_eq!(ledger.type_name, "macros::durable::Ledger");
    assert_eq!(ledger.events, ["till.paid", "till.refunded"]);
    registry::check().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_feeds_async_and_sync_handlers_and_rebuilds_through_the_reset_hook() {
    let store = MemoryStore::new();
    record(&store, "till-1", new_event(&Paid { amount: 5 })).await;
    record(&store, "till-2", new_event(&Paid { amount: 7 })).await;
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(Takings::default()))
        .batch_size(1)
        .spawn();
    let refund = record(&store, "till-1", new_event(&Refunded { amount: 2 })).await;
    running.wait_for(refund.meta.position, WAIT).await.unwrap();
    let live = record(&store, "till-3", new_event(&Paid { amount: 1 })).await;
    running.wait_for(live.meta.position, WAIT).await.unwrap();

    let rebuilt = running.rebuild(None).await.unwrap();
    assert_eq!(rebuilt, live.meta.position);
    let sink = running.stop().await;
    let takings = sink.projection();
    assert_eq!(takings.total, 11);
    assert_eq!(takings.tills, ["till-1", "till-2", "till-3"]);
    assert_eq!(takings.resets, 1, "the `#[reset]` method ran once");
}

#[tokio::test]
async fn a_failing_handler_stops_the_runner_with_a_projection_error() {
    let store = MemoryStore::new();
    record(&store, "till-1", new_event(&Paid { amount: 3 })).await;
    let refund = record(&store, "till-1", new_event(&Refunded { amount: 5 })).await;
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(Takings::default()))
        .retry(fail_at_once())
        .on_failure(OnFailure::Stop)
        .spawn();
    let error = match running.wait_for(refund.meta.position, WAIT).await {
        Err(QueryError::ProjectionFailed(error)) => error,
        other => panic!("expected the projection to fail, got {other:?}"),
    };
    assert_eq!(error.projection, "takings");
    assert_eq!(error.event_name, "till.refunded");
    assert_eq!(error.position, refund.meta.position);
    match &error.failure {
        ProjectionFailure::Handler(e) => {
            assert_eq!(e.to_string(), "refund exceeds the takings by 2");
        }
        other => panic!("expected a handler failure, got {other:?}"),
    }
    assert!(matches!(running.status().state, RunnerState::Failed(_)));
    let sink = running.stop().await;
    assert_eq!(sink.projection().total, 3, "the paid event stays applied");
}

#[tokio::test]
async fn an_undecodable_payload_is_a_decode_failure() {
    let store = MemoryStore::new();
    let mut bad = new_event(&Paid { amount: 1 });
    bad.payload = Payload::from_json(r#"{"amount":"one"}"#);
    let bad = record(&store, "till-1", bad).await;
    let mut takings = Takings::default();
    let error = DurableProjection::handle(&mut takings, &(), &bad)
        .await
        .unwrap_err();
    assert_eq!(error.position, bad.meta.position);
    assert!(
        matches!(
            error.failure,
            ProjectionFailure::Decode(eventweave_core::DecodeFailure::InvalidPayload(_))
        ),
        "{error}"
    );
}

#[tokio::test]
async fn handlers_and_the_reset_hook_borrow_the_unit_of_work() {
    let store = MemoryStore::new();
    let paid = record(&store, "till-1", new_event(&Paid { amount: 4 })).await;
    let refunded = record(&store, "till-1", new_event(&Refunded { amount: 1 })).await;
    let empty = record(&store, "till-1", new_event(&Refunded { amount: 0 })).await;
    let other = record(
        &store,
        "till-1",
        NewEvent {
            event_name: "till.closed".into(),
            ..new_event(&Paid { amount: 0 })
        },
    )
    .await;

    let journal = Journal::default();
    let mut ledger = Ledger::default();
    for event in [&paid, &refunded, &other] {
        ledger.handle(&journal, event).await.unwrap();
    }
    let error = ledger.handle(&journal, &empty).await.unwrap_err();
    assert_eq!(error.projection, "ledger");
    assert_eq!(error.failure.to_string(), "handler failed: empty refund");
    assert_eq!(ledger.handled, 2, "`till.closed` is not handled");
    DurableProjection::reset(&mut ledger, &journal)
        .await
        .unwrap();
    assert_eq!(ledger.handled, 0);
    assert_eq!(
        journal.lines(),
        [
            format!("paid 4 at {}", paid.meta.position),
            "refunded 1".to_string(),
            "wiped".to_string()
        ]
    );

    // `Takings` takes no unit, so it runs over a `Journal` too.
    let mut takings = Takings::default();
    DurableProjection::<Journal>::handle(&mut takings, &journal, &paid)
        .await
        .unwrap();
    assert_eq!(takings.total, 4);
}

#[tokio::test]
async fn registered_projections_are_listed_with_kind_checkpoint_and_lag() {
    use eventweave_core::runner::{CheckpointedSink, Checkpoints, list_projections};
    let store = MemoryStore::new();
    for amount in [5, 7, 9] {
        record(&store, "till-1", new_event(&Paid { amount })).await;
    }
    store.save_checkpoint("takings", Position(1)).await.unwrap();
    let listed = list_projections(&store).await.unwrap();
    let takings = listed.iter().find(|l| l.name == "takings").unwrap();
    assert_eq!(takings.kind, ProjectionKind::Durable);
    assert_eq!(takings.events, &["till.paid", "till.refunded"]);
    assert_eq!((takings.checkpoint, takings.lag), (Position(1), 2));
    assert!(
        takings.type_name.ends_with("Takings"),
        "{}",
        takings.type_name
    );
    // The in-memory `balances` projection of the bank module has no stored checkpoint.
    let balances = listed.iter().find(|l| l.name == "balances").unwrap();
    assert_eq!(balances.kind, ProjectionKind::InMemory);
    assert_eq!((balances.checkpoint, balances.lag), (Position::ZERO, 3));
    let mut names: Vec<_> = listed.iter().map(|l| l.name).collect();
    let sorted = {
        let mut s = names.clone();
        s.sort_unstable();
        s
    };
    assert_eq!(names, sorted, "sorted by name");
    names.dedup();
    assert_eq!(names.len(), listed.len(), "one entry per name");

    // A runner over the stored checkpoint brings the lag to zero.
    let running = ProjectionRunner::new(
        store.clone(),
        CheckpointedSink::new(Takings::default(), store.clone()),
    )
    .spawn();
    running.wait_for(Position(3), WAIT).await.unwrap();
    let sink = running.stop().await;
    assert_eq!(
        sink.projection().total,
        16,
        "only the events after the checkpoint"
    );
    let listed = list_projections(&store).await.unwrap();
    let takings = listed.iter().find(|l| l.name == "takings").unwrap();
    assert_eq!((takings.checkpoint, takings.lag), (Position(3), 0));
}

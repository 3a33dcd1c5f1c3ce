//! The spans and events of `eventweave_core::telemetry`, captured by a small `tracing` layer:
//! the command span carries the documented fields, a conflict produces its event, appends and
//! loads nest under the command, and the projection runner reports batches, retries, parking
//! and catching up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventweave_core::runner::{CheckpointedSink, DurableProjection, OnFailure};
use eventweave_core::runner::{ProjectionRunner, RetryPolicy};
use eventweave_core::testing::domain::*;
use eventweave_core::{
    CommandContext, CommandError, Cqrs, EventRef, EventStore, ExpectedVersion, MemoryStore,
    NewEvent, Payload, Position, ProjectionError, ProjectionFailure, RecordedEvent, StreamId,
    UserMetadata, new_id,
};
use tracing::span;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span or an event as the layer saw it.
#[derive(Clone, Debug)]
struct Seen {
    name: &'static str,
    target: String,
    level: tracing::Level,
    /// Index (in `Captured::spans`) of the enclosing span.
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Captured {
    spans: Arc<Mutex<Vec<Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

/// Where a span's record lives in `Captured::spans` (span ids are reused, indexes are not).
struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Captured {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("the registry knows new spans");
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Index>().map(|i| i.0));
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(Seen {
            name: attrs.metadata().name(),
            target: attrs.metadata().target().to_owned(),
            level: *attrs.metadata().level(),
            parent,
            fields,
        });
        span.extensions_mut().insert(Index(spans.len() - 1));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("recorded spans exist");
        let index = span.extensions().get::<Index>().map(|i| i.0).unwrap();
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[index].fields));
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let parent = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<Index>().map(|i| i.0));
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(Seen {
            name: event.metadata().name(),
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            parent,
            fields,
        });
    }
}

impl Captured {
    /// Captures everything on this thread (the tests run on current-thread runtimes) until the
    /// guard drops.
    fn install() -> (Captured, DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(captured.clone());
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn spans(&self, name: &str) -> Vec<Seen> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }

    fn span_at(&self, index: usize) -> Seen {
        self.spans.lock().unwrap()[index].clone()
    }

    /// Events whose message is `message`.
    fn events(&self, message: &str) -> Vec<Seen> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e.fields.get("message").is_some_and(|m| m == message))
            .cloned()
            .collect()
    }
}

fn field<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.fields
        .get(name)
        .unwrap_or_else(|| panic!("`{}` has no field `{name}`: {seen:?}", seen.name))
}

async fn app(store: MemoryStore) -> Cqrs<MemoryStore> {
    Cqrs::builder(store)
        .service(Limit(100))
        .build()
        .await
        .unwrap()
}

fn added(n: u64) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: "counter.added".into(),
        event_version: 1,
        payload: Payload::from_json(format!(r#"{{"n":{n}}}"#)),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

#[tokio::test]
async fn a_command_span_carries_the_documented_fields() {
    let (captured, _guard) = Captured::install();
    let app = app(MemoryStore::new()).await;
    app.execute(Open { id: 7 }).await.unwrap();
    let cause = app
        .store()
        .read_all(Position::ZERO, 1)
        .await
        .unwrap()
        .remove(0);
    let context = CommandContext::new().caused_by(&cause.meta);
    let outcome = app
        .execute_with(Add { id: 7, n: 5 }, context)
        .await
        .unwrap();

    let commands = captured.spans("command");
    assert_eq!(commands.len(), 2, "{commands:?}");
    let add = &commands[1];
    assert_eq!(add.target, "eventweave::command");
    assert_eq!(add.level, tracing::Level::DEBUG);
    for (name, value) in [
        ("command", "Add".to_owned()),
        ("aggregate", "counter".to_owned()),
        ("stream", "counter-7".to_owned()),
        ("command_id", outcome.command_id.to_string()),
        ("correlation_id", outcome.correlation_id.to_string()),
        ("causation_id", cause.meta.event_id.to_string()),
        ("expected_version", "1".to_owned()),
        ("new_version", "2".to_owned()),
        ("events", "1".to_owned()),
        ("attempts", "1".to_owned()),
        ("outcome", "ok".to_owned()),
    ] {
        assert_eq!(field(add, name), value, "field `{name}` of {add:?}");
    }
    // The creation had no cause: the field is absent, not empty.
    assert!(!commands[0].fields.contains_key("causation_id"));

    // The append is a child of the command, with its own fields.
    let appends = captured.spans("append");
    assert_eq!(appends.len(), 2);
    let append = &appends[1];
    let parent = captured.span_at(append.parent.expect("inside the command"));
    assert_eq!((parent.name, field(&parent, "command")), ("command", "Add"));
    assert_eq!(append.target, "eventweave::store");
    assert_eq!(field(append, "store"), "memory");
    assert_eq!(field(append, "stream"), "counter-7");
    assert_eq!(field(append, "events"), "1");
    assert_eq!(field(append, "bytes"), r#"{"n":5}"#.len().to_string());
    assert_eq!(
        field(append, "first_position"),
        outcome.position().0.to_string()
    );
    assert_eq!(field(append, "outcome"), "ok");
    // Nothing failed, so nothing was said at info or above.
    let events = captured.events.lock().unwrap();
    assert!(
        events.iter().all(|e| e.level > tracing::Level::INFO),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_conflict_produces_its_event_and_the_retry_shows_in_the_span() {
    let (captured, _guard) = Captured::install();
    let app = app(MemoryStore::new()).await;
    app.execute(Open { id: 1 }).await.unwrap();
    // Another writer appends behind the cache's back: the next command conflicts once.
    let stream = StreamId::from("counter-1");
    let store = app.store();
    store
        .append(&stream, ExpectedVersion::Exact(1), vec![added(10)])
        .await
        .unwrap();
    let outcome = app.execute(Add { id: 1, n: 1 }).await.unwrap();
    assert_eq!(outcome.attempts, 2);

    let conflicts = captured.events("conflict: deciding again on fresh state");
    assert_eq!(conflicts.len(), 1, "{:?}", captured.events.lock().unwrap());
    let conflict = &conflicts[0];
    assert_eq!(conflict.level, tracing::Level::DEBUG);
    assert_eq!(field(conflict, "stream"), "counter-1");
    assert_eq!(field(conflict, "expected_version"), "1");
    assert_eq!(field(conflict, "actual_version"), "2");
    assert_eq!(field(conflict, "attempts"), "1");
    let command = captured.span_at(conflict.parent.expect("inside the command span"));
    assert_eq!(field(&command, "command"), "Add");
    assert_eq!(field(&command, "attempts"), "2");
    assert_eq!(field(&command, "expected_version"), "2");
    assert_eq!(field(&command, "new_version"), "3");
    assert_eq!(field(&command, "outcome"), "ok");
    // The retry replayed the stream: a load span under the command, which read both events.
    let loads = captured.spans("load");
    assert_eq!(loads.len(), 1, "{loads:?}");
    assert_eq!(field(&loads[0], "events"), "2");
    assert_eq!(field(&loads[0], "version"), "2");
    assert_eq!(
        captured.span_at(loads[0].parent.unwrap()).name,
        "command",
        "the load belongs to the command"
    );
}

#[tokio::test]
async fn failed_commands_are_reported_at_info_with_their_outcome() {
    let (captured, _guard) = Captured::install();
    let app = Cqrs::builder(MemoryStore::new())
        .service(Limit(100))
        .max_retries(0)
        .build()
        .await
        .unwrap();
    app.execute(Open { id: 1 }).await.unwrap();
    // A rejection.
    let err = app
        .execute(AddLimited { id: 1, n: 1_000 })
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Rejected(_)), "{err:?}");
    // A conflict with no retries left.
    app.store()
        .append(
            &StreamId::from("counter-1"),
            ExpectedVersion::Exact(1),
            vec![added(1)],
        )
        .await
        .unwrap();
    let err = app.execute(Add { id: 1, n: 1 }).await.unwrap_err();
    assert!(matches!(err, CommandError::Conflict { .. }), "{err:?}");
    // A panicking handler (the test domain's `Add` panics on 13).
    let err = app.execute(Add { id: 1, n: 13 }).await.unwrap_err();
    assert!(matches!(err, CommandError::Panicked { .. }), "{err:?}");

    assert_eq!(captured.events("conflict: no retries left").len(), 1);
    let failed = captured.events("command failed");
    let outcomes: Vec<_> = failed.iter().map(|e| field(e, "outcome")).collect();
    assert_eq!(outcomes, ["rejected", "conflict", "panicked"]);
    let levels: Vec<_> = failed.iter().map(|e| e.level).collect();
    use tracing::Level;
    assert_eq!(levels, [Level::INFO, Level::INFO, Level::ERROR]);
    assert_eq!(field(&failed[0], "command"), "AddLimited");
    assert!(
        field(&failed[0], "error").contains("OverLimit"),
        "{failed:?}"
    );
    let commands = captured.spans("command");
    let outcomes: Vec<_> = commands.iter().map(|s| field(s, "outcome")).collect();
    assert_eq!(outcomes, ["ok", "rejected", "conflict", "panicked"]);
    // The event sits inside its command's span.
    let parent = captured.span_at(failed[0].parent.expect("inside the command span"));
    assert_eq!(field(&parent, "command"), "AddLimited");
}

/// Sums `counter.added`, failing for good on `n == 13`.
#[derive(Default)]
struct Unlucky(u64);

impl DurableProjection for Unlucky {
    const NAME: &'static str = "unlucky";
    const EVENTS: &'static [&'static str] = &["counter.added"];

    async fn handle(&mut self, _: &(), event: &RecordedEvent) -> Result<(), ProjectionError> {
        let value = EventRef::stored(event)
            .decode::<Added>()
            .map_err(|f| EventRef::stored(event).error(Self::NAME, ProjectionFailure::Decode(f)))?
            .expect("only counter.added is handed over");
        if value.n == 13 {
            let failure = ProjectionFailure::Handler(Arc::new(std::fmt::Error));
            return Err(EventRef::stored(event).error(Self::NAME, failure));
        }
        self.0 += value.n;
        Ok(())
    }
}

#[tokio::test]
async fn the_runner_reports_batches_retries_parking_and_catching_up() {
    let (captured, _guard) = Captured::install();
    let store = MemoryStore::new();
    for n in [1, 2, 13, 4] {
        store
            .append(
                &StreamId::from("counter-1"),
                ExpectedVersion::Any,
                vec![added(n)],
            )
            .await
            .unwrap();
    }
    let running = ProjectionRunner::new(
        store.clone(),
        CheckpointedSink::new(Unlucky::default(), store.clone()),
    )
    .retry(RetryPolicy {
        max_attempts: 3,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    })
    .on_failure(OnFailure::Park)
    .spawn();
    running
        .wait_for(Position(4), Duration::from_secs(5))
        .await
        .unwrap();
    // "Caught up" comes after the empty read at the head.
    for _ in 0..500 {
        if !captured.events("projection caught up").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sink = running.stop().await;
    assert_eq!(sink.projection().0, 7);

    let lease = captured.events("lease acquired");
    assert_eq!(lease.len(), 1);
    assert_eq!(field(&lease[0], "projection"), "unlucky");
    // The first batch fails at position 3 (the sink commits 1..=2 itself); 3 is then tried
    // alone (attempt 2), retried (attempt 3), parked, and 4 follows.
    let batches = captured.spans("projection.batch");
    let ranges: Vec<_> = batches
        .iter()
        .map(|b| {
            let f = |n| field(b, n).to_owned();
            (f("from"), f("through"), f("events"), f("outcome"))
        })
        .collect();
    let s = |v: &str| v.to_owned();
    assert_eq!(
        ranges,
        [
            (s("1"), s("4"), s("4"), s("failed")),
            (s("3"), s("3"), s("1"), s("failed")),
            (s("3"), s("3"), s("1"), s("failed")),
            (s("4"), s("4"), s("1"), s("ok")),
        ]
    );
    assert!(batches.iter().all(|b| b.target == "eventweave::projection"
        && field(b, "projection") == "unlucky"
        && field(b, "duration_ms").parse::<f64>().is_ok()));
    let retrying = captured.events("event failed, retrying");
    assert_eq!(retrying.len(), 1, "{retrying:?}");
    assert_eq!(
        (
            field(&retrying[0], "position"),
            field(&retrying[0], "attempts")
        ),
        ("3", "2")
    );
    let parked = captured.events("event parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].level, tracing::Level::WARN);
    assert_eq!(field(&parked[0], "position"), "3");
    assert_eq!(field(&parked[0], "stream"), "counter-1");
    let caught_up = captured.events("projection caught up");
    assert_eq!(caught_up.len(), 1);
    assert_eq!(field(&caught_up[0], "position"), "4");
    assert_eq!(caught_up[0].level, tracing::Level::INFO);
}

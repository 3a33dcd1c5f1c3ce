//! The projection runner over `MemoryStore`: catch-up then live, retries, stop and park,
//! restart, rebuild with progress, checkpoints in the store, leases and groups.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventweave_core::runner::{
    ApplyError, CheckpointedSink, Checkpoints, DurableProjection, Lease, Leases, MemorySink,
    OnFailure, Progress, ProjectionGroup, ProjectionRunner, ProjectionSink, RetryPolicy,
    RunnerState, RunningProjection,
};
use eventweave_core::testing::domain::Added;
use eventweave_core::{
    BuildError, EventRef, EventStore, ExpectedVersion, MemoryStore, NewEvent, Payload, Position,
    ProjectionError, ProjectionFailure, QueryError, RecordedEvent, StoreError, StreamId,
    UserMetadata, new_id,
};

const WAIT: Duration = Duration::from_secs(5);

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn added(json: &str) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: "counter.added".into(),
        event_version: 1,
        payload: Payload::from_json(json),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

fn other(json: &str) -> NewEvent {
    NewEvent {
        event_name: "counter.opened".into(),
        ..added(json)
    }
}

/// Appends `n` to stream `counter-<id>`; returns the recorded event.
async fn add(store: &MemoryStore, id: u32, n: u64) -> RecordedEvent {
    store
        .append(
            &StreamId::new(format!("counter-{id}")),
            ExpectedVersion::Any,
            vec![added(&format!(r#"{{"n":{n}}}"#))],
        )
        .await
        .unwrap()
        .remove(0)
}

/// Sums of `counter.added` per stream, with knobs to make it fail.
#[derive(Default)]
struct Sums {
    by_stream: BTreeMap<String, u64>,
    /// Positions handled, in order (each must appear once).
    seen: Vec<u64>,
    /// Fail on this position while `failures_left > 0` (then succeed).
    fail_at: Option<u64>,
    failures_left: Arc<AtomicU32>,
    /// Panic instead of returning an error.
    panic: bool,
    resets: u32,
}

#[derive(Debug)]
struct Flaky;
impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("flaky downstream")
    }
}
impl std::error::Error for Flaky {}

impl DurableProjection for Sums {
    const NAME: &'static str = "sums";
    const EVENTS: &'static [&'static str] = &["counter.added"];

    async fn handle(&mut self, _: &(), event: &RecordedEvent) -> Result<(), ProjectionError> {
        let position = event.meta.position.0;
        if self.fail_at == Some(position)
            && self
                .failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            if self.panic {
                panic!("boom at {position}");
            }
            let failure = ProjectionFailure::Handler(Arc::new(Flaky));
            return Err(EventRef::stored(event).error(Self::NAME, failure));
        }
        let decoded = EventRef::stored(event).decode::<Added>();
        let value = decoded
            .map_err(|f| EventRef::stored(event).error(Self::NAME, ProjectionFailure::Decode(f)))?
            .expect("only counter.added is handed over");
        tokio::task::yield_now().await;
        *self
            .by_stream
            .entry(event.meta.stream.to_string())
            .or_default() += value.n;
        self.seen.push(position);
        Ok(())
    }

    async fn reset(&mut self, _: &()) -> Result<(), ProjectionFailure> {
        self.by_stream.clear();
        self.seen.clear();
        self.resets += 1;
        Ok(())
    }
}

/// The same projection under another name, to run two over one store.
#[derive(Default)]
struct OtherSums(Sums);
impl DurableProjection for OtherSums {
    const NAME: &'static str = "other_sums";
    const EVENTS: &'static [&'static str] = &["counter.added"];
    async fn handle(&mut self, unit: &(), event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.0.handle(unit, event).await.map_err(|mut e| {
            e.projection = Self::NAME;
            e
        })
    }
}

/// What `Sums` must hold after the store's events: computed from the stored rows, not by it.
async fn expected_sums(store: &MemoryStore) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for event in store.read_all(Position::ZERO, usize::MAX).await.unwrap() {
        if &*event.meta.event_name == "counter.added"
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(event.payload.as_str())
            && let Some(n) = value["n"].as_u64()
        {
            *sums.entry(event.meta.stream.to_string()).or_default() += n;
        }
    }
    sums
}

async fn wait_state(
    running: &RunningProjection<impl eventweave_core::runner::ProjectionSink>,
    pred: impl Fn(&RunnerState) -> bool,
) -> RunnerState {
    for _ in 0..500 {
        let state = running.status().state;
        if pred(&state) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("state not reached: {:?}", running.status());
}

#[tokio::test]
async fn catches_up_in_batches_then_follows_live_events() {
    let store = MemoryStore::new();
    for i in 0..50 {
        add(&store, i % 3, u64::from(i) + 1).await;
    }
    // An event it does not handle still moves the checkpoint.
    store
        .append(
            &StreamId::new("counter-9"),
            ExpectedVersion::Any,
            vec![other("null")],
        )
        .await
        .unwrap();
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(Sums::default()))
        .batch_size(7)
        .spawn();
    running.wait_for(Position(51), WAIT).await.unwrap();
    assert!(matches!(
        wait_state(&running, |s| matches!(s, RunnerState::Live)).await,
        RunnerState::Live
    ));
    let live = add(&store, 1, 1000).await;
    running.wait_for(live.meta.position, WAIT).await.unwrap();
    let sink = running.stop().await;
    assert_eq!(sink.projection().by_stream, expected_sums(&store).await);
    let seen = &sink.projection().seen;
    assert_eq!(seen.len(), 51);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, once each");
}

#[tokio::test]
async fn a_failing_handler_is_retried_and_its_event_counted_once() {
    let store = MemoryStore::new();
    for i in 0..20 {
        add(&store, i % 2, 1).await;
    }
    for panic in [false, true] {
        let sums = Sums {
            fail_at: Some(9),
            failures_left: Arc::new(AtomicU32::new(2)),
            panic,
            ..Sums::default()
        };
        let running = ProjectionRunner::new(store.clone(), MemorySink::new(sums))
            .retry(fast_retries(5))
            .spawn();
        running.wait_for(Position(20), WAIT).await.unwrap();
        let sink = running.stop().await;
        assert_eq!(sink.projection().by_stream, expected_sums(&store).await);
        assert_eq!(sink.projection().seen, (1..=20).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn after_its_last_try_a_failing_event_stops_the_runner_until_restarted() {
    let store = MemoryStore::new();
    for i in 0..10 {
        add(&store, i, 1).await;
    }
    let failures_left = Arc::new(AtomicU32::new(u32::MAX));
    let sums = Sums {
        fail_at: Some(6),
        failures_left: Arc::clone(&failures_left),
        ..Sums::default()
    };
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(sums))
        .retry(fast_retries(3))
        .spawn();
    let RunnerState::Failed(error) =
        wait_state(&running, |s| matches!(s, RunnerState::Failed(_))).await
    else {
        unreachable!()
    };
    assert_eq!(error.projection, "sums");
    assert_eq!(error.position, Position(6));
    assert_eq!(error.stream.as_str(), "counter-5");
    assert_eq!(error.version, 1);
    assert_eq!(error.event_name, "counter.added");
    let cause = std::error::Error::source(&error).expect("the handler's error is the source");
    assert!(cause.to_string().contains("flaky downstream"), "{cause}");
    assert_eq!(running.checkpoint(), Position(5), "stops just before it");
    let waited = running.wait_for(Position(10), WAIT).await.unwrap_err();
    assert!(
        matches!(&waited, QueryError::ProjectionFailed(e) if e.position == Position(6)),
        "{waited:?}"
    );
    // Still stopped a while later: nothing is skipped.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(running.checkpoint(), Position(5));
    // The cause is fixed; a restart goes on from the checkpoint.
    failures_left.store(0, Ordering::SeqCst);
    running.restart();
    running.wait_for(Position(10), WAIT).await.unwrap();
    let sink = running.stop().await;
    assert_eq!(sink.projection().seen, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_undecodable_event_stops_its_projection_at_once_and_others_go_on() {
    let store = MemoryStore::new();
    add(&store, 1, 1).await;
    let bad = store
        .append(
            &StreamId::new("counter-2"),
            ExpectedVersion::Any,
            vec![added(r#"{"n":"not a number"}"#)],
        )
        .await
        .unwrap()
        .remove(0);
    add(&store, 3, 3).await;
    let stuck = ProjectionRunner::new(store.clone(), MemorySink::new(Sums::default()))
        .retry(fast_retries(1000))
        .spawn();
    let RunnerState::Failed(error) =
        wait_state(&stuck, |s| matches!(s, RunnerState::Failed(_))).await
    else {
        unreachable!()
    };
    assert_eq!(
        (error.projection, error.stream.as_str(), error.version),
        ("sums", "counter-2", 1)
    );
    assert_eq!(error.position, bad.meta.position);
    assert!(matches!(error.failure, ProjectionFailure::Decode(_)));
    assert_eq!(stuck.checkpoint(), Position(1));

    // Another projection over the same store parks it and goes on.
    let parking = ProjectionRunner::new(
        store.clone(),
        CheckpointedSink::new(OtherSums::default(), store.clone()),
    )
    .on_failure(OnFailure::Park)
    .spawn();
    parking.wait_for(Position(3), WAIT).await.unwrap();
    assert_eq!(parking.status().parked, 1);
    let parked = store.parked_events("other_sums").await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, bad.meta.position);
    assert_eq!(parked[0].event_id, bad.meta.event_id);
    assert!(parked[0].error.contains("counter-2"), "{}", parked[0].error);
    let sink = parking.stop().await;
    assert_eq!(sink.projection().0.seen, vec![1, 3]);
    assert_eq!(stuck.stop().await.projection().seen, vec![1]);
}

#[tokio::test]
async fn a_checkpointed_sink_resumes_from_its_stored_checkpoint() {
    let store = MemoryStore::new();
    for i in 0..5 {
        add(&store, i, 1).await;
    }
    let running = ProjectionRunner::new(
        store.clone(),
        CheckpointedSink::new(Sums::default(), store.clone()),
    )
    .spawn();
    running.wait_for(Position(5), WAIT).await.unwrap();
    running.stop().await;
    assert_eq!(store.load_checkpoint("sums").await.unwrap(), Position(5));
    for i in 0..3 {
        add(&store, i, 10).await;
    }
    let running = ProjectionRunner::new(
        store.clone(),
        CheckpointedSink::new(Sums::default(), store.clone()),
    )
    .spawn();
    running.wait_for(Position(8), WAIT).await.unwrap();
    let sink = running.stop().await;
    assert_eq!(sink.projection().seen, vec![6, 7, 8], "only the new events");
}

#[tokio::test]
async fn rebuild_resets_replays_and_reports_progress() {
    let store = MemoryStore::new();
    for i in 0..100 {
        add(&store, i % 4, 2).await;
    }
    let first: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let reports = Arc::clone(&first);
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(Sums::default()))
        .batch_size(16)
        .on_progress(move |p| reports.lock().unwrap().push(p.clone()))
        .spawn();
    running.wait_for(Position(100), WAIT).await.unwrap();
    wait_state(&running, |s| matches!(s, RunnerState::Live)).await;
    check_progress(&first.lock().unwrap(), 100);

    let rebuilt: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let reports = Arc::clone(&rebuilt);
    let reached = running
        .rebuild(Some(Arc::new(move |p: &Progress| {
            reports.lock().unwrap().push(p.clone())
        })))
        .await
        .unwrap();
    assert_eq!(reached, Position(100));
    check_progress(&rebuilt.lock().unwrap(), 100);
    let sink = running.stop().await;
    assert_eq!(sink.projection().resets, 1);
    assert_eq!(sink.projection().by_stream, expected_sums(&store).await);
    assert_eq!(sink.projection().seen, (1..=100).collect::<Vec<_>>());
}

fn check_progress(reports: &[Progress], total: u64) {
    assert!(reports.len() >= 2, "{reports:?}");
    assert!(reports.windows(2).all(|w| w[0].done <= w[1].done));
    assert!(
        reports
            .iter()
            .all(|r| r.total == total && r.projection == "sums")
    );
    let last = reports.last().unwrap();
    assert!(last.finished && last.done == total, "{last:?}");
    assert_eq!(reports.iter().filter(|r| r.finished).count(), 1);
}

/// One holder at a time; `revoke` makes the holder lose it.
#[derive(Clone, Default)]
struct TestLeases {
    held: Arc<Mutex<HashSet<String>>>,
    revoked: Arc<AtomicBool>,
}

struct TestLease {
    name: String,
    leases: TestLeases,
}

impl Leases for TestLeases {
    type Lease = TestLease;
    async fn try_acquire(&self, projection: &str) -> Result<Option<TestLease>, StoreError> {
        let granted = self.held.lock().unwrap().insert(projection.to_owned());
        Ok(granted.then(|| TestLease {
            name: projection.to_owned(),
            leases: self.clone(),
        }))
    }
}

impl Lease for TestLease {
    async fn lost(&mut self) {
        while !self.leases.revoked.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for TestLease {
    fn drop(&mut self) {
        self.leases.held.lock().unwrap().remove(&self.name);
    }
}

#[tokio::test]
async fn one_runner_holds_the_lease_and_another_takes_over_from_the_checkpoint() {
    let store = MemoryStore::new();
    for i in 0..10 {
        add(&store, i, 1).await;
    }
    let leases = TestLeases::default();
    let start = |leases: TestLeases| {
        ProjectionRunner::new(
            store.clone(),
            CheckpointedSink::new(Sums::default(), store.clone()),
        )
        .leases(leases, Duration::from_millis(10))
        .spawn()
    };
    let first = start(leases.clone());
    first.wait_for(Position(10), WAIT).await.unwrap();
    let second = start(leases.clone());
    wait_state(&second, |s| matches!(s, RunnerState::Standby)).await;
    add(&store, 1, 5).await;
    first.wait_for(Position(11), WAIT).await.unwrap();
    // The holder stops: its lease is released and the stand-by resumes at position 12.
    let first = first.stop().await;
    assert_eq!(first.projection().seen, (1..=11).collect::<Vec<_>>());
    add(&store, 2, 5).await;
    second.wait_for(Position(12), WAIT).await.unwrap();
    // A lost lease stops work at once: the runner stands by again.
    leases.revoked.store(true, Ordering::SeqCst);
    wait_state(&second, |s| matches!(s, RunnerState::Standby)).await;
    let second = second.stop().await;
    assert_eq!(
        second.projection().seen,
        vec![12],
        "from the checkpoint, once"
    );
}

#[tokio::test]
async fn a_group_refuses_two_projections_with_one_name() {
    let store = MemoryStore::new();
    let group = ProjectionGroup::new()
        .runner(ProjectionRunner::new(
            store.clone(),
            MemorySink::new(Sums::default()),
        ))
        .runner(ProjectionRunner::new(
            store.clone(),
            MemorySink::new(OtherSums::default()),
        ));
    let running = group.start().unwrap();
    add(&store, 1, 1).await;
    running.wait_for(Position(1), WAIT).await.unwrap();
    assert_eq!(
        running
            .statuses()
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>(),
        ["sums", "other_sums"]
    );
    running.stop().await;

    let duplicate = ProjectionGroup::new()
        .runner(ProjectionRunner::new(
            store.clone(),
            MemorySink::new(Sums::default()),
        ))
        .runner(ProjectionRunner::new(
            store.clone(),
            MemorySink::new(Sums::default()),
        ))
        .start();
    assert!(
        matches!(
            duplicate,
            Err(BuildError::DuplicateProjection { name: "sums", .. })
        ),
        "{:?}",
        duplicate.err()
    );
}

#[tokio::test]
async fn wait_for_times_out_with_a_typed_error() {
    let store = MemoryStore::new();
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(Sums::default())).spawn();
    let err = running
        .wait_for(Position(3), Duration::from_millis(30))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            QueryError::Timeout {
                projection: "sums",
                target: Position(3),
                ..
            }
        ),
        "{err:?}"
    );
    running.stop().await;
}

/// Parks the event at position 3 of five and returns the sink and the parked event; the handler
/// fails once more on it (the first replay), then succeeds.
async fn parked_third<K: ProjectionSink>(
    store: &MemoryStore,
    sink: impl FnOnce(Sums) -> K,
) -> (K, RecordedEvent) {
    let mut events = Vec::new();
    for i in 1..=5 {
        events.push(add(store, i, u64::from(i)).await);
    }
    let failures_left = Arc::new(AtomicU32::new(u32::MAX));
    let sums = Sums {
        fail_at: Some(3),
        failures_left: Arc::clone(&failures_left),
        ..Sums::default()
    };
    let running = ProjectionRunner::new(store.clone(), sink(sums))
        .retry(fast_retries(1))
        .on_failure(OnFailure::Park)
        .spawn();
    running.wait_for(Position(5), WAIT).await.unwrap();
    assert_eq!(running.status().parked, 1);
    let sink = running.stop().await;
    failures_left.store(1, Ordering::SeqCst);
    (sink, events.swap_remove(2))
}

/// What every sink must do with a parked event: refuse it while its handler still fails (the
/// record stays), apply it once fixed without moving the checkpoint, then say it is not parked.
async fn replays_once<K: ProjectionSink>(
    sink: &mut K,
    third: &RecordedEvent,
    parked: impl AsyncFn() -> Vec<Position>,
) {
    assert_eq!(parked().await, [Position(3)]);
    let failed = sink.replay_parked(third).await.unwrap_err();
    assert!(
        matches!(&failed, ApplyError::Handler(e) if e.position == Position(3)),
        "{failed:?}"
    );
    assert_eq!(
        parked().await,
        [Position(3)],
        "a failed replay keeps the record"
    );
    sink.replay_parked(third).await.unwrap();
    assert!(parked().await.is_empty());
    assert_eq!(sink.checkpoint().await.unwrap(), Position(5), "not moved");
    let again = sink.replay_parked(third).await.unwrap_err();
    assert!(
        again.to_string().contains("is not parked by projection"),
        "{again}"
    );
}

#[tokio::test]
async fn a_parked_event_is_replayed_once_through_a_memory_sink() {
    let store = MemoryStore::new();
    let (mut sink, third) = parked_third(&store, MemorySink::new).await;
    let parked = |sink: &MemorySink<Sums>| -> Vec<Position> {
        sink.parked().iter().map(|p| p.position).collect()
    };
    assert_eq!(parked(&sink), [Position(3)]);
    let failed = sink.replay_parked(&third).await.unwrap_err();
    assert!(matches!(&failed, ApplyError::Handler(_)), "{failed:?}");
    assert_eq!(
        parked(&sink),
        [Position(3)],
        "a failed replay keeps the record"
    );
    sink.replay_parked(&third).await.unwrap();
    assert!(parked(&sink).is_empty());
    assert_eq!(sink.checkpoint().await.unwrap(), Position(5), "not moved");
    let again = sink.replay_parked(&third).await.unwrap_err();
    assert!(
        again.to_string().contains("is not parked by projection"),
        "{again}"
    );
    assert_eq!(
        sink.projection().seen,
        [1, 2, 4, 5, 3],
        "applied once, after the others"
    );
    assert_eq!(sink.projection().by_stream["counter-3"], 3);
}

#[tokio::test]
async fn a_parked_event_is_replayed_once_through_a_checkpointed_sink() {
    let store = MemoryStore::new();
    let (mut sink, third) =
        parked_third(&store, |sums| CheckpointedSink::new(sums, store.clone())).await;
    let parked = async || -> Vec<Position> {
        let records = store.parked_events("sums").await.unwrap();
        records.iter().map(|p| p.position).collect()
    };
    replays_once(&mut sink, &third, parked).await;
    assert_eq!(store.load_checkpoint("sums").await.unwrap(), Position(5));
    assert_eq!(sink.projection().seen, [1, 2, 4, 5, 3]);
}

#[tokio::test]
async fn a_reset_drops_the_parked_records_it_will_apply_again() {
    let store = MemoryStore::new();
    let (mut sink, _) =
        parked_third(&store, |sums| CheckpointedSink::new(sums, store.clone())).await;
    assert_eq!(store.parked_events("sums").await.unwrap().len(), 1);
    sink.reset().await.unwrap();
    assert!(store.parked_events("sums").await.unwrap().is_empty());
    assert_eq!(store.load_checkpoint("sums").await.unwrap(), Position::ZERO);

    let (mut memory, _) = parked_third(&MemoryStore::new(), MemorySink::new).await;
    assert_eq!(memory.parked().len(), 1);
    memory.reset().await.unwrap();
    assert!(memory.parked().is_empty());
}

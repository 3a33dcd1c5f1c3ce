//! In-process writers of one file take turns without blocking the runtime: a `SqliteSink` batch
//! whose handler really suspends (a sleep, a channel) holds the file's write turn, and appends
//! made meanwhile wait for it with `.await`, then succeed after the batch commits, instead of
//! sleeping in SQLite's busy handler (which blocks the runtime thread the batch needs, and fails
//! with `SQLITE_BUSY` after the busy timeout).
//!
//! The tests use a short busy timeout, so that code which still waited in the busy handler would
//! fail quickly rather than hang.
//!
//! Cases: the batch's handler suspends while appends run on a `current_thread` runtime, on 2
//! workers with a ping loop, and with two handles on one file; snapshot, checkpoint and
//! parked-event saves wait the same way; dropped writers give their place up; a write from inside a
//! batch fails with `WriteInSinkBatch`; a handle opened during a batch opens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventweave_core::runner::{
    ApplyError, Checkpoints, DurableProjection, ProjectionRunner, ProjectionSink,
};
use eventweave_core::{
    EventStore, ExpectedVersion, NewEvent, Payload, Position, ProjectionError, ProjectionFailure,
    RecordedEvent, StoreError, StreamId, UserMetadata, new_id,
};
use eventweave_sqlite::rusqlite::Connection;
use eventweave_sqlite::{SqliteConfig, SqliteSink, SqliteStore, SqliteTx, WriteInSinkBatch};
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(30);

/// Short, so that an append stuck in SQLite's busy handler fails fast.
fn config() -> SqliteConfig {
    SqliteConfig::new().busy_timeout(Duration::from_millis(300))
}

const NOTED: &str = "test.noted";

fn noted() -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: NOTED.into(),
        event_version: 1,
        payload: Payload::from_json("{}"),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

/// Records each event in the table `seen` of the store's file, tells the test it has entered
/// (holding the batch open), waits until the gate is open, then sleeps `pause`.
struct Gated {
    entered: mpsc::UnboundedSender<Position>,
    gate: watch::Receiver<bool>,
    pause: Duration,
    /// Set to append through the store from inside the handler (which must fail at once).
    appends_to: Option<SqliteStore>,
}

/// The test's side of a `Gated` projection.
struct Control {
    entered: mpsc::UnboundedReceiver<Position>,
    gate: watch::Sender<bool>,
}

impl Control {
    fn open(&self) {
        self.gate.send_replace(true);
    }

    async fn entered(&mut self) -> Position {
        tokio::time::timeout(WAIT, self.entered.recv())
            .await
            .expect("the handler was not entered")
            .expect("the projection is gone")
    }
}

fn gated(pause: Duration) -> (Gated, Control) {
    let (entered_tx, entered) = mpsc::unbounded_channel();
    let (gate, gate_rx) = watch::channel(false);
    let projection = Gated {
        entered: entered_tx,
        gate: gate_rx,
        pause,
        appends_to: None,
    };
    (projection, Control { entered, gate })
}

impl DurableProjection<SqliteTx> for Gated {
    const NAME: &'static str = "gated";
    const EVENTS: &'static [&'static str] = &[NOTED];

    async fn handle(
        &mut self,
        db: &SqliteTx,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let failed = |failure| ProjectionError::new(Self::NAME, event, failure);
        let meta = &event.meta;
        db.execute(
            "INSERT INTO seen (position, stream, version) VALUES (?1, ?2, ?3)",
            (
                meta.position.0 as i64,
                meta.stream.as_str(),
                meta.version as i64,
            ),
        )
        .map_err(|e| failed(ProjectionFailure::Handler(Arc::new(e))))?;
        let _ = self.entered.send(meta.position);
        if let Some(store) = &self.appends_to {
            store
                .append(
                    &StreamId::from("inside"),
                    ExpectedVersion::Any,
                    vec![noted()],
                )
                .await
                .map_err(|e| failed(ProjectionFailure::Handler(Arc::new(e))))?;
        }
        let mut gate = self.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        Ok(())
    }
}

fn sink(store: &SqliteStore, projection: Gated) -> SqliteSink<Gated> {
    let sink = SqliteSink::new(store, projection).expect("sink");
    sink.unit()
        .execute(
            "CREATE TABLE IF NOT EXISTS seen (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, \
             version INTEGER NOT NULL)",
            [],
        )
        .expect("create the read model");
    sink
}

/// The read model: (position, stream, version) of every event the projection committed.
fn seen(store: &SqliteStore) -> Vec<(u64, String, u64)> {
    let conn = Connection::open(store.path()).expect("open");
    let mut statement = conn
        .prepare("SELECT position, stream, version FROM seen ORDER BY position")
        .expect("prepare");
    statement
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)? as u64,
                row.get(1)?,
                row.get::<_, i64>(2)? as u64,
            ))
        })
        .expect("query")
        .map(|row| row.expect("row"))
        .collect()
}

/// What the read model must hold once every stored event is applied: one row per event.
async fn every_event(store: &SqliteStore) -> Vec<(u64, String, u64)> {
    store
        .read_all(Position::ZERO, 100_000)
        .await
        .expect("read_all")
        .iter()
        .map(|e| (e.meta.position.0, e.meta.stream.to_string(), e.meta.version))
        .collect()
}

/// Test 1. `current_thread` runtime (as the examples use): the sink's handler suspends while
/// an append runs concurrently. The append waits for the batch, then lands after its commit.
#[tokio::test(flavor = "current_thread")]
async fn an_append_waits_for_a_suspended_sink_batch_on_a_current_thread_runtime() {
    let store = SqliteStore::temporary_with(config()).expect("store");
    let (projection, mut control) = gated(Duration::from_millis(200));
    let running = ProjectionRunner::new(store.clone(), sink(&store, projection)).spawn();

    let stream = StreamId::from("a");
    let first = store
        .append(&stream, ExpectedVersion::NoStream, vec![noted()])
        .await
        .expect("first append");
    assert_eq!(control.entered().await, first[0].meta.position);

    // The batch of the first event is open and its handler suspended: append meanwhile.
    let appender = {
        let store = store.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            let result = store
                .append(&stream, ExpectedVersion::Exact(1), vec![noted()])
                .await;
            // Where the projection's checkpoint was when the append returned.
            let checkpoint = store.load_checkpoint(Gated::NAME).await;
            (result, checkpoint)
        })
    };
    // Let the append start and wait; then let the handler finish (it still sleeps 200 ms).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    if appender.is_finished() {
        let (result, _) = appender.await.expect("append task");
        panic!("the append did not wait for the batch: {result:?}");
    }
    control.open();

    let (result, checkpoint) = appender.await.expect("append task");
    let second = result.expect("the append succeeds after the batch, without SQLITE_BUSY");
    assert_eq!(second[0].meta.version, 2);
    assert_eq!(
        checkpoint.expect("checkpoint"),
        first[0].meta.position,
        "the append landed after the batch committed"
    );
    running
        .wait_for(second[0].meta.position, WAIT)
        .await
        .expect("the projection reaches the second event");
    running.stop().await;
    assert_eq!(seen(&store), every_event(&store).await, "read model exact");
    assert_eq!(seen(&store).len(), 2);
}

/// Test 2. Multi-thread runtime with 2 workers: appends waiting behind a long sink batch do not
/// occupy the workers; a plain task keeps making progress meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_waiting_for_a_sink_batch_leave_the_workers_free() {
    // Long enough that appends stuck in the busy handler would hold both workers for seconds.
    let store =
        SqliteStore::temporary_with(SqliteConfig::new().busy_timeout(Duration::from_secs(3)))
            .expect("store");
    let (projection, mut control) = gated(Duration::ZERO);
    let running = ProjectionRunner::new(store.clone(), sink(&store, projection)).spawn();
    let first = store
        .append(&StreamId::from("s-0"), ExpectedVersion::Any, vec![noted()])
        .await
        .expect("first append");
    assert_eq!(control.entered().await, first[0].meta.position);

    // A ping loop on the same runtime: 40 rounds of 5 ms.
    let started = Instant::now();
    let pinger = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        started.elapsed()
    });
    // Meanwhile four appends queue behind the open batch.
    let appenders: Vec<_> = (1..=4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &StreamId::from(format!("s-{i}")),
                        ExpectedVersion::NoStream,
                        vec![noted()],
                    )
                    .await
            })
        })
        .collect();
    let pinged_in = pinger.await.expect("ping task");
    assert!(
        // The appends would sleep up to 3 s each in SQLite's busy handler; 40 pings need ~0.25 s.
        pinged_in < Duration::from_secs(2),
        "the ping loop took {pinged_in:?}: waiting appends held the workers"
    );
    assert!(
        appenders.iter().all(|a| !a.is_finished()),
        "the appends still wait for the batch"
    );
    control.open();
    let mut last = first[0].meta.position;
    for appender in appenders {
        let recorded = appender
            .await
            .expect("append task")
            .expect("the append succeeds after the batch");
        last = last.max(recorded[0].meta.position);
    }
    running
        .wait_for(last, WAIT)
        .await
        .expect("the projection reaches the last event");
    running.stop().await;
    assert_eq!(seen(&store), every_event(&store).await, "read model exact");
    assert_eq!(seen(&store).len(), 5);
}

/// Test 3. Two handles opened on the same file, appending concurrently, and a sink whose
/// handler suspends: no `SQLITE_BUSY`, versions contiguous, positions strictly increasing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_and_a_sink_take_turns() {
    let dir = std::env::temp_dir().join(format!("eventweave-sqlite-turns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("two-handles.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let one = SqliteStore::open_with(&path, config()).expect("first handle");
    let two = SqliteStore::open_with(&path, config()).expect("second handle");
    // Each event's handler sleeps 2 ms: a batch of 200 events holds the turn for 400 ms, longer
    // than the busy timeout.
    let (projection, mut control) = gated(Duration::from_millis(2));
    let running = ProjectionRunner::new(one.clone(), sink(&one, projection)).spawn();
    let opening = one
        .append(&StreamId::from("x-0"), ExpectedVersion::Any, vec![noted()])
        .await
        .expect("first append");
    assert_eq!(control.entered().await, opening[0].meta.position);

    const APPENDS: usize = 100;
    const STREAMS: usize = 4;
    let writer = |store: SqliteStore| {
        tokio::spawn(async move {
            let mut positions = Vec::with_capacity(APPENDS);
            for i in 0..APPENDS {
                let stream = StreamId::from(format!("x-{}", i % STREAMS));
                let recorded = store
                    .append(&stream, ExpectedVersion::Any, vec![noted(), noted()])
                    .await?;
                positions.extend(recorded.iter().map(|e| e.meta.position));
            }
            Ok::<_, StoreError>(positions)
        })
    };
    let writers = [writer(one.clone()), writer(two.clone())];
    // The batch stays open a while with both writers queued behind it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    control.open();
    for writer in writers {
        let positions = writer
            .await
            .expect("writer task")
            .expect("no SQLITE_BUSY: in-process writers take turns");
        assert_eq!(positions.len(), 2 * APPENDS);
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "each writer's positions strictly increase"
        );
    }

    let all = one
        .read_all(Position::ZERO, 100_000)
        .await
        .expect("read_all");
    assert_eq!(all.len(), 1 + 2 * 2 * APPENDS);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.meta.position == Position(i as u64 + 1)),
        "positions gap-free and strictly increasing"
    );
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &all {
        versions
            .entry(event.meta.stream.to_string())
            .or_default()
            .push(event.meta.version);
    }
    for (stream, versions) in &versions {
        assert!(
            versions.iter().enumerate().all(|(i, v)| *v == i as u64 + 1),
            "versions of `{stream}` contiguous: {versions:?}"
        );
    }
    running
        .wait_for(all.last().expect("events").meta.position, WAIT)
        .await
        .expect("the projection reaches the head");
    running.stop().await;
    assert_eq!(seen(&one), every_event(&one).await, "read model exact");
    drop((one, two));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Test 4. A dropped append that was waiting for the turn, and a dropped sink batch that held
/// it mid-way, leave the store usable: the waiting append wrote nothing, the batch rolled back,
/// and an append queued behind the batch goes through when the batch is dropped.
#[tokio::test(flavor = "current_thread")]
async fn dropped_writers_give_the_turn_back() {
    let store = SqliteStore::temporary_with(config()).expect("store");
    let (projection, control) = gated(Duration::ZERO);
    let mut sink = sink(&store, projection);
    let stream = StreamId::from("d");
    let first = store
        .append(&stream, ExpectedVersion::NoStream, vec![noted()])
        .await
        .expect("first append");
    let through = first[0].meta.position;

    {
        // The batch runs its handler, which waits at the closed gate, holding the turn.
        // Boxed, so that dropping it drops the future (not only a pinned reference to it).
        let mut batch = Box::pin(sink.apply(&first, through));
        let polled = tokio::time::timeout(Duration::from_millis(50), batch.as_mut()).await;
        assert!(polled.is_err(), "the batch waits at the gate: {polled:?}");

        // An append waits for the turn; dropped while waiting.
        let dropped_event = noted();
        let dropped_id = dropped_event.event_id;
        let waited = tokio::time::timeout(
            Duration::from_millis(50),
            store.append(&stream, ExpectedVersion::Any, vec![dropped_event]),
        )
        .await;
        assert!(
            waited.is_err(),
            "the append waits for the batch: {waited:?}"
        );
        assert_eq!(store.read_event(dropped_id).await.expect("read"), None);

        // Another append queues; then the batch is dropped mid-way, holding the turn.
        let queued = {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                store
                    .append(&stream, ExpectedVersion::Exact(1), vec![noted()])
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert!(!queued.is_finished(), "queued behind the batch");
        drop(batch);
        let recorded = tokio::time::timeout(WAIT, queued)
            .await
            .expect("the dropped batch gave the turn back")
            .expect("append task")
            .expect("the queued append succeeds");
        assert_eq!(recorded[0].meta.version, 2);
    }
    assert_eq!(seen(&store), Vec::new(), "the dropped batch rolled back");
    assert_eq!(
        store
            .load_checkpoint(Gated::NAME)
            .await
            .expect("checkpoint"),
        Position::ZERO
    );

    // The store and the sink are usable again.
    control.open();
    sink.checkpoint().await.expect("checkpoint");
    let events = store.read_all(Position::ZERO, 100).await.expect("read_all");
    let head = events.last().expect("events").meta.position;
    sink.apply(&events, head)
        .await
        .expect("apply after the drop");
    store
        .append(&stream, ExpectedVersion::Exact(2), vec![noted()])
        .await
        .expect("append after the drop");
    assert_eq!(seen(&store), every_event(&store).await[..2].to_vec());
}

/// A handler that appends through the store (instead of writing through its `SqliteTx`) would
/// wait for its own batch's turn forever: the append fails at once with `WriteInSinkBatch`,
/// and the batch is not committed.
#[tokio::test(flavor = "current_thread")]
async fn an_append_from_inside_a_sink_batch_fails_at_once() {
    let store = SqliteStore::temporary_with(config()).expect("store");
    let (mut projection, control) = gated(Duration::ZERO);
    projection.appends_to = Some(store.clone());
    control.open();
    let mut sink = sink(&store, projection);
    let first = store
        .append(
            &StreamId::from("r"),
            ExpectedVersion::NoStream,
            vec![noted()],
        )
        .await
        .expect("first append");
    let started = Instant::now();
    // In a task of its own, as the runner runs it.
    let batch = tokio::spawn(async move { sink.apply(&first, first[0].meta.position).await });
    let result = tokio::time::timeout(WAIT, batch)
        .await
        .expect("the batch does not hang")
        .expect("batch task");
    let error = match result {
        Err(ApplyError::Handler(error)) => error,
        other => panic!("the handler fails, got {other:?}"),
    };
    let refused = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<StoreError>())
        .and_then(|e| match e {
            StoreError::Backend(e) => e.get_ref(),
            _ => None,
        })
        .and_then(|e| e.downcast_ref::<WriteInSinkBatch>())
        .unwrap_or_else(|| panic!("a WriteInSinkBatch error, got {error:?}"));
    assert_eq!(refused.projection, Gated::NAME);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once: {:?}",
        started.elapsed()
    );
    assert_eq!(seen(&store), Vec::new(), "nothing committed");
    assert_eq!(
        store
            .read_stream(&StreamId::from("inside"), 1, 10)
            .await
            .expect("read"),
        Vec::new()
    );
}

/// Opening another handle on a file of the current schema writes nothing, so it does not wait
/// for a sink batch of the file (opening is synchronous and could only wait in SQLite's busy
/// handler, blocking the thread the batch needs).
#[tokio::test(flavor = "current_thread")]
async fn opening_a_handle_during_a_sink_batch_does_not_wait_for_it() {
    let store = SqliteStore::temporary_with(config()).expect("store");
    let (projection, mut control) = gated(Duration::ZERO);
    let running = ProjectionRunner::new(store.clone(), sink(&store, projection)).spawn();
    let first = store
        .append(
            &StreamId::from("o"),
            ExpectedVersion::NoStream,
            vec![noted()],
        )
        .await
        .expect("first append");
    assert_eq!(control.entered().await, first[0].meta.position);

    let started = Instant::now();
    let other = SqliteStore::open_with(store.path(), config())
        .expect("a second handle opens while the batch holds the write lock");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "opened at once: {:?}",
        started.elapsed()
    );
    // Its appends take turns with the batch like any other.
    let append = tokio::spawn(async move {
        other
            .append(
                &StreamId::from("o"),
                ExpectedVersion::Exact(1),
                vec![noted()],
            )
            .await
    });
    tokio::task::yield_now().await;
    control.open();
    let second = append
        .await
        .expect("append task")
        .expect("the other handle's append succeeds after the batch");
    running
        .wait_for(second[0].meta.position, WAIT)
        .await
        .expect("the projection reaches the second event");
    running.stop().await;
    assert_eq!(seen(&store), every_event(&store).await, "read model exact");
}

/// Every write of the store takes the turn, not only appends: a snapshot save, a checkpoint save
/// and a parked event made while a sink batch is suspended (`current_thread` runtime) wait for
/// it, then succeed.
#[tokio::test(flavor = "current_thread")]
async fn saves_and_parked_events_wait_for_a_suspended_sink_batch() {
    let store = SqliteStore::temporary_with(config()).expect("store");
    let (projection, mut control) = gated(Duration::ZERO);
    let running = ProjectionRunner::new(store.clone(), sink(&store, projection)).spawn();
    let stream = StreamId::from("w");
    let first = store
        .append(&stream, ExpectedVersion::NoStream, vec![noted()])
        .await
        .expect("first append");
    assert_eq!(control.entered().await, first[0].meta.position);

    let writes = {
        let store = store.clone();
        let event = first[0].clone();
        tokio::spawn(async move {
            let snapshot = eventweave_core::Snapshot {
                version: 1,
                snapshot_version: 1,
                payload: "{}".to_owned(),
                taken_at: eventweave_core::Timestamp::now(),
            };
            store.save_snapshot(&event.meta.stream, snapshot).await?;
            store.save_checkpoint("other", event.meta.position).await?;
            let parked =
                eventweave_core::runner::ParkedEvent::new("third", &event, "gave up".into());
            store.park_event(parked).await
        })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    if writes.is_finished() {
        let result = writes.await.expect("writes task");
        panic!("the writes did not wait for the batch: {result:?}");
    }
    control.open();
    writes
        .await
        .expect("writes task")
        .expect("the writes succeed after the batch");
    assert_eq!(
        store
            .load_snapshot(&stream)
            .await
            .expect("snapshot")
            .map(|s| s.version),
        Some(1)
    );
    assert_eq!(
        store.load_checkpoint("other").await.expect("checkpoint"),
        first[0].meta.position
    );
    assert_eq!(store.parked_events("third").await.expect("parked").len(), 1);
    running
        .wait_for(first[0].meta.position, WAIT)
        .await
        .expect("the projection reaches the event");
    running.stop().await;
}

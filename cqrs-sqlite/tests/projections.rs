//! SQL projections in the store's file, run by `ProjectionRunner` through `SqliteSink`: every
//! event counted exactly once despite failures, panics, bad payloads, restarts, rebuilds and
//! `SIGKILL`.
//!
//! The read model is `balances(stream, total, events)`: the sum of `counter.added` amounts per
//! stream and how many events were counted. Tests compare it with totals computed from the
//! events they appended, or with a clean replay into another table.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::marker::PhantomData;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventweave_core::runner::{
    ApplyError, Checkpoints, DurableProjection, OnFailure, ProjectionRunner, ProjectionSink,
    RetryPolicy, RunnerState, RunningProjection,
};
use eventweave_core::testing::domain::Added;
use eventweave_core::{
    Event, EventRef, EventStore, ExpectedVersion, NewEvent, Payload, Position, ProjectionError,
    ProjectionFailure, ProjectionFailure::Decode, QueryError, RecordedEvent, StoreError, StreamId,
    UserMetadata, new_id,
};
use eventweave_sqlite::rusqlite::{self, Connection};
use eventweave_sqlite::{CheckpointMoved, SqliteConfig, SqliteSink, SqliteStore, SqliteTx};

const WAIT: Duration = Duration::from_secs(60);

/// Where a `Balances` projection keeps its rows, and whether it reads amounts.
trait Table: 'static {
    const NAME: &'static str;
    const CREATE: &'static str;
    const UPSERT: &'static str;
    const DELETE: &'static str;
    const SELECT: &'static str;
    /// `false`: counts events without decoding payloads (amount 0), so bad payloads pass.
    const DECODES: bool = true;
}

macro_rules! table {
    ($marker:ident, $name:literal $(, decodes = $decodes:literal)?) => {
        struct $marker;
        impl Table for $marker {
            const NAME: &'static str = $name;
            const CREATE: &'static str = concat!(
                "CREATE TABLE IF NOT EXISTS ", $name,
                " (stream TEXT PRIMARY KEY, total INTEGER NOT NULL, events INTEGER NOT NULL)"
            );
            const UPSERT: &'static str = concat!(
                "INSERT INTO ", $name, " (stream, total, events) VALUES (?1, ?2, 1) ",
                "ON CONFLICT (stream) DO UPDATE SET total = total + excluded.total, events = events + 1"
            );
            const DELETE: &'static str = concat!("DELETE FROM ", $name);
            const SELECT: &'static str =
                concat!("SELECT stream, total, events FROM ", $name, " ORDER BY stream");
            $(const DECODES: bool = $decodes;)?
        }
    };
}

table!(Main, "balances");
table!(Replay, "balances_replay");
table!(Parking, "balances_parking");
table!(Counting, "event_counts", decodes = false);

/// Faults to inject, by handler call number (1-based, counted over every call, retries
/// included, so each fires once), and what the handler saw.
#[derive(Clone, Default)]
struct Probe {
    calls: Arc<AtomicU64>,
    fail_at: Option<u64>,
    panic_at: Option<u64>,
    /// Never finishes this call (after writing): for cancelling a batch.
    hang_at: Option<u64>,
    resets: Arc<AtomicU64>,
    /// Positions of every handler call.
    seen: Arc<Mutex<Vec<u64>>>,
}

struct Balances<T> {
    probe: Probe,
    table: PhantomData<fn() -> T>,
}

impl<T: Table> Balances<T> {
    fn new(probe: Probe) -> Self {
        Balances {
            probe,
            table: PhantomData,
        }
    }
}

fn handler_error(
    name: &'static str,
    event: &RecordedEvent,
    e: impl std::error::Error + Send + Sync + 'static,
) -> ProjectionError {
    ProjectionError::new(name, event, ProjectionFailure::Handler(Arc::new(e)))
}

impl<T: Table> DurableProjection<SqliteTx> for Balances<T> {
    const NAME: &'static str = T::NAME;
    const EVENTS: &'static [&'static str] = &[Added::NAME];

    async fn handle(
        &mut self,
        db: &SqliteTx,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let call = self.probe.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.probe.seen.lock().unwrap().push(event.meta.position.0);
        let amount = if T::DECODES {
            // (`EventRef` is not `Send`: it must not live across the `.await` below.)
            match EventRef::stored(event).decode::<Added>() {
                Ok(Some(added)) => added.n,
                Ok(None) => return Ok(()),
                Err(failure) => return Err(ProjectionError::new(T::NAME, event, Decode(failure))),
            }
        } else {
            0
        };
        // An await between statements, as a real handler may have.
        tokio::task::yield_now().await;
        db.execute(T::UPSERT, (event.meta.stream.as_str(), amount as i64))
            .map_err(|e| handler_error(T::NAME, event, e))?;
        // Faults strike after the write, which must then be rolled back.
        if self.probe.fail_at == Some(call) {
            return Err(handler_error(
                T::NAME,
                event,
                std::io::Error::other("injected failure"),
            ));
        }
        if self.probe.hang_at == Some(call) {
            std::future::pending::<()>().await;
        }
        if self.probe.panic_at == Some(call) {
            panic!("injected panic at call {call}");
        }
        Ok(())
    }

    async fn reset(&mut self, db: &SqliteTx) -> Result<(), ProjectionFailure> {
        self.probe.resets.fetch_add(1, Ordering::SeqCst);
        db.execute(T::DELETE, [])
            .map_err(|e| ProjectionFailure::Handler(Arc::new(e)))?;
        Ok(())
    }
}

/// A sink for `Balances<T>`, its table created.
fn sink<T: Table>(store: &SqliteStore, probe: Probe) -> SqliteSink<Balances<T>> {
    let sink = SqliteSink::new(store, Balances::<T>::new(probe)).unwrap();
    sink.unit().execute(T::CREATE, []).unwrap();
    sink
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

type Rows = BTreeMap<String, (i64, i64)>;

/// The rows of `T`'s table, read with an application connection of its own.
fn rows<T: Table>(store: &SqliteStore) -> Rows {
    let conn = Connection::open(store.path()).unwrap();
    let mut statement = conn.prepare(T::SELECT).unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The events appended by a test, to compute the expected read model independently.
#[derive(Default)]
struct Ledger {
    /// (stream, amount) of every good event, in append order.
    good: Vec<(String, u64)>,
}

impl Ledger {
    fn totals(&self) -> Rows {
        self.totals_of(self.good.len())
    }

    /// The read model after the first `count` good events.
    fn totals_of(&self, count: usize) -> Rows {
        let mut rows = Rows::new();
        for (stream, n) in &self.good[..count] {
            let row = rows.entry(stream.clone()).or_default();
            row.0 += *n as i64;
            row.1 += 1;
        }
        rows
    }

    /// Appends `count` events, round robin over `streams` streams, `per_append` per append.
    async fn append(
        &mut self,
        store: &SqliteStore,
        count: usize,
        streams: usize,
        per_append: usize,
    ) {
        let mut k = self.good.len();
        let mut left = count;
        while left > 0 {
            let stream = format!("account-{}", k % streams);
            let batch: Vec<u64> = (0..per_append.min(left))
                .map(|i| 1 + ((k + i) * 7919 % 1000) as u64)
                .collect();
            append(
                store,
                &stream,
                batch.iter().map(|n| format!(r#"{{"n":{n}}}"#)),
            )
            .await;
            left -= batch.len();
            k += batch.len();
            self.good
                .extend(batch.into_iter().map(|n| (stream.clone(), n)));
        }
    }
}

async fn append(
    store: &SqliteStore,
    stream: &str,
    payloads: impl Iterator<Item = String>,
) -> Vec<RecordedEvent> {
    let events = payloads
        .map(|json| NewEvent {
            event_id: new_id(),
            event_name: Added::NAME.into(),
            event_version: 1,
            payload: Payload::from_json(json),
            correlation_id: None,
            causation_id: None,
            metadata: UserMetadata::empty(),
            tags: eventweave_core::Tags::empty(),
        })
        .collect();
    store
        .append(&StreamId::from(stream), ExpectedVersion::Any, events)
        .await
        .unwrap()
}

async fn caught_up<K: eventweave_core::runner::ProjectionSink>(
    running: &RunningProjection<K>,
    store: &SqliteStore,
) {
    let head = store.head().await.unwrap();
    running.wait_for(head, WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_counts_once_despite_a_failure_and_a_panic_after_writing() {
    let store = SqliteStore::temporary().unwrap();
    let mut ledger = Ledger::default();
    ledger.append(&store, 300, 7, 10).await;
    let probe = Probe {
        fail_at: Some(37),
        panic_at: Some(150),
        ..Probe::default()
    };
    let running = ProjectionRunner::new(store.clone(), sink::<Main>(&store, probe.clone()))
        .batch_size(64)
        .retry(fast_retries())
        .spawn();
    caught_up(&running, &store).await;
    assert_eq!(rows::<Main>(&store), ledger.totals());
    assert_eq!(
        store.load_checkpoint(Main::NAME).await.unwrap(),
        Position(300)
    );
    assert_eq!(running.status().parked, 0);
    // Each fault cost one extra call of its event.
    assert_eq!(probe.calls.load(Ordering::SeqCst), 302);
    let sink = running.stop().await;
    assert_eq!(sink.projection().probe.resets.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_no_longer_decodes_stops_its_projection_only_or_is_parked() {
    let store = SqliteStore::temporary().unwrap();
    let mut ledger = Ledger::default();
    ledger.append(&store, 50, 3, 5).await;
    let before = ledger.totals();
    let bad = append(
        &store,
        "account-bad",
        [r#"{"n":"many"}"#.to_owned()].into_iter(),
    )
    .await;
    let bad = &bad[0].meta;
    ledger.append(&store, 50, 3, 5).await;
    let head = store.head().await.unwrap();

    // Stop (the default): the runner fails at the event, naming it.
    let stopped = ProjectionRunner::new(store.clone(), sink::<Main>(&store, Probe::default()))
        .batch_size(64)
        .retry(fast_retries())
        .spawn();
    let error = match stopped.wait_for(head, WAIT).await {
        Err(QueryError::ProjectionFailed(error)) => error,
        other => panic!("the runner must fail at the bad event, got {other:?}"),
    };
    assert_eq!(
        (
            error.projection,
            error.stream.as_str(),
            error.version,
            error.position,
            error.event_name.as_str()
        ),
        (Main::NAME, "account-bad", 1, bad.position, Added::NAME)
    );
    assert!(matches!(error.failure, Decode(_)), "{error}");
    assert!(matches!(stopped.status().state, RunnerState::Failed(_)));
    // Everything before it is committed; nothing after.
    assert_eq!(
        store.load_checkpoint(Main::NAME).await.unwrap(),
        Position(bad.position.0 - 1)
    );
    assert_eq!(rows::<Main>(&store), before);

    // Another projection over the same store goes past it.
    let counting =
        ProjectionRunner::new(store.clone(), sink::<Counting>(&store, Probe::default())).spawn();
    caught_up(&counting, &store).await;
    let counted: i64 = rows::<Counting>(&store)
        .values()
        .map(|(_, events)| events)
        .sum();
    assert_eq!(counted, head.0 as i64);

    // Park: recorded, and the runner goes on.
    let parking = ProjectionRunner::new(store.clone(), sink::<Parking>(&store, Probe::default()))
        .batch_size(64)
        .retry(fast_retries())
        .on_failure(OnFailure::Park)
        .spawn();
    caught_up(&parking, &store).await;
    assert_eq!(parking.status().parked, 1);
    let parked = store.parked_events(Parking::NAME).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (
            parked[0].position,
            parked[0].event_id,
            parked[0].stream.as_str()
        ),
        (bad.position, bad.event_id, "account-bad")
    );
    assert!(
        parked[0].error.contains("account-bad"),
        "{}",
        parked[0].error
    );
    assert_eq!(rows::<Parking>(&store), ledger.totals());
    assert_eq!(store.load_checkpoint(Parking::NAME).await.unwrap(), head);

    // The stopped runner is still stopped, where it was.
    assert_eq!(
        store.load_checkpoint(Main::NAME).await.unwrap(),
        Position(bad.position.0 - 1)
    );
    for running in [
        stopped.stop().await.into_projection().probe,
        counting.stop().await.into_projection().probe,
    ] {
        assert_eq!(running.resets.load(Ordering::SeqCst), 0);
    }
    parking.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runner_continues_from_the_checkpoint() {
    let store = SqliteStore::temporary().unwrap();
    let mut ledger = Ledger::default();
    ledger.append(&store, 100, 4, 10).await;
    let first = ProjectionRunner::new(store.clone(), sink::<Main>(&store, Probe::default()))
        .batch_size(16)
        .spawn();
    caught_up(&first, &store).await;
    drop(first.stop().await);

    ledger.append(&store, 50, 4, 5).await;
    let probe = Probe::default();
    let second = ProjectionRunner::new(store.clone(), sink::<Main>(&store, probe.clone()))
        .batch_size(16)
        .spawn();
    caught_up(&second, &store).await;
    assert_eq!(
        *probe.seen.lock().unwrap(),
        (101..=150).collect::<Vec<u64>>()
    );
    assert_eq!(rows::<Main>(&store), ledger.totals());
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_empties_the_table_replays_and_reports_progress() {
    let store = SqliteStore::temporary().unwrap();
    let mut ledger = Ledger::default();
    ledger.append(&store, 200, 5, 10).await;
    let probe = Probe::default();
    let running = ProjectionRunner::new(store.clone(), sink::<Main>(&store, probe.clone()))
        .batch_size(32)
        .spawn();
    caught_up(&running, &store).await;
    let built = rows::<Main>(&store);
    assert_eq!(built, ledger.totals());
    // A row no event explains: the reset hook must remove it.
    Connection::open(store.path())
        .unwrap()
        .execute("INSERT INTO balances VALUES ('ghost', 1, 1)", [])
        .unwrap();

    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink_reports = Arc::clone(&reports);
    let reached = running
        .rebuild(Some(Arc::new(
            move |p: &eventweave_core::runner::Progress| {
                sink_reports.lock().unwrap().push(p.clone())
            },
        )))
        .await
        .unwrap();
    assert_eq!(reached, Position(200));
    assert_eq!(rows::<Main>(&store), built);
    assert_eq!(probe.resets.load(Ordering::SeqCst), 1);
    assert_eq!(probe.calls.load(Ordering::SeqCst), 400);
    let reports = reports.lock().unwrap().clone();
    assert!(reports.len() >= 200 / 32, "{} reports", reports.len());
    for pair in reports.windows(2) {
        assert!(
            pair[0].done <= pair[1].done && pair[0].total <= pair[1].total,
            "{pair:?}"
        );
        assert!(!pair[0].finished);
    }
    let last = reports.last().unwrap();
    assert!(last.finished);
    assert_eq!(
        (last.done, last.total, last.position),
        (200, 200, Position(200))
    );
    running.stop().await;
}

#[tokio::test]
async fn a_sink_writes_nothing_over_a_checkpoint_another_sink_moved() {
    let store = SqliteStore::temporary().unwrap();
    let mut ledger = Ledger::default();
    ledger.append(&store, 10, 3, 5).await;
    let events = store.read_all(Position::ZERO, 100).await.unwrap();
    let mut a = sink::<Main>(&store, Probe::default());
    let mut b = sink::<Main>(&store, Probe::default());
    assert_eq!(a.checkpoint().await.unwrap(), Position::ZERO);
    assert_eq!(b.checkpoint().await.unwrap(), Position::ZERO);
    b.apply(&events[..5], Position(5)).await.unwrap();

    let refused = |result: Result<(), ApplyError>| match result {
        Err(ApplyError::Store(StoreError::Backend(e))) => e
            .get_ref()
            .and_then(|e| e.downcast_ref::<CheckpointMoved>())
            .expect("a CheckpointMoved error")
            .clone(),
        other => panic!("the fence must refuse, got {other:?}"),
    };
    let moved = refused(a.apply(&events[..5], Position(5)).await);
    assert_eq!(
        moved,
        CheckpointMoved {
            projection: Main::NAME,
            expected: Position::ZERO,
            found: Position(5)
        }
    );
    assert!(moved.to_string().contains("another runner"), "{moved}");
    assert_eq!(rows::<Main>(&store), ledger.totals_of(5), "counted once");
    assert_eq!(
        a.projection().probe.calls.load(Ordering::SeqCst),
        0,
        "no handler ran"
    );

    // Having read the checkpoint again, A goes on from there; now B is behind.
    assert_eq!(a.checkpoint().await.unwrap(), Position(5));
    a.apply(&events[5..], Position(10)).await.unwrap();
    assert_eq!(rows::<Main>(&store), ledger.totals());
    refused(b.apply(&events[5..], Position(10)).await);
    let error = ProjectionError::new(
        Main::NAME,
        &events[9],
        ProjectionFailure::Panicked("x".into()),
    );
    assert!(b.park(&events[9], &error).await.is_err());
    assert!(store.parked_events(Main::NAME).await.unwrap().is_empty());
    assert_eq!(rows::<Main>(&store), ledger.totals());
}

#[tokio::test]
async fn a_cancelled_batch_is_rolled_back_and_releases_the_write_lock_at_once() {
    // A short busy timeout: an append fails if the sink still holds the write lock.
    let config = SqliteConfig::new().busy_timeout(Duration::from_millis(200));
    let store = SqliteStore::temporary_with(config).unwrap();
    let mut ledger = Ledger::default();
    ledger.append(&store, 10, 2, 5).await;
    let events = store.read_all(Position::ZERO, 100).await.unwrap();
    let probe = Probe {
        hang_at: Some(4),
        ..Probe::default()
    };
    let mut sink = sink::<Main>(&store, probe.clone());
    let apply = sink.apply(&events, Position(10));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), apply)
            .await
            .is_err(),
        "the batch hangs at its fourth event"
    );
    // Dropped mid-batch: nothing of it is committed, and appends go through.
    ledger.append(&store, 5, 2, 5).await;
    assert_eq!(rows::<Main>(&store), Rows::new());
    assert_eq!(
        store.load_checkpoint(Main::NAME).await.unwrap(),
        Position::ZERO
    );
    // The sink works again.
    assert_eq!(sink.checkpoint().await.unwrap(), Position::ZERO);
    sink.apply(&events, Position(10)).await.unwrap();
    assert_eq!(rows::<Main>(&store), ledger.totals_of(10));
    assert_eq!(probe.calls.load(Ordering::SeqCst), 14);
}

#[tokio::test]
async fn a_reset_empties_the_read_model_and_the_checkpoint_together() {
    let store = SqliteStore::temporary().unwrap();
    let mut ledger = Ledger::default();
    ledger.append(&store, 6, 2, 3).await;
    let events = store.read_all(Position::ZERO, 100).await.unwrap();
    let mut sink = sink::<Main>(&store, Probe::default());
    sink.checkpoint().await.unwrap();
    sink.apply(&events, Position(6)).await.unwrap();
    assert_eq!(rows::<Main>(&store), ledger.totals());
    sink.reset().await.unwrap();
    assert_eq!(rows::<Main>(&store), Rows::new());
    assert_eq!(sink.checkpoint().await.unwrap(), Position::ZERO);
    assert_eq!(
        store.load_checkpoint(Main::NAME).await.unwrap(),
        Position::ZERO
    );
}

/// Handlers get `&SqliteTx` across awaits, so it must be `Sync`; handler errors from rusqlite
/// must fit `ProjectionFailure::Handler`.
#[test]
fn the_unit_is_sync_and_rusqlite_errors_are_handler_errors() {
    fn sync<T: Sync + Send>() {}
    fn error<E: std::error::Error + Send + Sync + 'static>() {}
    sync::<SqliteTx>();
    error::<rusqlite::Error>();
}

// --- SIGKILL during catch-up ---------------------------------------------------------------

const CHILD_DB: &str = "PROJECTION_CHILD_DB";
const KILLS: u32 = 20;
const EVENTS: usize = 20_000;

/// The projection process: catches `balances` up with small batches, printing a line per batch,
/// until it is killed. Does nothing in an ordinary test run.
#[tokio::test(flavor = "current_thread")]
async fn sigkill_child() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let store = SqliteStore::open(&path).unwrap();
    let running = ProjectionRunner::new(store.clone(), sink::<Main>(&store, Probe::default()))
        .batch_size(32)
        .on_progress(|p| println!("progress {}", p.position))
        .spawn();
    caught_up(&running, &store).await;
    println!("done");
}

#[test]
fn the_read_model_survives_sigkill_during_catch_up_exactly_once() {
    let file = Removed(std::env::temp_dir().join(format!(
        "eventweave-sqlite-projection-kill-{}.db",
        new_id().simple()
    )));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ledger = runtime.block_on(async {
        let store = SqliteStore::open(&file.0).unwrap();
        let mut ledger = Ledger::default();
        ledger.append(&store, EVENTS, 50, 100).await;
        drop(sink::<Main>(&store, Probe::default())); // creates the table
        ledger
    });
    let mut seed = (new_id().as_u128() as u64) | 1;
    println!("seed {seed}");
    let mut checkpoints = vec![0];
    for _ in 0..KILLS {
        let batches = 1 + (xorshift(&mut seed) % 6) as usize;
        let delay = Duration::from_micros(xorshift(&mut seed) % 3000);
        let finished = run_child(&file.0, Some((batches, delay)));
        assert!(!finished, "the child finished before it was killed");
        checkpoints.push(checkpoint_in_file(&file.0));
    }
    assert!(
        checkpoints.windows(2).all(|w| w[0] <= w[1]),
        "{checkpoints:?}"
    );
    let last_killed = *checkpoints.last().unwrap();
    assert!(
        0 < last_killed && last_killed < EVENTS as u64,
        "{checkpoints:?}"
    );
    assert!(run_child(&file.0, None), "the last child finishes");
    println!("checkpoints after each kill: {checkpoints:?}");

    runtime.block_on(async {
        let store = SqliteStore::open(&file.0).unwrap();
        assert_eq!(
            store.load_checkpoint(Main::NAME).await.unwrap(),
            Position(EVENTS as u64)
        );
        let replay =
            ProjectionRunner::new(store.clone(), sink::<Replay>(&store, Probe::default())).spawn();
        caught_up(&replay, &store).await;
        replay.stop().await;
        let killed = rows::<Main>(&store);
        assert_eq!(
            killed,
            rows::<Replay>(&store),
            "killed runs and a clean replay agree"
        );
        assert_eq!(killed, ledger.totals());
        let check: String = Connection::open(&file.0)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    });
}

/// Runs the child; with `Some((batches, delay))` kills it (`SIGKILL`) `delay` after its
/// `batches`-th progress line. Whether it printed `done`.
fn run_child(path: &std::path::Path, kill: Option<(usize, Duration)>) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut progress = 0;
    let mut done = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        done |= line == "done";
        progress += usize::from(line.starts_with("progress "));
        if let Some((batches, delay)) = kill
            && progress >= batches
        {
            std::thread::sleep(delay);
            child.kill().unwrap(); // SIGKILL on Unix
            break;
        }
    }
    child.wait().unwrap();
    done || lines.any(|line| line.is_ok_and(|l| l == "done"))
}

fn checkpoint_in_file(path: &std::path::Path) -> u64 {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT COALESCE(MAX(position), 0) FROM checkpoints WHERE projection = ?1",
            [Main::NAME],
            |row| row.get::<_, i64>(0),
        )
        .unwrap() as u64
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The store's files, removed when the test ends, passed or not.
struct Removed(std::path::PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_split_and_merge_without_counting_an_event_twice() {
    use eventweave_core::runner::{LocalLease, ResegmentOptions, SegmentedRunner, resegment};
    let store = SqliteStore::temporary().unwrap();
    let mut ledger = Ledger::default();
    ledger.append(&store, 120, 7, 6).await;
    let segment = |s| sink::<Main>(&store, Probe::default()).segment(s);
    let one = ProjectionRunner::new(store.clone(), sink::<Main>(&store, Probe::default()))
        .batch_size(16)
        .spawn();
    caught_up(&one, &store).await;
    drop(one.stop().await);
    ledger.append(&store, 60, 7, 3).await;
    // 1 → 3 from the checkpoint (no rebuild), then 3 → 1, events appended in between.
    for count in [3, 1] {
        let at = resegment(
            &store,
            &LocalLease,
            segment,
            count,
            ResegmentOptions::default(),
        )
        .await
        .unwrap();
        assert!(
            at >= Position(120),
            "started from {at}, not from the checkpoint"
        );
        let running = SegmentedRunner::new(store.clone(), count, segment)
            .batch_size(16)
            .start()
            .await
            .unwrap();
        let head = store.head().await.unwrap();
        running.wait_for(head, WAIT).await.unwrap();
        running.stop().await;
        ledger.append(&store, 30, 7, 2).await;
    }
    let running = SegmentedRunner::new(store.clone(), 1, segment)
        .start()
        .await
        .unwrap();
    running
        .wait_for(store.head().await.unwrap(), WAIT)
        .await
        .unwrap();
    running.stop().await;
    assert_eq!(rows::<Main>(&store), ledger.totals());
}

//! Segmented durable projections on PostgreSQL (issue 14 part 2): each event applied exactly
//! once by the segment owning its stream, in stream order, with several runners in one
//! process, with several processes joining, leaving and being SIGKILLed, and across splits
//! and merges made while events are appended.
//!
//! The read model records `(stream, version, position, pid)` per applied event in `applied`
//! (no unique key, so a duplicate would show), with a sequence number `seq` in the order of
//! application; [`check_applied`] asserts no duplicate, no gap, and increasing versions per
//! stream in `seq` order.
//!
//! The multi-process test re-executes its own binary to run the child half (an ignored test
//! selected by name, as `lease.rs` does). Skipped, saying so, without `CQRS_POSTGRES_URL`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventweave_core::runner::{
    Checkpoints, DurableProjection, Leases, LocalLease, ResegmentOptions, RunnerState, Segment,
    SegmentError, SegmentLeases, SegmentedRunner, layout_key, resegment, segment_checkpoints,
    stored_error,
};
use eventweave_core::{
    EventStore, ExpectedVersion, Position, ProjectionError, ProjectionFailure, RecordedEvent,
    StreamId,
};
use eventweave_postgres::{PgLeases, PgSink, PgTx, PostgresConfig, PostgresStore};
use tokio_postgres::Client;

const NAME: &str = "segmented_applied";
/// Names the schema the child works on; its presence selects the child role.
const CHILD_SCHEMA: &str = "CQRS_POSTGRES_SEGMENTS_SCHEMA";

/// Records every event it applies, one awaited insert each (after `delay`).
struct Applied {
    insert: String,
    delay: Duration,
}

impl Applied {
    fn new(schema: &str) -> Applied {
        Applied {
            delay: Duration::ZERO,
            insert: format!(
                "INSERT INTO {}.applied (stream, version, position, pid) VALUES ($1, $2, $3, $4)",
                common::quote(schema)
            ),
        }
    }
}

impl DurableProjection<PgTx> for Applied {
    const NAME: &'static str = NAME;
    const EVENTS: &'static [&'static str] = &["counter.added"];

    async fn handle(&mut self, tx: &PgTx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let meta = &event.meta;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        tx.execute(
            &self.insert,
            &[
                &meta.stream.as_str(),
                &(meta.version as i64),
                &(meta.position.0 as i64),
                &i64::from(std::process::id()),
            ],
        )
        .await
        .map(drop)
        .map_err(|e| stored_error(NAME, event, ProjectionFailure::Handler(Arc::new(e))))
    }
}

async fn create_table(client: &Client, schema: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {}.applied (seq bigserial, stream text NOT NULL, version bigint NOT NULL,
                 position bigint NOT NULL, pid bigint NOT NULL)",
            common::quote(schema)
        ))
        .await
        .expect("create the applied table");
}

fn sink(store: &PostgresStore, schema: &str) -> impl FnMut(Segment) -> PgSink<Applied> + use<> {
    let (store, schema) = (store.clone(), schema.to_owned());
    move |segment| PgSink::new(&store, Applied::new(&schema)).segment(segment)
}

/// Appends one `counter.added` event at a time to one of `streams` streams, until `stop`;
/// returns how many it appended.
async fn append_until(store: PostgresStore, streams: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut appended = 0u64;
    while !stop.load(Ordering::SeqCst) {
        append_one(&store, appended % streams).await;
        appended += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    appended
}

async fn append_one(store: &PostgresStore, stream: u64) -> Position {
    let event = common::read_model::added_json(r#"{"n":1}"#);
    let stored = store
        .append(
            &StreamId::from(format!("seg-{stream}")),
            ExpectedVersion::Any,
            vec![event],
        )
        .await
        .expect("append");
    stored[0].meta.position
}

/// Panics unless `applied` holds every event of the store exactly once, per stream in
/// version order; returns the events per applying process.
async fn check_applied(client: &Client, store: &PostgresStore, schema: &str) -> BTreeMap<i64, i64> {
    let rows = client
        .query(
            &format!(
                "SELECT stream, version, position, pid FROM {}.applied ORDER BY seq",
                common::quote(schema)
            ),
            &[],
        )
        .await
        .unwrap();
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_pid = BTreeMap::new();
    for row in &rows {
        let (stream, version, pid): (String, i64, i64) = (row.get(0), row.get(1), row.get(3));
        let before = last.insert(stream.clone(), version).unwrap_or(0);
        assert_eq!(
            version,
            before + 1,
            "stream {stream}: version {version} applied after {before} (a duplicate, a gap or \
             out of order)"
        );
        *by_pid.entry(pid).or_insert(0) += 1;
    }
    // In batches up to the head: a read stops early at a hole (a position drawn by a
    // transaction that rolled back) until the store has looked at it.
    let head = store.head().await.unwrap();
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while all
        .last()
        .map_or(Position::ZERO, |e: &RecordedEvent| e.meta.position)
        < head
    {
        let from = all
            .last()
            .map_or(Position(1), |e: &RecordedEvent| e.meta.position.next());
        let batch = store.read_all(from, 1_000).await.unwrap();
        if batch.is_empty() {
            assert!(
                Instant::now() < deadline,
                "the events up to {head} are not readable"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        all.extend(batch);
    }
    assert_eq!(rows.len(), all.len(), "every event applied once");
    for event in &all {
        assert!(
            last.get(event.meta.stream.as_str()).copied().unwrap_or(0) >= event.meta.version as i64,
            "{} v{} not applied",
            event.meta.stream,
            event.meta.version
        );
    }
    by_pid
}

/// Waits until every segment of the stored layout has its checkpoint at `head`.
async fn wait_checkpoints(store: &PostgresStore, head: Position, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let found = segment_checkpoints(store, NAME).await.unwrap();
        if found.iter().all(|(_, p)| *p >= head) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "segments not at {head} in time: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fresh() -> Option<(String, PostgresStore, String, Client)> {
    let url = common::url()?;
    let config = common::fresh_config(&url).await.sink_pool_size(8);
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config).await.unwrap();
    let client = common::raw_client(&url).await;
    create_table(&client, &schema).await;
    Some((url, store, schema, client))
}

fn options() -> ResegmentOptions {
    ResegmentOptions {
        lease_wait: Duration::from_secs(20),
        batch_size: 64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_in_one_process_share_four_segments() {
    if common::url_or_skip("two_runners_in_one_process_share_four_segments").is_none() {
        return;
    }
    let (url, store, schema, client) = fresh().await.unwrap();
    // A layout other than the stored one (1) is refused, with a typed error.
    let refused = SegmentedRunner::new(store.clone(), 4, sink(&store, &schema))
        .start()
        .await;
    assert!(
        matches!(
            refused,
            Err(SegmentError::LayoutMismatch {
                stored: 1,
                requested: 4,
                ..
            })
        ),
        "{:?}",
        refused.err()
    );
    for stream in 0..20 {
        append_one(&store, stream).await;
    }
    let at = resegment(&store, &LocalLease, sink(&store, &schema), 4, options())
        .await
        .unwrap();
    assert_eq!(
        at,
        Position::ZERO,
        "nothing was applied: the segments start at 0"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let appender = tokio::spawn(append_until(store.clone(), 37, Arc::clone(&stop)));
    let leases = PgLeases::new(&store).check_interval(Duration::from_millis(100));
    let start = |max| {
        SegmentedRunner::new(store.clone(), 4, sink(&store, &schema))
            .leases(leases.clone(), Duration::from_millis(100))
            .max_segments(max)
            .batch_size(32)
            .start()
    };
    let (first, second) = (start(2).await.unwrap(), start(2).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    appender.await.unwrap();
    let head = store.head().await.unwrap();
    wait_checkpoints(&store, head, Duration::from_secs(60)).await;
    let working = |statuses: Vec<eventweave_core::runner::RunnerStatus>| {
        statuses
            .iter()
            .filter(|s| !matches!(s.state, RunnerState::Standby))
            .map(|s| s.segment.index())
            .collect::<Vec<_>>()
    };
    let (a, b) = (working(first.statuses()), working(second.statuses()));
    assert_eq!(
        (a.len(), b.len()),
        (2, 2),
        "each runner works on 2 segments: {a:?} {b:?}"
    );
    let mut all: Vec<u32> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3]);
    first.stop().await;
    second.stop().await;
    check_applied(&client, &store, &schema).await;
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_while_events_are_appended() {
    if common::url_or_skip("split_and_merge_while_events_are_appended").is_none() {
        return;
    }
    let (url, store, schema, client) = fresh().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let appender = tokio::spawn(append_until(store.clone(), 23, Arc::clone(&stop)));
    let leases = PgLeases::new(&store).check_interval(Duration::from_millis(100));
    let run = |count: u32| {
        SegmentedRunner::new(store.clone(), count, sink(&store, &schema))
            .leases(leases.clone(), Duration::from_millis(100))
            .batch_size(16)
            .start()
    };
    let mut common_positions = Vec::new();
    // 1 (the unsegmented layout) → 2 → 4 → 1, each running for a while.
    let mut running = run(1).await.unwrap();
    for count in [2, 4, 1] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // Runners of another layout refuse to start.
        assert!(matches!(
            run(count).await,
            Err(SegmentError::LayoutMismatch { .. })
        ));
        running.stop().await;
        let at = resegment(&store, &leases, sink(&store, &schema), count, options())
            .await
            .unwrap();
        common_positions.push(at);
        running = run(count).await.unwrap();
        for (segment, position) in segment_checkpoints(&store, NAME).await.unwrap() {
            assert_eq!(segment.count(), count);
            assert!(
                position >= at,
                "segment {segment} starts at {position}, before {at}"
            );
        }
    }
    // A runner of an old layout that slipped through (a process started before the change)
    // stands by: its lease refuses while the stored layout differs.
    let stale = SegmentLeases::new(leases.clone(), store.clone(), NAME, 2, 4);
    assert!(
        stale
            .try_acquire(&Segment::new(0, 2).unwrap().key(NAME))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(stale.mismatch(), Some(1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let appended = appender.await.unwrap();
    let head = store.head().await.unwrap();
    wait_checkpoints(&store, head, Duration::from_secs(60)).await;
    running.stop().await;
    assert!(
        common_positions.windows(2).all(|w| w[0] <= w[1]) && common_positions[0] > Position::ZERO,
        "no change went back to 0 (no rebuild): {common_positions:?}"
    );
    eprintln!("{appended} events appended; layouts changed at {common_positions:?}");
    assert_eq!(
        store.load_checkpoint(&layout_key(NAME)).await.unwrap(),
        Position(1)
    );
    check_applied(&client, &store, &schema).await;
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[test]
#[ignore = "the child half of `processes_join_leave_and_are_killed`; runs until killed or its stdin closes"]
fn segments_child_runs_until_told() {
    let (Ok(schema), Some(url)) = (std::env::var(CHILD_SCHEMA), common::url()) else {
        eventweave_core::testing::report_skip(
            "segments_child_runs_until_told",
            &format!("only runs as a child of the multi-process test ({CHILD_SCHEMA} is not set)"),
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = PostgresConfig::new(url)
            .schema(&schema)
            .pool_size(2)
            .sink_pool_size(4);
        let store = PostgresStore::open(config).await.unwrap();
        let leases = PgLeases::new(&store).check_interval(Duration::from_millis(100));
        // Slow enough that a process is often killed in the middle of a batch.
        let slow = |segment| {
            let mut applied = Applied::new(&schema);
            applied.delay = Duration::from_millis(3);
            PgSink::new(&store, applied).segment(segment)
        };
        let running = SegmentedRunner::new(store.clone(), 4, slow)
            .leases(leases, Duration::from_millis(100))
            .max_segments(2)
            .batch_size(8)
            .start()
            .await
            .unwrap();
        // Leaving: the parent closes stdin; the runners stop between batches.
        let (closed, mut on_close) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
            let _ = closed.send(());
        });
        let mut last = String::new();
        loop {
            let working: Vec<String> = running
                .statuses()
                .iter()
                .filter(|s| !matches!(s.state, RunnerState::Standby))
                .map(|s| s.segment.to_string())
                .collect();
            let now = working.join(",");
            if now != last {
                println!("WORKING {now}");
                last = now;
            }
            tokio::select! {
                _ = &mut on_close => break,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        running.stop().await;
        println!("LEFT");
    });
}

/// A child process running up to 2 of the 4 segments, and the last set of segments it said it
/// works on.
struct Child4 {
    child: Child,
    working: Arc<std::sync::Mutex<String>>,
    /// The thread reading the child's output; it ends at the output's end.
    reader: Option<std::thread::JoinHandle<()>>,
}

fn spawn_child(schema: &str) -> Child4 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "segments_child_runs_until_told",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_SCHEMA, schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let working = Arc::new(std::sync::Mutex::new(String::new()));
    let seen = Arc::clone(&working);
    let out = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if let Some(now) = line.strip_prefix("WORKING ") {
                *seen.lock().unwrap() = now.to_owned();
            } else if line == "LEFT" {
                *seen.lock().unwrap() = "LEFT".to_owned();
            }
        }
    });
    Child4 {
        child,
        working,
        reader: Some(reader),
    }
}

impl Child4 {
    fn working(&self) -> String {
        self.working.lock().unwrap().clone()
    }

    /// What the child said last, once it has exited and its whole output was read (the process
    /// can end before the reading thread has seen its last line).
    fn last_word(&mut self) -> String {
        self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.working()
    }

    fn wait_working(&self, segments: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.working().split(',').filter(|s| !s.is_empty()).count() != segments {
            assert!(
                Instant::now() < deadline,
                "child {} works on {:?}, not {segments} segments",
                self.child.id(),
                self.working()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn processes_join_leave_and_are_killed() {
    let Some(url) = common::url_or_skip("processes_join_leave_and_are_killed") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_, store, schema, client) = rt.block_on(fresh()).unwrap();
    rt.block_on(async {
        let at = resegment(&store, &LocalLease, sink(&store, &schema), 4, options())
            .await
            .unwrap();
        assert_eq!(at, Position::ZERO);
    });
    let stop = Arc::new(AtomicBool::new(false));
    // Three appenders, so that the children (3 ms per event) are often mid-batch.
    let appenders: Vec<_> = (0..3)
        .map(|_| rt.spawn(append_until(store.clone(), 41, Arc::clone(&stop))))
        .collect();

    // Two processes join and share the 4 segments (at most 2 each).
    let a = spawn_child(&schema);
    a.wait_working(2, Duration::from_secs(30));
    let b = spawn_child(&schema);
    b.wait_working(2, Duration::from_secs(30));
    // A third joins and stands by: every segment is held.
    let mut c = spawn_child(&schema);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(c.working(), "", "the third process stands by");

    // A is SIGKILLed mid-batch: C takes its segments over from their checkpoints.
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    c.wait_working(2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));

    // B leaves (stops between batches): A comes back as a new process and takes B's segments.
    let mut b = b;
    drop(b.child.stdin.take());
    assert_eq!(b.last_word(), "LEFT");
    let d = spawn_child(&schema);
    d.wait_working(2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));

    // C is killed too; D (max 2) cannot take more, E joins and takes C's.
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    let e = spawn_child(&schema);
    e.wait_working(2, Duration::from_secs(20));

    stop.store(true, Ordering::SeqCst);
    let appended: u64 = appenders
        .into_iter()
        .map(|appender| rt.block_on(appender).unwrap())
        .sum();
    rt.block_on(async {
        let head = store.head().await.unwrap();
        wait_checkpoints(&store, head, Duration::from_secs(60)).await;
        let by_pid = check_applied(&client, &store, &schema).await;
        eprintln!("{appended} events appended, applied per process: {by_pid:?}");
        assert!(by_pid.len() >= 4, "four processes took part: {by_pid:?}");
    });
    for mut child in [d, e] {
        drop(child.child.stdin.take());
        child.child.wait().unwrap();
    }
    rt.block_on(async {
        drop(store);
        common::drop_schema(&url, &schema).await;
    });
}

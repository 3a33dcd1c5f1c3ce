//! The projection runner when the store misbehaves or its handle goes away: it reports `Live`
//! and a finished catch-up only at the store's head (not at an empty read below it), its
//! back-off grows through an outage and starts again after a success, `stop()` returns the
//! sink of a task whose runtime shut down, and dropping the handle stops the runner.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{FlakyStore, HoleStore, append_added};
use eventweave_core::runner::{
    ApplyError, DurableProjection, MemorySink, Progress, ProjectionRunner, ProjectionSink,
    RetryPolicy, RunnerState, RunningProjection,
};
use eventweave_core::{MemoryStore, Position, ProjectionError, RecordedEvent, StoreError};

const WAIT: Duration = Duration::from_secs(10);

/// Counts the events it handles (optionally sleeping on each); sets `dropped` when dropped.
#[derive(Default)]
struct Count {
    handled: Arc<AtomicU64>,
    delay: Duration,
    dropped: Arc<AtomicBool>,
}

impl DurableProjection for Count {
    const NAME: &'static str = "count";
    const EVENTS: &'static [&'static str] = &["counter.added"];

    async fn handle(&mut self, _: &(), _: &RecordedEvent) -> Result<(), ProjectionError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

async fn wait_state(
    running: &RunningProjection<impl ProjectionSink>,
    pred: impl Fn(&RunnerState) -> bool,
) {
    for _ in 0..5_000 {
        if pred(&running.status().state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("state not reached: {:?}", running.status());
}

#[tokio::test]
async fn live_and_a_finished_catch_up_only_at_the_head() {
    let store = HoleStore::default();
    let head = append_added(&store.inner, 1, 100).await;
    store.hold(Position(51));
    let reports = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let sink = Arc::clone(&reports);
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(Count::default()))
        .batch_size(10)
        .on_progress(move |p| sink.lock().unwrap().push(p.clone()))
        .spawn();
    // Reads at 51 come back empty while the head is 100.
    store.until_empty_reads(5).await;
    let status = running.status();
    assert_eq!(status.checkpoint, Position(50));
    assert!(
        matches!(status.state, RunnerState::CatchingUp),
        "{:?} below the head",
        status.state
    );
    assert!(
        reports.lock().unwrap().iter().all(|r| !r.finished),
        "finished below the head: {:?}",
        reports.lock().unwrap().last()
    );
    store.release();
    running.wait_for(head, WAIT).await.unwrap();
    wait_state(&running, |s| matches!(s, RunnerState::Live)).await;
    let reports = reports.lock().unwrap().clone();
    let finished: Vec<_> = reports.iter().filter(|r| r.finished).collect();
    assert_eq!(finished.len(), 1, "{reports:?}");
    assert_eq!((finished[0].done, finished[0].total), (100, 100));
    let sink = running.stop().await;
    assert_eq!(sink.projection().handled.load(Ordering::SeqCst), 100);
}

#[tokio::test(start_paused = true)]
async fn back_off_grows_through_an_outage_and_starts_over_after_a_success() {
    let store = FlakyStore::default();
    append_added(&store.inner, 1, 3).await;
    store.failures.store(12, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(Count::default()))
        .retry(RetryPolicy {
            max_attempts: 1,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        })
        .spawn();
    // (The clock is paused: it moves only when every task waits, to the next timer.)
    tokio::time::sleep(Duration::from_secs(2)).await;
    let early = store.reads.load(Ordering::SeqCst);
    // Waits of at least 50, 100, 200, 400, 800 ms (half of 100 ms doubling, jittered): at most
    // 5 retries after the first read in 2 s. A fixed 100 ms would make 20.
    assert!(early <= 6, "{early} reads in the first 2 s of the outage");
    running
        .wait_for(Position(3), Duration::from_secs(3_600))
        .await
        .unwrap();
    let outage = started.elapsed();
    // 12 failures: waits of 100 ms doubling up to the 10 s cap, 62.7 s in all, at least half.
    assert!(
        outage >= Duration::from_secs(31),
        "outage over after {outage:?}"
    );
    assert_eq!(
        store.reads.load(Ordering::SeqCst),
        13 + 1,
        "12 failures, 1 read, 1 empty"
    );
    wait_state(&running, |s| matches!(s, RunnerState::Live)).await;

    // A second outage starts again from the first delay: 3 failures wait at most 0.7 s.
    store.failures.store(3, Ordering::SeqCst);
    let again = tokio::time::Instant::now();
    let head = append_added(&store.inner, 1, 1).await;
    running
        .wait_for(head, Duration::from_secs(3_600))
        .await
        .unwrap();
    assert!(
        again.elapsed() <= Duration::from_millis(700),
        "{:?}",
        again.elapsed()
    );
    let sink = running.stop().await;
    assert_eq!(sink.projection().handled.load(Ordering::SeqCst), 4);
}

#[test]
fn stop_returns_the_sink_of_a_runner_whose_runtime_shut_down() {
    let store = MemoryStore::new();
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let running = first.block_on(async {
        let head = append_added(&store, 1, 5).await;
        let running =
            ProjectionRunner::new(store.clone(), MemorySink::new(Count::default())).spawn();
        running.wait_for(head, WAIT).await.unwrap();
        running
    });
    // Shutting the runtime down cancels the runner's task.
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sink = second.block_on(running.stop());
    assert_eq!(sink.projection().handled.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_stops_the_runner_at_the_next_batch() {
    let store = MemoryStore::new();
    append_added(&store, 1, 1_000).await;
    let projection = Count {
        handled: Arc::default(),
        delay: Duration::from_millis(1),
        dropped: Arc::default(),
    };
    let handled = Arc::clone(&projection.handled);
    let dropped = Arc::clone(&projection.dropped);
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(projection))
        .batch_size(10)
        .spawn();
    running.wait_for(Position(10), WAIT).await.unwrap();
    drop(running);
    // The task ends (dropping the sink) without catching up with the other 990 events first.
    for _ in 0..10_000 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the runner is still running"
    );
    let handled = handled.load(Ordering::SeqCst);
    assert!(
        handled <= 30,
        "{handled} events handled after the handle was dropped"
    );
}

/// A sink whose `apply` panics (a bug in the sink, not in a handler).
struct Broken;

/// Set when `Broken::apply` is about to panic.
static BROKE: AtomicBool = AtomicBool::new(false);

impl ProjectionSink for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn events(&self) -> &'static [&'static str] {
        &["counter.added"]
    }
    async fn checkpoint(&mut self) -> Result<Position, StoreError> {
        Ok(Position::ZERO)
    }
    async fn apply(&mut self, _: &[RecordedEvent], _: Position) -> Result<(), ApplyError> {
        BROKE.store(true, Ordering::SeqCst);
        panic!("bug in the sink");
    }
    async fn park(&mut self, _: &RecordedEvent, _: &ProjectionError) -> Result<(), StoreError> {
        Ok(())
    }
    async fn reset(&mut self) -> Result<(), ApplyError> {
        Ok(())
    }
}

#[tokio::test]
#[should_panic(expected = "bug in the sink")]
async fn stop_resumes_the_panic_of_a_runner_task() {
    let store = MemoryStore::new();
    append_added(&store, 1, 1).await;
    let running = ProjectionRunner::new(store, Broken).spawn();
    while !BROKE.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    running.stop().await;
}

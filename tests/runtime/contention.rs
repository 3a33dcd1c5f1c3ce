//! Commands of one process on one aggregate id take turns (`cache.rs`): they queue behind the
//! one in flight instead of replaying the stream and losing the append to it, in arrival order,
//! and a command whose future is dropped (running or queued) gives its turn up.
//!
//! The stores here yield or hang inside `append`, so that commands really overlap (a
//! `MemoryStore` append never suspends, and a single-threaded test would run them one by one).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Poll;
use std::time::Duration;

use eventweave_core::testing::domain::*;
use eventweave_core::{
    CommandError, CommandOutcome, Cqrs, Event, EventRef, EventStore, ExpectedVersion, MemoryStore,
    NewEvent, Position, Projection, ProjectionError, Query, QueryError, RecordedEvent, RoutedQuery,
    StoreError, StreamId,
};

/// A `MemoryStore` whose `append` yields to the scheduler before writing (so concurrent
/// commands interleave), can hang the next append for ever, and counts stream reads (each one
/// a replay of the aggregate).
#[derive(Clone, Default)]
struct SlowStore {
    inner: MemoryStore,
    stream_reads: Arc<AtomicU64>,
    hang_next_append: Arc<AtomicBool>,
}

impl EventStore for SlowStore {
    eventweave_core::forward_event_store!(inner: read_all, head, wait_for_events);

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.hang_next_append.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        tokio::task::yield_now().await;
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.stream_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_stream(stream, from_version, limit).await
    }
}

async fn app(store: SlowStore) -> Cqrs<SlowStore> {
    Cqrs::builder(store)
        .projection(Totals::default())
        .build()
        .await
        .unwrap()
}

/// The `n` of every `counter.added` event of `counter-<id>`, in stream order.
async fn added_in_order(store: &SlowStore, id: u64) -> Vec<u64> {
    let stream = StreamId::from(format!("counter-{id}"));
    let events = store
        .inner
        .read_stream(&stream, 1, usize::MAX)
        .await
        .unwrap();
    assert!(
        events.iter().zip(1..).all(|(e, v)| e.meta.version == v),
        "versions are contiguous"
    );
    events
        .iter()
        .filter(|e| e.meta.event_name == "counter.added")
        .map(|e| {
            let value: serde_json::Value = serde_json::from_str(e.payload.as_str()).unwrap();
            value["n"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_on_one_id_take_turns_without_conflicts_or_replays() {
    let store = SlowStore::default();
    let app = app(store.clone()).await;
    app.execute(Open { id: 1 }).await.unwrap();
    let reads_before = store.stream_reads.load(Ordering::SeqCst);
    let tasks: Vec<_> = (0..64u64)
        .map(|k| {
            let app = app.clone();
            tokio::spawn(async move { app.execute(Add { id: 1, n: 100 + k }).await })
        })
        .collect();
    let mut outcomes: Vec<CommandOutcome> = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().unwrap());
    }
    // Each decided once, on the state the previous one left: no conflict, no retry, no replay.
    let retried: Vec<u32> = outcomes
        .iter()
        .map(|o| o.attempts)
        .filter(|&a| a != 1)
        .collect();
    assert_eq!(retried, Vec::<u32>::new(), "attempts of retried commands");
    assert_eq!(store.stream_reads.load(Ordering::SeqCst), reads_before);
    // A serial order: each command got its own version, and the event at that version is its.
    let mut versions: Vec<u64> = outcomes.iter().map(|o| o.version).collect();
    versions.sort();
    assert_eq!(versions, (2..=65).collect::<Vec<u64>>());
    let stream = StreamId::from("counter-1");
    let stored = store.inner.read_stream(&stream, 1, 100).await.unwrap();
    for outcome in &outcomes {
        let at = &stored[outcome.version as usize - 1];
        assert_eq!(at.meta.event_id, outcome.events[0].meta.event_id);
    }
    let (state, version) = app.load::<Counter>(&1).await.unwrap();
    assert_eq!((state.total, version), ((100..164).sum::<u64>(), 65));
    let projected = app
        .query_after(app.position(), TotalOf("counter-1".into()))
        .await
        .unwrap();
    assert_eq!(projected, state.total);
}

#[tokio::test(flavor = "current_thread")]
async fn commands_on_one_id_run_in_arrival_order() {
    let store = SlowStore::default();
    let app = app(store.clone()).await;
    app.execute(Open { id: 7 }).await.unwrap();
    // On one thread, spawned tasks are first polled in spawn order: that is the arrival order.
    // (13 would panic in the handler.)
    let tasks: Vec<_> = (21..=40u64)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move { app.execute(Add { id: 7, n }).await.unwrap().attempts })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 1);
    }
    assert_eq!(
        added_in_order(&store, 7).await,
        (21..=40).collect::<Vec<u64>>()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn rejected_and_panicking_commands_hand_the_turn_on() {
    let store = SlowStore::default();
    let app = app(store.clone()).await;
    app.execute(Open { id: 3 }).await.unwrap();
    // 0 is rejected by the handler, 13 panics in it, 666 panics in `apply`.
    let amounts = [1u64, 0, 2, 13, 3, 666, 4];
    let tasks: Vec<_> = amounts
        .iter()
        .map(|&n| {
            let app = app.clone();
            tokio::spawn(async move { app.execute(Add { id: 3, n }).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for (n, result) in amounts.iter().zip(&results) {
        match (n, result) {
            (0, Err(CommandError::Rejected(CounterError::Zero))) => {}
            (13 | 666, Err(CommandError::Panicked { .. })) => {}
            (_, Ok(outcome)) if ![0, 13, 666].contains(n) => assert_eq!(outcome.attempts, 1),
            (n, other) => panic!("Add {n}: unexpected {other:?}"),
        }
    }
    assert_eq!(added_in_order(&store, 3).await, vec![1, 2, 3, 4]);
    let (state, _) = app.load::<Counter>(&3).await.unwrap();
    assert_eq!(state.total, 10);
}

/// Polls `future` a few times, yielding in between; whether it completed.
async fn completes_if_polled<T>(future: &mut Pin<Box<impl Future<Output = T>>>) -> bool {
    for _ in 0..3 {
        if std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_ready())).await {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

/// Awaits `future`, failing (rather than hanging) if it never completes.
async fn finishes<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the command waited for a turn nobody gives up")
}

#[tokio::test(flavor = "current_thread")]
async fn dropped_commands_give_their_turn_up() {
    let store = SlowStore::default();
    let app = app(store.clone()).await;
    app.execute(Open { id: 5 }).await.unwrap();
    // `a` takes the turn and hangs inside its append; `b` and `c` queue behind it.
    store.hang_next_append.store(true, Ordering::SeqCst);
    let mut a = Box::pin(app.execute(Add { id: 5, n: 1 }));
    let mut b = Box::pin(app.execute(Add { id: 5, n: 2 }));
    let mut c = Box::pin(app.execute(Add { id: 5, n: 3 }));
    assert!(!completes_if_polled(&mut a).await, "a hangs in its append");
    assert!(!completes_if_polled(&mut b).await, "b waits for a's turn");
    assert!(!completes_if_polled(&mut c).await, "c waits behind b");
    // Dropping `a` hands the turn to `b` (woken, not polled yet); dropping `b` then hands it on
    // to `c`, which must not wait for ever.
    drop(a);
    drop(b);
    let outcome = finishes(c).await.unwrap();
    assert_eq!((outcome.version, outcome.attempts), (2, 1));
    // `a` left no half state: `c` decided on the stored state (reloaded), and the next command
    // finds the turn free.
    let outcome = app.execute(Add { id: 5, n: 4 }).await.unwrap();
    assert_eq!((outcome.version, outcome.attempts), (3, 1));
    assert_eq!(added_in_order(&store, 5).await, vec![3, 4]);
    let (state, _) = app.load::<Counter>(&5).await.unwrap();
    assert_eq!(state.total, 7);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_waiter_leaves_the_queue() {
    let store = SlowStore::default();
    let app = app(store.clone()).await;
    app.execute(Open { id: 6 }).await.unwrap();
    store.hang_next_append.store(true, Ordering::SeqCst);
    let mut a = Box::pin(app.execute(Add { id: 6, n: 1 }));
    let mut b = Box::pin(app.execute(Add { id: 6, n: 2 }));
    let mut c = Box::pin(app.execute(Add { id: 6, n: 3 }));
    assert!(!completes_if_polled(&mut a).await);
    assert!(!completes_if_polled(&mut b).await);
    assert!(!completes_if_polled(&mut c).await);
    // `b` leaves the queue while `a` still runs; then `a` is dropped and `c` is next.
    drop(b);
    drop(a);
    assert_eq!(finishes(c).await.unwrap().version, 2);
    assert_eq!(added_in_order(&store, 6).await, vec![3]);
}

#[tokio::test(flavor = "current_thread")]
async fn another_process_still_conflicts_and_the_command_retries_in_its_turn() {
    let store = SlowStore::default();
    let app = app(store.clone()).await;
    app.execute(Open { id: 9 }).await.unwrap();
    app.execute(Add { id: 9, n: 1 }).await.unwrap();
    // Another process appends behind this one's back: the cached state is stale.
    let other = Cqrs::builder(store.inner.clone()).build().await.unwrap();
    other.execute(Add { id: 9, n: 10 }).await.unwrap();
    let outcome = app.execute(Add { id: 9, n: 2 }).await.unwrap();
    assert_eq!((outcome.version, outcome.attempts), (4, 2));
    let (state, _) = app.load::<Counter>(&9).await.unwrap();
    assert_eq!(state.total, 13);
}

/// Shared with [`Gated`]: whether its handler is inside the gate, and whether the gate is open.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gate {
    /// Waits (blocking the thread, as a slow projection does) until the gate opens.
    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        state.0 = true;
        self.changed.notify_all();
        while !state.1 {
            state = self.changed.wait(state).unwrap();
        }
    }

    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    fn entered(&self) -> bool {
        self.state.lock().unwrap().0
    }

    /// Opens the gate after `limit` unless it was opened before; says whether it had to.
    fn open_after(&self, limit: Duration) -> bool {
        let state = self.state.lock().unwrap();
        let (mut state, waited) = self
            .changed
            .wait_timeout_while(state, limit, |s| !s.1)
            .unwrap();
        let fired = waited.timed_out();
        state.1 = true;
        self.changed.notify_all();
        fired
    }
}

/// The amount whose event blocks [`Gated`] at its gate.
const BLOCKING: u64 = 1000;

/// A projection that blocks in its handler on `Added { n: BLOCKING }` until its gate opens, and
/// records every amount it applied, in order.
struct Gated {
    gate: Arc<Gate>,
    seen: Vec<u64>,
}

impl Projection for Gated {
    const NAME: &'static str = "gated";
    const EVENTS: &'static [&'static str] = &[Added::NAME];
    fn handle(&mut self, event: EventRef<'_>) -> Result<(), ProjectionError> {
        if let Ok(Some(added)) = event.decode::<Added>() {
            if added.n == BLOCKING {
                self.gate.pass();
            }
            self.seen.push(added.n);
        }
        Ok(())
    }
}

struct SeenByGated;
impl Query for SeenByGated {
    type Response = Vec<u64>;
}
impl RoutedQuery for SeenByGated {
    type Projection = Gated;
    fn answer(p: &Gated, _: &SeenByGated) -> Vec<u64> {
        p.seen.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_projection_holds_up_neither_other_projections_nor_queries_nor_commands() {
    let gate = Arc::new(Gate::default());
    // The slow projection first: it is the lane the blocked command claims before the other.
    let app = Cqrs::builder(MemoryStore::new())
        .projection(Gated {
            gate: Arc::clone(&gate),
            seen: Vec::new(),
        })
        .projection(Totals::default())
        .query_timeout(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    app.execute(Open { id: 1 }).await.unwrap();
    // If anything below blocks on the gate, this thread opens it after a while and the test
    // fails on `watchdog` (instead of hanging); otherwise the test opens it itself.
    let watchdog = {
        let gate = Arc::clone(&gate);
        std::thread::spawn(move || gate.open_after(Duration::from_secs(30)))
    };
    let blocked = {
        let app = app.clone();
        tokio::spawn(async move { app.execute(Add { id: 1, n: BLOCKING }).await.unwrap() })
    };
    while !gate.entered() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The command stuck in the gated projection's handler holds only that projection.
    let outcome = app.execute(Add { id: 1, n: 5 }).await.unwrap();
    let totals = app
        .query_after(outcome.position(), TotalOf("counter-1".into()))
        .await
        .unwrap();
    assert_eq!(totals, BLOCKING + 5, "the other projection applied both");
    assert_eq!(app.query(TotalOf("counter-1".into())).await.unwrap(), 1005);
    // Read-your-writes is per projection: the gated one cannot reach the position yet.
    let gated = app.query_after(outcome.position(), SeenByGated).await;
    assert!(
        matches!(gated, Err(QueryError::Timeout { .. })),
        "{gated:?}"
    );
    assert!(app.position() < outcome.position(), "the lowest projection");
    gate.open();
    let first = blocked.await.unwrap();
    assert!(!watchdog.join().unwrap(), "something waited for the gate");
    // Then the gated projection applies both, in position order.
    let seen = app
        .query_after(outcome.position(), SeenByGated)
        .await
        .unwrap();
    assert_eq!(seen, vec![BLOCKING, 5]);
    assert!(first.position() < outcome.position());
    assert_eq!(app.position(), outcome.position());
    assert_eq!(
        app.query(SeenPositions).await.unwrap(),
        vec![first.position().0, outcome.position().0]
    );
}

/// Every `counter.added` position a projection saw, in order (a second projection type).
#[derive(Default)]
struct Positions(Vec<u64>);

impl Projection for Positions {
    const NAME: &'static str = "positions";
    const EVENTS: &'static [&'static str] = &[Added::NAME];
    fn handle(&mut self, event: EventRef<'_>) -> Result<(), ProjectionError> {
        if event.name() == Added::NAME {
            self.0.push(event.meta().position.0);
        }
        Ok(())
    }
}

struct AllPositions;
impl Query for AllPositions {
    type Response = Vec<u64>;
}
impl RoutedQuery for AllPositions {
    type Projection = Positions;
    fn answer(p: &Positions, _: &AllPositions) -> Vec<u64> {
        p.0.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_projection_applies_every_event_once_in_position_order_under_concurrency() {
    let store = SlowStore::default();
    let app = Cqrs::builder(store.clone())
        .projection(Positions::default())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    for id in 0..8 {
        app.execute(Open { id }).await.unwrap();
    }
    let tasks: Vec<_> = (0..8u64)
        .map(|id| {
            let app = app.clone();
            tokio::spawn(async move {
                for n in 101..=300 {
                    app.execute(Add { id, n }).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let head = store.head().await.unwrap();
    let expected: Vec<u64> = store
        .inner
        .read_all(Position(1), usize::MAX)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.meta.event_name == Added::NAME)
        .map(|e| e.meta.position.0)
        .collect();
    assert_eq!(expected.len(), 1600);
    let positions = app.query_after(head, AllPositions).await.unwrap();
    assert_eq!(positions, expected);
    let seen = app.query_after(head, SeenPositions).await.unwrap();
    assert_eq!(seen, expected);
    assert_eq!(app.position(), head);
}

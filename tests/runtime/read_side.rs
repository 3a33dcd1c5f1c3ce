//! The in-memory read side against a store whose `read_all` stops before a pending hole (as
//! PostgreSQL's does before a position a running transaction holds): `build()`, `catch_up()`
//! and `query_after` measure "caught up" against the store's head, not against an empty or
//! short read. And its `pending` buffer stays bounded while writers keep overlapping.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{HoleStore, append_added};
use eventweave_core::runner::Progress;
use eventweave_core::testing::domain::*;
use eventweave_core::{
    Cqrs, EventStore, ExpectedVersion, MemoryStore, NewEvent, Position, QueryError, RecordedEvent,
    StoreError, StreamId,
};

/// 100 `counter.added` events (n = 1..=100) on `counter-1`; their total.
const TOTAL: u64 = 5050;

#[tokio::test]
async fn build_applies_every_event_up_to_the_head_past_empty_reads() {
    let store = HoleStore::default();
    let head = append_added(&store.inner, 1, 100).await;
    // Position 51 is "held by a running transaction" for the first 5 reads at it: reads
    // return 1..=50, then empty batches, while the head is 100.
    store.hold_for(Position(51), 5);
    let reports = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let sink = Arc::clone(&reports);
    let app = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .on_progress(move |p| sink.lock().unwrap().push(p.clone()))
        .build()
        .await
        .unwrap();
    assert_eq!(store.empty_reads(), 5, "it waited at the hole");
    assert_eq!(app.position(), head);
    assert_eq!(app.query(TotalOf("counter-1".into())).await.unwrap(), TOTAL);
    let reports = reports.lock().unwrap();
    let last = reports.last().unwrap();
    assert_eq!((last.done, last.total, last.finished), (100, 100, true));
    assert_eq!(reports.iter().filter(|r| r.finished).count(), 1);
}

#[tokio::test]
async fn catch_up_reaches_the_head_it_read_first() {
    let store = HoleStore::default();
    let app = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    let head = append_added(&store.inner, 2, 10).await;
    store.hold_for(Position(5), 3);
    assert_eq!(app.catch_up().await.unwrap(), head);
    assert_eq!(app.query(TotalOf("counter-2".into())).await.unwrap(), 55);
}

/// More events than three catch-up batches, with a hole in the third: the catch-up reads the
/// next batch while it applies a full one, and a read ahead that stops at the hole waits for it
/// like any other read. Every event is applied once, in order (the projection's total).
#[tokio::test]
async fn build_reading_ahead_applies_every_batch_once_past_a_hole() {
    let store = HoleStore::default();
    let head = append_added(&store.inner, 3, 10_000).await;
    store.hold_for(Position(9_000), 3);
    let app = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    assert_eq!(store.empty_reads(), 3, "it waited at the hole");
    assert_eq!(app.position(), head);
    let total: u64 = (1..=10_000).sum();
    assert_eq!(app.query(TotalOf("counter-3".into())).await.unwrap(), total);
    let head = append_added(&store.inner, 3, 9_000).await;
    assert_eq!(app.catch_up().await.unwrap(), head);
    let more: u64 = (1..=9_000).sum();
    assert_eq!(
        app.query(TotalOf("counter-3".into())).await.unwrap(),
        total + more
    );
}

#[tokio::test]
async fn query_after_waits_for_a_pending_hole_and_times_out_while_it_is_held() {
    let store = HoleStore::default();
    let app = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .query_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let head = append_added(&store.inner, 3, 10).await;
    store.hold(Position(5));
    let waiting = {
        let app = app.clone();
        tokio::spawn(async move { app.query_after(head, TotalOf("counter-3".into())).await })
    };
    store.until_empty_reads(3).await;
    assert!(
        !waiting.is_finished(),
        "answered before the hole was filled"
    );
    store.release();
    assert_eq!(waiting.await.unwrap().unwrap(), 55);

    // With the hole held for longer than its timeout, it says how far it got.
    let impatient = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .query_timeout(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let more = append_added(&store.inner, 3, 10).await;
    store.hold(Position(15));
    let err = impatient
        .query_after(more, TotalOf("counter-3".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            QueryError::Timeout { target, reached: Position(14), .. } if target == more
        ),
        "{err:?}"
    );
    store.release();
}

/// A `MemoryStore` whose appends to `counter-999` wait, while `hang` is set, until `go` is set:
/// a command of this process that stays between its append and its delivery.
#[derive(Clone, Default)]
struct HangingStore {
    inner: MemoryStore,
    hang: Arc<AtomicBool>,
    entered: Arc<AtomicBool>,
    go: Arc<tokio::sync::Notify>,
}

impl EventStore for HangingStore {
    eventweave_core::forward_event_store!(inner: read_stream, read_all, head, wait_for_events);

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if stream.as_str() == "counter-999" && self.hang.load(Ordering::SeqCst) {
            self.entered.store(true, Ordering::SeqCst);
            self.go.notified().await;
        }
        self.inner.append(stream, expected, events).await
    }
}

#[tokio::test]
async fn pending_events_stay_bounded_while_writers_keep_overlapping() {
    let store = HangingStore::default();
    let app = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    // Another process on the same store: its events reach this read side only from the store.
    let other = Cqrs::builder(store.inner.clone()).build().await.unwrap();
    app.execute(Open { id: 999 }).await.unwrap();
    for id in 0..4 {
        app.execute(Open { id }).await.unwrap();
        other.execute(Open { id: 10 + id }).await.unwrap();
    }
    // One command of this process stays in flight throughout, so every other one overlaps
    // with it: none of them is ever the last writer out, who would read the gaps.
    store.hang.store(true, Ordering::SeqCst);
    let hanging = {
        let app = app.clone();
        tokio::spawn(async move { app.execute(Add { id: 999, n: 1 }).await })
    };
    while !store.entered.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }
    let mut most = 0;
    for i in 0..2_000u64 {
        app.execute(Add { id: i % 4, n: 1 }).await.unwrap();
        other
            .execute(Add {
                id: 10 + i % 4,
                n: 2,
            })
            .await
            .unwrap();
        most = most.max(app.pending_events());
    }
    assert!(most <= 256, "{most} events waited for an earlier position");
    store.hang.store(false, Ordering::SeqCst);
    store.go.notify_one();
    hanging.await.unwrap().unwrap();
    app.catch_up().await.unwrap();
    assert_eq!(app.pending_events(), 0);
    // Equal to a replay: the totals and the order of a fresh application built from the store.
    let replay = Cqrs::builder(store.inner.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    for id in (0..4).chain(10..14).chain([999]) {
        let stream = format!("counter-{id}");
        let expected = replay.query(TotalOf(stream.clone())).await.unwrap();
        assert_eq!(app.query(TotalOf(stream)).await.unwrap(), expected);
    }
    assert_eq!(
        app.query(SeenPositions).await.unwrap(),
        replay.query(SeenPositions).await.unwrap()
    );
    assert_eq!(
        replay.query(TotalOf("counter-0".into())).await.unwrap(),
        500
    );
}

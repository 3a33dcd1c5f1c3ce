//! Segmented durable projections over `MemoryStore`: the stable stream hash, the segment
//! names, runners sharing one projection by stream, and splits and merges while events are
//! appended (each event applied once, in stream order, no checkpoint back to 0).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventweave_core::runner::{
    ApplyError, CheckpointedSink, Checkpoints, DurableProjection, LocalLease, ProjectionRunner,
    ProjectionSink, ResegmentOptions, RunnerState, Segment, SegmentError, SegmentedRunner,
    layout_key, load_layout, resegment, segment_checkpoints, stream_hash,
};
use eventweave_core::{
    EventStore, ExpectedVersion, MemoryStore, NewEvent, Payload, Position, ProjectionError,
    RecordedEvent, StreamId, UserMetadata, new_id,
};

const WAIT: Duration = Duration::from_secs(10);

/// Every event it is given, as (stream, version), in the order applied.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(String, u64)>>>);

impl DurableProjection for Log {
    const NAME: &'static str = "segmented_log";
    const EVENTS: &'static [&'static str] = &["counter.added"];

    async fn handle(&mut self, _: &(), event: &RecordedEvent) -> Result<(), ProjectionError> {
        let meta = &event.meta;
        self.0
            .lock()
            .unwrap()
            .push((meta.stream.to_string(), meta.version));
        Ok(())
    }
}

fn added() -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: "counter.added".into(),
        event_version: 1,
        payload: Payload::from_json(r#"{"n":1}"#),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

async fn append(store: &MemoryStore, stream: u64) {
    store
        .append(
            &StreamId::new(format!("s-{stream}")),
            ExpectedVersion::Any,
            vec![added()],
        )
        .await
        .unwrap();
}

/// Panics unless `log` holds every event of `store` once, per stream in version order.
async fn check_once_in_order(store: &MemoryStore, log: &Log) {
    let applied = log.0.lock().unwrap().clone();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for (stream, version) in &applied {
        let before = last.insert(stream.clone(), *version).unwrap_or(0);
        assert_eq!(*version, before + 1, "{stream} v{version} after v{before}");
    }
    let all = store.read_all(Position(1), 1_000_000).await.unwrap();
    assert_eq!(applied.len(), all.len(), "every event applied once");
}

#[test]
fn the_stream_hash_is_fnv_1a_64_and_never_changes() {
    // Reference values of FNV-1a 64; the hash is part of the stored format.
    assert_eq!(stream_hash(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(stream_hash("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(stream_hash("foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn segments_partition_the_streams_and_name_their_checkpoints() {
    assert_eq!(Segment::WHOLE.key("p"), "p");
    assert_eq!(Segment::new(2, 4).unwrap().key("p"), "p#2/4");
    assert_eq!(layout_key("p"), "p#segments");
    assert!(matches!(
        Segment::new(4, 4),
        Err(SegmentError::Invalid { index: 4, count: 4 })
    ));
    assert!(Segment::new(0, 0).is_err());
    for k in 0..500 {
        let stream = StreamId::new(format!("account-{k}"));
        let owners = Segment::all(4).filter(|s| s.owns(&stream)).count();
        assert_eq!(owners, 1, "{stream} has one owner");
        assert!(Segment::WHOLE.owns(&stream));
    }
    // Spread: no segment of 4 gets fewer than a sixth of 500 streams.
    for segment in Segment::all(4) {
        let owned = (0..500)
            .filter(|k| segment.owns(&StreamId::new(format!("account-{k}"))))
            .count();
        assert!(owned > 500 / 6, "segment {segment} owns {owned} of 500");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_while_appending_apply_each_event_once() {
    let store = MemoryStore::new();
    let log = Log::default();
    let sink = |segment| CheckpointedSink::new(log.clone(), store.clone()).segment(segment);
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                append(&store, n % 29).await;
                n += 1;
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        })
    };
    let mut running = SegmentedRunner::new(store.clone(), 1, sink)
        .batch_size(7)
        .start()
        .await
        .unwrap();
    let mut changed_at = Vec::new();
    for count in [3, 2, 5, 1] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        running.stop().await;
        let at = resegment(
            &store,
            &LocalLease,
            sink,
            count,
            ResegmentOptions::default(),
        )
        .await
        .unwrap();
        assert!(at > Position::ZERO, "no rebuild");
        changed_at.push(at);
        assert_eq!(load_layout(&store, Log::NAME).await.unwrap(), count);
        for (segment, position) in segment_checkpoints(&store, Log::NAME).await.unwrap() {
            assert_eq!((segment.count(), position), (count, at));
        }
        running = SegmentedRunner::new(store.clone(), count, sink)
            .batch_size(7)
            .start()
            .await
            .unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    appender.await.unwrap();
    let head = store.head().await.unwrap();
    running.wait_for(head, WAIT).await.unwrap();
    assert!(
        running
            .statuses()
            .iter()
            .all(|s| matches!(s.state, RunnerState::Live | RunnerState::CatchingUp))
    );
    running.stop().await;
    assert!(
        changed_at.windows(2).all(|w| w[0] <= w[1]),
        "{changed_at:?}"
    );
    check_once_in_order(&store, &log).await;
}

#[tokio::test]
async fn several_segments_share_the_events_of_one_projection() {
    let store = MemoryStore::new();
    for k in 0..300 {
        append(&store, k % 40).await;
    }
    let log = Log::default();
    let sink = |segment| CheckpointedSink::new(log.clone(), store.clone()).segment(segment);
    resegment(&store, &LocalLease, sink, 4, ResegmentOptions::default())
        .await
        .unwrap();
    let running = SegmentedRunner::new(store.clone(), 4, sink)
        .start()
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    running.wait_for(head, WAIT).await.unwrap();
    let statuses = running.statuses();
    let segments: Vec<Segment> = statuses.iter().map(|s| s.segment).collect();
    assert_eq!(segments, Segment::all(4).collect::<Vec<_>>());
    running.stop().await;
    check_once_in_order(&store, &log).await;
    for (_, position) in segment_checkpoints(&store, Log::NAME).await.unwrap() {
        assert_eq!(position, head);
    }
}

#[tokio::test]
async fn a_layout_or_sink_that_does_not_match_is_refused() {
    let store = MemoryStore::new();
    let log = Log::default();
    let sink = |segment| CheckpointedSink::new(log.clone(), store.clone()).segment(segment);
    let refused = SegmentedRunner::new(store.clone(), 2, sink).start().await;
    assert!(matches!(
        refused,
        Err(SegmentError::LayoutMismatch {
            projection: "segmented_log",
            stored: 1,
            requested: 2
        })
    ));
    resegment(&store, &LocalLease, sink, 2, ResegmentOptions::default())
        .await
        .unwrap();
    // A sink that ignores its segment would apply every event in every segment.
    let careless = |_: Segment| CheckpointedSink::new(log.clone(), store.clone());
    let refused = SegmentedRunner::new(store.clone(), 2, careless)
        .start()
        .await;
    assert!(matches!(refused, Err(SegmentError::WrongSink { .. })));
    let refused = resegment(
        &store,
        &LocalLease,
        careless,
        1,
        ResegmentOptions::default(),
    )
    .await;
    assert!(matches!(refused, Err(SegmentError::WrongSink { .. })));
    // One segment of several cannot be rebuilt: its reset hook would empty the others' part.
    let mut one = sink(Segment::new(1, 2).unwrap());
    assert!(matches!(one.reset().await, Err(ApplyError::Store(_))));
    assert_eq!(
        store.load_checkpoint(&layout_key(Log::NAME)).await.unwrap(),
        Position(2)
    );
}

#[tokio::test]
async fn a_change_brings_lagging_segments_to_the_common_position_first() {
    let store = MemoryStore::new();
    let log = Log::default();
    let sink = |segment| CheckpointedSink::new(log.clone(), store.clone()).segment(segment);
    resegment(&store, &LocalLease, sink, 2, ResegmentOptions::default())
        .await
        .unwrap();
    for k in 0..200 {
        append(&store, k % 31).await;
    }
    let head = store.head().await.unwrap();
    // Only segment 0 of 2 runs: segment 1 stays at 0.
    let first = Segment::new(0, 2).unwrap();
    let running = ProjectionRunner::new(store.clone(), sink(first)).spawn();
    running.wait_for(head, WAIT).await.unwrap();
    running.stop().await;
    let lagging = Segment::new(1, 2).unwrap();
    assert_eq!(
        store
            .load_checkpoint(&lagging.key(Log::NAME))
            .await
            .unwrap(),
        Position::ZERO
    );
    let at = resegment(&store, &LocalLease, sink, 3, ResegmentOptions::default())
        .await
        .unwrap();
    assert_eq!(at, head, "the highest checkpoint");
    // Every event up to the common position is applied once already, by its old segment.
    check_once_in_order(&store, &log).await;
    for k in 0..50 {
        append(&store, k % 31).await;
    }
    let running = SegmentedRunner::new(store.clone(), 3, sink)
        .start()
        .await
        .unwrap();
    running
        .wait_for(store.head().await.unwrap(), WAIT)
        .await
        .unwrap();
    running.stop().await;
    check_once_in_order(&store, &log).await;
}

#[tokio::test]
async fn a_runner_of_another_layout_stands_by_and_applies_nothing() {
    let store = MemoryStore::new();
    for k in 0..20 {
        append(&store, k).await;
    }
    let log = Log::default();
    let sink = |segment| CheckpointedSink::new(log.clone(), store.clone()).segment(segment);
    resegment(&store, &LocalLease, sink, 4, ResegmentOptions::default())
        .await
        .unwrap();
    // A runner deployed before the split: the whole projection, and one of a layout of 2.
    for stale in [Segment::WHOLE, Segment::new(0, 2).unwrap()] {
        let running = ProjectionRunner::new(store.clone(), sink(stale))
            .leases(LocalLease, Duration::from_millis(10))
            .spawn();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            matches!(running.status().state, RunnerState::Standby),
            "{:?}",
            running.status().state
        );
        running.stop().await;
    }
    assert!(log.0.lock().unwrap().is_empty(), "nothing applied");
}

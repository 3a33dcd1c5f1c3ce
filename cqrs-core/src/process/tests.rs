//! Process managers run by two processes that pass the lease between them, and the bounded
//! rejections of a sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Cqrs;
use crate::envelope::{NewEvent, Payload, RecordedEvent, UserMetadata};
use crate::error::{ProjectionFailure, StoreError};
use crate::event::Event;
use crate::ids::{Position, StreamId, Uuid, new_id};
use crate::process::deadline::Timer;
use crate::process::record::{DEADLINE, DeadlineRecord};
use crate::process::{
    Issue, IssuedCommand, ProcessManager, ProcessManagerSink, REJECTIONS_KEPT, Rejection,
    deadline_stream, derive_id,
};
use crate::runner::{Lease, Leases, ProjectionRunner, RunnerState, RunningProjection};
use crate::store::{EventStore, ExpectedVersion, MemoryStore};

/// The longest any bounded wait of these tests takes.
const WAIT: Duration = Duration::from_secs(10);
/// How long after its start a reminder's deadline is due. Process B must record its deadline
/// and stop before that, or B fires it itself and the scenario tests nothing.
const DELAY: Duration = Duration::from_millis(200);

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Started {
    n: u32,
}

impl Event for Started {
    const NAME: &'static str = "test-pm-lease.started";
    const VERSION: u32 = 1;
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct TimedOut {
    n: u32,
}

impl Event for TimedOut {
    const NAME: &'static str = "test-pm-lease.timed_out";
    const VERSION: u32 = 1;
}

/// Schedules one deadline per start and counts the timeouts it receives.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Reminder {
    timeouts: u32,
}

impl ProcessManager for Reminder {
    const NAME: &'static str = "test-reminder";
    const EVENTS: &'static [&'static str] = &[Started::NAME, TimedOut::NAME];

    fn handle(&mut self, event: &RecordedEvent) -> Result<Vec<Issue>, ProjectionFailure> {
        if event.meta.event_name == Started::NAME {
            let started: Started = super::decode(event)?;
            return Ok(vec![Issue::deadline(DELAY, TimedOut { n: started.n })]);
        }
        self.timeouts += 1;
        Ok(Vec::new())
    }
}

/// Leases passed by the test: the process whose number `holder` holds is the only one that
/// may take the lease, and loses it when `holder` changes.
#[derive(Clone)]
struct Baton {
    holder: Arc<watch::Sender<usize>>,
    me: usize,
}

struct Held {
    holder: watch::Receiver<usize>,
    me: usize,
}

/// Nobody may hold the lease.
const NOBODY: usize = usize::MAX;
const A: usize = 0;
const B: usize = 1;

impl Leases for Baton {
    type Lease = Held;

    async fn try_acquire(&self, _projection: &str) -> Result<Option<Held>, StoreError> {
        Ok((*self.holder.borrow() == self.me).then(|| Held {
            holder: self.holder.subscribe(),
            me: self.me,
        }))
    }
}

impl Lease for Held {
    async fn lost(&mut self) {
        let me = self.me;
        let _ = self.holder.wait_for(|holder| *holder != me).await;
    }
}

type Running = RunningProjection<ProcessManagerSink<Reminder, MemoryStore>>;

/// A process: a runner of its own sink, taking the lease from `holder` as number `me`.
fn process(app: &Cqrs<MemoryStore>, holder: &Arc<watch::Sender<usize>>, me: usize) -> Running {
    process_with(app, holder, me, ProcessManagerSink::new(app.clone()))
}

/// [`process`] with a sink configured by the test (its deadline poll, say).
fn process_with(
    app: &Cqrs<MemoryStore>,
    holder: &Arc<watch::Sender<usize>>,
    me: usize,
    sink: ProcessManagerSink<Reminder, MemoryStore>,
) -> Running {
    let leases = Baton {
        holder: Arc::clone(holder),
        me,
    };
    ProjectionRunner::new(app.store().clone(), sink)
        .leases(leases, Duration::from_millis(5))
        .spawn()
}

/// Appends the start of reminder `n` (its own correlation id); returns that id and the
/// position the event got.
async fn start(store: &MemoryStore, n: u32) -> (Uuid, Position) {
    let correlation = new_id();
    let event = NewEvent {
        event_id: new_id(),
        event_name: Started::NAME.into(),
        event_version: 1,
        payload: Payload::from_json(serde_json::to_string(&Started { n }).unwrap()),
        correlation_id: Some(correlation),
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: crate::Tags::empty(),
    };
    let stream = StreamId::from(format!("reminder-{n}"));
    let recorded = store
        .append(&stream, ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
    (correlation, recorded[0].meta.position)
}

/// Moves the lease to `to`: first to nobody, until `from` stands by, so the two never work at
/// once (as with a real lease).
async fn pass(holder: &watch::Sender<usize>, from: &Running, to: usize) {
    holder.send_replace(NOBODY);
    state(from, |s| matches!(s, RunnerState::Standby)).await;
    holder.send_replace(to);
}

/// Waits (bounded by [`WAIT`]) until the runner's state is one `wanted` accepts.
async fn state(running: &Running, wanted: impl Fn(&RunnerState) -> bool) {
    let until = tokio::time::Instant::now() + WAIT;
    while !wanted(&running.status().state) {
        assert!(
            tokio::time::Instant::now() < until,
            "{:?} after {WAIT:?}",
            running.status().state
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until the runner works live (it holds the lease and its sink's timer runs).
async fn live(running: &Running) {
    state(running, |s| matches!(s, RunnerState::Live)).await;
}

/// The timeout events in the deadline stream, once every one of `expected` is there (bounded
/// by [`WAIT`]).
async fn fired(store: &MemoryStore, expected: usize) -> Vec<RecordedEvent> {
    let stream = deadline_stream(Reminder::NAME);
    let look = async {
        loop {
            let head = store.head().await.unwrap();
            let timeouts: Vec<RecordedEvent> = store
                .read_stream(&stream, 1, usize::MAX)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.meta.event_name == TimedOut::NAME)
                .collect();
            if timeouts.len() >= expected {
                return timeouts;
            }
            store.wait_for_events(head).await;
        }
    };
    match tokio::time::timeout(WAIT, look).await {
        Ok(timeouts) => timeouts,
        Err(_) => panic!("fewer than {expected} deadlines fired within {WAIT:?}"),
    }
}

/// Issue 10, item 9: A records a deadline, the lease moves to B, B records another and stops
/// before it is due, the lease comes back to A: A fires both, each once. (Before, A's timer
/// read the deadline stream only when it started and never learned of B's deadline.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_recorded_by_another_process_fire_when_the_lease_comes_back() {
    let store = MemoryStore::new();
    let app = Cqrs::builder(store.clone()).build().await.unwrap();
    let holder = Arc::new(watch::channel(A).0);

    let a = process(&app, &holder, A);
    let (first, at) = start(&store, 1).await;
    a.wait_for(at, WAIT).await.unwrap();

    let b = process(&app, &holder, B);
    pass(&holder, &a, B).await;
    let (second, at) = start(&store, 2).await;
    b.wait_for(at, WAIT).await.unwrap();
    // Process B ends before its deadline is due; its timer ends with its sink.
    drop(b.stop().await);

    holder.send_replace(A);
    let timeouts = fired(&store, 2).await;
    let head = store.head().await.unwrap();
    a.wait_for(head, WAIT).await.unwrap();
    let sink = a.stop().await;

    let mut correlations: Vec<_> = timeouts.iter().map(|e| e.meta.correlation_id).collect();
    correlations.sort();
    let mut expected = vec![Some(first), Some(second)];
    expected.sort();
    assert_eq!(correlations, expected, "each deadline fired once");
    assert_eq!(sink.instance(first).await.unwrap().timeouts, 1);
    assert_eq!(sink.instance(second).await.unwrap().timeouts, 1);
}

/// The same with a timer that never polls: regaining the lease (the runner loading the
/// checkpoint) is what makes it read the deadline stream again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regaining_the_lease_reads_the_deadline_stream_again() {
    let store = MemoryStore::new();
    let app = Cqrs::builder(store.clone()).build().await.unwrap();
    let holder = Arc::new(watch::channel(A).0);
    let sink = ProcessManagerSink::new(app.clone()).deadline_poll(Duration::from_secs(3600));
    let a = process_with(&app, &holder, A, sink);
    live(&a).await;

    let b = process(&app, &holder, B);
    pass(&holder, &a, B).await;
    let (second, at) = start(&store, 2).await;
    b.wait_for(at, WAIT).await.unwrap();
    drop(b.stop().await);

    holder.send_replace(A);
    let timeouts = fired(&store, 1).await;
    assert_eq!(timeouts[0].meta.correlation_id, Some(second));
    let head = store.head().await.unwrap();
    a.wait_for(head, WAIT).await.unwrap();
    let sink = a.stop().await;
    assert_eq!(sink.instance(second).await.unwrap().timeouts, 1);
}

/// A standing-by process keeps its timer: it fires what another process recorded, once, even
/// while nobody holds the lease (the timeout event waits in the store for the next holder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standing_by_timer_fires_deadlines_by_polling() {
    let store = MemoryStore::new();
    let app = Cqrs::builder(store.clone()).build().await.unwrap();
    let holder = Arc::new(watch::channel(B).0);
    let sink = ProcessManagerSink::new(app.clone()).deadline_poll(Duration::from_millis(20));
    let a = process_with(&app, &holder, A, sink);
    let b = process(&app, &holder, B);
    live(&b).await;
    // A's sink starts its timer only once its runner first loads the checkpoint.
    pass(&holder, &b, A).await;
    live(&a).await;
    pass(&holder, &a, B).await;

    let (second, at) = start(&store, 2).await;
    b.wait_for(at, WAIT).await.unwrap();
    drop(b.stop().await);
    holder.send_replace(NOBODY);

    let timeouts = fired(&store, 1).await;
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0].meta.correlation_id, Some(second));
    drop(a.stop().await);
}

/// A store that counts the appends made through it, and the stream reads done.
#[derive(Clone)]
struct Counting {
    inner: MemoryStore,
    appends: Arc<AtomicUsize>,
    reads: Arc<AtomicUsize>,
}

impl EventStore for Counting {
    crate::forward_event_store!(inner: read_all, head, wait_for_events);

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let read = self.inner.read_stream(stream, from_version, limit).await;
        self.reads.fetch_add(1, Ordering::SeqCst);
        read
    }
}

/// Records deadline `id`, due `due_micros`, in the deadline stream (as a sink does).
async fn record_deadline(store: &MemoryStore, id: Uuid, due_micros: i64) {
    let record = DeadlineRecord {
        id,
        correlation: id,
        cause: id,
        due_micros,
        event_name: TimedOut::NAME.into(),
        event_version: 1,
        payload: serde_json::to_string(&TimedOut { n: 0 }).unwrap(),
        trace: Default::default(),
    };
    let event = NewEvent {
        event_id: new_id(),
        event_name: DEADLINE.into(),
        event_version: 1,
        payload: Payload::from_json(serde_json::to_string(&record).unwrap()),
        correlation_id: Some(id),
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: crate::Tags::empty(),
    };
    let stream = deadline_stream(Reminder::NAME);
    store
        .append(&stream, ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
}

/// Two deadlines due in about a second; once this timer has read them, another process fires
/// the first (with other metadata, as another version of the application might); then
/// `refresh` or not. Returns the appends this timer made once both timeouts are stored.
async fn fired_elsewhere(refresh: bool) -> usize {
    let store = MemoryStore::new();
    let now = crate::ids::Timestamp::now().unix_micros();
    let (fired_elsewhere, due) = (new_id(), new_id());
    // Due in 1 s: the timer reads the other process's timeout well before.
    record_deadline(&store, fired_elsewhere, now + 1_000_000).await;
    record_deadline(&store, due, now + 1_100_000).await;
    let counting = Counting {
        inner: store.clone(),
        appends: Arc::new(AtomicUsize::new(0)),
        reads: Arc::new(AtomicUsize::new(0)),
    };
    let stream = deadline_stream(Reminder::NAME);
    let timer = Timer::start(counting.clone(), stream.clone(), Duration::from_secs(3600));
    let until = tokio::time::Instant::now() + WAIT;
    while counting.reads.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < until, "the timer never read");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let timeout = NewEvent {
        event_id: fired_elsewhere,
        event_name: TimedOut::NAME.into(),
        event_version: 1,
        payload: Payload::from_json(serde_json::to_string(&TimedOut { n: 0 }).unwrap()),
        correlation_id: Some(fired_elsewhere),
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: crate::Tags::empty(),
    };
    store
        .append(&stream, ExpectedVersion::Any, vec![timeout])
        .await
        .unwrap();
    if refresh {
        timer.refresh();
    }

    let timeouts = fired(&store, 2).await;
    drop(timer);
    assert_eq!(timeouts[1].meta.event_id, due);
    counting.appends.load(Ordering::SeqCst)
}

/// A deadline whose timeout event another process appended after this timer read it is
/// dropped at the next read (here: the sink loading its checkpoint), not fired again: the timer
/// fires in due order, so once the later deadline's timeout is stored, the earlier one would
/// have been appended before it.
#[tokio::test]
async fn the_timer_drops_deadlines_another_process_fired() {
    assert_eq!(
        fired_elsewhere(true).await,
        1,
        "only the deadline nobody fired"
    );
}

/// Not read yet, it is fired again: its id is taken, which counts as fired even when the
/// stored event differs (`IdempotencyConflict`), and the next deadline still fires.
#[tokio::test]
async fn a_deadline_fired_elsewhere_with_other_metadata_does_not_block_the_next() {
    assert_eq!(fired_elsewhere(false).await, 2, "both were appended");
}

#[tokio::test]
async fn a_sink_keeps_the_most_recent_rejections() {
    let store = MemoryStore::new();
    let app = Cqrs::builder(store).build().await.unwrap();
    let mut sink = ProcessManagerSink::<Reminder, _>::new(app);
    for n in 0..300_u64 {
        sink.keep_rejection(Rejection::rejected(
            Uuid::from_u128(u128::from(n)),
            IssuedCommand {
                name: "test.command".into(),
                body: serde_json::json!({ "n": n }),
            },
            std::io::Error::other(format!("refused {n}")),
        ));
    }
    assert_eq!(REJECTIONS_KEPT, 256);
    let kept = sink.rejections();
    assert_eq!(kept.len(), 256);
    let ids: Vec<u128> = kept.iter().map(|r| r.command_id.as_u128()).collect();
    assert_eq!(
        ids,
        (44..300).collect::<Vec<u128>>(),
        "the newest, oldest first"
    );
}

#[test]
fn derived_ids_are_deterministic_name_based_and_distinct() {
    let base = Uuid::from_u128(42);
    assert_eq!(derive_id(base, "a", 0), derive_id(base, "a", 0));
    let id = derive_id(base, "a", 0);
    assert_eq!(id.get_version_num(), 5);
    assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
    let neighbours = [
        derive_id(base, "a", 0),
        derive_id(base, "a", 1),
        derive_id(base, "b", 0),
        derive_id(base, "", 0),
        derive_id(base, "aa", 0),
        derive_id(Uuid::from_u128(43), "a", 0),
        derive_id(Uuid::from_u128(42 << 64), "a", 0),
        derive_id(base, "a", u64::MAX),
        derive_id(base, "a", 1 << 56),
        // Where the index ends and the salt begins cannot be moved: the index has a fixed
        // width. A salt starting with what another index's low byte would be stays distinct.
        derive_id(base, "\u{1}", 0),
        derive_id(base, "", 1),
        derive_id(base, "\0", 0),
        derive_id(base, "a\0", 0),
    ];
    let distinct: std::collections::HashSet<Uuid> = neighbours.iter().copied().collect();
    assert_eq!(distinct.len(), neighbours.len(), "{neighbours:?}");
    // Long salts (built on the heap) are distinct from their prefixes.
    let long = "s".repeat(200);
    assert_ne!(derive_id(base, &long, 0), derive_id(base, &long[..199], 0));
    assert_eq!(derive_id(base, &long, 0), derive_id(base, &long, 0));
}

/// Known answers computed independently of this crate, with Python's `hashlib` and `uuid`:
///
/// ```text
/// python3 -c '
/// import hashlib, uuid
/// ns = uuid.UUID("ea4e9682-eeb2-4299-8239-12a17c50fc4f")
/// def d(base, salt, index):
///     name = base.bytes + index.to_bytes(8, "big") + salt.encode()
///     return uuid.UUID(bytes=hashlib.sha1(ns.bytes + name).digest()[:16], version=5)
/// b = uuid.UUID("0192f0c4-5a6b-7c8d-9e0f-a1b2c3d4e5f6")
/// print(d(b, "event", 0)); print(d(b, "fulfilment/command", 3))
/// print(d(b, "", 2**64-1)); print(d(b, "x"*200, 7))'
/// ```
///
/// (`uuid.uuid5` itself takes only `str` names; for an ASCII name the expression above gives
/// the same as `uuid.uuid5(ns, name)`.)
#[test]
fn derived_ids_match_an_independent_uuid_v5() {
    let base: Uuid = "0192f0c4-5a6b-7c8d-9e0f-a1b2c3d4e5f6".parse().unwrap();
    let cases = [
        ("event", 0, "f0bb10a0-c613-5e34-a81e-293bf617e265"),
        (
            "fulfilment/command",
            3,
            "940c6ba5-60c0-501f-a673-1638d7c27a78",
        ),
        ("", u64::MAX, "7f827f46-1a96-5f12-8928-97c63465214b"),
    ];
    for (salt, index, expected) in cases {
        assert_eq!(
            derive_id(base, salt, index).to_string(),
            expected,
            "{salt} {index}"
        );
    }
    assert_eq!(
        derive_id(base, &"x".repeat(200), 7).to_string(),
        "9c6c169f-843c-5a78-84d1-e451a5945fd0"
    );
    assert_eq!(
        super::DERIVED_ID_NAMESPACE.to_string(),
        "ea4e9682-eeb2-4299-8239-12a17c50fc4f"
    );
}

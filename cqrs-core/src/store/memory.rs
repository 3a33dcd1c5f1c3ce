use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::FastMap;
use crate::envelope::{NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::event_query::{AppendCondition, EventQuery, QueryRead};
use crate::ids::{Position, StreamId, Timestamp, Uuid};
use crate::signal::Signal;
use crate::snapshot::Snapshot;
use crate::store::StreamWrite;
use crate::store::{Checkpoints, ParkedEvent};
use crate::store::{
    DEFAULT_MAX_EVENT_BYTES, EventStore, ExpectedVersion, check_append, check_retry,
    check_snapshot, check_stream_id,
};
use crate::telemetry::AppendTelemetry;

// Reading by query and conditional appends, on the same log (dynamic consistency boundaries).
#[path = "memory_tags.rs"]
mod tags;

/// An event store in process memory: for tests, examples and projections rebuilt at start-up.
///
/// It keeps the whole store contract (atomic appends, expected versions, idempotent retries,
/// gap-free global order, live subscriptions, the same input checks as the durable stores); it
/// only forgets everything when dropped. Having no back end, it never fails with
/// `Unavailable`, `OutcomeUnknown` or `Backend`.
/// Clones share the same events.
#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    max_event_bytes: usize,
    log: Mutex<Log>,
    /// Position of the newest event, readable without the lock.
    head: AtomicU64,
    appended: Signal,
    /// Checkpoints and parked events of durable projections.
    checkpoints: Mutex<FastMap<String, (Position, Vec<ParkedEvent>)>>,
    /// The latest snapshot of each stream that has one.
    snapshots: Mutex<FastMap<StreamId, Snapshot>>,
}

#[derive(Default)]
struct Log {
    /// Every event; the event at index `i` has position `i + 1`.
    events: Vec<RecordedEvent>,
    /// Per stream, the indexes of its events in version order.
    streams: FastMap<StreamId, Vec<usize>>,
    /// Index of each stored event id, for idempotent retries.
    ids: FastMap<Uuid, usize>,
    /// Events by tag and type, brought up to date by the operations that read it.
    tags: tags::TagIndex,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            log: Mutex::default(),
            head: AtomicU64::default(),
            appended: Signal::default(),
            checkpoints: Mutex::default(),
            snapshots: Mutex::default(),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that refuses events larger than `bytes` (payload plus metadata; default
    /// [`DEFAULT_MAX_EVENT_BYTES`]).
    pub fn with_max_event_bytes(bytes: usize) -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                max_event_bytes: bytes,
                ..Shared::default()
            }),
        }
    }

    /// How many events are stored.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // No user code runs under this lock, so a poisoned lock still holds consistent data.
        self.shared
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Log {
    /// The answer to a batch whose first id is stored (at index `first`): the stored events if
    /// the batch is a retry of an earlier append (the same ids, in order, of this stream, and
    /// the same events), `IdempotencyConflict` if the ids match but the events differ, and
    /// `None` when the ids do not line up (the caller reports `DuplicateEventId`).
    fn replayed_append(
        &self,
        stream: &StreamId,
        first: usize,
        events: &[NewEvent],
    ) -> Option<Result<Vec<RecordedEvent>, StoreError>> {
        let stored = self.events.get(first..first + events.len())?;
        let same_ids = stored
            .iter()
            .zip(events)
            .all(|(s, e)| s.meta.event_id == e.event_id && s.meta.stream == *stream);
        same_ids.then(|| check_retry(stream, stored, events).map(|()| stored.to_vec()))
    }
}

impl MemoryStore {
    /// The append itself (the trait method adds its telemetry).
    #[inline(always)]
    fn append_now(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_append(stream, &events, self.shared.max_event_bytes)?;
        let now = Timestamp::now();
        let recorded = {
            let mut log = self.lock();
            let version = log.streams.get(stream).map_or(0, Vec::len) as u64;
            if events.is_empty() {
                if !expected.admits(version) {
                    return Err(StoreError::Conflict {
                        stream: stream.clone(),
                        expected,
                        actual: version,
                    });
                }
                return Ok(Vec::new());
            }
            // Claim the ids first (one hash probe each); undo the claims if one is taken.
            let start = log.events.len();
            for (i, event) in events.iter().enumerate() {
                match log.ids.entry(event.event_id) {
                    Entry::Vacant(slot) => {
                        slot.insert(start + i);
                    }
                    Entry::Occupied(taken) => {
                        let first = *taken.get();
                        for undo in &events[..i] {
                            log.ids.remove(&undo.event_id);
                        }
                        if i == 0
                            && let Some(answer) = log.replayed_append(stream, first, &events)
                        {
                            return answer;
                        }
                        return Err(StoreError::DuplicateEventId {
                            event_id: event.event_id,
                            stream: stream.clone(),
                        });
                    }
                }
            }
            if !expected.admits(version) {
                for undo in &events {
                    log.ids.remove(&undo.event_id);
                }
                return Err(StoreError::Conflict {
                    stream: stream.clone(),
                    expected,
                    actual: version,
                });
            }
            let mut recorded = Vec::with_capacity(events.len());
            for (i, event) in events.into_iter().enumerate() {
                let record = event.record(
                    stream.clone(),
                    version + 1 + i as u64,
                    Position((start + i) as u64 + 1),
                    now,
                );
                log.events.push(record.clone());
                recorded.push(record);
            }
            let end = log.events.len();
            match log.streams.get_mut(stream) {
                Some(indexes) => indexes.extend(start..end),
                None => {
                    log.streams.insert(stream.clone(), (start..end).collect());
                }
            }
            self.shared.head.store(end as u64, Ordering::SeqCst);
            recorded
        };
        self.shared.appended.wake_all();
        Ok(recorded)
    }
}

impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let telemetry = AppendTelemetry::start("memory", stream, expected, &events);
        let result = self.append_now(stream, expected, events);
        telemetry.finish(&result);
        result
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream_id(stream)?;
        let log = self.lock();
        let Some(indexes) = log.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let skip = from_version.max(1) as usize - 1;
        Ok(indexes
            .iter()
            .skip(skip)
            .take(limit)
            .map(|&i| log.events[i].clone())
            .collect())
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.lock();
        let skip = (from.0.max(1) - 1) as usize;
        Ok(log.events.iter().skip(skip).take(limit).cloned().collect())
    }

    async fn head(&self) -> Result<Position, StoreError> {
        Ok(Position(self.shared.head.load(Ordering::Acquire)))
    }

    async fn read_query(
        &self,
        query: &EventQuery,
        from: Position,
        limit: usize,
    ) -> Result<QueryRead, StoreError> {
        self.read_query_now(query, from, limit)
    }

    async fn append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.append_conditional_now(writes, condition)
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let log = self.lock();
        Ok(log.ids.get(&event_id).map(|&i| log.events[i].clone()))
    }

    async fn wait_for_events(&self, after: Position) {
        let head = &self.shared.head;
        self.shared
            .appended
            .wait_unless(|| head.load(Ordering::SeqCst) > after.0)
            .await;
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        check_stream_id(stream)?;
        Ok(self.snapshots().get(stream).cloned())
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError> {
        check_snapshot(stream, &snapshot)?;
        let mut snapshots = self.snapshots();
        match snapshots.entry(stream.clone()) {
            Entry::Occupied(mut kept) => {
                if kept.get().replaced_by(&snapshot) {
                    kept.insert(snapshot);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(snapshot);
            }
        }
        Ok(())
    }
}

impl MemoryStore {
    fn snapshots(&self) -> MutexGuard<'_, FastMap<StreamId, Snapshot>> {
        // Only map operations run under this lock.
        self.shared
            .snapshots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn checkpoints(&self) -> MutexGuard<'_, FastMap<String, (Position, Vec<ParkedEvent>)>> {
        self.shared
            .checkpoints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Checkpoints for MemoryStore {
    async fn load_checkpoint(&self, projection: &str) -> Result<Position, StoreError> {
        Ok(self
            .checkpoints()
            .get(projection)
            .map_or(Position::ZERO, |(p, _)| *p))
    }

    async fn save_checkpoint(
        &self,
        projection: &str,
        position: Position,
    ) -> Result<(), StoreError> {
        self.checkpoints()
            .entry(projection.to_owned())
            .or_default()
            .0 = position;
        Ok(())
    }

    async fn park_event(&self, parked: ParkedEvent) -> Result<(), StoreError> {
        let mut all = self.checkpoints();
        let entry = all.entry(parked.projection.clone()).or_default();
        entry.0 = entry.0.max(parked.position);
        // Parking the same event again replaces its record.
        entry.1.retain(|p| p.position != parked.position);
        let at = entry.1.partition_point(|p| p.position < parked.position);
        entry.1.insert(at, parked);
        Ok(())
    }

    async fn parked_events(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        Ok(self
            .checkpoints()
            .get(projection)
            .map(|(_, parked)| parked.clone())
            .unwrap_or_default())
    }

    async fn unpark_event(
        &self,
        projection: &str,
        position: Option<Position>,
    ) -> Result<bool, StoreError> {
        let mut all = self.checkpoints();
        let Some((_, parked)) = all.get_mut(projection) else {
            return Ok(false);
        };
        let before = parked.len();
        parked.retain(|p| position.is_some_and(|at| p.position != at));
        Ok(parked.len() < before)
    }
}

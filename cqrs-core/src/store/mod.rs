//! The event-store contract ([`EventStore`]), the version check an append makes
//! ([`ExpectedVersion`]) and the catch-up-then-live [`Subscription`] built on it.
//!
//! Dynamic consistency boundaries add two operations, provided with a default that refuses
//! ([`StoreError::Unsupported`]) so a third-party store written before them still compiles
//! and never ignores a condition: [`EventStore::read_query`] (the events matching an
//! [`EventQuery`], complete through a stated position) and [`EventStore::append_conditional`]
//! (one atomic append to several streams, each with its expected version, under an optional
//! [`AppendCondition`]). The decision runtime reads, decides, and appends with the condition
//! "no event matching my query after the position my read was complete through": the
//! position, not a version, is what makes the check span streams.
//!
//! A wrapper of another store that changes one or two methods writes the rest with
//! [`forward_event_store!`](crate::forward_event_store).

mod checkpoints;
mod contract;
mod dynamic;
mod forward;
mod idempotency;
mod inspect;
mod memory;
mod subscription;
mod wait;

use std::future::Future;

pub use checkpoints::{Checkpoints, ParkedEvent};
pub use contract::{
    MAX_EVENT_NAME_BYTES, MAX_EVENT_TAGS, MAX_EVENT_VERSION, MAX_STREAM_ID_BYTES, check_append,
    check_event_sizes, check_query, check_snapshot, check_stream_id, check_writes,
};
pub use dynamic::DynStore;
pub use idempotency::{check_retry, event_mismatch};
pub use inspect::{InspectStore, StreamSummary};
pub use memory::MemoryStore;
pub use subscription::Subscription;
pub(crate) use wait::EmptyReads;

use crate::envelope::{NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::event_query::{AppendCondition, EventQuery, QueryRead};
use crate::ids::{Position, StreamId, Uuid};
use crate::snapshot::Snapshot;

/// The largest serialized event (payload plus metadata) a store accepts unless configured
/// otherwise: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

// Defined with the envelope (the store's errors name it too); part of this contract.
pub use crate::envelope::ExpectedVersion;

/// The events one stream receives in an [`EventStore::append_conditional`], and the version
/// the stream must be at.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamWrite {
    /// The stream.
    pub stream: StreamId,
    /// What its version must be (`ExpectedVersion::Any` when the append's condition alone
    /// guards consistency).
    pub expected: ExpectedVersion,
    /// Its new events, appended at its next versions.
    pub events: Vec<NewEvent>,
}

impl StreamWrite {
    /// `events` for `stream`, which must be at `expected`.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        StreamWrite {
            stream,
            expected,
            events,
        }
    }
}

/// Durable (or in-memory) storage of event streams with one global order.
///
/// The contract every implementation keeps (the conformance suite tests it):
/// - `append` is atomic: all events of the call or none. When `expected` does not admit the
///   stream's version, it fails with [`StoreError::Conflict`] and writes nothing.
/// - Appending events whose ids are already stored, as the same events of the same stream, is
///   idempotent: it returns the originally recorded events and writes nothing new.
/// - Every event gets a global position. `read_all` returns events in position order and never
///   returns position `p` while an event with a smaller position may still become visible, so a
///   reader that remembers the last position it saw never skips or repeats an event.
/// - Payloads, names and metadata come back exactly as written (payloads and metadata as the
///   same JSON values; a store may normalise their formatting).
///
/// **Idempotency.** Appending events whose ids are already stored, as one earlier append to the
/// same stream, is a retry: if the events are the same (names, schema versions, and payloads and
/// metadata as JSON values; see [`event_mismatch`]) the store returns the originally recorded
/// events and writes nothing; if they differ, the ids were reused for another request and the
/// append fails with [`StoreError::IdempotencyConflict`]. Ids stored in another stream, or a
/// batch mixing stored and new ids, is [`StoreError::DuplicateEventId`].
///
/// **Input.** Every store accepts the same input and refuses the rest with
/// [`StoreError::InvalidInput`] before reading or writing anything ([`check_append`],
/// [`check_stream_id`], [`check_snapshot`]), whatever its back end could hold:
/// - a stream id is 1 to [`MAX_STREAM_ID_BYTES`] (1024) bytes without NUL (U+0000), in every
///   operation that takes one (reads and snapshots included);
/// - an event name is 1 to [`MAX_EVENT_NAME_BYTES`] (1024) bytes without NUL; its schema
///   version is at most [`MAX_EVENT_VERSION`] (`i32::MAX`);
/// - a payload is one JSON document, nested at most 128 deep, whose strings hold no `\u0000`
///   escape and no unpaired surrogate escape, and whose numbers are below 1e308 in magnitude
///   with at most 16,383 digits after the point;
/// - metadata strings and keys hold no NUL;
/// - payload plus metadata is at most the store's size limit ([`DEFAULT_MAX_EVENT_BYTES`]
///   unless configured);
/// - a batch holds each event id once ([`StoreError::DuplicateEventId`] otherwise).
///
/// The limits are those of PostgreSQL, the strictest store, so that an application tested on
/// [`MemoryStore`] meets them in its tests rather than in production.
///
/// **Failures** say what a caller may do ([`StoreError::retry`]): `Unavailable` (nothing was
/// written, retry), `OutcomeUnknown` (a write was sent and its reply lost: retry only with the
/// same ids), everything else is permanent.
///
/// Stores are cheap to clone (a handle to shared state) so subscriptions and runners own one.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Appends `events` to `stream` at the stream's next versions if `expected` admits its
    /// current version, and returns them as recorded (with versions, positions and time).
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Up to `limit` events of `stream` with version `>= from_version`, in version order.
    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Up to `limit` events of all streams with position `>= from`, in position order.
    fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The position of the newest event a reader may see now (`Position::ZERO` when empty).
    fn head(&self) -> impl Future<Output = Result<Position, StoreError>> + Send;

    /// The stored event with id `event_id`, if there is one. The command bus asks it before
    /// running a command with a given command id, to find an earlier run of the same command.
    ///
    /// Provided: scans [`read_all`](EventStore::read_all) from the first position, which is
    /// correct for any store but reads everything; every store of this project overrides it with
    /// a lookup in its event-id index.
    fn read_event(
        &self,
        event_id: Uuid,
    ) -> impl Future<Output = Result<Option<RecordedEvent>, StoreError>> + Send {
        async move {
            const BATCH: usize = 4096;
            let mut from = Position(1);
            loop {
                let batch = self.read_all(from, BATCH).await?;
                if let Some(found) = batch.iter().find(|e| e.meta.event_id == event_id) {
                    return Ok(Some(found.clone()));
                }
                match batch.last() {
                    Some(last) if batch.len() == BATCH => from = last.meta.position.next(),
                    _ => return Ok(None),
                }
            }
        }
    }

    /// Resolves once an event after `after` may be readable. It may resolve early (callers
    /// re-read), but must not miss an append that happens after it was called.
    fn wait_for_events(&self, after: Position) -> impl Future<Output = ()> + Send;

    /// The latest snapshot of `stream` (`None` when it has none).
    ///
    /// Provided: a store that keeps no snapshots returns `None`, and aggregates with a snapshot
    /// policy then replay their whole stream. Every store of this project keeps them (the
    /// snapshot conformance suite tests it).
    fn load_snapshot(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        let _ = stream;
        std::future::ready(Ok(None))
    }

    /// Keeps `snapshot` as the latest of `stream`, unless the one kept is of a newer stream
    /// version and the same `snapshot_version` ([`Snapshot::replaced_by`]). Provided: does
    /// nothing.
    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (stream, snapshot);
        std::future::ready(Ok(()))
    }

    /// Up to `limit` events matching `query` with position `>= from`, in position order, and
    /// the position the read is complete through ([`QueryRead::through`]): every matching event
    /// from `from` up to it is returned, none after it. A store must state a position no lower
    /// event can still appear below (on PostgreSQL, the gap-free head), so a condition built on
    /// it cannot miss a transaction that commits later.
    ///
    /// Refuses a query that breaks the contract ([`check_query`]) with
    /// [`StoreError::InvalidQuery`].
    ///
    /// Provided: fails with [`StoreError::Unsupported`] (a store that does not keep tags cannot
    /// answer). Every store of this project implements it.
    fn read_query(
        &self,
        query: &EventQuery,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<QueryRead, StoreError>> + Send {
        let _ = (query, from, limit);
        std::future::ready(Err(StoreError::Unsupported {
            operation: "read_query",
        }))
    }

    /// Appends every write atomically (all or nothing, the events of one append in one run
    /// of consecutive positions, writes in the order given), if each stream's version
    /// admits its `expected` ([`StoreError::Conflict`] otherwise) and, with a `condition`, if no
    /// event matching its query has a position after its `after`
    /// ([`StoreError::ConditionFailed`] otherwise). Returns the recorded events in position
    /// order.
    ///
    /// Idempotency as in [`append`](EventStore::append), over the whole append: when every id
    /// is stored, as this same append (same streams, same events), it returns the stored events
    /// and writes nothing, without checking the condition again (its own events would fail it).
    /// An id stored otherwise is [`StoreError::DuplicateEventId`] or
    /// [`StoreError::IdempotencyConflict`]. Input is checked first ([`check_writes`],
    /// [`check_query`]). Writes with no events only check their version.
    ///
    /// Provided: a single write without a condition is [`append`](EventStore::append); anything
    /// else fails with [`StoreError::Unsupported`], so a store that cannot keep a condition
    /// never ignores one. Every store of this project implements it.
    fn append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        async move {
            let mut writes = writes;
            match (writes.len(), condition) {
                (1, None) => {
                    let StreamWrite {
                        stream,
                        expected,
                        events,
                    } = writes.remove(0);
                    self.append(&stream, expected, events).await
                }
                _ => Err(StoreError::Unsupported {
                    operation: "append_conditional",
                }),
            }
        }
    }

    /// Every event from position `from` on: first the stored ones, then live ones as they are
    /// committed, without gap or duplicate.
    fn subscribe(&self, from: Position) -> Subscription<Self> {
        Subscription::new(self.clone(), from)
    }
}

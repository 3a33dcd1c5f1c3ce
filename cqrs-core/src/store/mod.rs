//! The event-store contract ([`EventStore`]), the version check an append makes
//! ([`ExpectedVersion`]) and the catch-up-then-live [`Subscription`] built on it.

mod memory;
mod subscription;
mod wait;

use std::fmt;
use std::future::Future;

pub use memory::MemoryStore;
pub use subscription::Subscription;
pub(crate) use wait::EmptyReads;

use crate::envelope::{NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::ids::{Position, StreamId};
use crate::snapshot::Snapshot;

/// The largest serialized event (payload plus metadata) a store accepts unless configured
/// otherwise: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Refuses, before anything is written, a batch holding an event whose payload and metadata
/// together exceed `max` bytes. Stores call it first thing in `append`.
pub fn check_event_sizes(
    stream: &StreamId,
    events: &[NewEvent],
    max: usize,
) -> Result<(), StoreError> {
    for event in events {
        let metadata = if event.metadata.is_empty() {
            0
        } else {
            serde_json::to_string(event.metadata.as_map()).map_or(0, |m| m.len())
        };
        let size = event.payload.len() + metadata;
        if size > max {
            return Err(StoreError::InvalidAppend {
                stream: stream.clone(),
                reason: format!(
                    "event `{}` ({}) is {size} bytes, above the limit of {max} bytes",
                    event.event_name, event.event_id
                ),
            });
        }
    }
    Ok(())
}

/// What an append expects the stream's current version to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// Append whatever the version is.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have exactly this many events (its last version).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at version `actual` satisfies this expectation.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => v == actual,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
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
/// - Payloads, names and metadata come back exactly as written.
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

    /// Every event from position `from` on: first the stored ones, then live ones as they are
    /// committed, without gap or duplicate.
    fn subscribe(&self, from: Position) -> Subscription<Self> {
        Subscription::new(self.clone(), from)
    }
}

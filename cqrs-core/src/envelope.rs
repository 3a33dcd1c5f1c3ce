//! The event envelope: what a store records around each event's payload.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::ids::{Position, StreamId, Timestamp, Uuid};
use crate::tag::Tags;

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

/// Metadata key under which events record the event that caused their command (if any).
pub const CAUSED_BY_EVENT: &str = "caused_by_event";

/// An event's serialized body: a JSON document, shared cheaply between readers.
#[derive(Clone)]
pub struct Payload {
    json: Arc<str>,
    /// Written by serde_json from a Rust value (by the command bus), so valid JSON whose only
    /// possible breach of the store contract is a `\u0000` escape: stores then check just that.
    serialized: bool,
}

impl Payload {
    /// Wraps a JSON document. Stores check it against the store contract before writing it
    /// (`check_append`); decoding reports one that does not fit its event type.
    pub fn from_json(json: impl Into<Arc<str>>) -> Self {
        Payload {
            json: json.into(),
            serialized: false,
        }
    }

    /// Wraps a document serde_json just wrote from a Rust value.
    pub(crate) fn serialized(json: impl Into<Arc<str>>) -> Self {
        Payload {
            json: json.into(),
            serialized: true,
        }
    }

    /// Whether serde_json wrote it (see [`Payload::serialized`]).
    pub(crate) fn is_serialized(&self) -> bool {
        self.serialized
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.json
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Whether the body is empty (never true for a valid JSON document).
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

/// Payloads are equal when their text is (however they were made).
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Eq for Payload {}

impl std::hash::Hash for Payload {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.json.hash(state);
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.json)
    }
}

/// Free-form metadata that the application attaches to a command and that every event the
/// command records carries (user id, request id, tenant, …). Shared by all events of one append.
#[derive(Clone, Default, PartialEq)]
pub struct UserMetadata(Option<Arc<Map<String, Value>>>);

impl UserMetadata {
    /// No metadata.
    pub fn empty() -> Self {
        UserMetadata(None)
    }

    /// Wraps a JSON object.
    pub fn from_map(map: Map<String, Value>) -> Self {
        if map.is_empty() {
            UserMetadata(None)
        } else {
            UserMetadata(Some(Arc::new(map)))
        }
    }

    /// Adds one entry (copy-on-write).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let map = self.0.get_or_insert_with(Default::default);
        Arc::make_mut(map).insert(key.into(), value.into());
    }

    /// One entry, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.as_deref().and_then(|m| m.get(key))
    }

    /// The whole object (empty when there is none).
    pub fn as_map(&self) -> &Map<String, Value> {
        static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
        self.0
            .as_deref()
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Debug for UserMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_map(), f)
    }
}

/// Everything a store records about an event except its payload.
///
/// Event handlers of projections receive it as their optional second parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct EventMeta {
    /// Unique id of the event; appending the same ids again is idempotent.
    pub event_id: Uuid,
    /// The stream the event belongs to.
    pub stream: StreamId,
    /// 1-based version of the event within its stream.
    pub version: u64,
    /// Global position in the store (1-based, strictly increasing in commit order as seen by readers).
    pub position: Position,
    /// The event's stable stored name (`Event::NAME`).
    pub event_name: Cow<'static, str>,
    /// The schema version of the payload (`Event::VERSION` when it was written).
    pub event_version: u32,
    /// When the store recorded the event.
    pub recorded_at: Timestamp,
    /// The business transaction the event belongs to: inherited from command to event to command.
    pub correlation_id: Option<Uuid>,
    /// What caused the event: the id of the command that recorded it.
    pub causation_id: Option<Uuid>,
    /// Application metadata.
    pub metadata: UserMetadata,
    /// What the event is about, for reading by [`EventQuery`](crate::EventQuery) (empty for
    /// events without `#[tag]` fields).
    pub tags: Tags,
}

/// A stored event: its envelope and its serialized payload.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    /// The envelope.
    pub meta: EventMeta,
    /// The serialized event.
    pub payload: Payload,
}

/// An event about to be appended: the store adds stream, version, position and time.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// Unique id; a retry that sends the same ids is idempotent.
    pub event_id: Uuid,
    /// Stored name.
    pub event_name: Cow<'static, str>,
    /// Schema version of the payload.
    pub event_version: u32,
    /// Serialized event.
    pub payload: Payload,
    /// Correlation id (see [`EventMeta::correlation_id`]).
    pub correlation_id: Option<Uuid>,
    /// Causation id (see [`EventMeta::causation_id`]).
    pub causation_id: Option<Uuid>,
    /// Application metadata.
    pub metadata: UserMetadata,
    /// Tags (see [`EventMeta::tags`]).
    pub tags: Tags,
}

impl NewEvent {
    /// The envelope this event gets once the store assigns its place.
    pub fn record(
        self,
        stream: StreamId,
        version: u64,
        position: Position,
        recorded_at: Timestamp,
    ) -> RecordedEvent {
        RecordedEvent {
            meta: EventMeta {
                event_id: self.event_id,
                stream,
                version,
                position,
                event_name: self.event_name,
                event_version: self.event_version,
                recorded_at,
                correlation_id: self.correlation_id,
                causation_id: self.causation_id,
                metadata: self.metadata,
                tags: self.tags,
            },
            payload: self.payload,
        }
    }
}

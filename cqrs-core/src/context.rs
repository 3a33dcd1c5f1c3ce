//! What travels with a command (correlation, causation, metadata) and what comes back.

use serde_json::Value;

use crate::envelope::{EventMeta, RecordedEvent, UserMetadata};
use crate::ids::{Position, StreamId, Uuid};
use crate::telemetry::TraceContext;

/// Correlation, causation and metadata for one command.
///
/// `CommandContext::default()` starts a new business transaction: the command's own id becomes
/// the correlation id. [`CommandContext::caused_by`] continues one: the command inherits the
/// event's correlation id and records the event as its cause. Both carry a W3C trace context
/// ([`CommandContext::with_trace`]) to the events, so the commands they cause join the trace.
#[derive(Clone, Debug, Default)]
pub struct CommandContext {
    pub(crate) command_id: Option<Uuid>,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) caused_by_event: Option<Uuid>,
    pub(crate) metadata: UserMetadata,
    pub(crate) trace: Option<TraceContext>,
}

// A metadata key of the envelope (the store's idempotency check reads it too).
pub use crate::envelope::CAUSED_BY_EVENT;

impl CommandContext {
    /// A new business transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this command id: the command's idempotency key (and an id for external tracing).
    ///
    /// The command's event ids are then derived from it (the `i`-th event of the command gets
    /// the same id every time), so submitting the command again cannot record it twice. Before
    /// running a command with a given id, the bus looks its first event id up in the store
    /// (one indexed lookup); if the id already recorded events, the command is run again on the
    /// state just before them and:
    /// - decides the same events: the first run's outcome is returned (after a lost reply,
    ///   `StoreError::OutcomeUnknown`, this is how the caller learns it was recorded);
    /// - decides other events, none (a rejection), or targets another stream:
    ///   `CommandError::CommandIdReused`, and nothing is appended.
    ///
    /// Events are compared by name, schema version, payload and metadata (as JSON values), so
    /// handlers must decide deterministically from the state and the command (take times and
    /// random values from the command), and metadata given with [`CommandContext::with`] must be
    /// the same when the command is sent again (correlation, causation and
    /// [`CAUSED_BY_EVENT`], like the trace context, are tracing and may differ). Process managers give each command they issue
    /// such an id.
    pub fn with_command_id(mut self, id: Uuid) -> Self {
        self.command_id = Some(id);
        self
    }

    /// Joins an existing business transaction.
    pub fn correlated_with(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    /// Continues from `event`: inherits its correlation id, records it as the cause, and joins
    /// the trace its metadata carries ([`TRACEPARENT`](crate::TRACEPARENT)), if any.
    pub fn caused_by(mut self, event: &EventMeta) -> Self {
        self.correlation_id = event.correlation_id.or(Some(event.event_id));
        self.caused_by_event = Some(event.event_id);
        if let Some(trace) = TraceContext::from_metadata(&event.metadata) {
            self.trace = Some(trace);
        }
        self
    }

    /// Joins the W3C trace `trace` (from a `traceparent` header, or a message that caused the
    /// command). Every event the command records carries it in its metadata under
    /// [`TRACEPARENT`](crate::TRACEPARENT) (and [`TRACESTATE`](crate::TRACESTATE)), reserved
    /// keys that the command bus writes; the `command` span records its trace id.
    pub fn with_trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The trace context, if one was set.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }

    /// Adds an application metadata entry that every recorded event will carry.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// The command id, if one was set.
    pub fn command_id(&self) -> Option<Uuid> {
        self.command_id
    }

    /// The correlation id, if one was set.
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.correlation_id
    }

    /// The event that caused this command, if any (recorded under [`CAUSED_BY_EVENT`]).
    pub fn caused_by_event(&self) -> Option<Uuid> {
        self.caused_by_event
    }

    /// Records `event_id` as the cause without changing the correlation id.
    pub fn with_cause(mut self, event_id: Uuid) -> Self {
        self.caused_by_event = Some(event_id);
        self
    }

    /// The metadata the events will carry (without the ids).
    pub fn metadata(&self) -> &UserMetadata {
        &self.metadata
    }
}

/// What a successful command did. Made by the command bus only (`#[non_exhaustive]`), so
/// fields can be added.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CommandOutcome {
    /// The command's id: the causation id of every event it recorded.
    pub command_id: Uuid,
    /// The business transaction it belongs to.
    pub correlation_id: Uuid,
    /// The aggregate's stream.
    pub stream: StreamId,
    /// The stream's version after the command.
    pub version: u64,
    /// How many times the handler ran (more than 1 after conflicts).
    pub attempts: u32,
    /// The recorded events (empty if the handler decided nothing happens).
    pub events: Vec<RecordedEvent>,
}

impl CommandOutcome {
    /// The global position of the last recorded event, to pass to `Cqrs::query_after` for
    /// read-your-writes. `Position::ZERO` when nothing was recorded.
    pub fn position(&self) -> Position {
        self.events
            .last()
            .map_or(Position::ZERO, |e| e.meta.position)
    }
}

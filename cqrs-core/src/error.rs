//! Typed errors. Each variant names what went wrong and where, so callers can match on it and
//! humans can read it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ids::{Position, StreamId, Uuid};
use crate::store::ExpectedVersion;

/// A boxed error, used where the concrete type is erased (untyped dispatch, store back-ends).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a payload could not be turned back into an event (without saying where; see [`DecodeError`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeFailure {
    /// No event type of this set has this stored name.
    UnknownEvent,
    /// The stored schema version is newer than the code knows.
    UnsupportedVersion {
        /// The newest version the code knows.
        known: u32,
    },
    /// The payload is not valid JSON or does not fit the event type.
    InvalidPayload(String),
    /// The upcaster from schema version `from` to `from + 1` failed: it returned an error, or
    /// the payload did not fit its input, or its output did not serialize.
    Upcast {
        /// The version the failing upcaster reads.
        from: u32,
        /// What went wrong.
        message: String,
    },
}

impl fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeFailure::UnknownEvent => f.write_str("no event type has this name"),
            DecodeFailure::UnsupportedVersion { known } => {
                write!(
                    f,
                    "stored version is newer than the newest known version {known}"
                )
            }
            DecodeFailure::InvalidPayload(msg) => write!(f, "payload does not decode: {msg}"),
            DecodeFailure::Upcast { from, message } => write!(
                f,
                "upcasting from schema version {from} to {} failed: {message}",
                u64::from(*from) + 1
            ),
        }
    }
}

/// A stored event that could not be decoded, naming the stream, version and event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Stream of the bad event.
    pub stream: StreamId,
    /// Version of the bad event in its stream.
    pub version: u64,
    /// Stored name of the bad event.
    pub event_name: String,
    /// Stored schema version of the bad event.
    pub event_version: u32,
    /// What was wrong.
    pub failure: DecodeFailure,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot decode event `{}` (schema version {}) at version {} of stream `{}`: {}",
            self.event_name, self.event_version, self.version, self.stream, self.failure
        )
    }
}

impl StdError for DecodeError {}

/// What a caller may do after a failed operation: the one question a client must be able to
/// answer from an error alone.
///
/// ```
/// use cqrs_core::{Retry, StoreError, BackendError};
///
/// let lost = StoreError::OutcomeUnknown(BackendError::new("connection reset"));
/// match lost.retry() {
///     Retry::Never => { /* report it: the input or the stored data must change first */ }
///     Retry::Safe => { /* nothing was written: try again after a pause */ }
///     Retry::SameIds => { /* it may have been written: retry only with the same command id */ }
///     _ => {}
/// }
/// assert_eq!(lost.retry(), Retry::SameIds);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Retry {
    /// Retrying the same operation cannot succeed: the input, the stored data or the code must
    /// change first.
    Never,
    /// Nothing was written: the same operation may be retried as is (after a pause).
    Safe,
    /// The operation may or may not have been applied: retry it only with the same event ids
    /// (the same command id), so that a write that did land is recognised as a retry instead
    /// of being applied twice.
    SameIds,
}

/// A failure of a store's back end (database server, file, network), with what the back end
/// said: its message and, where it has one, its error code (PostgreSQL's SQLSTATE, SQLite's
/// extended result code name).
///
/// `Display` shows the message and the code; the driver's own error stays reachable through
/// [`BackendError::get_ref`] for downcasting, but is not a `source()`, so error chains do not
/// print the same message twice.
#[derive(Debug)]
pub struct BackendError {
    message: String,
    code: Option<String>,
    inner: Option<BoxError>,
}

impl BackendError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        BackendError {
            message: message.into(),
            code: None,
            inner: None,
        }
    }

    /// A failure described by `error`'s own message, keeping `error` for downcasting.
    pub fn from_error(error: impl StdError + Send + Sync + 'static) -> Self {
        BackendError::new(error.to_string()).with_inner(error)
    }

    /// The same failure with the back end's error code (a SQLSTATE such as `57P01`).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The same failure keeping the driver's error (reachable through [`BackendError::get_ref`]).
    pub fn with_inner(mut self, inner: impl Into<BoxError>) -> Self {
        self.inner = Some(inner.into());
        self
    }

    /// What the back end said.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The back end's error code, if it gave one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The driver's error, for downcasting (`e.get_ref()?.downcast_ref::<tokio_postgres::Error>()`).
    pub fn get_ref(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.inner.as_deref()
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = &self.code {
            write!(f, " (code {code})")?;
        }
        Ok(())
    }
}

impl StdError for BackendError {}

impl From<String> for BackendError {
    fn from(message: String) -> Self {
        BackendError::new(message)
    }
}

impl From<&str> for BackendError {
    fn from(message: &str) -> Self {
        BackendError::new(message)
    }
}

/// A failure of an [`EventStore`](crate::EventStore) operation.
///
/// [`StoreError::retry`] says whether and how the operation may be retried.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream's version did not match the expected version; nothing was written.
    Conflict {
        /// The stream appended to.
        stream: StreamId,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's actual version (0 when it does not exist).
        actual: u64,
    },
    /// An event id of the batch is already stored, but not as the same events of the same stream
    /// (a retry of the same append is idempotent; reusing ids elsewhere is an error).
    DuplicateEventId {
        /// The id.
        event_id: Uuid,
        /// The stream of the rejected append.
        stream: StreamId,
    },
    /// The append was refused before anything was written (empty stream name, event too large, …).
    InvalidAppend {
        /// The stream appended to.
        stream: StreamId,
        /// Why.
        reason: String,
    },
    /// A stored row could not be read back.
    Decode(DecodeError),
    /// The store could not be reached, or refused the operation for a passing reason (a
    /// connection that could not be opened or was lost before the request was sent, a server
    /// shutting down, a timeout waiting for a connection): nothing was written. Retry.
    Unavailable(BackendError),
    /// The connection was lost after an append was sent: it may or may not have been written.
    /// Retry only with the same event ids (the same command id).
    OutcomeUnknown(BackendError),
    /// The back end refused the operation for a reason retrying will not fix (a constraint, a
    /// permission, a corrupt file, …).
    Backend(BackendError),
}

impl StoreError {
    /// Whether and how the failed operation may be retried (see [`Retry`]).
    pub fn retry(&self) -> Retry {
        match self {
            StoreError::Unavailable(_) => Retry::Safe,
            StoreError::OutcomeUnknown(_) => Retry::SameIds,
            StoreError::Conflict { .. }
            | StoreError::DuplicateEventId { .. }
            | StoreError::InvalidAppend { .. }
            | StoreError::Decode(_)
            | StoreError::Backend(_) => Retry::Never,
        }
    }

    /// The back end's failure, for the variants that carry one.
    pub fn backend_error(&self) -> Option<&BackendError> {
        match self {
            StoreError::Unavailable(e) | StoreError::OutcomeUnknown(e) | StoreError::Backend(e) => {
                Some(e)
            }
            _ => None,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => write!(
                f,
                "version conflict on stream `{stream}`: expected {expected}, stream is at version {actual}"
            ),
            StoreError::DuplicateEventId { event_id, stream } => write!(
                f,
                "event id {event_id} is already stored and this append to `{stream}` is not a retry of it"
            ),
            StoreError::InvalidAppend { stream, reason } => {
                write!(f, "append to `{stream}` refused: {reason}")
            }
            StoreError::Decode(e) => fmt::Display::fmt(e, f),
            StoreError::Unavailable(e) => {
                write!(f, "event store unavailable, nothing was written: {e}")
            }
            StoreError::OutcomeUnknown(e) => write!(
                f,
                "event store connection lost after the append was sent, it may have been written (retry only with the same command id): {e}"
            ),
            StoreError::Backend(e) => write!(f, "event store failure: {e}"),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        // `Display` already shows the inner message; `source()` would print it twice.
        None
    }
}

/// Why a command failed. `E` is the handler's business error type.
#[derive(Debug)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The handler rejected the command; nothing was appended.
    Rejected(E),
    /// An update command (a `&self` handler) reached a stream with no events.
    NotFound {
        /// The empty stream.
        stream: StreamId,
    },
    /// A creation command (a handler without `self`) reached a stream that already has events.
    AlreadyExists {
        /// The stream.
        stream: StreamId,
        /// Its current version.
        version: u64,
    },
    /// Every attempt met a concurrent writer (see `CqrsBuilder::max_retries`); nothing was appended.
    Conflict {
        /// The stream.
        stream: StreamId,
        /// How many times the command ran.
        attempts: u32,
    },
    /// A handler asks for a service that was not registered with `CqrsBuilder::service`.
    MissingService {
        /// The command.
        command: &'static str,
        /// Type name of the missing service.
        service: &'static str,
    },
    /// A handler or an `#[apply]` method panicked; nothing was appended and the cached state was dropped.
    Panicked {
        /// The command.
        command: &'static str,
        /// The stream.
        stream: StreamId,
        /// The panic message.
        message: String,
    },
    /// An event could not be serialized; nothing was appended.
    Encode {
        /// The event's stored name.
        event: &'static str,
        /// The serializer's message.
        message: String,
    },
    /// The aggregate's stored events could not be decoded.
    Decode(DecodeError),
    /// The store failed.
    Store(StoreError),
}

impl<E> CommandError<E> {
    /// Maps the business error, keeping every other variant.
    pub fn map_rejection<F>(self, f: impl FnOnce(E) -> F) -> CommandError<F> {
        match self {
            CommandError::Rejected(e) => CommandError::Rejected(f(e)),
            CommandError::NotFound { stream } => CommandError::NotFound { stream },
            CommandError::AlreadyExists { stream, version } => {
                CommandError::AlreadyExists { stream, version }
            }
            CommandError::Conflict { stream, attempts } => {
                CommandError::Conflict { stream, attempts }
            }
            CommandError::MissingService { command, service } => {
                CommandError::MissingService { command, service }
            }
            CommandError::Panicked {
                command,
                stream,
                message,
            } => CommandError::Panicked {
                command,
                stream,
                message,
            },
            CommandError::Encode { event, message } => CommandError::Encode { event, message },
            CommandError::Decode(e) => CommandError::Decode(e),
            CommandError::Store(e) => CommandError::Store(e),
        }
    }

    /// The business error, if the handler rejected the command.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            CommandError::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for CommandError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Rejected(e) => write!(f, "command rejected: {e}"),
            CommandError::NotFound { stream } => {
                write!(f, "`{stream}` does not exist (it has no events yet)")
            }
            CommandError::AlreadyExists { stream, version } => write!(
                f,
                "`{stream}` already exists (version {version}); a creation command needs an empty stream"
            ),
            CommandError::Conflict { stream, attempts } => write!(
                f,
                "`{stream}` kept changing concurrently; gave up after {attempts} attempts"
            ),
            CommandError::MissingService { command, service } => write!(
                f,
                "the handler of `{command}` needs service `{service}`: register it with `CqrsBuilder::service`"
            ),
            CommandError::Panicked {
                command,
                stream,
                message,
            } => write!(f, "handling `{command}` on `{stream}` panicked: {message}"),
            CommandError::Encode { event, message } => {
                write!(f, "cannot serialize event `{event}`: {message}")
            }
            CommandError::Decode(e) => fmt::Display::fmt(e, f),
            CommandError::Store(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: StdError + 'static> StdError for CommandError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CommandError::Rejected(e) => Some(e),
            CommandError::Decode(e) => Some(e),
            CommandError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl<E> From<StoreError> for CommandError<E> {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Decode(d) => CommandError::Decode(d),
            other => CommandError::Store(other),
        }
    }
}

/// Why a projection stopped. It names the projection and the event it stopped at.
#[derive(Clone, Debug)]
pub struct ProjectionError {
    /// The projection's name.
    pub projection: &'static str,
    /// Stream of the event it failed on.
    pub stream: StreamId,
    /// Version of that event in its stream.
    pub version: u64,
    /// Global position of that event.
    pub position: Position,
    /// Stored name of that event.
    pub event_name: String,
    /// What happened.
    pub failure: ProjectionFailure,
}

/// What went wrong inside a projection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ProjectionFailure {
    /// The event's payload does not decode into the handler's parameter type.
    Decode(DecodeFailure),
    /// The handler returned an error.
    Handler(Arc<dyn StdError + Send + Sync + 'static>),
    /// The handler panicked.
    Panicked(String),
}

impl fmt::Display for ProjectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "projection `{}` stopped at event `{}` (version {} of `{}`, position {}): ",
            self.projection, self.event_name, self.version, self.stream, self.position
        )?;
        fmt::Display::fmt(&self.failure, f)
    }
}

impl fmt::Display for ProjectionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProjectionFailure::Decode(d) => write!(f, "{d}"),
            ProjectionFailure::Handler(e) => write!(f, "handler failed: {e}"),
            ProjectionFailure::Panicked(m) => write!(f, "handler panicked: {m}"),
        }
    }
}

impl StdError for ProjectionError {}

/// Why a query could not be answered.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueryError {
    /// The projection that answers this query was not added to this application.
    ProjectionNotRegistered {
        /// The query type.
        query: &'static str,
        /// The projection that answers it.
        projection: &'static str,
    },
    /// The projection stopped on an event and cannot answer until it is fixed and rebuilt.
    ProjectionFailed(ProjectionError),
    /// `query_after` waited this long and the projection did not reach the position.
    Timeout {
        /// The projection.
        projection: &'static str,
        /// The position waited for.
        target: Position,
        /// The position the projection had reached.
        reached: Position,
        /// How long it waited.
        waited: Duration,
    },
    /// Reading events to catch the projection up failed.
    Store(StoreError),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::ProjectionNotRegistered { query, projection } => write!(
                f,
                "query `{query}` is answered by projection `{projection}`, which this application does not run: add it with `CqrsBuilder::projection`"
            ),
            QueryError::ProjectionFailed(e) => fmt::Display::fmt(e, f),
            QueryError::Timeout {
                projection,
                target,
                reached,
                waited,
            } => write!(
                f,
                "projection `{projection}` reached position {reached}, not {target}, within {waited:?}"
            ),
            QueryError::Store(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl StdError for QueryError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            QueryError::ProjectionFailed(e) => Some(e),
            QueryError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an untyped (name + JSON) command could not be dispatched or failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DispatchError {
    /// No command of this name is routed.
    UnknownCommand {
        /// The name that was sent.
        name: String,
        /// The names that are routed.
        known: Vec<&'static str>,
    },
    /// The body is not valid JSON for this command.
    InvalidBody {
        /// The command name.
        command: &'static str,
        /// The JSON parser's message (with line and column).
        message: String,
    },
    /// The command type does not implement `serde::Deserialize`, so it cannot come from JSON.
    NotDeserializable {
        /// The command name.
        command: &'static str,
    },
    /// Two aggregates added to one router handle commands with the same name.
    DuplicateCommand {
        /// The command name.
        name: &'static str,
    },
    /// The command ran and failed; a rejection carries the handler's error, boxed.
    Command(CommandError<BoxError>),
}

impl fmt::Display for DispatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DispatchError::UnknownCommand { name, known } => {
                write!(
                    f,
                    "unknown command `{name}`; known commands: {}",
                    known.join(", ")
                )
            }
            DispatchError::InvalidBody { command, message } => {
                write!(f, "invalid JSON body for command `{command}`: {message}")
            }
            DispatchError::NotDeserializable { command } => write!(
                f,
                "command `{command}` cannot be sent as JSON: derive `serde::Deserialize` for it"
            ),
            DispatchError::DuplicateCommand { name } => {
                write!(f, "two aggregates handle a command named `{name}`")
            }
            DispatchError::Command(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl StdError for DispatchError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            DispatchError::Command(CommandError::Rejected(e)) => Some(&**e),
            DispatchError::Command(CommandError::Decode(e)) => Some(e),
            DispatchError::Command(CommandError::Store(e)) => Some(e),
            _ => None,
        }
    }
}

/// A start-up check failed: the application's wiring is inconsistent.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// Two projections with one name.
    DuplicateProjection {
        /// The name.
        name: &'static str,
        /// The two types.
        types: [&'static str; 2],
    },
    /// Two event types anywhere in the program share a stored name.
    DuplicateEventName {
        /// The stored name.
        name: &'static str,
        /// The two types.
        types: [&'static str; 2],
    },
    /// Catching the projections up with the stored events failed.
    Store(StoreError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::DuplicateProjection { name, types } => write!(
                f,
                "two projections are named `{name}`: `{}` and `{}`; give one another `#[projection(name = …)]`",
                types[0], types[1]
            ),
            BuildError::DuplicateEventName { name, types } => write!(
                f,
                "two event types are stored as `{name}`: `{}` and `{}`; give one another `#[event(name = …)]`",
                types[0], types[1]
            ),
            BuildError::Store(e) => write!(f, "cannot catch projections up: {e}"),
        }
    }
}

impl StdError for BuildError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BuildError::Store(e) => Some(e),
            _ => None,
        }
    }
}

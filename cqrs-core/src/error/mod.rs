//! Typed errors. Each variant names what went wrong and where, so callers can match on it and
//! humans can read it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod input;
mod sql;
mod store;
#[cfg(test)]
mod tests;

pub use input::{InputField, InputProblem, InvalidInput, InvalidQuery, QueryProblem};
pub use sql::{SqlError, SqlErrorKind};
pub use store::{BackendError, Mismatch, Retry, StoreError};

use crate::ids::{Position, StreamId, Uuid};
use crate::tag::Tag;

/// A boxed error, used where the concrete type is erased (untyped dispatch, store back-ends).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a payload could not be turned back into an event (without saying where; see [`DecodeError`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// A decision emitted an event that escapes its own query: a tag value differs from the
    /// ones the query read by that key (or no state of the handler reads the event), so the
    /// next decision on the command's tags would not see it and its condition would not guard
    /// it. Nothing was appended.
    EscapesQuery {
        /// The command.
        command: &'static str,
        /// The emitted event's stored name.
        event: &'static str,
        /// The tag the query reads that the event lacks (`None`: no state folds its type).
        expected: Option<Tag>,
        /// The event's tag with that key, if it has one.
        found: Option<Tag>,
    },
    /// The command id (given with `CommandContext::with_command_id`, the command's idempotency
    /// key) was used before for a command that recorded other events: the command sent now is
    /// not the same. Nothing was appended; the first command's events stay as they are. A
    /// command id may be sent again only with the same command (like an idempotency key of a
    /// payment API).
    CommandIdReused {
        /// The command id.
        command_id: Uuid,
        /// The stream of the command sent now.
        stream: StreamId,
        /// How its events differ from the first use's.
        mismatch: Mismatch,
    },
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
            CommandError::EscapesQuery {
                command,
                event,
                expected,
                found,
            } => CommandError::EscapesQuery {
                command,
                event,
                expected,
                found,
            },
            CommandError::CommandIdReused {
                command_id,
                stream,
                mismatch,
            } => CommandError::CommandIdReused {
                command_id,
                stream,
                mismatch,
            },
            CommandError::Store(e) => CommandError::Store(e),
        }
    }

    /// Whether and how the command may be sent again (see [`Retry`]):
    ///
    /// - [`Retry::Safe`]: nothing was appended and trying again may succeed: the store was
    ///   unavailable, or every attempt met a concurrent writer ([`CommandError::Conflict`]).
    /// - [`Retry::SameIds`]: the append was sent and its outcome is unknown
    ///   ([`StoreError::OutcomeUnknown`]). Send the command again with the same command id
    ///   (`CommandContext::with_command_id`): if the first run was recorded, the retry returns
    ///   its outcome instead of recording the command twice. A command run without a command id
    ///   has random event ids and cannot be retried safely: read its stream to find out.
    /// - [`Retry::Never`]: the command, the stored data or the code must change first.
    pub fn retry(&self) -> Retry {
        match self {
            CommandError::Conflict { .. } => Retry::Safe,
            CommandError::Store(e) => e.retry(),
            CommandError::Rejected(_)
            | CommandError::NotFound { .. }
            | CommandError::AlreadyExists { .. }
            | CommandError::MissingService { .. }
            | CommandError::Panicked { .. }
            | CommandError::Encode { .. }
            | CommandError::Decode(_)
            | CommandError::EscapesQuery { .. }
            | CommandError::CommandIdReused { .. } => Retry::Never,
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
            CommandError::EscapesQuery {
                command,
                event,
                expected: Some(expected),
                found,
            } => {
                write!(f, "the decision of `{command}` emitted `{event}` ")?;
                match found {
                    Some(found) => write!(f, "tagged `{found}`")?,
                    None => write!(f, "without a `{}` tag", expected.key())?,
                }
                write!(
                    f,
                    ", but its query reads `{expected}`: the event would escape the decision's condition; nothing was appended (emit it with the command's tag values)"
                )
            }
            CommandError::EscapesQuery { command, event, .. } => write!(
                f,
                "the decision of `{command}` emitted `{event}`, which none of its handler's states folds: the event would escape the decision's condition; nothing was appended"
            ),
            CommandError::CommandIdReused {
                command_id,
                stream,
                mismatch,
            } => write!(
                f,
                "command id {command_id} was used before for another command ({mismatch}); nothing was appended to `{stream}`: send a command id again only with the same command"
            ),
            CommandError::Store(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// Every variant shows its inner error's message in `Display` (transparently for `Decode` and
/// `Store`), so `source()` continues below it: the inner error's own source. A chain then names
/// each cause once.
impl<E: StdError + 'static> StdError for CommandError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CommandError::Rejected(e) => e.source(),
            CommandError::Decode(e) => e.source(),
            CommandError::Store(e) => e.source(),
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

/// Why a projection stopped. It names the projection and the event it stopped at. Made with
/// [`ProjectionError::new`] (or `EventRef::error`); `#[non_exhaustive]`, so fields can be added.
#[derive(Clone, Debug)]
#[non_exhaustive]
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
        match &self.failure {
            // The handler's error is the `source()`: not repeated here.
            ProjectionFailure::Handler(_) => f.write_str("handler failed"),
            other => fmt::Display::fmt(other, f),
        }
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

impl ProjectionError {
    /// `projection` failed on the stored `event` with `failure` (for hand-written
    /// `DurableProjection::handle` methods).
    pub fn new(
        projection: &'static str,
        event: &crate::envelope::RecordedEvent,
        failure: ProjectionFailure,
    ) -> Self {
        crate::projection::EventRef::stored(event).error(projection, failure)
    }
}

/// A handler's error is the `source()` (the message says only "handler failed"); decode
/// failures and panic messages are part of the message.
impl StdError for ProjectionError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.failure {
            ProjectionFailure::Handler(e) => Some(&**e as &(dyn StdError + 'static)),
            _ => None,
        }
    }
}

/// An error and its causes on one line (`error: cause: cause`), for logs and stored records
/// (such as a parked event's reason), where nobody walks `source()`.
///
/// ```
/// use eventweave_core::{BackendError, CommandError, ErrorChain, StoreError};
///
/// let e: CommandError<std::io::Error> = CommandError::Rejected(std::io::Error::other("no funds"));
/// assert_eq!(ErrorChain(&e).to_string(), "command rejected: no funds");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

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

impl QueryError {
    /// Whether the query may be asked again as is: [`Retry::Safe`] after a timeout or an
    /// unavailable store, [`Retry::Never`] when the projection is missing or stopped (see
    /// [`Retry`]).
    pub fn retry(&self) -> Retry {
        match self {
            QueryError::Timeout { .. } => Retry::Safe,
            // A query reads and never writes: whatever the store says, asking again is safe
            // exactly when the store's failure was a passing one.
            QueryError::Store(e) => match e.retry() {
                Retry::Never => Retry::Never,
                _ => Retry::Safe,
            },
            QueryError::ProjectionNotRegistered { .. } | QueryError::ProjectionFailed(_) => {
                Retry::Never
            }
        }
    }
}

/// The transparent variants forward `source()` too (see [`CommandError`]'s impl).
impl StdError for QueryError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            QueryError::ProjectionFailed(e) => e.source(),
            QueryError::Store(e) => e.source(),
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

impl DispatchError {
    /// Whether and how the command may be sent again: as [`CommandError::retry`] for a command
    /// that ran, [`Retry::Never`] for a name or body that cannot be dispatched.
    pub fn retry(&self) -> Retry {
        match self {
            DispatchError::Command(e) => e.retry(),
            _ => Retry::Never,
        }
    }
}

/// `Command` is transparent: it forwards `source()` to the command error's (see
/// [`CommandError`]'s impl).
impl StdError for DispatchError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            DispatchError::Command(CommandError::Rejected(e)) => e.source(),
            DispatchError::Command(CommandError::Decode(e)) => e.source(),
            DispatchError::Command(CommandError::Store(e)) => e.source(),
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

impl BuildError {
    /// Whether building again may succeed: as [`StoreError::retry`] when catching up failed,
    /// [`Retry::Never`] for wiring mistakes.
    pub fn retry(&self) -> Retry {
        match self {
            BuildError::Store(e) => e.retry(),
            _ => Retry::Never,
        }
    }
}

/// `Store` shows the store's message, so `source()` continues below it.
impl StdError for BuildError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BuildError::Store(e) => e.source(),
            _ => None,
        }
    }
}

//! Errors of event-store operations: [`StoreError`], what a caller may do about one ([`Retry`]),
//! what the back end said ([`BackendError`]) and how a reused event id differs from its first use
//! ([`Mismatch`]).
//!
//! Errors say what to do ([`Retry`]), and a write whose reply was lost is told apart from one that
//! was never sent: PostgreSQL checks `is_closed()` before sending an append, and a lost connection
//! or a `FATAL`/`PANIC` reply after sending is `OutcomeUnknown` (a termination can follow the
//! commit, and a synchronous-replication wait ends with "committed locally"); SQLite's only
//! uncertain step is an I/O error at `COMMIT`. Chains name each cause once: an error either shows
//! its inner error in its message (and `source()` continues below it) or returns it from
//! `source()`, never both.

use std::error::Error as StdError;
use std::fmt;

use super::BoxError;
use super::input::{InputField, InvalidInput, InvalidQuery};
use crate::envelope::ExpectedVersion;
use crate::error::DecodeError;
use crate::ids::{Position, StreamId, Uuid};

/// What a caller may do after a failed operation: the one question a client must be able to
/// answer from an error alone.
///
/// ```
/// use eventweave_core::{Retry, StoreError, BackendError};
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

/// How events sent again under stored ids differ from the events stored under them: the ids
/// (an idempotency key) were reused for something else. See [`StoreError::IdempotencyConflict`]
/// and [`CommandError::CommandIdReused`](crate::CommandError::CommandIdReused).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// The stored events belong to another stream.
    Stream {
        /// Where they are stored.
        stored: StreamId,
    },
    /// The first use recorded another number of events.
    EventCount {
        /// How many the first use recorded.
        stored: usize,
        /// How many were sent now (0 when the command is now rejected).
        sent: usize,
    },
    /// The event at `index` (0-based, in the batch) differs in `field`: its
    /// [name](InputField::EventName), [schema version](InputField::EventVersion),
    /// [payload](InputField::Payload) or [metadata](InputField::Metadata). Payloads and metadata
    /// are compared as JSON values (formatting and key order do not count).
    EventField {
        /// Which event of the batch.
        index: usize,
        /// What differs.
        field: InputField,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Stream { stored } => write!(f, "they were recorded in `{stored}`"),
            Mismatch::EventCount { stored, sent } => write!(
                f,
                "the first use recorded {stored} event(s), this one decides {sent}"
            ),
            Mismatch::EventField { index, field } => {
                write!(f, "event {} differs in its {}", index + 1, field.describe())
            }
        }
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
    /// The batch's ids are stored, as one earlier append to this stream, but with other content
    /// (another name, schema version, payload or metadata): the ids, an idempotency key, were
    /// reused for different events. Nothing was written and the stored events are unchanged.
    /// (Payment APIs answer an idempotency key reused with another request body the same way.)
    IdempotencyConflict {
        /// The stream appended to.
        stream: StreamId,
        /// The id of the first event that differs.
        event_id: Uuid,
        /// What differs.
        mismatch: Mismatch,
    },
    /// The input breaks the store contract (see [`EventStore`](crate::EventStore)): an empty,
    /// over-long or NUL-holding stream id or event name, a payload that is not JSON a store can
    /// keep, an event above the size limit, … Nothing was read or written.
    InvalidInput(InvalidInput),
    /// An [`EventQuery`](crate::EventQuery) (read, or an append's condition) breaks the store
    /// contract: no item, an item with neither types nor tags, too many items, tags or types,
    /// an invalid type name. Nothing was read or written.
    InvalidQuery(InvalidQuery),
    /// An [`AppendCondition`](crate::AppendCondition) failed: an event matching its query was
    /// stored after its `after` position (something the decision depended on changed since it
    /// read). Nothing was written. Like [`StoreError::Conflict`], retrying means deciding again
    /// on a fresh read, never sending the same append.
    ConditionFailed {
        /// The condition's `after`.
        after: Position,
        /// The position of the first matching event after it.
        conflicting: Position,
    },
    /// The store does not implement this operation (a third-party store that predates reading
    /// by query, conditional appends or tags). Nothing was read or written: a condition or a tag
    /// is never silently ignored.
    Unsupported {
        /// The operation, such as `"read_query"` or `"append_conditional"`.
        operation: &'static str,
    },
    /// A stored row could not be read back.
    Decode(DecodeError),
    /// The store could not be reached, or refused the operation for a passing reason (a
    /// connection that could not be opened or was lost before the request was sent, a server
    /// shutting down, a lock held beyond the busy timeout, a full disk): nothing was written.
    /// Retry.
    Unavailable(BackendError),
    /// The connection was lost (or the server ended the session) after a write was sent: it may
    /// or may not have been applied. Retry only with the same event ids (the same command id);
    /// the store then returns the events of the write that landed.
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
            | StoreError::IdempotencyConflict { .. }
            | StoreError::InvalidInput(_)
            | StoreError::InvalidQuery(_)
            | StoreError::ConditionFailed { .. }
            | StoreError::Unsupported { .. }
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
            StoreError::IdempotencyConflict {
                stream,
                event_id,
                mismatch,
            } => write!(
                f,
                "the ids of this append to `{stream}` are stored with other content ({mismatch}, first differing id {event_id}): ids may be sent again only with the same events"
            ),
            StoreError::InvalidInput(e) => fmt::Display::fmt(e, f),
            StoreError::InvalidQuery(e) => fmt::Display::fmt(e, f),
            StoreError::ConditionFailed { after, conflicting } => write!(
                f,
                "append condition failed: an event matching its query was stored at position {conflicting}, after {after}"
            ),
            StoreError::Unsupported { operation } => write!(
                f,
                "this event store does not support `{operation}` (nothing was read or written)"
            ),
            StoreError::Decode(e) => fmt::Display::fmt(e, f),
            StoreError::Unavailable(e) => {
                write!(f, "event store unavailable, nothing was written: {e}")
            }
            StoreError::OutcomeUnknown(e) => write!(
                f,
                "event store connection lost after the write was sent, it may have been applied (retry only with the same command id): {e}"
            ),
            StoreError::Backend(e) => write!(f, "event store failure: {e}"),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        // `Display` already shows every inner message; a `source()` would print it twice.
        None
    }
}

impl From<InvalidQuery> for StoreError {
    fn from(e: InvalidQuery) -> Self {
        StoreError::InvalidQuery(e)
    }
}

impl From<InvalidInput> for StoreError {
    fn from(e: InvalidInput) -> Self {
        StoreError::InvalidInput(e)
    }
}

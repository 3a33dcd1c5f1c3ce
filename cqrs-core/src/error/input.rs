//! Input that breaks the store contract ([`InvalidInput`]): which field ([`InputField`]) and
//! what is wrong with it ([`InputProblem`]).

use std::error::Error as StdError;
use std::fmt;

use crate::ids::{StreamId, Uuid};

/// The part of an operation's input that breaks the store contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InputField {
    /// The stream id.
    StreamId,
    /// An event's stored name.
    EventName,
    /// An event's schema version.
    EventVersion,
    /// An event's payload.
    Payload,
    /// An event's metadata.
    Metadata,
    /// An event as a whole (its payload and metadata together, for the size limit).
    EventSize,
    /// A snapshot's payload.
    SnapshotPayload,
    /// An event's tags (their number).
    Tags,
}

impl InputField {
    /// The field in words (`"stream id"`, `"payload"`, …).
    pub fn describe(self) -> &'static str {
        match self {
            InputField::StreamId => "stream id",
            InputField::EventName => "event name",
            InputField::EventVersion => "schema version",
            InputField::Payload => "payload",
            InputField::Metadata => "metadata",
            InputField::EventSize => "size",
            InputField::SnapshotPayload => "snapshot payload",
            InputField::Tags => "tags",
        }
    }
}

/// What is wrong with an [`InputField`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputProblem {
    /// It is empty.
    Empty,
    /// It holds the NUL character (U+0000), which PostgreSQL's `text` cannot store.
    ContainsNul,
    /// It is `len` bytes long, above the limit of `max` bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Its value is above `max`.
    TooLarge {
        /// The value.
        value: u64,
        /// The largest accepted.
        max: u64,
    },
    /// It is not a JSON document (the parser's message, with line and column).
    NotJson(String),
    /// Its arrays and objects nest deeper than `max` levels: serde_json could not decode it
    /// into an event again.
    TooDeep {
        /// The deepest nesting accepted.
        max: usize,
    },
    /// A JSON string in it holds the escape `\u0000`, which PostgreSQL's `jsonb` refuses.
    NulEscape,
    /// A JSON string in it holds an unpaired UTF-16 surrogate escape (such as `\ud800` alone),
    /// which stands for no character (PostgreSQL's `jsonb` refuses it).
    LoneSurrogate,
    /// A JSON number in it is 1e308 or more in magnitude (serde_json, which events are decoded
    /// with, cannot read it back from every store), or has more than 16,383 digits after the
    /// decimal point (counting the exponent), beyond PostgreSQL's `numeric`.
    NumberOutOfRange,
    /// There are `count` of them, above the limit of `max`.
    TooMany {
        /// How many there are.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// It appears twice where it may appear once (a stream written twice in one append).
    Repeated,
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputProblem::Empty => f.write_str("it is empty"),
            InputProblem::ContainsNul => f.write_str("it holds the NUL character (U+0000)"),
            InputProblem::TooLong { len, max } => {
                write!(f, "it is {len} bytes, above the limit of {max} bytes")
            }
            InputProblem::TooLarge { value, max } => {
                write!(f, "it is {value}, above the largest accepted value {max}")
            }
            InputProblem::NotJson(message) => write!(f, "it is not a JSON document: {message}"),
            InputProblem::TooDeep { max } => {
                write!(f, "its arrays and objects nest deeper than {max} levels")
            }
            InputProblem::NulEscape => f.write_str("a JSON string in it holds the escape \\u0000"),
            InputProblem::LoneSurrogate => {
                f.write_str("a JSON string in it holds an unpaired surrogate escape")
            }
            InputProblem::NumberOutOfRange => f.write_str(
                "a JSON number in it is 1e308 or more in magnitude, or has more than 16383 decimal places",
            ),
            InputProblem::TooMany { count, max } => {
                write!(f, "there are {count}, above the limit of {max}")
            }
            InputProblem::Repeated => f.write_str("it appears twice in one append"),
        }
    }
}

/// Input an [`EventStore`](crate::EventStore) refuses before reading or writing anything,
/// because it breaks the store contract (see the trait's documentation). Every store refuses
/// the same input, with the same error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidInput {
    /// The stream of the operation (it may be the bad field itself).
    pub stream: StreamId,
    /// The event at fault, for the fields of an event.
    pub event_id: Option<Uuid>,
    /// What is wrong.
    pub field: InputField,
    /// Why.
    pub problem: InputProblem,
}

impl InvalidInput {
    /// `field` of the operation on `stream` (of event `event_id`, if it is an event's) is refused
    /// for `problem`.
    pub fn new(
        stream: &StreamId,
        event_id: Option<Uuid>,
        field: InputField,
        problem: InputProblem,
    ) -> Self {
        InvalidInput {
            stream: stream.clone(),
            event_id,
            field,
            problem,
        }
    }
}

/// At most this many characters of a stream id are shown in a message.
const SHOWN_CHARS: usize = 64;

/// The stream id as a message shows it: escaped (a NUL shows as `\0`) and cut after
/// [`SHOWN_CHARS`] characters, so a refused 3 KB id does not fill a log line.
fn shown(stream: &StreamId) -> String {
    let mut out = String::new();
    let mut chars = stream.as_str().chars();
    for c in chars.by_ref().take(SHOWN_CHARS) {
        out.extend(c.escape_debug());
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = shown(&self.stream);
        match (self.field, self.event_id) {
            (InputField::StreamId, _) => write!(f, "stream id `{stream}` refused: ")?,
            (field, Some(id)) => write!(
                f,
                "{} of event {id} (stream `{stream}`) refused: ",
                field.describe()
            )?,
            (field, None) => write!(f, "{} (stream `{stream}`) refused: ", field.describe())?,
        }
        fmt::Display::fmt(&self.problem, f)
    }
}

impl StdError for InvalidInput {}

/// An [`EventQuery`](crate::EventQuery) a store refuses before reading or writing anything
/// (see [`check_query`](crate::check_query)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidQuery {
    /// The item at fault (0-based), when it is one item's.
    pub item: Option<usize>,
    /// What is wrong.
    pub problem: QueryProblem,
}

impl InvalidQuery {
    /// The query (its item `item`, if given) is refused for `problem`.
    pub fn new(item: Option<usize>, problem: QueryProblem) -> Self {
        InvalidQuery { item, problem }
    }
}

/// What is wrong with an [`EventQuery`](crate::EventQuery).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryProblem {
    /// It has no item (`EventQuery::all()` is the query of every event).
    NoItems,
    /// An item names no event type and no tag, so it would match every event (say so with
    /// `EventQuery::all()`).
    EmptyItem,
    /// It has more items than the limit.
    TooManyItems {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An item requires more tags than the limit.
    TooManyTags {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An item names more event types than the limit.
    TooManyTypes {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An event type is not a valid stored name.
    EventType(InputProblem),
}

impl fmt::Display for QueryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryProblem::NoItems => {
                f.write_str("it has no item (`EventQuery::all()` selects every event)")
            }
            QueryProblem::EmptyItem => f.write_str(
                "it names no event type and no tag (`EventQuery::all()` selects every event)",
            ),
            QueryProblem::TooManyItems { count, max } => {
                write!(f, "it has {count} items, above the limit of {max}")
            }
            QueryProblem::TooManyTags { count, max } => {
                write!(f, "it requires {count} tags, above the limit of {max}")
            }
            QueryProblem::TooManyTypes { count, max } => {
                write!(f, "it names {count} event types, above the limit of {max}")
            }
            QueryProblem::EventType(problem) => write!(f, "an event type is refused: {problem}"),
        }
    }
}

impl fmt::Display for InvalidQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(item) => write!(
                f,
                "event query refused: item {}: {}",
                item + 1,
                self.problem
            ),
            None => write!(f, "event query refused: {}", self.problem),
        }
    }
}

impl StdError for InvalidQuery {}

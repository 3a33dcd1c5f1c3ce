//! Errors as RFC 9457 problem details (`application/problem+json`), with stable `type` URIs.
//!
//! Every error response of the service is a [`Problem`]: `type` (one of the URIs below, stable
//! across releases), `title` (the same for every problem of a type), `status`, `detail` (this
//! occurrence, in words) and extension members named per type. Every problem also carries
//! `retry`, what a client may do: `"never"` (change the request first), `"safe"` (send it again
//! as is, after `Retry-After` seconds where the header is given) or `"same-idempotency-key"`
//! (send it again only with the same `Idempotency-Key`).
//!
//! The types, their statuses and members (each heading is the fragment of its URI):
//!
//! # rejected
//! `422`. The domain refused the command (a handler returned `Err`); nothing was recorded.
//! `detail` is the domain error's message; `data` is the error serialized as JSON when its type
//! was registered with `ApiBuilder::rejection`. Members: `command`, `data`.
//!
//! # not-found
//! `404`. An update command reached an aggregate that does not exist (a stream with no events),
//! or no route matches the request's path. Members: `stream`.
//!
//! # already-exists
//! `409`. A creation command reached an aggregate that already exists. Members: `stream`,
//! `version`.
//!
//! # conflict
//! `409` with `Retry-After`. Every attempt of the command met a concurrent writer of the same
//! aggregate; nothing was recorded and sending it again is safe. Members: `stream`, `attempts`.
//!
//! # idempotency-key-reused
//! `422` (as the IETF `Idempotency-Key` draft answers a key reused with another payload). The
//! `Idempotency-Key` was used before for a command that recorded other events (another body,
//! another command, another aggregate); nothing was recorded. Members: `command_id`, `stream`.
//!
//! # unknown-command
//! `400`. No command of this name is served. Members: `command`, `known` (the served names).
//!
//! # unknown-query
//! `400`. No query of this name is served. Members: `query`, `known`.
//!
//! # invalid-body
//! `400`. The body is not JSON of the command's or query's shape, or is not readable. Members:
//! `command` or `query`.
//!
//! # body-too-large
//! `413`. The body is larger than the configured limit. Members: `limit` (bytes).
//!
//! # invalid-header
//! `400`. An `Idempotency-Key`, `X-Correlation-Id`, `traceparent`, `X-After-Position` or
//! `Last-Event-ID` header (or the `after` / `from` parameter) cannot be read. Members: `header`.
//!
//! # invalid-input
//! `422`. The store refuses what the command would record (a stream id or payload beyond the
//! store's limits, such as a NUL character or a 3 KB id). Members: `command`.
//!
//! # unavailable
//! `503` with `Retry-After`. The store cannot be reached now; nothing was recorded. Send the
//! request again after the pause.
//!
//! # outcome-unknown
//! The command was sent to the store and its reply was lost (a connection dropped after the
//! append was sent, or the command timeout elapsed): it may or may not be recorded. With an
//! `Idempotency-Key`: `503` with `Retry-After`, and `retry` = `"same-idempotency-key"`: send the
//! same request with the same key; if the first one was recorded the answer is its outcome, and
//! nothing is recorded twice. Without a key: `500`, `retry` = `"never"`: a blind retry could
//! record the command twice; read the aggregate's stream to find out. Members: `command`,
//! `command_id` (with a key).
//!
//! # query-timeout
//! `503` with `Retry-After`. A read-your-writes query (`X-After-Position`) waited for the
//! projection to reach the position and it did not within the query timeout. Members:
//! `target`, `reached`.
//!
//! # unauthorized
//! `401`. The authorization hook requires a caller and the request has none.
//!
//! # forbidden
//! `403`. The authorization hook refused this caller this operation.
//!
//! # timeout
//! `503` with `Retry-After`. The request took longer than the request timeout (commands have
//! their own, shorter timeout, which answers `outcome-unknown`).
//!
//! # internal
//! `500`. A fault of the server or of the stored data (a panicking handler, a missing service,
//! an event that does not decode, a projection that stopped, a permanent store failure).
//! `detail` says which; nothing the client can change.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventweave_core::{
    BoxError, CommandError, DispatchError, QueryError, Retry, StoreError, StreamId,
};
use serde_json::{Map, Value};

use crate::rejection::Rejections;

/// The base of every problem `type` URI: the documentation of this module, where each type is
/// a heading (`{BASE}#rejected`).
pub const BASE: &str = "https://docs.rs/eventweave-axum/latest/eventweave_axum/problem/index.html";

/// The media type of problem details.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The problem types this crate answers with, each with its fixed title and URI fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemType {
    /// See [the module docs](self#rejected).
    Rejected,
    /// See [the module docs](self#not-found).
    NotFound,
    /// See [the module docs](self#already-exists).
    AlreadyExists,
    /// See [the module docs](self#conflict).
    Conflict,
    /// See [the module docs](self#idempotency-key-reused).
    IdempotencyKeyReused,
    /// See [the module docs](self#unknown-command).
    UnknownCommand,
    /// See [the module docs](self#unknown-query).
    UnknownQuery,
    /// See [the module docs](self#invalid-body).
    InvalidBody,
    /// See [the module docs](self#body-too-large).
    BodyTooLarge,
    /// See [the module docs](self#invalid-header).
    InvalidHeader,
    /// See [the module docs](self#invalid-input).
    InvalidInput,
    /// See [the module docs](self#unavailable).
    Unavailable,
    /// See [the module docs](self#outcome-unknown).
    OutcomeUnknown,
    /// See [the module docs](self#query-timeout).
    QueryTimeout,
    /// See [the module docs](self#unauthorized).
    Unauthorized,
    /// See [the module docs](self#forbidden).
    Forbidden,
    /// See [the module docs](self#timeout).
    Timeout,
    /// See [the module docs](self#internal).
    Internal,
}

impl ProblemType {
    /// Every type, for documentation generators and tests.
    pub const ALL: [ProblemType; 18] = [
        ProblemType::Rejected,
        ProblemType::NotFound,
        ProblemType::AlreadyExists,
        ProblemType::Conflict,
        ProblemType::IdempotencyKeyReused,
        ProblemType::UnknownCommand,
        ProblemType::UnknownQuery,
        ProblemType::InvalidBody,
        ProblemType::BodyTooLarge,
        ProblemType::InvalidHeader,
        ProblemType::InvalidInput,
        ProblemType::Unavailable,
        ProblemType::OutcomeUnknown,
        ProblemType::QueryTimeout,
        ProblemType::Unauthorized,
        ProblemType::Forbidden,
        ProblemType::Timeout,
        ProblemType::Internal,
    ];

    /// The fragment of the type's URI (`rejected`).
    pub fn slug(self) -> &'static str {
        match self {
            ProblemType::Rejected => "rejected",
            ProblemType::NotFound => "not-found",
            ProblemType::AlreadyExists => "already-exists",
            ProblemType::Conflict => "conflict",
            ProblemType::IdempotencyKeyReused => "idempotency-key-reused",
            ProblemType::UnknownCommand => "unknown-command",
            ProblemType::UnknownQuery => "unknown-query",
            ProblemType::InvalidBody => "invalid-body",
            ProblemType::BodyTooLarge => "body-too-large",
            ProblemType::InvalidHeader => "invalid-header",
            ProblemType::InvalidInput => "invalid-input",
            ProblemType::Unavailable => "unavailable",
            ProblemType::OutcomeUnknown => "outcome-unknown",
            ProblemType::QueryTimeout => "query-timeout",
            ProblemType::Unauthorized => "unauthorized",
            ProblemType::Forbidden => "forbidden",
            ProblemType::Timeout => "timeout",
            ProblemType::Internal => "internal",
        }
    }

    /// The type's URI: [`BASE`]`#`[`slug`](ProblemType::slug).
    pub fn uri(self) -> String {
        format!("{BASE}#{}", self.slug())
    }

    /// The type's title (the same for every occurrence).
    pub fn title(self) -> &'static str {
        match self {
            ProblemType::Rejected => "The command was rejected",
            ProblemType::NotFound => "Not found",
            ProblemType::AlreadyExists => "Already exists",
            ProblemType::Conflict => "Concurrent changes; try again",
            ProblemType::IdempotencyKeyReused => "The idempotency key was used for another request",
            ProblemType::UnknownCommand => "Unknown command",
            ProblemType::UnknownQuery => "Unknown query",
            ProblemType::InvalidBody => "The body cannot be read",
            ProblemType::BodyTooLarge => "The body is too large",
            ProblemType::InvalidHeader => "A header or parameter cannot be read",
            ProblemType::InvalidInput => "The store refuses this input",
            ProblemType::Unavailable => "The store is unavailable; try again",
            ProblemType::OutcomeUnknown => "The outcome of the command is unknown",
            ProblemType::QueryTimeout => "The read model did not catch up in time",
            ProblemType::Unauthorized => "Unauthorized",
            ProblemType::Forbidden => "Forbidden",
            ProblemType::Timeout => "The request took too long",
            ProblemType::Internal => "Internal error",
        }
    }

    /// The HTTP status a problem of this type usually has (only `outcome-unknown` differs:
    /// 500 without an idempotency key).
    pub fn status(self) -> StatusCode {
        match self {
            ProblemType::Rejected
            | ProblemType::IdempotencyKeyReused
            | ProblemType::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemType::NotFound => StatusCode::NOT_FOUND,
            ProblemType::AlreadyExists | ProblemType::Conflict => StatusCode::CONFLICT,
            ProblemType::UnknownCommand
            | ProblemType::UnknownQuery
            | ProblemType::InvalidBody
            | ProblemType::InvalidHeader => StatusCode::BAD_REQUEST,
            ProblemType::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemType::Unavailable
            | ProblemType::OutcomeUnknown
            | ProblemType::QueryTimeout
            | ProblemType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ProblemType::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemType::Forbidden => StatusCode::FORBIDDEN,
            ProblemType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for ProblemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// What a client may do after a problem (the `retry` member).
fn retry_word(retry: Retry) -> &'static str {
    match retry {
        Retry::Safe => "safe",
        Retry::SameIds => "same-idempotency-key",
        _ => "never",
    }
}

/// One problem: an error response of the service.
///
/// ```
/// use eventweave_axum::problem::{Problem, ProblemType};
///
/// let p = Problem::new(ProblemType::Forbidden, "guests may not withdraw");
/// assert_eq!(p.status().as_u16(), 403);
/// let json: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
/// assert_eq!(json["type"], ProblemType::Forbidden.uri());
/// assert_eq!(json["detail"], "guests may not withdraw");
/// ```
#[derive(Clone, Debug)]
pub struct Problem {
    kind: ProblemType,
    status: StatusCode,
    detail: String,
    retry: Retry,
    retry_after: Option<u32>,
    members: Map<String, Value>,
}

/// Seconds a client is told to wait (`Retry-After`) before sending a retryable request again.
const RETRY_AFTER_SECONDS: u32 = 1;

impl Problem {
    /// A problem of `kind` with its usual status, `detail` for this occurrence, and the retry
    /// advice that goes with the type (`safe` with `Retry-After` for `conflict`, `unavailable`,
    /// `query-timeout` and `timeout`; `never` otherwise).
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        let retry = match kind {
            ProblemType::Conflict
            | ProblemType::Unavailable
            | ProblemType::QueryTimeout
            | ProblemType::Timeout => Retry::Safe,
            _ => Retry::Never,
        };
        Problem {
            kind,
            status: kind.status(),
            detail: detail.into(),
            retry,
            retry_after: (retry == Retry::Safe).then_some(RETRY_AFTER_SECONDS),
            members: Map::new(),
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.members.insert(name.to_owned(), value.into());
        self
    }

    /// The problem's type.
    pub fn kind(&self) -> ProblemType {
        self.kind
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `detail` member.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The `retry` advice.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// An extension member.
    pub fn member(&self, name: &str) -> Option<&Value> {
        self.members.get(name)
    }

    /// The problem as a JSON document.
    pub fn to_json(&self) -> Vec<u8> {
        let mut object = Map::with_capacity(self.members.len() + 5);
        object.insert("type".into(), self.kind.uri().into());
        object.insert("title".into(), self.kind.title().into());
        object.insert("status".into(), self.status.as_u16().into());
        object.insert("detail".into(), self.detail.clone().into());
        object.insert("retry".into(), retry_word(self.retry).into());
        for (name, value) in &self.members {
            object.insert(name.clone(), value.clone());
        }
        serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
    }

    /// `outcome-unknown` for a command; `keyed` says whether it carried an idempotency key.
    pub(crate) fn outcome_unknown(command: &str, detail: String, key: Option<&str>) -> Self {
        let mut p = Problem::new(ProblemType::OutcomeUnknown, detail).with("command", command);
        if let Some(key) = key {
            p.retry = Retry::SameIds;
            p.retry_after = Some(RETRY_AFTER_SECONDS);
            p.detail.push_str(
                "; send the same request again with the same Idempotency-Key: it is recorded at most once",
            );
            p = p.with("idempotency_key", key);
        } else {
            p.status = StatusCode::INTERNAL_SERVER_ERROR;
            p.detail.push_str(
                "; the request carried no Idempotency-Key, so sending it again could record it twice: read the aggregate's stream to find out",
            );
        }
        p
    }

    /// The problem for a failed command (typed or by name).
    pub(crate) fn from_command(
        command: &str,
        error: CommandError<BoxError>,
        key: Option<&str>,
        rejections: &Rejections,
    ) -> Self {
        let detail = error.to_string();
        match error {
            CommandError::Rejected(e) => {
                let mut p =
                    Problem::new(ProblemType::Rejected, e.to_string()).with("command", command);
                if let Some(data) = rejections.serialize(&*e) {
                    p = p.with("data", data);
                }
                p
            }
            CommandError::NotFound { stream } => {
                Problem::new(ProblemType::NotFound, detail).with("stream", stream_value(&stream))
            }
            CommandError::AlreadyExists { stream, version } => {
                Problem::new(ProblemType::AlreadyExists, detail)
                    .with("stream", stream_value(&stream))
                    .with("version", version)
            }
            CommandError::Conflict { stream, attempts } => {
                Problem::new(ProblemType::Conflict, detail)
                    .with("stream", stream_value(&stream))
                    .with("attempts", attempts)
            }
            CommandError::CommandIdReused {
                command_id, stream, ..
            } => Problem::new(ProblemType::IdempotencyKeyReused, detail)
                .with("command_id", command_id.to_string())
                .with("stream", stream_value(&stream)),
            CommandError::Store(e) => Problem::from_store(command, e, key),
            _ => Problem::new(ProblemType::Internal, detail).with("command", command),
        }
    }

    /// The problem for a failed store operation of a command.
    fn from_store(command: &str, error: StoreError, key: Option<&str>) -> Self {
        match error.retry() {
            Retry::Safe => Problem::new(ProblemType::Unavailable, error.to_string()),
            Retry::SameIds => Problem::outcome_unknown(command, error.to_string(), key),
            _ => match error {
                StoreError::InvalidInput(_) => {
                    Problem::new(ProblemType::InvalidInput, error.to_string())
                        .with("command", command)
                }
                other => {
                    Problem::new(ProblemType::Internal, other.to_string()).with("command", command)
                }
            },
        }
    }

    /// The problem for a command by name that could not be dispatched or failed.
    pub(crate) fn from_dispatch(
        command: &str,
        error: DispatchError,
        key: Option<&str>,
        rejections: &Rejections,
    ) -> Self {
        match error {
            DispatchError::UnknownCommand { name, known } => Problem::new(
                ProblemType::UnknownCommand,
                format!(
                    "no command `{name}` is served; known commands: {}",
                    known.join(", ")
                ),
            )
            .with("command", name)
            .with("known", known),
            DispatchError::InvalidBody { command, message } => Problem::new(
                ProblemType::InvalidBody,
                format!("the body is not a `{command}` command: {message}"),
            )
            .with("command", command),
            DispatchError::Command(e) => Problem::from_command(command, e, key, rejections),
            other => {
                Problem::new(ProblemType::Internal, other.to_string()).with("command", command)
            }
        }
    }

    /// The problem for a query that could not be answered.
    pub(crate) fn from_query(query: &str, error: QueryError) -> Self {
        let detail = error.to_string();
        match error {
            QueryError::Timeout {
                target, reached, ..
            } => Problem::new(ProblemType::QueryTimeout, detail)
                .with("query", query)
                .with("target", target.0)
                .with("reached", reached.0),
            QueryError::Store(e) if e.retry() != Retry::Never => {
                Problem::new(ProblemType::Unavailable, detail).with("query", query)
            }
            _ => Problem::new(ProblemType::Internal, detail).with("query", query),
        }
    }
}

fn stream_value(stream: &StreamId) -> Value {
    Value::String(stream.as_str().to_owned())
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind,
            self.status.as_u16(),
            self.detail
        )
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.to_json();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

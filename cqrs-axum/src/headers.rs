//! What the service reads from a request's headers and query string: the idempotency key, the
//! correlation id (`X-Correlation-Id` or W3C `traceparent`), the read-your-writes position
//! (`X-After-Position` or `?after=`), and what it echoes back.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use eventweave_core::process::derive_id;
use eventweave_core::{CommandContext, Position, TraceContext, Uuid};

use crate::auth::Caller;
use crate::problem::{Problem, ProblemType};

/// `Idempotency-Key`: the command's idempotency key (IETF draft `Idempotency-Key` header).
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// `X-Correlation-Id`: the business transaction a command belongs to; echoed in the response.
pub const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// `traceparent` (W3C Trace Context): the command joins its trace (its events carry it, see
/// `eventweave_core::TraceContext`), and its trace id becomes the correlation id when no
/// `X-Correlation-Id` is sent; echoed. An invalid one is ignored, as the specification asks of
/// receivers (a new trace starts rather than the request failing).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context): vendor data carried with a valid `traceparent`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// `X-After-Position`: answer a query only once the read side reached this global position.
pub const AFTER_POSITION: HeaderName = HeaderName::from_static("x-after-position");
/// `X-Position`: in a command's response, the global position of its last event (to send back
/// as `X-After-Position`).
pub const POSITION: HeaderName = HeaderName::from_static("x-position");
/// `Last-Event-ID`: where an SSE client resumes.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The longest idempotency key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// The base id from which command ids are derived from idempotency keys (`derive_id`; the
/// salt is the caller and the key).
const KEY_BASE: Uuid = Uuid::from_u128(0x6a1e_55c0_7b3d_4e0f_9a51_8c2d_e4f6_0b17);
/// The base id from which correlation ids are derived from `X-Correlation-Id` values that are
/// not UUIDs.
const CORRELATION_BASE: Uuid = Uuid::from_u128(0x0c5f_2e8a_91d4_4b6c_a7e3_5f10_d29b_8e44);

/// The command id for idempotency key `key` sent by `caller`.
///
/// Keys are scoped by caller: two callers using the same key make two commands, and a caller
/// cannot learn another's outcome by guessing a key. The id is a name-based UUID (v5) of the
/// caller and the key, so the same key of the same caller gives the same id in every process.
pub fn command_id_for_key(caller: Option<&Caller>, key: &str) -> Uuid {
    let caller = caller.map_or("", Caller::id);
    // Length-prefixed, so no caller and key pair reads as another.
    let salt = format!("{}:{caller}{key}", caller.len());
    derive_id(KEY_BASE, &salt, 0)
}

fn invalid(header: &HeaderName, why: &str) -> Problem {
    Problem::new(
        ProblemType::InvalidHeader,
        format!("header `{header}` {why}"),
    )
    .with("header", header.as_str())
}

/// A header's value as visible ASCII, if present.
fn text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, Problem> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| invalid(name, "is not visible ASCII")),
    }
}

/// The trace id of a W3C `traceparent` as a UUID (the correlation id it gives).
fn trace_id(trace: &TraceContext) -> Uuid {
    Uuid::from_u128(trace.traceparent().trace_id().get())
}

/// What a request says about the command it carries, and what the response echoes.
#[derive(Debug, Default)]
pub(crate) struct RequestMeta<'h> {
    /// The idempotency key as sent.
    pub key: Option<&'h str>,
    /// The command id derived from it.
    pub command_id: Option<Uuid>,
    /// The correlation id, from `X-Correlation-Id` (preferred) or `traceparent`.
    pub correlation_id: Option<Uuid>,
    /// `X-Correlation-Id` as sent.
    correlation_header: Option<&'h HeaderValue>,
    /// `traceparent` as sent.
    traceparent: Option<&'h HeaderValue>,
    /// The W3C trace context of `traceparent` and `tracestate`, if `traceparent` is valid.
    pub trace: Option<TraceContext>,
}

impl<'h> RequestMeta<'h> {
    /// Reads the headers of a command (or query) request.
    pub fn read(headers: &'h HeaderMap, caller: Option<&Caller>) -> Result<Self, Problem> {
        let mut meta = RequestMeta::default();
        if let Some(key) = text(headers, &IDEMPOTENCY_KEY)? {
            if key.is_empty() || key.len() > MAX_KEY_BYTES {
                return Err(invalid(
                    &IDEMPOTENCY_KEY,
                    &format!("must be 1 to {MAX_KEY_BYTES} characters"),
                ));
            }
            meta.key = Some(key);
            meta.command_id = Some(command_id_for_key(caller, key));
        }
        if let Some(value) = headers.get(&CORRELATION_ID) {
            let id = text(headers, &CORRELATION_ID)?.unwrap_or_default();
            if id.is_empty() || id.len() > MAX_KEY_BYTES {
                return Err(invalid(
                    &CORRELATION_ID,
                    &format!("must be 1 to {MAX_KEY_BYTES} characters"),
                ));
            }
            meta.correlation_header = Some(value);
            meta.correlation_id =
                Some(Uuid::try_parse(id).unwrap_or_else(|_| derive_id(CORRELATION_BASE, id, 0)));
        }
        if let Some(value) = headers.get(&TRACEPARENT) {
            meta.traceparent = Some(value);
            let tracestate = headers.get(&TRACESTATE).and_then(|v| v.to_str().ok());
            meta.trace = value
                .to_str()
                .ok()
                .and_then(|s| TraceContext::from_headers(s, tracestate));
            if meta.correlation_id.is_none() {
                meta.correlation_id = meta.trace.as_ref().map(trace_id);
            }
        }
        Ok(meta)
    }

    /// The command context: the command id, the correlation id and the trace, where given.
    pub fn context(&self) -> CommandContext {
        let mut context = CommandContext::new();
        if let Some(trace) = &self.trace {
            context = context.with_trace(trace.clone());
        }
        if let Some(id) = self.command_id {
            context = context.with_command_id(id);
        }
        if let Some(id) = self.correlation_id {
            context = context.correlated_with(id);
        }
        context
    }

    /// Echoes `X-Correlation-Id` (as sent, or the correlation id used when none was sent and
    /// one is known) and `traceparent` (as sent).
    pub fn echo(&self, headers: &mut HeaderMap, used: Option<Uuid>) {
        if let Some(value) = self.correlation_header {
            headers.insert(CORRELATION_ID, value.clone());
        } else if let Some(id) = used.or(self.correlation_id) {
            let text = id.hyphenated().to_string();
            if let Ok(value) = HeaderValue::from_str(&text) {
                headers.insert(CORRELATION_ID, value);
            }
        }
        if let Some(value) = self.traceparent {
            headers.insert(TRACEPARENT, value.clone());
        }
    }
}

/// The value of `name` in a query string (`a=1&b=2`), undecoded (the parameters read here are
/// numbers and keywords).
pub(crate) fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// The read-your-writes position of a query: `X-After-Position`, else `?after=`.
pub(crate) fn after_position(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<Position>, Problem> {
    let (source, value) = match text(headers, &AFTER_POSITION)? {
        Some(value) => ("x-after-position", value),
        None => match query_param(query, "after") {
            Some(value) => ("after", value),
            None => return Ok(None),
        },
    };
    value
        .parse::<u64>()
        .map(|p| Some(Position(p)))
        .map_err(|_| {
            Problem::new(
                ProblemType::InvalidHeader,
                format!(
                    "`{source}` must be a global position (a non-negative integer), not `{value}`"
                ),
            )
            .with("header", source)
        })
}

/// A `Last-Event-ID` header as a number, if present.
pub(crate) fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    match text(headers, &LAST_EVENT_ID)? {
        None | Some("") => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| {
            invalid(
                &LAST_EVENT_ID,
                "must be an event id this feed sent (a number)",
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(HeaderName, &str)]) -> RequestMeta<'static> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        let headers: &'static HeaderMap = Box::leak(Box::new(headers));
        RequestMeta::read(headers, None).unwrap()
    }

    #[test]
    fn traceparent_gives_its_trace_id_and_joins_the_command_to_its_trace() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let meta = read(&[(TRACEPARENT, tp), (TRACESTATE, "congo=t61rcWkgMzE")]);
        assert_eq!(
            meta.correlation_id,
            Some(Uuid::from_u128(0x4bf92f3577b34da6a3ce929d0e0e4736))
        );
        let context = meta.context();
        let trace = context.trace().expect("the command joins the trace");
        assert_eq!(trace.traceparent().to_string(), tp);
        assert_eq!(trace.tracestate(), Some("congo=t61rcWkgMzE"));
        // `X-Correlation-Id` still wins for the correlation id; the trace is kept.
        let id = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
        let meta = read(&[(TRACEPARENT, tp), (CORRELATION_ID, id)]);
        assert_eq!(meta.correlation_id, Some(Uuid::try_parse(id).unwrap()));
        assert!(meta.context().trace().is_some());
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "",
        ] {
            let meta = read(&[(TRACEPARENT, bad)]);
            assert_eq!(meta.correlation_id, None, "{bad}");
            assert!(meta.context().trace().is_none(), "{bad}");
        }
    }

    #[test]
    fn keys_are_scoped_by_caller() {
        let alice = Caller::new("alice");
        let bob = Caller::new("bob");
        let a = command_id_for_key(Some(&alice), "k1");
        assert_eq!(a, command_id_for_key(Some(&alice), "k1"));
        assert_ne!(a, command_id_for_key(Some(&bob), "k1"));
        assert_ne!(a, command_id_for_key(Some(&alice), "k2"));
        assert_ne!(a, command_id_for_key(None, "k1"));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param(Some("a=1&after=7"), "after"), Some("7"));
        assert_eq!(query_param(Some("after"), "after"), Some(""));
        assert_eq!(query_param(Some("x=after"), "after"), None);
        assert_eq!(query_param(None, "after"), None);
    }
}

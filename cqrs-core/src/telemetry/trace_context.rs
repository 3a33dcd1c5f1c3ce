//! The W3C Trace Context (<https://www.w3.org/TR/trace-context/>) a command carries, so the
//! commands and events it causes (a process manager's commands, a command sent over HTTP) join
//! the trace of what caused them. No dependency: a `traceparent` is four hex fields.
//!
//! The command bus writes a command's context into each of its events' metadata under
//! [`TRACEPARENT`] and [`TRACESTATE`]; [`CommandContext::caused_by`](crate::CommandContext::caused_by)
//! and process managers read it back from the event that caused a command. Like
//! [`CAUSED_BY_EVENT`](crate::CAUSED_BY_EVENT), these keys are reserved (the bus overwrites
//! them) and are tracing, not content: a command sent again with another trace is the same
//! command.

use std::fmt;
use std::num::{NonZeroU64, NonZeroU128};
use std::str::FromStr;

use serde_json::Value;

use crate::envelope::UserMetadata;

/// Metadata key under which events record the `traceparent` of their command (reserved).
pub const TRACEPARENT: &str = "traceparent";
/// Metadata key under which events record the `tracestate` of their command, if any (reserved).
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` kept, in bytes (the specification asks carriers to propagate at
/// least 512; a longer one is dropped, never the `traceparent`).
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// A W3C `traceparent`: `00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>`.
///
/// Both ids are non-zero by construction. Parsing accepts lowercase hex only, as the
/// specification requires; a version above `00` (not `ff`) is read as `00`, ignoring any fields
/// after the four it knows; formatting always writes version `00`.
///
/// ```
/// use eventweave_core::telemetry::TraceParent;
///
/// let tp: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
/// assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(tp.sampled());
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert!("00-00000000000000000000000000000000-00f067aa0ba902b7-01".parse::<TraceParent>().is_err());
/// # Ok::<(), eventweave_core::telemetry::TraceParentError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: NonZeroU128,
    parent_id: NonZeroU64,
    flags: u8,
}

/// Why a `traceparent` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceParentError {
    /// Not four `-`-separated fields (or, at version `00`, more than four).
    Shape,
    /// The version is not two lowercase hex digits, or is `ff`.
    Version,
    /// The trace id is not 32 lowercase hex digits.
    TraceId,
    /// The trace id is all zeros.
    ZeroTraceId,
    /// The parent id is not 16 lowercase hex digits.
    ParentId,
    /// The parent id is all zeros.
    ZeroParentId,
    /// The flags are not two lowercase hex digits.
    Flags,
}

impl fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceParentError::Shape => {
                "a traceparent is `version-traceid-parentid-flags` (4 fields)"
            }
            TraceParentError::Version => "the version is not 2 lowercase hex digits, or is `ff`",
            TraceParentError::TraceId => "the trace id is not 32 lowercase hex digits",
            TraceParentError::ZeroTraceId => "the trace id is all zeros",
            TraceParentError::ParentId => "the parent id is not 16 lowercase hex digits",
            TraceParentError::ZeroParentId => "the parent id is all zeros",
            TraceParentError::Flags => "the flags are not 2 lowercase hex digits",
        })
    }
}

impl std::error::Error for TraceParentError {}

/// `s` as a number if it is exactly `len` lowercase hex digits.
fn lower_hex(s: &str, len: usize) -> Option<u128> {
    let ok = s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u128::from_str_radix(s, 16).ok()).flatten()
}

impl TraceParent {
    /// The flag bit saying the caller may have recorded the trace.
    pub const SAMPLED: u8 = 0x01;

    /// A `traceparent` from its parts.
    pub fn new(trace_id: NonZeroU128, parent_id: NonZeroU64, flags: u8) -> Self {
        TraceParent {
            trace_id,
            parent_id,
            flags,
        }
    }

    /// Parses a `traceparent` header value (surrounding spaces are not accepted: trim first).
    pub fn parse(s: &str) -> Result<Self, TraceParentError> {
        let mut parts = s.split('-');
        let (Some(version), Some(trace), Some(parent), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TraceParentError::Shape);
        };
        let version = lower_hex(version, 2).ok_or(TraceParentError::Version)?;
        if version == 0xff {
            return Err(TraceParentError::Version);
        }
        // Version 00 has exactly four fields; later versions may add fields after them.
        if version == 0 && parts.next().is_some() {
            return Err(TraceParentError::Shape);
        }
        let trace = lower_hex(trace, 32).ok_or(TraceParentError::TraceId)?;
        let parent = lower_hex(parent, 16).ok_or(TraceParentError::ParentId)?;
        let flags = lower_hex(flags, 2).ok_or(TraceParentError::Flags)?;
        let trace_id = NonZeroU128::new(trace).ok_or(TraceParentError::ZeroTraceId)?;
        let parent_id = u64::try_from(parent)
            .ok()
            .and_then(NonZeroU64::new)
            .ok_or(TraceParentError::ZeroParentId)?;
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags: flags as u8,
        })
    }

    /// The trace id.
    pub fn trace_id(&self) -> NonZeroU128 {
        self.trace_id
    }

    /// The trace id as 32 lowercase hex digits (as tracing backends show it).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The parent (span) id.
    pub fn parent_id(&self) -> NonZeroU64 {
        self.parent_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & Self::SAMPLED != 0
    }

    /// The same trace, continued from the span `parent_id`.
    pub fn with_parent_id(self, parent_id: NonZeroU64) -> Self {
        TraceParent { parent_id, ..self }
    }

    /// The same trace and parent with other flags.
    pub fn with_flags(self, flags: u8) -> Self {
        TraceParent { flags, ..self }
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceParent::parse(s)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// A `traceparent` and, optionally, the vendor-specific `tracestate` that travels with it.
///
/// Give it to a command with
/// [`CommandContext::with_trace`](crate::CommandContext::with_trace); its events then carry it
/// in their metadata ([`TRACEPARENT`], [`TRACESTATE`]), and so do the commands they cause.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceContext {
    traceparent: TraceParent,
    tracestate: Option<String>,
}

/// Whether `s` can be kept as a `tracestate`: visible ASCII and spaces, not empty, at most
/// [`MAX_TRACESTATE_BYTES`]. (Its list syntax is the vendors' business; it is carried as is.)
fn keepable_tracestate(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_TRACESTATE_BYTES && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl TraceContext {
    /// A context with no `tracestate`.
    pub fn new(traceparent: TraceParent) -> Self {
        TraceContext {
            traceparent,
            tracestate: None,
        }
    }

    /// Adds a `tracestate`; one that is empty, longer than [`MAX_TRACESTATE_BYTES`] or not
    /// visible ASCII is dropped (as the specification asks, the `traceparent` is kept).
    pub fn with_tracestate(mut self, tracestate: &str) -> Self {
        let tracestate = tracestate.trim();
        self.tracestate = keepable_tracestate(tracestate).then(|| tracestate.to_owned());
        self
    }

    /// Reads the two headers' values; `None` when the `traceparent` is invalid (a receiver
    /// then starts a new trace rather than failing the request).
    pub fn from_headers(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = TraceParent::parse(traceparent.trim()).ok()?;
        let context = TraceContext::new(traceparent);
        Some(match tracestate {
            Some(state) => context.with_tracestate(state),
            None => context,
        })
    }

    /// The context an event's metadata carries, if any (and valid).
    pub fn from_metadata(metadata: &UserMetadata) -> Option<Self> {
        let traceparent = metadata.get(TRACEPARENT)?.as_str()?;
        let tracestate = metadata.get(TRACESTATE).and_then(Value::as_str);
        Self::from_headers(traceparent, tracestate)
    }

    /// Writes this context into `metadata` under [`TRACEPARENT`] and [`TRACESTATE`].
    pub fn write_metadata(&self, metadata: &mut UserMetadata) {
        metadata.insert(TRACEPARENT, self.traceparent.to_string());
        if let Some(state) = &self.tracestate {
            metadata.insert(TRACESTATE, state.clone());
        }
    }

    /// The `traceparent`.
    pub fn traceparent(&self) -> TraceParent {
        self.traceparent
    }

    /// The `tracestate`, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The same trace and state, continued from the span `parent_id`.
    pub fn with_parent_id(mut self, parent_id: NonZeroU64) -> Self {
        self.traceparent = self.traceparent.with_parent_id(parent_id);
        self
    }

    /// The same trace, parent and state with other flags.
    pub fn with_flags(mut self, flags: u8) -> Self {
        self.traceparent = self.traceparent.with_flags(flags);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_back() {
        let tp = TraceParent::parse(GOOD).unwrap();
        assert_eq!(tp.trace_id().get(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tp.parent_id().get(), 0x00f067aa0ba902b7);
        assert_eq!(tp.flags(), 1);
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), GOOD);
        let unsampled = TraceParent::parse(&GOOD.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
        let child = tp.with_parent_id(NonZeroU64::new(0xabc).unwrap());
        assert_eq!(
            child.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"
        );
    }

    #[test]
    fn a_later_version_is_read_as_00() {
        let tp = TraceParent::parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next",
        )
        .unwrap();
        assert_eq!(tp.to_string(), GOOD);
    }

    #[test]
    fn refuses_bad_inputs() {
        use TraceParentError::*;
        for (bad, why) in [
            ("", Shape),
            ("00", Shape),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                Shape,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
                ParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ZeroParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                Flags,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0X",
                Flags,
            ),
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
        ] {
            assert_eq!(TraceParent::parse(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn context_round_trips_through_metadata() {
        let context = TraceContext::from_headers(&format!(" {GOOD} "), Some("vendor=abc,x=1"))
            .expect("valid");
        assert_eq!(context.tracestate(), Some("vendor=abc,x=1"));
        let mut metadata = UserMetadata::empty();
        context.write_metadata(&mut metadata);
        assert_eq!(metadata.get(TRACEPARENT).unwrap(), GOOD);
        assert_eq!(TraceContext::from_metadata(&metadata), Some(context));
        assert_eq!(TraceContext::from_metadata(&UserMetadata::empty()), None);
    }

    #[test]
    fn a_bad_tracestate_is_dropped_and_a_bad_traceparent_drops_all() {
        let long = "a=".to_owned() + &"b".repeat(MAX_TRACESTATE_BYTES);
        for bad in ["", "  ", "k=\u{e9}", "k=\tv", long.as_str()] {
            let context = TraceContext::from_headers(GOOD, Some(bad)).unwrap();
            assert_eq!(context.tracestate(), None, "{bad:?}");
        }
        assert_eq!(TraceContext::from_headers("00-nope", Some("a=b")), None);
    }
}

//! The OpenTelemetry bridge (feature `opentelemetry`): with a `tracing-opentelemetry` layer
//! installed, the spans of commands and process-manager commands join the W3C trace they carry,
//! and the trace context written into events is that of the span that recorded them.
//!
//! # What joins what
//!
//! - **A command carrying a `traceparent`** ([`CommandContext::with_trace`](crate::CommandContext::with_trace),
//!   an HTTP request's header, the event that caused it): its `command` span gets the carried
//!   context as its OpenTelemetry parent, a remote one, unless the span it was opened in (its
//!   `tracing` parent) is already in that trace. Then that nearer parent is kept: a process
//!   manager's `command` span stays inside its `process.command` span, and a command sent from
//!   an HTTP handler whose own span already joined the request's `traceparent` stays under it.
//! - **A command without one** is a child of the span it was opened in, or starts a new trace
//!   (OpenTelemetry's own choice of ids), as any span does.
//! - **Its events** carry the `command` span's own context (its trace id, its span id as the
//!   parent id, its sampling flag, the carried `tracestate`), so whatever they cause (a process
//!   manager's `process.command` span, and through it the next command) is a child of the
//!   command that recorded them. A command without a carried trace thus still hands one on.
//! - **A compensation** (a process manager answering a rejected command) carries the context of
//!   the rejected command's `process.command` span: the refund of a refused credit is a child
//!   of the credit's attempt.
//!
//! Without a layer (or with the command span disabled by a filter) nothing changes: the carried
//! context passes through as it came, exactly as without the feature. The span is given its
//! parent right after it is made, before it is first entered, as `tracing-opentelemetry` needs.

use std::borrow::Cow;
use std::num::{NonZeroU64, NonZeroU128};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::trace_context::{TraceContext, TraceParent};

/// The OpenTelemetry context an OpenTelemetry layer gave `span`, if any.
fn span_context(span: &tracing::Span) -> Option<SpanContext> {
    if span.is_none() || span.is_disabled() {
        return None;
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    own.is_valid().then_some(own)
}

/// The carried context as a remote OpenTelemetry parent.
fn remote(trace: &TraceContext) -> SpanContext {
    let traceparent = trace.traceparent();
    let state = trace
        .tracestate()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    SpanContext::new(
        TraceId::from_bytes(traceparent.trace_id().get().to_be_bytes()),
        SpanId::from_bytes(traceparent.parent_id().get().to_be_bytes()),
        TraceFlags::new(traceparent.flags()),
        true,
        state,
    )
}

/// Gives the just-made `span` the carried trace as its parent, unless its `tracing` parent (the
/// current span) is in that trace already.
pub(crate) fn join(span: &tracing::Span, trace: Option<&TraceContext>) {
    let Some(trace) = trace else { return };
    if span.is_none() || span.is_disabled() {
        return;
    }
    let parent = remote(trace);
    let current = span_context(&tracing::Span::current());
    if current.is_some_and(|c| c.trace_id() == parent.trace_id()) {
        return;
    }
    // Refused only once the span has started, which it has not: it was made just now.
    let _ = span.set_parent(Context::new().with_remote_span_context(parent));
}

/// The context that what `span` causes should carry: the span's own, when OpenTelemetry gave
/// it one in the carried trace (or nothing was carried), with the carried `tracestate`;
/// otherwise the carried one.
pub(crate) fn handed_on<'a>(
    span: &tracing::Span,
    carried: Option<&'a TraceContext>,
) -> Option<Cow<'a, TraceContext>> {
    let Some(own) = span_context(span) else {
        return carried.map(Cow::Borrowed);
    };
    let (Some(trace_id), Some(span_id)) = (
        NonZeroU128::new(u128::from_be_bytes(own.trace_id().to_bytes())),
        NonZeroU64::new(u64::from_be_bytes(own.span_id().to_bytes())),
    ) else {
        return carried.map(Cow::Borrowed);
    };
    let flags = own.trace_flags().to_u8();
    match carried {
        Some(carried) if carried.traceparent().trace_id() != trace_id => {
            Some(Cow::Borrowed(carried))
        }
        Some(carried) => Some(Cow::Owned(
            carried.clone().with_parent_id(span_id).with_flags(flags),
        )),
        None => {
            let context = TraceContext::new(TraceParent::new(trace_id, span_id, flags));
            let state = own.trace_state().header();
            Some(Cow::Owned(if state.is_empty() {
                context
            } else {
                context.with_tracestate(&state)
            }))
        }
    }
}

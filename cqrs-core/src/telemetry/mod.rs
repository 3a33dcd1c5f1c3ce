//! What the runtime tells an operator: tracing spans and events (feature `tracing`, on by
//! default) and metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`, off by default). This module holds every span, event and metric the framework
//! emits, so the call sites elsewhere stay one line each, and this page is their one reference.
//!
//! Costs. With no subscriber installed (and the `metrics` feature off) a command or an append
//! costs one relaxed atomic load (`tracing`'s global maximum level is `OFF`) and carries a null
//! pointer: no span is built, nothing is formatted, allocated or timed (BENCHMARKS.md, "Tracing
//! overhead"). With a subscriber, a command keeps a small boxed record with its span; fields
//! are recorded only on enabled spans, payload sizes and per-event `trace` lines are computed
//! only when wanted. With the `metrics` feature, that record (with a clock reading) is kept for
//! every command and append, with or without a recorder installed.
//!
//! # Tracing
//!
//! Install any subscriber (`tracing-subscriber`'s `fmt`, OpenTelemetry, …). Targets start with
//! `eventweave::` (`RUST_LOG=eventweave=debug` with an `EnvFilter`). Levels: `info` and above
//! are meant for production (failed commands, parking, lease changes, rebuilds, outages);
//! `debug` explains one command (its span, the load, the append, each retry); `trace` adds one
//! event per appended or projected event.
//!
//! | span or event | target | level | fields |
//! |---|---|---|---|
//! | span `command` (one per `execute`, around everything it does) | `eventweave::command` | debug | `command`, `aggregate`, `command_id`, `correlation_id`, `causation_id` (the event that caused it, if any), `trace_id` (the W3C trace it joined, 32 hex digits, if any; see [Traces across processes](#traces-across-processes)), `stream`, `expected_version` (the version the decision was made on), `new_version`, `events` (appended), `attempts`, `outcome` (see `outcome` below) |
//! | span `load` (an aggregate replayed from the store) | `eventweave::command` | debug | `aggregate`, `stream`, `snapshot_version` (when a snapshot was used), `events` (read and applied), `version` |
//! | event "conflict: deciding again on fresh state" | `eventweave::command` | debug | `stream`, `expected_version`, `actual_version`, `attempts` |
//! | event "conflict: no retries left" | `eventweave::command` | debug | the same (the command then fails with `outcome = "conflict"`) |
//! | event "command answered by its earlier run" (a command id seen before) | `eventweave::command` | debug | `command_id` |
//! | event "command failed" | `eventweave::command` | info (rejections, conflicts, not found, already exists, command id reused), warn (store, encoding, decoding, missing service), error (panics) | `command`, `aggregate`, `outcome`, `error` |
//! | span `append` (in every store of the workspace) | `eventweave::store` | debug | `store` (`memory`, `sqlite`, `postgres`), `stream`, `expected`, `events`, `bytes` (payloads), `first_position`, `outcome` |
//! | event "appended" (one per event) | `eventweave::store` | trace | `stream`, `version`, `position`, `event_name`, `event_id` |
//! | event "append failed" (the store could not say yes or no) | `eventweave::store` | warn | `store`, `stream`, `outcome`, `error` |
//! | span `projection.batch` (one `ProjectionSink::apply`) | `eventweave::projection` | debug | `projection`, `from`, `through`, `events`, `duration_ms`, `outcome` |
//! | event "projected" (one per event handed to the sink) | `eventweave::projection` | trace | `projection`, `position`, `stream`, `version`, `event_name` |
//! | event "projection caught up" | `eventweave::projection` | info | `projection`, `position` |
//! | event "lease acquired" / "lease lost" | `eventweave::projection` | info | `projection` |
//! | event "lease held by another process, standing by" | `eventweave::projection` | info (once per stand-by) | `projection` |
//! | event "event failed, retrying" | `eventweave::projection` | info | `projection`, `position`, `attempts`, `error` |
//! | event "event parked" | `eventweave::projection` | warn | `projection`, `position`, `stream`, `version`, `error` |
//! | event "projection stopped on a failing event" | `eventweave::projection` | error | `projection`, `position`, `attempts`, `error` |
//! | event "storage unavailable, backing off" | `eventweave::projection` | warn (first failure of an outage), debug (the next ones) | `projection`, `failures`, `error` |
//! | event "storage available again" | `eventweave::projection` | info | `projection`, `failures` |
//! | event "rebuild started" / "rebuild finished" / "rebuild failed" | `eventweave::projection` | info (failed: warn) | `projection`, `target` / `position` / `error` |
//! | span `process.command` (a command a process manager issues) | `eventweave::process` | debug | `process`, `command`, `command_id`, `correlation_id`, `outcome` |
//! | event "command rejected, compensating" | `eventweave::process` | info | `process`, `command`, `command_id`, `error`, `issued` (compensating commands) |
//!
//! `outcome` (spans and the `outcome` label below): `ok`, `rejected`, `not_found`,
//! `already_exists`, `conflict`, `missing_service`, `panicked`, `encode_error`, `decode_error`,
//! `escapes_query`, `command_id_reused`, `store_error` for commands; `ok`, `conflict`, `duplicate_event_id`,
//! `idempotency_conflict`, `invalid_input`, `invalid_query`, `condition_failed`, `unsupported`,
//! `decode_error`, `unavailable`, `outcome_unknown`, `backend_error` for appends; `ok`, `failed`, `store_error` for batches; `ok`, `rejected` for
//! process-manager commands.
//!
//! # Traces across processes
//!
//! A command can carry a W3C trace context ([`TraceContext`]: a [`TraceParent`] and an
//! optional `tracestate`), given with
//! [`CommandContext::with_trace`](crate::CommandContext::with_trace) (`eventweave-axum` gives
//! it the request's `traceparent` header). The command bus writes it into the metadata of every
//! event the command records, under the reserved keys [`TRACEPARENT`] and [`TRACESTATE`]
//! (the bus overwrites an application's entry under those names; like
//! [`CAUSED_BY_EVENT`](crate::CAUSED_BY_EVENT) they are tracing, not content, so the
//! idempotency check of a resent command ignores them). A command caused by an event joins its
//! trace: [`CommandContext::caused_by`](crate::CommandContext::caused_by) reads it back, and a
//! process manager records it with each command, compensation and deadline it issues, so they
//! run (after a restart too) and their timeout events are written in the trace of the event that
//! caused them. With the `tracing` feature the `command` span records the trace id as
//! `trace_id` (32 hex digits), so a subscriber can correlate spans of several processes. With
//! the `opentelemetry` feature (off by default) and a `tracing-opentelemetry` layer installed,
//! the spans join the carried trace as OpenTelemetry parents and events carry their command
//! span's own context (`otel.rs` says who is whose parent); without it the parent span id
//! stays the caller's.
//!
//! # Metrics
//!
//! With the `metrics` feature, the runtime records through the `metrics` facade, so any
//! exporter works (Prometheus, StatsD, OpenTelemetry, …). Without a recorder installed the
//! facade does nothing. [`describe_metrics`] registers the descriptions and units below with the
//! installed recorder. Every label value is a name fixed in the code (aggregate, command,
//! projection, process manager, store): no label grows with the data.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `eventweave_commands_total` | counter | `aggregate`, `command`, `outcome` | commands run by `Cqrs::execute`/`execute_with` (including untyped dispatch and process managers' commands), by outcome |
//! | `eventweave_command_conflicts_total` | counter | `aggregate` | appends of a command refused because the stream moved on (each attempt counts) |
//! | `eventweave_command_retries_total` | counter | `aggregate` | commands decided again after a conflict |
//! | `eventweave_command_duration_seconds` | histogram | `aggregate`, `command` | time from the start of a command to its outcome (any outcome) |
//! | `eventweave_load_duration_seconds` | histogram | `aggregate` | time to replay an aggregate from the store (snapshot and events; cache hits load nothing) |
//! | `eventweave_events_appended_total` | counter | `store` | events appended (by commands, process managers and direct `append` calls) |
//! | `eventweave_append_duration_seconds` | histogram | `store` | time of one `append`, whatever its outcome (SQLite: including the wait for the write turn) |
//! | `eventweave_events_projected_total` | counter | `projection` | events a projection runner handed to its sink and the sink committed (durable projections and process managers) |
//! | `eventweave_events_parked_total` | counter | `projection` | events parked after their retries (`OnFailure::Park`) |
//! | `eventweave_projection_batch_duration_seconds` | histogram | `projection` | time of one `ProjectionSink::apply` (a batch), whatever its outcome |
//! | `eventweave_projection_lag_events` | gauge | `projection` | positions between the checkpoint and the store's head as the runner last knew it (the head read at the start of a catch-up or rebuild, or the end of its last read that came back short); 0 once a read finds nothing new at the head |
//! | `eventweave_projection_lag_seconds` | gauge | `projection` | after each batch: the time since the last event of the batch was recorded; 0 once a read finds nothing new at the head |
//! | `eventweave_process_commands_total` | counter | `process`, `outcome` | commands issued by a process manager, `ok` or `rejected` (a rejection runs its compensation) |
//!
//! In-memory projections (those inside `Cqrs`) are not measured: they run inline with each
//! command, whose metrics cover them.

use std::borrow::Cow;
#[cfg(feature = "metrics")]
use std::time::Instant;

use crate::envelope::{ExpectedVersion, NewEvent, RecordedEvent};
use crate::error::{CommandError, StoreError};
use crate::ids::{StreamId, Uuid};

#[cfg(feature = "tracing")]
use tracing::field::{Empty, display};

#[cfg(feature = "opentelemetry")]
mod otel;
mod runner;
mod trace_context;

pub(crate) use runner::{ProcessCommand, RunnerTelemetry};
pub use trace_context::{
    MAX_TRACESTATE_BYTES, TRACEPARENT, TRACESTATE, TraceContext, TraceParent, TraceParentError,
};

/// Target of command, load and conflict spans and events.
#[cfg(feature = "tracing")]
const COMMAND: &str = "eventweave::command";
/// Target of append spans and events.
#[cfg(feature = "tracing")]
const STORE: &str = "eventweave::store";
/// Target of projection runner spans and events.
#[cfg(feature = "tracing")]
const PROJECTION: &str = "eventweave::projection";
/// Target of process-manager spans and events.
#[cfg(feature = "tracing")]
const PROCESS: &str = "eventweave::process";

/// Counter: commands by `aggregate`, `command` and `outcome`.
pub const COMMANDS_TOTAL: &str = "eventweave_commands_total";
/// Counter: command appends refused by a conflict, by `aggregate`.
pub const COMMAND_CONFLICTS_TOTAL: &str = "eventweave_command_conflicts_total";
/// Counter: commands decided again after a conflict, by `aggregate`.
pub const COMMAND_RETRIES_TOTAL: &str = "eventweave_command_retries_total";
/// Histogram (seconds): command latency, by `aggregate` and `command`.
pub const COMMAND_DURATION_SECONDS: &str = "eventweave_command_duration_seconds";
/// Histogram (seconds): aggregate load latency, by `aggregate`.
pub const LOAD_DURATION_SECONDS: &str = "eventweave_load_duration_seconds";
/// Counter: events appended, by `store`.
pub const EVENTS_APPENDED_TOTAL: &str = "eventweave_events_appended_total";
/// Histogram (seconds): append latency, by `store`.
pub const APPEND_DURATION_SECONDS: &str = "eventweave_append_duration_seconds";
/// Counter: events handled by a projection runner's sink, by `projection`.
pub const EVENTS_PROJECTED_TOTAL: &str = "eventweave_events_projected_total";
/// Counter: events parked, by `projection`.
pub const EVENTS_PARKED_TOTAL: &str = "eventweave_events_parked_total";
/// Histogram (seconds): projection batch duration, by `projection`.
pub const PROJECTION_BATCH_DURATION_SECONDS: &str = "eventweave_projection_batch_duration_seconds";
/// Gauge: projection lag in positions, by `projection`.
pub const PROJECTION_LAG_EVENTS: &str = "eventweave_projection_lag_events";
/// Gauge: projection lag in seconds, by `projection`.
pub const PROJECTION_LAG_SECONDS: &str = "eventweave_projection_lag_seconds";
/// Counter: process-manager commands by `process` and `outcome`.
pub const PROCESS_COMMANDS_TOTAL: &str = "eventweave_process_commands_total";

/// Registers the description and unit of every metric above with the installed recorder (call
/// it once, after installing an exporter, so that its output explains each metric). Does
/// nothing without the `metrics` feature.
pub fn describe_metrics() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_counter!(COMMANDS_TOTAL, Unit::Count, "Commands run, by outcome");
        describe_counter!(
            COMMAND_CONFLICTS_TOTAL,
            Unit::Count,
            "Command appends refused because the stream moved on"
        );
        describe_counter!(
            COMMAND_RETRIES_TOTAL,
            Unit::Count,
            "Commands decided again after a conflict"
        );
        describe_histogram!(
            COMMAND_DURATION_SECONDS,
            Unit::Seconds,
            "Time from the start of a command to its outcome"
        );
        describe_histogram!(
            LOAD_DURATION_SECONDS,
            Unit::Seconds,
            "Time to replay an aggregate from the store"
        );
        describe_counter!(EVENTS_APPENDED_TOTAL, Unit::Count, "Events appended");
        describe_histogram!(APPEND_DURATION_SECONDS, Unit::Seconds, "Time of one append");
        describe_counter!(
            EVENTS_PROJECTED_TOTAL,
            Unit::Count,
            "Events handled by a projection runner"
        );
        describe_counter!(EVENTS_PARKED_TOTAL, Unit::Count, "Events parked");
        describe_histogram!(
            PROJECTION_BATCH_DURATION_SECONDS,
            Unit::Seconds,
            "Time of one projection batch"
        );
        describe_gauge!(
            PROJECTION_LAG_EVENTS,
            Unit::Count,
            "Positions between a projection's checkpoint and the store's head"
        );
        describe_gauge!(
            PROJECTION_LAG_SECONDS,
            Unit::Seconds,
            "Age of the last event a projection applied"
        );
        describe_counter!(
            PROCESS_COMMANDS_TOTAL,
            Unit::Count,
            "Commands issued by process managers, by outcome"
        );
    }
}

/// A span, or nothing without the `tracing` feature.
#[cfg(feature = "tracing")]
type SpanOrNothing = tracing::Span;
#[cfg(not(feature = "tracing"))]
type SpanOrNothing = NoSpan;

/// The span without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
#[derive(Clone)]
pub(crate) struct NoSpan;

/// Runs `future` inside `span` (each poll enters it), or as it is without the feature.
#[cfg(feature = "tracing")]
#[inline]
fn within<F: Future>(span: SpanOrNothing, future: F) -> impl Future<Output = F::Output> + use<F> {
    tracing::Instrument::instrument(future, span)
}
#[cfg(not(feature = "tracing"))]
#[inline]
fn within<F: Future>(_: SpanOrNothing, future: F) -> impl Future<Output = F::Output> + use<F> {
    future
}

/// Whether fields are worth recording on `span` (false for a disabled span and without the
/// feature): recording on a disabled span still looks the field's name up.
#[cfg(feature = "tracing")]
#[inline]
fn live(span: &SpanOrNothing) -> bool {
    !span.is_disabled()
}

/// Whether any subscriber may want anything at all (its maximum level is above `OFF`): one
/// relaxed atomic load. Without a subscriber the hot paths skip even building disabled spans.
#[cfg(feature = "tracing")]
#[inline]
fn tracing_on() -> bool {
    tracing::level_enabled!(tracing::Level::ERROR)
}

/// Whether a command or an append has any telemetry to keep: a subscriber may listen, or
/// metrics are compiled in.
#[inline]
fn listening() -> bool {
    #[cfg(feature = "tracing")]
    if tracing_on() {
        return true;
    }
    cfg!(feature = "metrics")
}

/// A clock reading, taken only where something will use it.
#[cfg(feature = "metrics")]
type Started = Instant;
#[cfg(not(feature = "metrics"))]
type Started = ();

#[cfg(feature = "metrics")]
#[inline]
fn now() -> Started {
    Instant::now()
}
#[cfg(not(feature = "metrics"))]
#[inline]
fn now() -> Started {}

/// A trace id as 32 lowercase hex digits, written only when a span records it.
#[cfg(feature = "tracing")]
struct TraceIdHex(std::num::NonZeroU128);

#[cfg(feature = "tracing")]
impl std::fmt::Display for TraceIdHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// The outcome label of a command's result.
#[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
pub(crate) fn command_outcome<T, E>(result: &Result<T, CommandError<E>>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(CommandError::Rejected(_)) => "rejected",
        Err(CommandError::NotFound { .. }) => "not_found",
        Err(CommandError::AlreadyExists { .. }) => "already_exists",
        Err(CommandError::Conflict { .. }) => "conflict",
        Err(CommandError::MissingService { .. }) => "missing_service",
        Err(CommandError::Panicked { .. }) => "panicked",
        Err(CommandError::Encode { .. }) => "encode_error",
        Err(CommandError::Decode(_)) => "decode_error",
        Err(CommandError::EscapesQuery { .. }) => "escapes_query",
        Err(CommandError::CommandIdReused { .. }) => "command_id_reused",
        Err(CommandError::Store(_)) => "store_error",
    }
}

/// The trace context the events of the running command carry: the one it was given, or with
/// the `opentelemetry` feature and a layer, its `command` span's own (`otel.rs`).
#[inline]
pub(crate) fn events_trace(carried: Option<&TraceContext>) -> Option<Cow<'_, TraceContext>> {
    // With nothing listening there is no span to ask (the one atomic load of `listening`).
    #[cfg(feature = "opentelemetry")]
    if listening() {
        return otel::handed_on(&tracing::Span::current(), carried);
    }
    carried.map(Cow::Borrowed)
}

/// The outcome label of an append's result.
#[cfg(feature = "tracing")]
fn append_outcome<T>(result: &Result<T, StoreError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StoreError::Conflict { .. }) => "conflict",
        Err(StoreError::DuplicateEventId { .. }) => "duplicate_event_id",
        Err(StoreError::IdempotencyConflict { .. }) => "idempotency_conflict",
        Err(StoreError::InvalidInput(_)) => "invalid_input",
        Err(StoreError::InvalidQuery(_)) => "invalid_query",
        Err(StoreError::ConditionFailed { .. }) => "condition_failed",
        Err(StoreError::Unsupported { .. }) => "unsupported",
        Err(StoreError::Decode(_)) => "decode_error",
        Err(StoreError::Unavailable(_)) => "unavailable",
        Err(StoreError::OutcomeUnknown(_)) => "outcome_unknown",
        Err(StoreError::Backend(_)) => "backend_error",
    }
}

/// The telemetry of one command, kept by its [`CommandFuture`](crate::CommandFuture): the span
/// (entered on each poll, so what the command calls nests under it) and, when the command
/// ends, its outcome and metrics. Built where the command is created, so the command's own
/// future is not wrapped in another (each wrapper layer moved the whole state machine).
pub(crate) struct CommandTelemetry {
    #[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
    aggregate: &'static str,
    #[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
    command: &'static str,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    span: SpanOrNothing,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    started: Started,
}

impl CommandTelemetry {
    /// Opens the command's span; `None` when nothing listens (no subscriber wants anything and
    /// metrics are not compiled in), so that a command then carries one `None` and no span.
    /// (The command future boxes it: a moved future stays small.)
    #[inline(always)]
    pub(crate) fn start<E: std::fmt::Display>(
        aggregate: &'static str,
        command: &'static str,
        command_id: Uuid,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
        trace: Option<&TraceContext>,
    ) -> Option<Box<Traced<E>>> {
        if !listening() {
            return None;
        }
        Some(Self::boxed(
            aggregate,
            command,
            command_id,
            correlation_id,
            causation_id,
            trace,
        ))
    }

    #[inline(never)]
    fn boxed<E: std::fmt::Display>(
        aggregate: &'static str,
        command: &'static str,
        command_id: Uuid,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
        trace: Option<&TraceContext>,
    ) -> Box<Traced<E>> {
        let telemetry = Self::open(
            aggregate,
            command,
            command_id,
            correlation_id,
            causation_id,
            trace,
        );
        Box::new((telemetry, Self::finish::<E>))
    }

    #[inline(never)]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn open(
        aggregate: &'static str,
        command: &'static str,
        command_id: Uuid,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
        trace: Option<&TraceContext>,
    ) -> Self {
        #[cfg(feature = "tracing")]
        let span = tracing::debug_span!(
            target: COMMAND,
            "command",
            command,
            aggregate,
            command_id = %command_id,
            correlation_id = %correlation_id,
            causation_id = causation_id.map(display),
            trace_id = trace.map(|t| display(TraceIdHex(t.traceparent().trace_id()))),
            stream = Empty,
            expected_version = Empty,
            new_version = Empty,
            events = Empty,
            attempts = Empty,
            outcome = Empty,
        );
        #[cfg(not(feature = "tracing"))]
        let span = NoSpan;
        #[cfg(feature = "opentelemetry")]
        otel::join(&span, trace);
        CommandTelemetry {
            aggregate,
            command,
            span,
            started: now(),
        }
    }

    /// Enters the span for one poll of the command (a no-op when it is disabled).
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn enter(&self) -> tracing::span::Entered<'_> {
        self.span.enter()
    }
    #[cfg(not(feature = "tracing"))]
    #[inline]
    pub(crate) fn enter(&self) -> NotEntered {
        NotEntered
    }

    /// The command ended: records its outcome (and on failure, one event saying why).
    #[inline]
    pub(crate) fn finish<E: std::fmt::Display>(
        &self,
        result: &Result<crate::CommandOutcome, CommandError<E>>,
    ) {
        #[cfg(feature = "tracing")]
        {
            if live(&self.span) {
                self.record_outcome(result);
            }
            if let Err(error) = result {
                self.failed(command_outcome(result), error);
            }
        }
        #[cfg(feature = "metrics")]
        {
            let outcome = command_outcome(result);
            metrics::counter!(COMMANDS_TOTAL, "aggregate" => self.aggregate,
                "command" => self.command, "outcome" => outcome)
            .increment(1);
            metrics::histogram!(COMMAND_DURATION_SECONDS, "aggregate" => self.aggregate,
                "command" => self.command)
            .record(self.started.elapsed().as_secs_f64());
        }
        #[cfg(not(any(feature = "tracing", feature = "metrics")))]
        let _ = result;
    }

    #[cfg(feature = "tracing")]
    #[inline(never)]
    fn record_outcome<E>(&self, result: &Result<crate::CommandOutcome, CommandError<E>>) {
        self.span.record("outcome", command_outcome(result));
        if let Ok(done) = result {
            self.span.record("attempts", done.attempts);
            self.span.record("new_version", done.version);
            self.span.record("events", done.events.len());
        }
    }

    /// The event of a failed command, inside its span (or the caller's, when it is disabled).
    #[cfg(feature = "tracing")]
    #[cold]
    #[inline(never)]
    fn failed<E: std::fmt::Display>(&self, outcome: &'static str, error: &CommandError<E>) {
        let _inside = self.span.enter();
        let (command, aggregate) = (self.command, self.aggregate);
        match error {
            CommandError::Panicked { .. } => tracing::error!(target: COMMAND, command,
                aggregate, outcome, error = %error, "command failed"),
            CommandError::MissingService { .. }
            | CommandError::Encode { .. }
            | CommandError::Decode(_)
            | CommandError::EscapesQuery { .. }
            | CommandError::Store(_) => tracing::warn!(target: COMMAND, command, aggregate,
                outcome, error = %error, "command failed"),
            _ => tracing::info!(target: COMMAND, command, aggregate, outcome, error = %error,
                "command failed"),
        }
    }
}

/// Records a command's outcome in its telemetry (`CommandTelemetry::finish` for one error
/// type, taken where the handler's bounds are known).
pub(crate) type Finish<E> = fn(&CommandTelemetry, &Result<crate::CommandOutcome, CommandError<E>>);

/// A command's telemetry with the function that records its outcome.
pub(crate) type Traced<E> = (CommandTelemetry, Finish<E>);

/// What `CommandTelemetry::enter` returns without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
pub(crate) struct NotEntered;

/// What the command's own code records on its span. The span is found as the current one
/// (the command future enters it on each poll), so the command's state machine carries
/// nothing for it; with nothing listening each call is one atomic load.
pub(crate) struct CommandSpan;

impl CommandSpan {
    /// The current span if it is an enabled command span.
    #[cfg(feature = "tracing")]
    #[inline(never)]
    fn current() -> Option<tracing::Span> {
        let span = tracing::Span::current();
        let meta = span.metadata()?;
        (meta.name() == "command" && meta.target() == COMMAND && live(&span)).then_some(span)
    }

    /// An attempt decides on `stream` at `version`.
    #[inline(always)]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn deciding(attempt: u32, stream: &StreamId, version: u64) {
        #[cfg(feature = "tracing")]
        if tracing_on()
            && let Some(span) = Self::current()
        {
            if attempt == 1 {
                span.record("stream", display(stream));
            }
            span.record("attempts", attempt);
            span.record("expected_version", version);
        }
    }

    /// The append of a command of `aggregate` met a newer stream version; `retrying` when the
    /// command is decided again.
    #[cold]
    #[cfg_attr(
        not(all(feature = "tracing", feature = "metrics")),
        allow(unused_variables)
    )]
    pub(crate) fn conflict(
        aggregate: &'static str,
        stream: &StreamId,
        expected: u64,
        actual: u64,
        attempts: u32,
        retrying: bool,
    ) {
        #[cfg(feature = "tracing")]
        if retrying {
            tracing::debug!(target: COMMAND, stream = %stream, expected_version = expected,
                actual_version = actual, attempts, "conflict: deciding again on fresh state");
        } else {
            tracing::debug!(target: COMMAND, stream = %stream, expected_version = expected,
                actual_version = actual, attempts, "conflict: no retries left");
        }
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(COMMAND_CONFLICTS_TOTAL, "aggregate" => aggregate).increment(1);
            if retrying {
                metrics::counter!(COMMAND_RETRIES_TOTAL, "aggregate" => aggregate).increment(1);
            }
        }
    }

    /// The command was answered from an earlier run of its command id.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn earlier_run(command_id: Uuid) {
        #[cfg(feature = "tracing")]
        tracing::debug!(target: COMMAND, command_id = %command_id,
            "command answered by its earlier run");
    }
}

/// The telemetry of one aggregate load.
pub(crate) struct LoadTelemetry {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    aggregate: &'static str,
    span: SpanOrNothing,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    started: Started,
}

impl LoadTelemetry {
    /// Opens the load's span.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn start(aggregate: &'static str, stream: &StreamId) -> Self {
        #[cfg(feature = "tracing")]
        let span = tracing::debug_span!(target: COMMAND, "load", aggregate, stream = %stream,
            snapshot_version = Empty, events = Empty, version = Empty);
        #[cfg(not(feature = "tracing"))]
        let span = NoSpan;
        LoadTelemetry {
            aggregate,
            span,
            started: now(),
        }
    }

    /// Runs the load inside its span.
    pub(crate) fn instrument<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        within(self.span.clone(), future)
    }

    /// The replay starts from a snapshot at `version`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn snapshot_used(&self, version: u64) {
        #[cfg(feature = "tracing")]
        if live(&self.span) {
            self.span.record("snapshot_version", version);
        }
    }

    /// The aggregate is at `version` after applying `events` read from the store.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn loaded(&self, events: u64, version: u64) {
        #[cfg(feature = "tracing")]
        if live(&self.span) {
            self.span.record("events", events);
            self.span.record("version", version);
        }
        #[cfg(feature = "metrics")]
        metrics::histogram!(LOAD_DURATION_SECONDS, "aggregate" => self.aggregate)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// The telemetry of one append, for [`EventStore`](crate::EventStore) implementations: the
/// `append` span and the append metrics of the tables above. Every store of the workspace uses
/// it; a third-party store calls it the same way:
///
/// ```
/// # use eventweave_core::{ExpectedVersion, NewEvent, RecordedEvent, StoreError, StreamId};
/// # use eventweave_core::telemetry::AppendTelemetry;
/// # async fn write(_: &StreamId, _: Vec<NewEvent>) -> Result<Vec<RecordedEvent>, StoreError> { Ok(vec![]) }
/// async fn append(
///     stream: &StreamId,
///     expected: ExpectedVersion,
///     events: Vec<NewEvent>,
/// ) -> Result<Vec<RecordedEvent>, StoreError> {
///     let telemetry = AppendTelemetry::start("my-store", stream, expected, &events);
///     let result = telemetry.instrument(write(stream, events)).await;
///     telemetry.finish(&result);
///     result
/// }
/// ```
#[must_use = "`finish` records the outcome"]
pub struct AppendTelemetry {
    /// `None` when nothing listens: an append then carries one null pointer.
    inner: Option<Box<Append>>,
}

/// The telemetry of one append in flight.
struct Append {
    #[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
    store: &'static str,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    span: SpanOrNothing,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    started: Started,
}

impl std::fmt::Debug for AppendTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendTelemetry")
            .field("store", &self.inner.as_ref().map(|a| a.store))
            .finish_non_exhaustive()
    }
}

impl AppendTelemetry {
    /// Opens the span of an append of `events` to `stream` by the store called `store`.
    #[inline(always)]
    pub fn start(
        store: &'static str,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Self {
        AppendTelemetry {
            inner: listening().then(|| Append::open(store, stream, expected, events)),
        }
    }

    /// Runs the append inside its span.
    #[inline]
    pub fn instrument<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        #[cfg(feature = "tracing")]
        let span = self
            .inner
            .as_ref()
            .map_or_else(tracing::Span::none, |a| a.span.clone());
        #[cfg(not(feature = "tracing"))]
        let span = NoSpan;
        within(span, future)
    }

    /// Records the append's outcome (and, at `trace`, each recorded event).
    #[inline(always)]
    pub fn finish(self, result: &Result<Vec<RecordedEvent>, StoreError>) {
        if let Some(append) = self.inner {
            append.finish(result);
        }
    }
}

impl Append {
    #[inline(never)]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn open(
        store: &'static str,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Box<Append> {
        #[cfg(feature = "tracing")]
        let span = {
            let span = tracing::debug_span!(target: STORE, "append", store, stream = %stream,
                expected = %expected, events = events.len(), bytes = Empty,
                first_position = Empty, outcome = Empty);
            if live(&span) {
                let bytes: usize = events.iter().map(|e| e.payload.len()).sum();
                span.record("bytes", bytes);
            }
            span
        };
        #[cfg(not(feature = "tracing"))]
        let span = NoSpan;
        Box::new(Append {
            store,
            span,
            started: now(),
        })
    }

    #[inline(never)]
    #[cfg_attr(
        not(any(feature = "tracing", feature = "metrics")),
        allow(unused_variables)
    )]
    fn finish(&self, result: &Result<Vec<RecordedEvent>, StoreError>) {
        // Only an enabled span, a failure or `trace` events have anything to say.
        #[cfg(feature = "tracing")]
        if live(&self.span)
            || result.is_err()
            || tracing::enabled!(target: STORE, tracing::Level::TRACE)
        {
            self.traced(result);
        }
        #[cfg(feature = "metrics")]
        {
            if let Ok(recorded) = result {
                metrics::counter!(EVENTS_APPENDED_TOTAL, "store" => self.store)
                    .increment(recorded.len() as u64);
            }
            metrics::histogram!(APPEND_DURATION_SECONDS, "store" => self.store)
                .record(self.started.elapsed().as_secs_f64());
        }
    }

    #[cfg(feature = "tracing")]
    fn traced(&self, result: &Result<Vec<RecordedEvent>, StoreError>) {
        if live(&self.span) {
            self.span.record("outcome", append_outcome(result));
            if let Ok(recorded) = result
                && let Some(first) = recorded.first()
            {
                self.span.record("first_position", first.meta.position.0);
            }
        }
        match result {
            Ok(recorded) => {
                if tracing::enabled!(target: STORE, tracing::Level::TRACE) {
                    let _inside = self.span.enter();
                    for event in recorded {
                        let meta = &event.meta;
                        tracing::trace!(target: STORE, stream = %meta.stream,
                            version = meta.version, position = meta.position.0,
                            event_name = &*meta.event_name, event_id = %meta.event_id,
                            "appended");
                    }
                }
            }
            Err(
                error @ (StoreError::Unavailable(_)
                | StoreError::OutcomeUnknown(_)
                | StoreError::Backend(_)),
            ) => {
                let _inside = self.span.enter();
                tracing::warn!(target: STORE, store = self.store,
                    outcome = append_outcome(result), error = %error, "append failed");
            }
            Err(_) => {}
        }
    }
}

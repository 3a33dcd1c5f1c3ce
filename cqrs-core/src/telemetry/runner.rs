//! The telemetry of projection runners and process managers (the tables are in the parent
//! module's docs).

#[cfg(feature = "tracing")]
use tracing::field::Empty;

#[cfg(not(feature = "tracing"))]
use super::NoSpan;
#[cfg(feature = "metrics")]
use super::{
    EVENTS_PARKED_TOTAL, EVENTS_PROJECTED_TOTAL, PROCESS_COMMANDS_TOTAL,
    PROJECTION_BATCH_DURATION_SECONDS, PROJECTION_LAG_EVENTS, PROJECTION_LAG_SECONDS,
};
#[cfg(feature = "tracing")]
use super::{PROCESS, PROJECTION, live};
use super::{SpanOrNothing, Started, TraceContext, now, within};
use crate::envelope::RecordedEvent;
use crate::error::{ProjectionError, StoreError};
use crate::ids::{Position, Timestamp, Uuid};

/// The telemetry of one projection runner: lease changes, batches, failures, lag.
pub(crate) struct RunnerTelemetry {
    #[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
    projection: &'static str,
    /// Reported "caught up" since the last catch-up began.
    live: bool,
    /// Reported standing by since the last lease change.
    standing_by: bool,
    /// The store's head as the runner last knew it (for the lag gauge).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    head: Position,
    /// The lag gauges may be above zero (set since the last read that found nothing new).
    lagging: bool,
}

impl RunnerTelemetry {
    pub(crate) fn new(projection: &'static str) -> Self {
        RunnerTelemetry {
            projection,
            live: false,
            standing_by: false,
            head: Position::ZERO,
            lagging: true,
        }
    }

    /// The runner took the lease.
    pub(crate) fn lease_acquired(&mut self) {
        self.standing_by = false;
        #[cfg(feature = "tracing")]
        tracing::info!(target: PROJECTION, projection = self.projection, "lease acquired");
    }

    /// Another process holds the lease (reported once per stand-by).
    pub(crate) fn standing_by(&mut self) {
        if !self.standing_by {
            self.standing_by = true;
            #[cfg(feature = "tracing")]
            tracing::info!(target: PROJECTION, projection = self.projection,
                "lease held by another process, standing by");
        }
    }

    /// The runner lost its lease.
    pub(crate) fn lease_lost(&mut self) {
        self.live = false;
        #[cfg(feature = "tracing")]
        tracing::info!(target: PROJECTION, projection = self.projection, "lease lost");
    }

    /// A catch-up (or rebuild) towards `head` began.
    pub(crate) fn catching_up(&mut self, checkpoint: Position, head: Position) {
        self.live = false;
        self.lagging = true;
        self.head = self.head.max(head);
        self.lag(checkpoint, None);
    }

    /// A read found nothing after `checkpoint`; `at_head` when the catch-up target is reached.
    pub(crate) fn nothing_new(&mut self, checkpoint: Position, at_head: bool) {
        if !at_head {
            return;
        }
        self.head = checkpoint;
        if self.lagging {
            self.lagging = false;
            self.lag(checkpoint, Some(0.0));
        }
        if !self.live {
            self.live = true;
            #[cfg(feature = "tracing")]
            tracing::info!(target: PROJECTION, projection = self.projection,
                position = checkpoint.0, "projection caught up");
        }
    }

    /// The span of one batch of `events` (positions `from..=through`).
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn batch(
        &self,
        from: Position,
        through: Position,
        events: &[RecordedEvent],
    ) -> Batch {
        #[cfg(feature = "tracing")]
        let span = tracing::debug_span!(target: PROJECTION, "projection.batch",
            projection = self.projection, from = from.0, through = through.0,
            events = events.len(), duration_ms = Empty, outcome = Empty);
        #[cfg(feature = "tracing")]
        let clock = live(&span).then(std::time::Instant::now);
        #[cfg(feature = "tracing")]
        if tracing::enabled!(target: PROJECTION, tracing::Level::TRACE) {
            let _inside = span.enter();
            for event in events {
                let meta = &event.meta;
                tracing::trace!(target: PROJECTION, projection = self.projection,
                    position = meta.position.0, stream = %meta.stream, version = meta.version,
                    event_name = &*meta.event_name, "projected");
            }
        }
        #[cfg(not(feature = "tracing"))]
        let span = NoSpan;
        Batch {
            span,
            #[cfg(feature = "tracing")]
            clock,
            started: now(),
        }
    }

    /// A batch of `events` committed through `through`; `short` when its read came back with
    /// fewer events than asked (the head, as far as it was readable); `last_recorded` is when the
    /// batch's last event was recorded.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn applied(
        &mut self,
        batch: Batch,
        events: usize,
        through: Position,
        short: bool,
        last_recorded: Timestamp,
    ) {
        batch.end("ok");
        self.lagging = true;
        #[cfg(feature = "metrics")]
        {
            let projection = self.projection;
            metrics::counter!(EVENTS_PROJECTED_TOTAL, "projection" => projection)
                .increment(events as u64);
            metrics::histogram!(PROJECTION_BATCH_DURATION_SECONDS, "projection" => projection)
                .record(batch.started.elapsed().as_secs_f64());
            self.head = if short {
                through
            } else {
                self.head.max(through)
            };
            let age = Timestamp::now().unix_micros() - last_recorded.unix_micros();
            self.lag(through, Some(age.max(0) as f64 / 1e6));
        }
    }

    /// A batch failed (`store` when its storage did, else a handler).
    pub(crate) fn batch_failed(&self, batch: Batch, store: bool) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(PROJECTION_BATCH_DURATION_SECONDS, "projection" => self.projection)
            .record(batch.started.elapsed().as_secs_f64());
        batch.end(if store { "store_error" } else { "failed" });
    }

    /// Sets the lag gauges (seconds only when known).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn lag(&self, checkpoint: Position, seconds: Option<f64>) {
        #[cfg(feature = "metrics")]
        {
            let projection = self.projection;
            metrics::gauge!(PROJECTION_LAG_EVENTS, "projection" => projection)
                .set(self.head.0.saturating_sub(checkpoint.0) as f64);
            if let Some(seconds) = seconds {
                metrics::gauge!(PROJECTION_LAG_SECONDS, "projection" => projection).set(seconds);
            }
        }
    }

    /// A failing event will be tried again.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn retrying(&self, error: &ProjectionError, attempts: u32) {
        #[cfg(feature = "tracing")]
        tracing::info!(target: PROJECTION, projection = self.projection,
            position = error.position.0, attempts, error = %crate::ErrorChain(error),
            "event failed, retrying");
    }

    /// An event was parked.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn parked(&self, error: &ProjectionError) {
        #[cfg(feature = "tracing")]
        tracing::warn!(target: PROJECTION, projection = self.projection,
            position = error.position.0, stream = %error.stream, version = error.version,
            error = %crate::ErrorChain(error), "event parked");
        #[cfg(feature = "metrics")]
        metrics::counter!(EVENTS_PARKED_TOTAL, "projection" => self.projection).increment(1);
    }

    /// The runner stopped at a failing event.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn stopped(&self, error: &ProjectionError, attempts: u32) {
        #[cfg(feature = "tracing")]
        tracing::error!(target: PROJECTION, projection = self.projection,
            position = error.position.0, attempts, error = %crate::ErrorChain(error),
            "projection stopped on a failing event");
    }

    /// The store or the sink's storage failed (`failures` in a row).
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn outage(&self, error: &StoreError, failures: u32) {
        #[cfg(feature = "tracing")]
        if failures == 1 {
            tracing::warn!(target: PROJECTION, projection = self.projection, failures,
                error = %error, "storage unavailable, backing off");
        } else {
            tracing::debug!(target: PROJECTION, projection = self.projection, failures,
                error = %error, "storage unavailable, backing off");
        }
    }

    /// A round succeeded after `failures` storage failures.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn recovered(&self, failures: u32) {
        #[cfg(feature = "tracing")]
        tracing::info!(target: PROJECTION, projection = self.projection, failures,
            "storage available again");
    }

    /// A rebuild reset the projection and replays up to `target`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn rebuild_started(&mut self, target: Position) {
        #[cfg(feature = "tracing")]
        tracing::info!(target: PROJECTION, projection = self.projection, target = target.0,
            "rebuild started");
        self.catching_up(Position::ZERO, target);
    }

    /// A rebuild reached `position`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn rebuild_finished(&self, position: Position) {
        #[cfg(feature = "tracing")]
        tracing::info!(target: PROJECTION, projection = self.projection, position = position.0,
            "rebuild finished");
    }

    /// A rebuild ended without finishing.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn rebuild_failed(&self, error: &dyn std::fmt::Display) {
        #[cfg(feature = "tracing")]
        tracing::warn!(target: PROJECTION, projection = self.projection, error = %error,
            "rebuild failed");
    }
}

/// One projection batch in flight.
pub(crate) struct Batch {
    span: SpanOrNothing,
    /// When the batch began, if its span records a duration.
    #[cfg(feature = "tracing")]
    clock: Option<std::time::Instant>,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    started: Started,
}

impl Batch {
    /// Runs the sink's `apply` inside the batch's span.
    pub(crate) fn instrument<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        within(self.span.clone(), future)
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn end(&self, outcome: &'static str) {
        #[cfg(feature = "tracing")]
        if let Some(clock) = self.clock {
            self.span
                .record("duration_ms", clock.elapsed().as_secs_f64() * 1e3);
            self.span.record("outcome", outcome);
        }
    }
}

/// The span of one command a process manager issues.
pub(crate) struct ProcessCommand {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    process: &'static str,
    span: SpanOrNothing,
}

impl ProcessCommand {
    /// `trace`: the context of the event that caused the command, which the span joins (feature
    /// `opentelemetry`).
    #[cfg_attr(not(feature = "opentelemetry"), allow(unused_variables))]
    pub(crate) fn start(
        process: &'static str,
        command: &str,
        command_id: Uuid,
        correlation_id: Uuid,
        trace: Option<&TraceContext>,
    ) -> Self {
        #[cfg(feature = "tracing")]
        let span = tracing::debug_span!(target: PROCESS, "process.command", process, command,
            command_id = %command_id, correlation_id = %correlation_id, outcome = Empty);
        #[cfg(not(feature = "tracing"))]
        let span = NoSpan;
        #[cfg(feature = "opentelemetry")]
        super::otel::join(&span, trace);
        ProcessCommand { process, span }
    }

    /// The context the command's compensations carry: `carried` (the cause's), or with the
    /// `opentelemetry` feature and a layer, this span's own, so they are its children.
    pub(crate) fn handed_on(&self, carried: Option<TraceContext>) -> Option<TraceContext> {
        #[cfg(feature = "opentelemetry")]
        return super::otel::handed_on(&self.span, carried.as_ref()).map(|c| c.into_owned());
        #[cfg(not(feature = "opentelemetry"))]
        carried
    }

    /// Runs the command inside the span.
    pub(crate) fn instrument<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        within(self.span.clone(), future)
    }

    /// The command was recorded as done.
    pub(crate) fn completed(&self) {
        self.end("ok");
    }

    /// The command was rejected; its compensation issued `issued` commands.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn rejected(&self, command: &str, command_id: Uuid, error: &str, issued: usize) {
        self.end("rejected");
        #[cfg(feature = "tracing")]
        {
            let _inside = self.span.enter();
            tracing::info!(target: PROCESS, process = self.process, command,
                command_id = %command_id, error, issued, "command rejected, compensating");
        }
    }

    #[cfg_attr(
        not(any(feature = "tracing", feature = "metrics")),
        allow(unused_variables)
    )]
    fn end(&self, outcome: &'static str) {
        #[cfg(feature = "tracing")]
        if live(&self.span) {
            self.span.record("outcome", outcome);
        }
        #[cfg(feature = "metrics")]
        metrics::counter!(PROCESS_COMMANDS_TOTAL, "process" => self.process,
            "outcome" => outcome)
        .increment(1);
    }
}

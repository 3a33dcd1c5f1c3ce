//! [`ProcessManagerSink`]: runs a process manager from a checkpoint in a
//! [`ProjectionRunner`](crate::runner::ProjectionRunner).
//!
//! It keeps the most recent 256 rejections in memory, and reports the positions its commands
//! appended (`caused_through`), so `RunningProjection::settle` can wait for what they caused.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::Aggregate;
use crate::app::Cqrs;
use crate::context::{CAUSED_BY_EVENT, CommandContext};
use crate::decision::Decision;
use crate::dispatch::Router;
use crate::envelope::{NewEvent, Payload, RecordedEvent, UserMetadata};
use crate::error::{CommandError, DispatchError, ProjectionError, ProjectionFailure, StoreError};
use crate::ids::{Position, StreamId, Uuid};
use crate::process::deadline::{DEFAULT_POLL, Timer};
use crate::process::issue::{Kind, Rejection};
use crate::process::record::{
    COMPLETED, Completed, DEADLINE, DeadlineRecord, HANDLED, Handled, Instance, Pending, REJECTED,
    Rejected, TraceRecord,
};
use crate::process::{Issue, ProcessManager, deadline_stream, derive_id, instance_stream};
use crate::runner::{ApplyError, Checkpoints, ParkedEvent, ProjectionSink, stored_error};
use crate::store::{EventStore, ExpectedVersion};
use crate::telemetry::{ProcessCommand, TraceContext};
use crate::unwind;

/// Records read per round trip when an instance is loaded.
const LOAD_BATCH: usize = 1024;
/// Instances kept in memory before the cache is emptied (they reload from their streams).
const CACHE_LIMIT: usize = 10_000;
/// Rejections kept by [`ProcessManagerSink::rejections`] (the most recent ones).
pub const REJECTIONS_KEPT: usize = 256;

/// Runs process manager `P` over the application `app`: at least once from a checkpoint kept
/// in the store, with commands issued exactly once (see the [module docs](crate::process)).
///
/// ```
/// # use eventweave_core::{Cqrs, MemoryStore};
/// # use eventweave_core::process::{ProcessManagerSink, ProcessManager, Issue};
/// # use eventweave_core::runner::ProjectionRunner;
/// # #[derive(Default, Clone, serde::Serialize, serde::Deserialize)] struct Idle;
/// # impl ProcessManager for Idle {
/// #     const NAME: &'static str = "doc-idle";
/// #     const EVENTS: &'static [&'static str] = &[];
/// #     fn handle(&mut self, _: &eventweave_core::RecordedEvent)
/// #         -> Result<Vec<Issue>, eventweave_core::ProjectionFailure> { Ok(vec![]) }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::new();
/// let app = Cqrs::builder(store.clone()).build().await.unwrap();
/// // `.aggregate::<Account>()?` / `.decision::<Transfers>()?` for each aggregate or decision
/// // whose commands it issues (those of the commands declared in `issues = [...]` are routed)
/// let sink = ProcessManagerSink::<Idle, _>::new(app);
/// let running = ProjectionRunner::new(store, sink).spawn();
/// running.stop().await;
/// # }
/// ```
pub struct ProcessManagerSink<P, S> {
    store: S,
    router: Router<S>,
    /// Why the routes of the declared commands could not be added (two commands of one name):
    /// reported as a handler failure when a command is to run.
    wiring: Option<Arc<DispatchError>>,
    instances: HashMap<Uuid, Instance<P>>,
    timer: Option<Timer>,
    deadline_poll: Duration,
    rejections: Vec<Rejection>,
    /// The highest position its commands recorded (see `ProjectionSink::caused_through`).
    caused: Position,
    _pm: PhantomData<fn() -> P>,
}

impl<P: ProcessManager, S: EventStore + Checkpoints> ProcessManagerSink<P, S> {
    /// A sink for `P` that runs its commands through `app`, with a route for the aggregate
    /// or decision of each command `P` declares (`#[process_manager(issues = [...])]`).
    pub fn new(app: Cqrs<S>) -> Self {
        let store = app.store().clone();
        let mut router = Router::new(app);
        let wiring = P::__route_issues(&mut router).err().map(Arc::new);
        ProcessManagerSink {
            store,
            router,
            wiring,
            instances: HashMap::new(),
            timer: None,
            deadline_poll: DEFAULT_POLL,
            rejections: Vec::new(),
            caused: Position::ZERO,
            _pm: PhantomData,
        }
    }

    /// Routes the commands of aggregate `A` (every aggregate whose commands `P` issues and does
    /// not declare); nothing when they are routed already.
    pub fn aggregate<A: Aggregate>(mut self) -> Result<Self, DispatchError> {
        self.router.__ensure_aggregate::<A>()?;
        Ok(self)
    }

    /// Routes the commands of decision `D` (every decision whose commands `P` issues and does
    /// not declare); nothing when they are routed already.
    pub fn decision<D: Decision>(mut self) -> Result<Self, DispatchError> {
        self.router.__ensure_decision::<D>()?;
        Ok(self)
    }

    /// How often, at the latest, the deadline timer reads deadlines that other processes
    /// recorded (default 1 s). The timer also reads them every time the runner loads the
    /// checkpoint (each time it gains the lease) and after this sink recorded deadlines, so
    /// this only bounds how late a deadline is fired whose recording process stopped without
    /// the lease moving.
    pub fn deadline_poll(mut self, interval: Duration) -> Self {
        self.deadline_poll = interval.max(Duration::from_millis(1));
        self
    }

    /// The most recent rejections this sink recorded, oldest first: at most
    /// [`REJECTIONS_KEPT`] (256); older ones are dropped here, while the instance streams keep
    /// them all.
    pub fn rejections(&self) -> &[Rejection] {
        &self.rejections
    }

    /// Keeps `rejection`, dropping the oldest beyond [`REJECTIONS_KEPT`]. (A `Vec` rather than a
    /// ring, so [`rejections`](Self::rejections) stays a slice: a rejection costs a command
    /// round trip and a record append, next to which shifting 255 entries is nothing.)
    pub(super) fn keep_rejection(&mut self, rejection: Rejection) {
        if self.rejections.len() >= REJECTIONS_KEPT {
            self.rejections.remove(0);
        }
        self.rejections.push(rejection);
    }

    /// The state of the instance of `correlation`, read from its stream.
    pub async fn instance(&self, correlation: Uuid) -> Result<P, StoreError> {
        Ok(load::<P, S>(&self.store, correlation).await?.state)
    }

    /// The cached instance of `correlation`, loaded from its stream on a miss.
    async fn cached(&mut self, correlation: Uuid) -> Result<&mut Instance<P>, StoreError> {
        if !self.instances.contains_key(&correlation) {
            if self.instances.len() >= CACHE_LIMIT {
                self.instances.clear();
            }
            let loaded = load::<P, S>(&self.store, correlation).await?;
            self.instances.insert(correlation, loaded);
        }
        Ok(self
            .instances
            .get_mut(&correlation)
            .expect("inserted above"))
    }

    /// Handles one delivered event: records what it issues, then runs every pending command.
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let meta = &event.meta;
        let correlation = meta.correlation_id.unwrap_or(meta.event_id);
        let result = self.handle_in(correlation, event).await;
        if result.is_err() {
            // What was recorded is in the stream; the next try starts from there.
            self.instances.remove(&correlation);
        }
        result
    }

    async fn handle_in(
        &mut self,
        correlation: Uuid,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        let meta = &event.meta;
        let stream = instance_stream(P::NAME, correlation);
        let instance = self.cached(correlation).await?;
        if !instance.handled.contains(&meta.event_id) {
            let mut state = instance.state.clone();
            let issues = match unwind::catch(|| state.handle(event)) {
                Ok(Ok(issues)) => issues,
                Ok(Err(failure)) => return Err(handler_error::<P>(event, failure)),
                Err(message) => {
                    return Err(handler_error::<P>(
                        event,
                        ProjectionFailure::Panicked(message),
                    ));
                }
            };
            let trace = TraceContext::from_metadata(&meta.metadata);
            let (commands, deadlines) = split::<P>(
                issues,
                meta.event_id,
                meta.event_id,
                trace.as_ref(),
                correlation,
                meta.recorded_at.unix_micros(),
                "command",
            )
            .map_err(|failure| handler_error::<P>(event, failure))?;
            let state_json = encode_state(&state)?;
            let record = Handled {
                event: meta.event_id,
                state: state_json,
                commands: commands.clone(),
                deadlines: deadlines.iter().map(|d| d.id).collect(),
            };
            let version = instance.version;
            self.schedule(&deadlines).await?;
            let recorded = append_record(
                &self.store,
                &stream,
                version,
                HANDLED,
                derive_id(meta.event_id, P::NAME, u64::MAX),
                &record,
                correlation,
                meta.event_id,
            )
            .await?;
            let instance = self.cached(correlation).await?;
            instance.state = state;
            instance.version = recorded;
            instance.handled.insert(meta.event_id);
            instance.pending.extend(commands);
        }
        self.run_pending(correlation, event).await
    }

    /// Records deadlines in the deadline stream (idempotent by id) and hands them to the timer.
    async fn schedule(&mut self, deadlines: &[DeadlineRecord]) -> Result<(), ApplyError> {
        if deadlines.is_empty() {
            return Ok(());
        }
        let stream = deadline_stream(P::NAME);
        for deadline in deadlines {
            let payload = serde_json::to_string(deadline)
                .map_err(|e| StoreError::Backend(e.to_string().into()))?;
            let new = NewEvent {
                event_id: derive_id(deadline.id, "scheduled", 0),
                event_name: DEADLINE.into(),
                event_version: 1,
                payload: Payload::from_json(payload),
                correlation_id: Some(deadline.correlation),
                causation_id: None,
                metadata: cause_metadata(deadline.cause),
                tags: crate::Tags::empty(),
            };
            match self
                .store
                .append(&stream, ExpectedVersion::Any, vec![new])
                .await
            {
                Ok(_) | Err(StoreError::DuplicateEventId { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(timer) = &self.timer {
            timer.refresh();
        }
        Ok(())
    }

    /// Runs the instance's pending commands in order, recording each outcome.
    async fn run_pending(
        &mut self,
        correlation: Uuid,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        let stream = instance_stream(P::NAME, correlation);
        loop {
            let instance = self.cached(correlation).await?;
            let Some(next) = instance.pending.first().cloned() else {
                return Ok(());
            };
            let (version, mut state) = (instance.version, instance.state.clone());
            let mut context = CommandContext::new()
                .with_command_id(next.id)
                .correlated_with(correlation)
                .with_cause(next.cause);
            // The command joins its cause's trace (the event's `traceparent`; with the
            // `opentelemetry` feature its span is the parent of the command's).
            let trace = next.trace.context();
            let traced = ProcessCommand::start(
                P::NAME,
                &next.command.name,
                next.id,
                correlation,
                trace.as_ref(),
            );
            if let Some(trace) = trace {
                context = context.with_trace(trace);
            }
            if let Some(wiring) = &self.wiring {
                let failure = ProjectionFailure::Handler(wiring.clone());
                return Err(handler_error::<P>(event, failure));
            }
            let body = next.command.body.to_string();
            let dispatch = self
                .router
                .dispatch_with(&next.command.name, &body, context);
            let outcome = traced.instrument(dispatch).await;
            let error = match outcome {
                // `DuplicateEventId`, `CommandIdReused`: the command ran before (a crash came
                // before its record), and its events differ now only if its handler is not
                // deterministic.
                Ok(outcome) => {
                    self.caused = self.caused.max(outcome.position());
                    None
                }
                Err(DispatchError::Command(CommandError::Store(
                    StoreError::DuplicateEventId { .. },
                )))
                | Err(DispatchError::Command(CommandError::CommandIdReused { .. })) => None,
                Err(DispatchError::Command(CommandError::Store(e))) => return Err(e.into()),
                Err(DispatchError::Command(CommandError::Conflict { stream, attempts })) => {
                    return Err(ApplyError::Store(StoreError::Backend(
                        format!(
                            "command `{}` met {attempts} conflicts on `{stream}`",
                            next.command.name
                        )
                        .into(),
                    )));
                }
                Err(DispatchError::Command(failed)) => Some(failed),
                // Wiring mistakes: retried, then the runner stops (or parks) on this event.
                Err(wiring) => {
                    let failure = ProjectionFailure::Handler(std::sync::Arc::new(wiring));
                    return Err(handler_error::<P>(event, failure));
                }
            };
            let recorded = match error {
                None => {
                    traced.completed();
                    let record = Completed { command: next.id };
                    let v = append_record(
                        &self.store,
                        &stream,
                        version,
                        COMPLETED,
                        derive_id(next.id, "completed", 0),
                        &record,
                        correlation,
                        next.cause,
                    )
                    .await?;
                    let instance = self.cached(correlation).await?;
                    instance.pending.remove(0);
                    v
                }
                Some(failed) => {
                    let rejection =
                        Rejection::from_command_error(next.id, next.command.clone(), failed);
                    let error = rejection.message();
                    let issues = unwind::catch(|| state.on_rejected(&rejection))
                        .map_err(|m| handler_error::<P>(event, ProjectionFailure::Panicked(m)))?;
                    // Compensations join the trace of the command they answer (as children
                    // of its `process.command` span, with the `opentelemetry` feature).
                    let trace = traced.handed_on(next.trace.context());
                    let (commands, deadlines) = split::<P>(
                        issues,
                        next.id,
                        next.cause,
                        trace.as_ref(),
                        correlation,
                        event.meta.recorded_at.unix_micros(),
                        "compensation",
                    )
                    .map_err(|failure| handler_error::<P>(event, failure))?;
                    traced.rejected(&next.command.name, next.id, &error, commands.len());
                    let record = Rejected {
                        command: next.id,
                        name: next.command.name.clone(),
                        error,
                        state: encode_state(&state)?,
                        commands: commands.clone(),
                        deadlines: deadlines.iter().map(|d| d.id).collect(),
                    };
                    self.schedule(&deadlines).await?;
                    let v = append_record(
                        &self.store,
                        &stream,
                        version,
                        REJECTED,
                        derive_id(next.id, "rejected", 0),
                        &record,
                        correlation,
                        next.cause,
                    )
                    .await?;
                    self.keep_rejection(rejection);
                    let instance = self.cached(correlation).await?;
                    instance.state = state;
                    instance.pending.remove(0);
                    instance.pending.splice(0..0, commands);
                    v
                }
            };
            self.cached(correlation).await?.version = recorded;
        }
    }
}

/// Reads instance `correlation` of `P` back from its stream.
async fn load<P: ProcessManager, S: EventStore>(
    store: &S,
    correlation: Uuid,
) -> Result<Instance<P>, StoreError> {
    let stream = instance_stream(P::NAME, correlation);
    let mut instance = Instance::new();
    loop {
        let batch = store
            .read_stream(&stream, instance.version + 1, LOAD_BATCH)
            .await?;
        for record in &batch {
            instance.fold(record)?;
        }
        if batch.len() < LOAD_BATCH {
            return Ok(instance);
        }
    }
}

/// Splits issues into pending commands (ids derived from `base`) and deadline records; both
/// keep `trace`, the trace context of their cause.
fn split<P: ProcessManager>(
    issues: Vec<Issue>,
    base: Uuid,
    cause: Uuid,
    trace: Option<&TraceContext>,
    correlation: Uuid,
    recorded_micros: i64,
    salt: &str,
) -> Result<(Vec<Pending>, Vec<DeadlineRecord>), ProjectionFailure> {
    let mut commands = Vec::new();
    let mut deadlines = Vec::new();
    for (index, issue) in issues.into_iter().enumerate() {
        let id = derive_id(base, &format!("{}/{salt}", P::NAME), index as u64);
        match issue.0 {
            Kind::Command(command) => commands.push(Pending {
                id,
                cause,
                command,
                trace: TraceRecord::of(trace),
            }),
            Kind::Deadline(d) => deadlines.push(DeadlineRecord {
                id,
                correlation,
                cause,
                due_micros: recorded_micros
                    .saturating_add(i64::try_from(d.after_micros).unwrap_or(i64::MAX)),
                event_name: d.event_name,
                event_version: d.event_version,
                payload: d.payload.to_string(),
                trace: TraceRecord::of(trace),
            }),
            Kind::Invalid { what, message } => {
                return Err(ProjectionFailure::Handler(std::sync::Arc::new(
                    StoreError::Backend(
                        format!(
                            "`{what}` issued by `{}` does not serialize: {message}",
                            P::NAME
                        )
                        .into(),
                    ),
                )));
            }
        }
    }
    Ok((commands, deadlines))
}

fn encode_state<P: ProcessManager>(state: &P) -> Result<serde_json::Value, ApplyError> {
    unwind::catch(|| serde_json::to_value(state))
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| {
            ApplyError::Store(StoreError::Backend(
                format!(
                    "the state of process manager `{}` does not serialize: {e}",
                    P::NAME
                )
                .into(),
            ))
        })
}

fn handler_error<P: ProcessManager>(
    event: &RecordedEvent,
    failure: ProjectionFailure,
) -> ApplyError {
    ApplyError::Handler(stored_error(P::NAME, event, failure))
}

fn cause_metadata(cause: Uuid) -> UserMetadata {
    let mut metadata = UserMetadata::empty();
    metadata.insert(CAUSED_BY_EVENT, cause.to_string());
    metadata
}

/// Appends one record at `version + 1` of the instance stream; returns the new version.
#[allow(clippy::too_many_arguments)]
async fn append_record<T: serde::Serialize>(
    store: &impl EventStore,
    stream: &StreamId,
    version: u64,
    name: &'static str,
    id: Uuid,
    record: &T,
    correlation: Uuid,
    cause: Uuid,
) -> Result<u64, ApplyError> {
    let payload =
        serde_json::to_string(record).map_err(|e| StoreError::Backend(e.to_string().into()))?;
    let new = NewEvent {
        event_id: id,
        event_name: name.into(),
        event_version: 1,
        payload: Payload::from_json(payload),
        correlation_id: Some(correlation),
        causation_id: None,
        metadata: cause_metadata(cause),
        tags: crate::Tags::empty(),
    };
    let expected = match version {
        0 => ExpectedVersion::NoStream,
        v => ExpectedVersion::Exact(v),
    };
    let recorded = store.append(stream, expected, vec![new]).await?;
    Ok(recorded.last().map_or(version, |e| e.meta.version))
}

impl<P: ProcessManager, S: EventStore + Checkpoints> ProjectionSink for ProcessManagerSink<P, S> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn events(&self) -> &'static [&'static str] {
        P::EVENTS
    }

    fn caused_through(&self) -> Position {
        self.caused
    }

    async fn checkpoint(&mut self) -> Result<Position, StoreError> {
        // The runner loads the checkpoint each time it (re)gains the lease: the timer then
        // reads what other processes recorded in the deadline stream meanwhile.
        match &self.timer {
            Some(timer) => timer.refresh(),
            None => {
                self.timer = Some(Timer::start(
                    self.store.clone(),
                    deadline_stream(P::NAME),
                    self.deadline_poll,
                ));
            }
        }
        self.store.load_checkpoint(P::NAME).await
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyError> {
        for (i, event) in events.iter().enumerate() {
            if let Err(error) = self.handle(event).await {
                if i > 0 {
                    self.store
                        .save_checkpoint(P::NAME, events[i - 1].meta.position)
                        .await?;
                }
                return Err(error);
            }
        }
        self.store.save_checkpoint(P::NAME, through).await?;
        Ok(())
    }

    async fn park(
        &mut self,
        event: &RecordedEvent,
        error: &ProjectionError,
    ) -> Result<(), StoreError> {
        // The whole chain: a handler's error is the source, not part of the message.
        let reason = crate::ErrorChain(error).to_string();
        self.store
            .park_event(ParkedEvent::new(P::NAME, event, reason))
            .await
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        // Instances stay recorded: a replay from zero finds every event handled and issues
        // nothing again.
        self.instances.clear();
        self.store.unpark_event(P::NAME, None).await?;
        self.store.save_checkpoint(P::NAME, Position::ZERO).await?;
        Ok(())
    }

    /// Handles the event again, then removes its record. Exactly once as far as commands go:
    /// the instance records each handled event and each command's outcome, so a replay
    /// repeated after a crash issues nothing twice.
    async fn replay_parked(&mut self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let position = event.meta.position;
        let parked = self.store.parked_events(P::NAME).await?;
        if !parked.iter().any(|p| p.position == position) {
            return Err(crate::runner::not_parked(P::NAME, event));
        }
        self.handle(event).await?;
        self.store.unpark_event(P::NAME, Some(position)).await?;
        Ok(())
    }
}

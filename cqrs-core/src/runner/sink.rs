//! [`ProjectionSink`]: what a runner drives. A sink owns one projection and the place its
//! checkpoint lives, and applies batches of events to both.
//!
//! Two sinks live here: [`MemorySink`] (state in memory, rebuilt from the first event at every
//! start) and [`CheckpointedSink`] (at-least-once: effects outside the store, checkpoint saved
//! in the store after each batch). The SQL stores provide exactly-once sinks whose read-model
//! changes and checkpoint commit in one transaction.
//!
//! The sink owns the checkpoint because where the checkpoint lives decides the guarantee (memory, a
//! store table, the read model's own transaction). So the runner never writes checkpoints itself;
//! after every error it asks the sink what is committed and resumes from there. Exactly-once sinks
//! commit a batch only if the checkpoint row is still where they left it: the fence that keeps two
//! processes from both applying a batch when a lease changes hands. At-least-once sinks save the
//! checkpoint after the effects, so a crash repeats effects rather than losing them.
//!
//! **Replaying a parked event** ([`ProjectionSink::replay_parked`], the CLI's `replay-parked`)
//! applies one old event again, after its cause was fixed, without moving the checkpoint (the
//! events after it were applied already), and removes its parked record only if that worked.
//! Each sink gives the guarantee of its batches: exactly-once SQL sinks delete the record and
//! run the handler in one transaction (a second replay of the same record finds it gone and
//! applies nothing); [`CheckpointedSink`] runs the handler, then removes the record, so a crash
//! between the two leaves the record and a second replay repeats the effect (at least once);
//! [`MemorySink`] does both in memory. The event is applied out of its order: a handler that
//! needs order (a running balance, say) is right again only after a rebuild. A `reset` (the start
//! of a rebuild) also drops the projection's parked records, since the rebuild applies every
//! event again and parks again those that still fail; so a replay never repeats what a rebuild
//! did.
//!
//! `apply` must be cancellation-safe: a runner that is stopped or dropped drops the batch's future.
//! `caused_through` reports the highest position the sink's own effects appended (a process
//! manager's commands), which `RunningProjection::settle` waits for.

use std::future::Future;

use crate::envelope::RecordedEvent;
use crate::error::{ProjectionError, ProjectionFailure, StoreError};
use crate::ids::Position;
use crate::runner::durable::DurableProjection;
use crate::runner::segment::{Segment, load_layout};
use crate::store::{Checkpoints, ParkedEvent};
use crate::unwind::CatchUnwind;

/// Why a batch was not applied.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApplyError {
    /// A handler failed or panicked on this event. What the sink committed before it is what
    /// its [`ProjectionSink::checkpoint`] says.
    Handler(ProjectionError),
    /// The sink's storage failed (connection lost, lock timeout, …).
    Store(StoreError),
}

/// Transparent: shows the handler's or the store's error, which is also its `source()`'s
/// message, so the message is said once in a chain (`{:#}`): the variant adds nothing to it.
impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Handler(e) => e.fmt(f),
            ApplyError::Store(e) => e.fmt(f),
        }
    }
}

/// Transparent (see `Display`): the source is the inner error's source.
impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApplyError::Handler(e) => e.source(),
            ApplyError::Store(e) => e.source(),
        }
    }
}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        ApplyError::Store(e)
    }
}

/// Applies events to one projection and keeps its checkpoint.
///
/// The runner calls `apply` with events after the checkpoint, in order, and the position of the
/// last event it read (events the projection does not handle are filtered out, so `through`
/// can be beyond the last event given). After an error it asks `checkpoint` again and resumes
/// from there, so a sink decides what a failed batch left committed:
/// - exactly-once sinks commit the changes of the batch and the checkpoint `through` together,
///   or nothing;
/// - at-least-once sinks may have applied events before the failing one; their checkpoint
///   never passes an event whose effects are not done.
pub trait ProjectionSink: Send + 'static {
    /// The projection's name.
    fn name(&self) -> &'static str;

    /// Stored names of the events the projection handles.
    fn events(&self) -> &'static [&'static str];

    /// The position of the last event whose effects are committed (`Position::ZERO` if none).
    fn checkpoint(&mut self) -> impl Future<Output = Result<Position, StoreError>> + Send;

    /// Applies `events` and moves the checkpoint to `through`.
    ///
    /// **Must be cancellation-safe**: the runner drops this future when it is stopped (or its
    /// handle dropped) between polls, so a batch may end at any `.await`. Dropping it must
    /// leave the checkpoint and the effects it guards consistent: an exactly-once sink rolls
    /// its transaction back (or closes the connection that holds it); an at-least-once sink
    /// must not move the checkpoint past work it did not finish.
    fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send;

    /// Records `event` as parked (the runner gave up on it) and moves the checkpoint to it.
    fn park(
        &mut self,
        event: &RecordedEvent,
        error: &ProjectionError,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Calls the projection's reset hook, sets the checkpoint to `Position::ZERO` and drops the
    /// projection's parked records (the rebuild that follows applies those events again).
    fn reset(&mut self) -> impl Future<Output = Result<(), ApplyError>> + Send;

    /// Applies `event`, which this projection parked, once more (its cause fixed), without
    /// moving the checkpoint, and removes its parked record only when that succeeded: in the
    /// handler's transaction on exactly-once SQL sinks (a second replay applies nothing), right
    /// after the handler on [`CheckpointedSink`] (at least once), in memory on [`MemorySink`].
    /// The event is applied after later ones: a read model that depends on their order is right
    /// again only after a rebuild. Fails with [`ApplyError::Handler`] when
    /// the handler fails again (the record stays), and with [`not_parked`]'s error when the
    /// event has no parked record (another replay took it).
    ///
    /// The default refuses: a sink that cannot replay says so, and a rebuild is the way out.
    fn replay_parked(
        &mut self,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send {
        let error = StoreError::Backend(
            format!(
                "the sink of `{}` cannot replay parked events (rebuild the projection instead)",
                self.name()
            )
            .into(),
        );
        let _ = event;
        async move { Err(ApplyError::Store(error)) }
    }

    /// The [`Segment`] of the projection this sink applies, whose name its checkpoint is kept
    /// under ([`Segment::key`]); [`Segment::WHOLE`] (the projection's own name) by default.
    /// A runner of this sink applies only the events of the segment's streams, under the
    /// segment's lease.
    fn segment(&self) -> Segment {
        Segment::WHOLE
    }

    /// The number of segments the projection is stored in (`load_layout`), which the runner
    /// compares with its segment's after taking the lease: a runner of another layout stands
    /// by instead of applying events that a segment of the stored layout applies too. The
    /// default (for sinks with no stored checkpoint) trusts the sink's own segment.
    fn stored_segments(&mut self) -> impl Future<Output = Result<u32, StoreError>> + Send {
        let count = self.segment().count();
        async move { Ok(count) }
    }

    /// The highest position of the events this sink's own effects recorded in the store while
    /// it applied the events up to its checkpoint (a process manager's commands), or
    /// `Position::ZERO` for a sink that appends nothing (the default).
    /// [`RunningProjection::settle`](crate::runner::RunningProjection::settle) waits for
    /// those too.
    fn caused_through(&self) -> Position {
        Position::ZERO
    }
}

/// Runs `projection.handle` for one event, a panic turned into `ProjectionFailure::Panicked`.
pub async fn handle_caught<P, U>(
    projection: &mut P,
    unit: &U,
    event: &RecordedEvent,
) -> Result<(), ProjectionError>
where
    P: DurableProjection<U>,
    U: ?Sized + Sync,
{
    match CatchUnwind(std::pin::pin!(projection.handle(unit, event))).await {
        Ok(result) => result,
        Err(message) => Err(stored_error(
            P::NAME,
            event,
            ProjectionFailure::Panicked(message),
        )),
    }
}

/// Runs `projection.reset`, a panic turned into `ProjectionFailure::Panicked`.
pub async fn reset_caught<P, U>(projection: &mut P, unit: &U) -> Result<(), ProjectionFailure>
where
    P: DurableProjection<U>,
    U: ?Sized + Sync,
{
    match CatchUnwind(std::pin::pin!(projection.reset(unit))).await {
        Ok(result) => result,
        Err(message) => Err(ProjectionFailure::Panicked(message)),
    }
}

/// A [`ProjectionError`] about a stored event (see [`ProjectionError::new`]).
pub fn stored_error(
    projection: &'static str,
    event: &RecordedEvent,
    failure: ProjectionFailure,
) -> ProjectionError {
    ProjectionError::new(projection, event, failure)
}

/// The error of [`ProjectionSink::replay_parked`] for an event `projection` has no parked
/// record of (never parked, or replayed meanwhile): nothing was applied.
pub fn not_parked(projection: &'static str, event: &RecordedEvent) -> ApplyError {
    let meta = &event.meta;
    ApplyError::Store(StoreError::Backend(
        format!(
            "the event at position {} (`{}` v{}) is not parked by projection `{projection}` \
             (any more); nothing was applied",
            meta.position, meta.stream, meta.version
        )
        .into(),
    ))
}

/// Refuses the reset of one segment of several: the projection's reset hook empties the whole
/// read model, which the other segments' checkpoints still claim. Merge to one segment
/// (`resegment`), then rebuild.
pub fn refuse_segment_reset(projection: &'static str, segment: Segment) -> Result<(), ApplyError> {
    if segment.count() == 1 {
        return Ok(());
    }
    Err(ApplyError::Store(StoreError::Backend(
        format!(
            "projection `{projection}` runs in {} segments: a rebuild of segment {segment} would              empty the read model of the others; merge it to one segment (`resegment` to 1) and              rebuild that",
            segment.count()
        )
        .into(),
    )))
}

/// The error a failed reset hook is reported as.
pub fn reset_error(projection: &'static str, failure: ProjectionFailure) -> ApplyError {
    ApplyError::Store(StoreError::Backend(
        format!("reset of projection `{projection}` failed: {failure}").into(),
    ))
}

/// A durable projection whose state lives in this process: it starts from the first event
/// every time (its checkpoint is kept in memory), which makes it the rebuild-on-start sink.
pub struct MemorySink<P> {
    projection: P,
    checkpoint: Position,
    parked: Vec<ParkedEvent>,
    segment: Segment,
}

impl<P: DurableProjection> MemorySink<P> {
    /// A sink for `projection`, starting at the first event.
    pub fn new(projection: P) -> Self {
        MemorySink {
            projection,
            checkpoint: Position::ZERO,
            parked: Vec::new(),
            segment: Segment::WHOLE,
        }
    }

    /// The sink of one segment of the projection: its runner applies only that segment's
    /// streams (each segment's sink holds its own part of the state).
    pub fn segment(self, segment: Segment) -> Self {
        MemorySink { segment, ..self }
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The events it parked.
    pub fn parked(&self) -> &[ParkedEvent] {
        &self.parked
    }
}

impl<P: DurableProjection> ProjectionSink for MemorySink<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn segment(&self) -> Segment {
        self.segment
    }

    fn events(&self) -> &'static [&'static str] {
        P::EVENTS
    }

    async fn checkpoint(&mut self) -> Result<Position, StoreError> {
        Ok(self.checkpoint)
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyError> {
        for event in events {
            handle_caught(&mut self.projection, &(), event)
                .await
                .map_err(ApplyError::Handler)?;
            self.checkpoint = event.meta.position;
        }
        self.checkpoint = through;
        Ok(())
    }

    async fn park(
        &mut self,
        event: &RecordedEvent,
        error: &ProjectionError,
    ) -> Result<(), StoreError> {
        self.parked.push(ParkedEvent::new(
            &self.segment.key(P::NAME),
            event,
            crate::ErrorChain(error).to_string(),
        ));
        self.checkpoint = event.meta.position;
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        reset_caught(&mut self.projection, &())
            .await
            .map_err(|f| reset_error(P::NAME, f))?;
        self.checkpoint = Position::ZERO;
        self.parked.clear();
        Ok(())
    }

    async fn replay_parked(&mut self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let position = event.meta.position;
        let Some(at) = self.parked.iter().position(|p| p.position == position) else {
            return Err(not_parked(P::NAME, event));
        };
        handle_caught(&mut self.projection, &(), event)
            .await
            .map_err(ApplyError::Handler)?;
        self.parked.remove(at);
        Ok(())
    }
}

/// At-least-once delivery to a projection with external effects (e-mail, HTTP calls, a message
/// broker): the checkpoint is saved in the store after each batch, so after a crash the events
/// since the last saved checkpoint are handled again. Handlers deduplicate with
/// `meta.event_id`, which is the same on every delivery.
pub struct CheckpointedSink<P, C> {
    projection: P,
    checkpoints: C,
    segment: Segment,
    /// The name its checkpoint is kept under (`segment.key(P::NAME)`).
    key: String,
}

impl<P: DurableProjection, C: Checkpoints> CheckpointedSink<P, C> {
    /// A sink for `projection` whose checkpoint lives in `checkpoints` (usually the store).
    pub fn new(projection: P, checkpoints: C) -> Self {
        CheckpointedSink {
            projection,
            checkpoints,
            segment: Segment::WHOLE,
            key: P::NAME.to_owned(),
        }
    }

    /// The sink of one segment of the projection (its checkpoint under the segment's name).
    pub fn segment(self, segment: Segment) -> Self {
        CheckpointedSink {
            key: segment.key(P::NAME),
            segment,
            ..self
        }
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }
}

impl<P: DurableProjection, C: Checkpoints> ProjectionSink for CheckpointedSink<P, C> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn segment(&self) -> Segment {
        self.segment
    }

    fn events(&self) -> &'static [&'static str] {
        P::EVENTS
    }

    async fn stored_segments(&mut self) -> Result<u32, StoreError> {
        load_layout(&self.checkpoints, P::NAME).await
    }

    async fn checkpoint(&mut self) -> Result<Position, StoreError> {
        self.checkpoints.load_checkpoint(&self.key).await
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyError> {
        for (i, event) in events.iter().enumerate() {
            if let Err(error) = handle_caught(&mut self.projection, &(), event).await {
                // Keep the effects already done from being repeated on the retry.
                if i > 0 {
                    self.checkpoints
                        .save_checkpoint(&self.key, events[i - 1].meta.position)
                        .await?;
                }
                return Err(ApplyError::Handler(error));
            }
        }
        self.checkpoints.save_checkpoint(&self.key, through).await?;
        Ok(())
    }

    async fn park(
        &mut self,
        event: &RecordedEvent,
        error: &ProjectionError,
    ) -> Result<(), StoreError> {
        // The whole chain: a handler's error is the source, not part of the message.
        let reason = crate::ErrorChain(error).to_string();
        self.checkpoints
            .park_event(ParkedEvent::new(&self.key, event, reason))
            .await
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        refuse_segment_reset(P::NAME, self.segment)?;
        reset_caught(&mut self.projection, &())
            .await
            .map_err(|f| reset_error(P::NAME, f))?;
        self.checkpoints.unpark_event(&self.key, None).await?;
        self.checkpoints
            .save_checkpoint(&self.key, Position::ZERO)
            .await?;
        Ok(())
    }

    /// At least once: the handler runs, then the record goes; a crash (or a failed removal)
    /// between the two leaves the record, and a second replay repeats the effect (handlers
    /// deduplicate with `meta.event_id`, as for every delivery of this sink).
    async fn replay_parked(&mut self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let position = event.meta.position;
        let parked = self.checkpoints.parked_events(&self.key).await?;
        if !parked.iter().any(|p| p.position == position) {
            return Err(not_parked(P::NAME, event));
        }
        handle_caught(&mut self.projection, &(), event)
            .await
            .map_err(ApplyError::Handler)?;
        self.checkpoints
            .unpark_event(&self.key, Some(position))
            .await?;
        Ok(())
    }
}

//! [`ProjectionRunner`]: the task that feeds one sink from its checkpoint, first in batches up
//! to the store's head, then live, retrying failures with back-off. Its handle,
//! [`RunningProjection`], is in `handle.rs`.
//!
//! # What the runner promises
//!
//! - **Nothing is skipped silently.** The sink gets only events after its checkpoint, in order. A
//!   failing event is retried with back-off, and before it may stop the runner or be parked it is
//!   tried *alone*, after the events before it in its batch are committed (exactly-once sinks roll
//!   back whole batches, so parking without that would skip them). A payload that does not decode
//!   is not retried (it never will), but is isolated the same way. Parking records the event (store
//!   table) before moving the checkpoint past it.
//! - **Outages are not failures.** A failure of the store or of the sink's storage
//!   (`ApplyError::Store`, which is also what a sink reports for a connection lost inside a
//!   handler) is retried with a back-off that grows until a round succeeds; it never counts toward
//!   `max_attempts`, never parks, never stops. Delays are `RetryPolicy`'s, jittered down by up to
//!   half so runners that lost one database do not return in step, and start over from
//!   `first_delay` after a successful round.
//! - **`Live` only at the head.** The runner reads the store's head when it starts (and when a
//!   rebuild begins) and stays `CatchingUp`, with its progress below its total, until its
//!   checkpoint reaches it, however many reads come back empty before.
//! - **Dropping the `RunningProjection` stops the runner** at the next batch boundary: a runner
//!   nobody can stop would keep its lease and connections unseen. `stop()` also returns the sink of
//!   a task cancelled by its runtime's shutdown (the task leaves it behind when dropped).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use crate::envelope::RecordedEvent;
use crate::error::{ProjectionError, ProjectionFailure, StoreError};
use crate::ids::Position;
use crate::progress::{Meter, Progress, ProgressFn};
use crate::runner::handle::{Control, Kept, RebuildError, RunnerState, RunningProjection, Shared};
use crate::runner::lease::{Lease, Leases, LocalLease};
use crate::runner::retry::{OnFailure, RetryPolicy};
use crate::runner::segment::Segment;
use crate::runner::sink::{ApplyError, ProjectionSink};
use crate::store::{EmptyReads, EventStore};
use crate::telemetry::RunnerTelemetry;

/// Reads events from a store into one [`ProjectionSink`].
///
/// ```
/// # use eventweave_core::runner::{MemorySink, ProjectionRunner, RetryPolicy, DurableProjection};
/// # use eventweave_core::{MemoryStore, RecordedEvent, ProjectionError};
/// #[derive(Default)]
/// struct Count(u64);
/// impl DurableProjection for Count {
///     const NAME: &'static str = "doc_count";
///     const EVENTS: &'static [&'static str] = &["doc.counted"];
///     async fn handle(&mut self, _: &(), _: &RecordedEvent) -> Result<(), ProjectionError> {
///         self.0 += 1;
///         Ok(())
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::new();
/// let running = ProjectionRunner::new(store.clone(), MemorySink::new(Count::default())).spawn();
/// running.wait_for(eventweave_core::Position::ZERO, std::time::Duration::from_secs(1)).await.unwrap();
/// let sink = running.stop().await;
/// assert_eq!(sink.projection().0, 0);
/// # }
/// ```
pub struct ProjectionRunner<S, K, L = LocalLease> {
    store: S,
    sink: K,
    leases: L,
    config: Config,
}

#[derive(Clone)]
struct Config {
    batch_size: usize,
    retry: RetryPolicy,
    on_failure: OnFailure,
    lease_retry: Duration,
    progress: Option<ProgressFn>,
}

impl<S: EventStore, K: ProjectionSink> ProjectionRunner<S, K> {
    /// A runner of `sink` over `store`, with one lease per process ([`LocalLease`]).
    pub fn new(store: S, sink: K) -> Self {
        ProjectionRunner {
            store,
            sink,
            leases: LocalLease,
            config: Config {
                batch_size: 512,
                retry: RetryPolicy::default(),
                on_failure: OnFailure::Stop,
                lease_retry: Duration::from_secs(1),
                progress: None,
            },
        }
    }
}

impl<S: EventStore, K: ProjectionSink, L: Leases> ProjectionRunner<S, K, L> {
    /// Events read per round trip and handed to the sink per `apply` (default 512).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.config.batch_size = events.max(1);
        self
    }

    /// How failing events are retried.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = RetryPolicy {
            max_attempts: policy.max_attempts.max(1),
            ..policy
        };
        self
    }

    /// What happens to an event that still fails after its retries (default: stop).
    pub fn on_failure(mut self, action: OnFailure) -> Self {
        self.config.on_failure = action;
        self
    }

    /// Progress reports of the first catch-up (once per batch, and once when caught up).
    pub fn on_progress(mut self, report: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.config.progress = Some(Arc::new(report));
        self
    }

    /// Takes a lease from `leases` before working, so one process at a time runs the
    /// projection; others stand by and retry every `retry` (default 1 s).
    pub fn leases<L2: Leases>(self, leases: L2, retry: Duration) -> ProjectionRunner<S, K, L2> {
        ProjectionRunner {
            store: self.store,
            sink: self.sink,
            leases,
            config: Config {
                lease_retry: retry,
                ..self.config
            },
        }
    }

    /// Starts the runner on the tokio runtime. Keep the handle: dropping it stops the runner
    /// (see [`RunningProjection`]).
    pub fn spawn(self) -> RunningProjection<K> {
        let (shared, control, task, left) = self.into_task();
        RunningProjection {
            shared,
            control,
            join: tokio::spawn(task),
            left,
        }
    }

    /// The sink, without running anything (an operator's tool applies a parked event again
    /// through it: [`ProjectionSink::replay_parked`]).
    pub fn into_sink(self) -> K {
        self.sink
    }

    /// The projection's name.
    pub(crate) fn name(&self) -> &'static str {
        self.sink.name()
    }

    /// The shared state, the control channel, the task future (which returns the sink) and
    /// where the sink is left if that future is dropped.
    #[allow(clippy::type_complexity)]
    pub(crate) fn into_task(
        self,
    ) -> (
        Arc<Shared>,
        mpsc::UnboundedSender<Control>,
        impl Future<Output = K> + Send + 'static,
        Arc<Mutex<Option<K>>>,
    ) {
        let segment = self.sink.segment();
        let shared = Arc::new(Shared::new(self.sink.name(), self.sink.events(), segment));
        let (control, inbox) = mpsc::unbounded_channel();
        let (sink, left) = Kept::new(self.sink);
        let task = Task {
            telemetry: RunnerTelemetry::new(shared.name),
            lease_key: segment.key(shared.name),
            segment,
            store: self.store,
            sink,
            config: self.config,
            shared: Arc::clone(&shared),
            inbox,
            rebuild: None,
            failing: None,
            outage: 0,
        };
        (shared, control, task.run(self.leases), left)
    }
}

/// Why `work` returned.
enum Exit {
    Stop,
}

struct Task<S, K> {
    store: S,
    /// The segment the sink applies ([`Segment::WHOLE`] unless segmented), and the name of its
    /// lease (its checkpoint's name).
    segment: Segment,
    lease_key: String,
    sink: Kept<K>,
    config: Config,
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<Control>,
    /// A rebuild in progress: its meter, progress callback and requester.
    rebuild: Option<Rebuild>,
    /// The event that failed last, and how many tries it has had.
    failing: Option<(Position, u32)>,
    /// Storage failures since the last successful round (they pace the back-off).
    outage: u32,
    telemetry: RunnerTelemetry,
}

struct Rebuild {
    meter: Meter,
    progress: Option<ProgressFn>,
    done: Option<oneshot::Sender<Result<Position, RebuildError>>>,
}

impl Rebuild {
    fn finish(&mut self, result: Result<Position, RebuildError>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(result);
        }
    }
}

impl<S: EventStore, K: ProjectionSink> Task<S, K> {
    async fn run<L: Leases>(mut self, leases: L) -> K {
        loop {
            let mut lease = match self.acquire(&leases).await {
                Some(lease) => lease,
                None => break,
            };
            // Under the lease, the stored layout is stable (a change takes every lease of the
            // layout it changes): a runner of another layout stands by.
            match self.stored_segments().await {
                None => break,
                Some(stored) if stored != self.segment.count() => {
                    drop(lease);
                    self.telemetry.standing_by();
                    self.shared.set_state(RunnerState::Standby);
                    if !self.pause(self.config.lease_retry).await {
                        break;
                    }
                    continue;
                }
                Some(_) => {}
            }
            let exit = tokio::select! {
                biased;
                _ = lease.lost() => None,
                exit = self.work() => Some(exit),
            };
            match exit {
                Some(Exit::Stop) => break,
                // Lost the lease: whatever `work` was doing was cancelled, and the sink's
                // checkpoint says what is committed. Another process may take over now; this
                // one waits before trying again.
                None => {
                    drop(lease);
                    self.telemetry.lease_lost();
                    self.shared.set_state(RunnerState::Standby);
                    if !self.pause(self.config.lease_retry).await {
                        break;
                    }
                }
            }
        }
        if let Some(rebuild) = &mut self.rebuild {
            rebuild.finish(Err(RebuildError::Stopped));
        }
        self.shared.set_state(RunnerState::Stopped);
        self.sink.into_inner()
    }

    /// Waits for the lease; `None` when asked to stop meanwhile.
    async fn acquire<L: Leases>(&mut self, leases: &L) -> Option<L::Lease> {
        loop {
            match leases.try_acquire(&self.lease_key).await {
                Ok(Some(lease)) => {
                    self.telemetry.lease_acquired();
                    return Some(lease);
                }
                Ok(None) => {
                    self.telemetry.standing_by();
                    self.shared.set_state(RunnerState::Standby);
                }
                Err(e) => self.shared.set_state(RunnerState::StoreUnavailable {
                    error: e.to_string(),
                }),
            }
            if !self.pause(self.config.lease_retry).await {
                return None;
            }
        }
    }

    /// Sleeps, handling control messages; `false` when asked to stop (or the handle is gone).
    async fn pause(&mut self, duration: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return true,
                message = self.inbox.recv() => match message {
                    None | Some(Control::Stop) => return false,
                    Some(other) => self.queue(other),
                },
            }
        }
    }

    /// Records a control message that takes effect at the next batch boundary.
    fn queue(&mut self, message: Control) {
        match message {
            Control::Rebuild { progress, done } => {
                if let Some(previous) = &mut self.rebuild {
                    previous.finish(Err(RebuildError::Stopped));
                }
                self.rebuild = Some(Rebuild {
                    // Target set when the rebuild starts.
                    meter: Meter::new(self.shared.name, Position::ZERO, Position::ZERO),
                    progress,
                    done: Some(done),
                });
                self.failing = None;
            }
            Control::Restart => self.failing = None,
            Control::Stop => {}
        }
    }

    async fn work(&mut self) -> Exit {
        let Some(mut checkpoint) = self.load_checkpoint().await else {
            return Exit::Stop;
        };
        self.shared.set_state(RunnerState::CatchingUp);
        // Caught up means: everything up to the head the store had when the catch-up began is
        // applied. An empty or short batch does not mean it: PostgreSQL's `read_all` stops
        // before a position a running transaction may still fill, with events beyond it.
        let Some(mut target) = self.head().await else {
            return Exit::Stop;
        };
        self.telemetry.catching_up(checkpoint, target);
        // The first catch-up reports progress to the runner's callback.
        let mut catch_up = match &self.config.progress {
            Some(progress) if target > checkpoint => Some(Rebuild {
                meter: Meter::new(self.shared.name, checkpoint, target),
                progress: Some(Arc::clone(progress)),
                done: None,
            }),
            _ => None,
        };
        let mut rebuild_started = false;
        let mut empty = EmptyReads::default();
        loop {
            // Control messages take effect between batches.
            loop {
                match self.inbox.try_recv() {
                    Ok(Control::Stop) | Err(TryRecvError::Disconnected) => return Exit::Stop,
                    Ok(message) => {
                        if matches!(message, Control::Rebuild { .. }) {
                            rebuild_started = false;
                        }
                        self.queue(message);
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            if let Some(rebuild) = &mut self.rebuild
                && !rebuild_started
            {
                match self.sink.reset().await {
                    Ok(()) => {}
                    Err(ApplyError::Store(e)) => {
                        self.telemetry.rebuild_failed(&e);
                        rebuild.finish(Err(RebuildError::Store(e)));
                        self.rebuild = None;
                        continue;
                    }
                    Err(ApplyError::Handler(e)) => {
                        self.telemetry.rebuild_failed(&e);
                        rebuild.finish(Err(RebuildError::Projection(e)));
                        self.rebuild = None;
                        continue;
                    }
                }
                rebuild_started = true;
                checkpoint = Position::ZERO;
                self.shared.publish(checkpoint);
                let Some(head) = self.head().await else {
                    return Exit::Stop;
                };
                target = target.max(head);
                self.telemetry.rebuild_started(head);
                if let Some(rebuild) = &mut self.rebuild {
                    rebuild.meter = Meter::new(self.shared.name, Position::ZERO, head);
                }
                self.shared.set_state(RunnerState::CatchingUp);
            }
            let failed = matches!(self.shared.lock().0, RunnerState::Failed(_));
            if failed {
                if self.failing.is_some() {
                    // Stopped at a failing event: only a control message moves it.
                    match self.inbox.recv().await {
                        None | Some(Control::Stop) => return Exit::Stop,
                        Some(other) => {
                            if matches!(other, Control::Rebuild { .. }) {
                                rebuild_started = false;
                            }
                            self.queue(other);
                        }
                    }
                    continue;
                }
                // Restarted: resume from what is committed.
                checkpoint = match self.load_checkpoint().await {
                    Some(position) => position,
                    None => return Exit::Stop,
                };
                self.shared.set_state(RunnerState::CatchingUp);
            }
            let batch = match self
                .store
                .read_all(checkpoint.next(), self.config.batch_size)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    if !self.store_trouble(e).await {
                        return Exit::Stop;
                    }
                    continue;
                }
            };
            let Some(last) = batch.last() else {
                self.recovered();
                self.telemetry.nothing_new(checkpoint, checkpoint >= target);
                if checkpoint >= target {
                    if self.rebuild.is_some() {
                        self.telemetry.rebuild_finished(checkpoint);
                    }
                    for meters in [&mut catch_up, &mut self.rebuild] {
                        if let Some(done) = meters.take() {
                            finish(done, checkpoint);
                        }
                    }
                    rebuild_started = false;
                    self.shared.set_state(RunnerState::Live);
                }
                // Below the target, the positions after the checkpoint are not readable yet:
                // wait for them (still catching up), pacing re-reads that keep coming back
                // empty.
                tokio::select! {
                    _ = empty.wait(&self.store, checkpoint) => {}
                    message = self.inbox.recv() => match message {
                        None | Some(Control::Stop) => return Exit::Stop,
                        Some(other) => {
                            if matches!(other, Control::Rebuild { .. }) {
                                rebuild_started = false;
                            }
                            self.queue(other);
                        }
                    },
                }
                continue;
            };
            empty.reset();
            let last_position = last.meta.position;
            let mut through = last_position;
            let last_recorded = last.meta.recorded_at;
            let short = batch.len() < self.config.batch_size;
            let (events, segment) = (self.shared.events, self.segment);
            // A segment skips the other segments' streams; its checkpoint still moves past them.
            let mut handled: Vec<RecordedEvent> = batch
                .into_iter()
                .filter(|e| events.contains(&&*e.meta.event_name) && segment.owns(&e.meta.stream))
                .collect();
            // Retrying: commit what precedes the failing event first, then try it alone.
            if let Some((failing, _)) = self.failing
                && let Some(i) = handled.iter().position(|e| e.meta.position == failing)
            {
                if i > 0 {
                    through = handled[i - 1].meta.position;
                    handled.truncate(i);
                } else {
                    through = failing;
                    handled.truncate(1);
                }
            }
            let traced = self.telemetry.batch(checkpoint.next(), through, &handled);
            match traced.instrument(self.sink.apply(&handled, through)).await {
                Ok(()) => {
                    let (events, read_short) = (handled.len(), short && through == last_position);
                    self.telemetry
                        .applied(traced, events, through, read_short, last_recorded);
                    checkpoint = through;
                    self.recovered();
                    if self.failing.is_some_and(|(p, _)| p <= checkpoint) {
                        self.failing = None;
                        self.shared.set_state(RunnerState::CatchingUp);
                    }
                    // What the batch caused first: a waiter that sees the checkpoint then sees it.
                    self.shared
                        .publish_caused(checkpoint, self.sink.caused_through());
                    self.shared.publish(checkpoint);
                    for meters in [&mut catch_up, &mut self.rebuild] {
                        if let Some(Rebuild {
                            meter,
                            progress: Some(progress),
                            ..
                        }) = meters
                            && checkpoint < meter.target()
                        {
                            progress(&meter.report(checkpoint, false));
                        }
                    }
                }
                Err(ApplyError::Handler(error)) => {
                    self.telemetry.batch_failed(traced, false);
                    let event = handled
                        .iter()
                        .find(|e| e.meta.position == error.position)
                        .cloned();
                    let isolated = handled.first().map(|e| e.meta.position) == Some(error.position);
                    if !self.handler_failed(error, event, isolated).await {
                        return Exit::Stop;
                    }
                    checkpoint = match self.load_checkpoint().await {
                        Some(position) => position,
                        None => return Exit::Stop,
                    };
                }
                // The sink's storage failed (a lost connection, the fence): an outage, whatever
                // event was being handled. It is not the event's fault, so it is never counted
                // toward `max_attempts`, never parks the event and never stops the runner.
                Err(ApplyError::Store(e)) => {
                    self.telemetry.batch_failed(traced, true);
                    if !self.store_trouble(e).await {
                        return Exit::Stop;
                    }
                    checkpoint = match self.load_checkpoint().await {
                        Some(position) => position,
                        None => return Exit::Stop,
                    };
                }
            }
        }
    }

    /// Counts a try of a failing event, waits the back-off, and stops or parks after the
    /// last try. `false` when asked to stop meanwhile.
    async fn handler_failed(
        &mut self,
        error: ProjectionError,
        event: Option<RecordedEvent>,
        isolated: bool,
    ) -> bool {
        let attempts = match self.failing {
            Some((position, tries)) if position == error.position => tries + 1,
            _ => 1,
        };
        if !isolated {
            // The batch held events before the failing one, which an exactly-once sink rolled
            // back with it: commit those first (next round), then try this event alone. Only
            // then may it stop the runner or be parked, with the checkpoint right before it.
            self.failing = Some((error.position, attempts));
            self.shared
                .set_state(RunnerState::Retrying { attempts, error });
            return true;
        }
        // A payload that does not decode will not decode on a retry either.
        let hopeless = matches!(error.failure, ProjectionFailure::Decode(_));
        if attempts < self.config.retry.max_attempts && !hopeless {
            self.telemetry.retrying(&error, attempts);
            self.failing = Some((error.position, attempts));
            self.shared
                .set_state(RunnerState::Retrying { attempts, error });
            return self.pause(self.config.retry.jittered(attempts)).await;
        }
        match (self.config.on_failure, event) {
            (OnFailure::Park, Some(event)) => {
                loop {
                    match self.sink.park(&event, &error).await {
                        Ok(()) => break,
                        Err(e) => {
                            if !self.store_trouble(e).await {
                                return false;
                            }
                        }
                    }
                }
                self.telemetry.parked(&error);
                self.failing = None;
                self.shared.lock().1 += 1;
                self.shared.set_state(RunnerState::CatchingUp);
            }
            _ => {
                self.telemetry.stopped(&error, attempts);
                if let Some(rebuild) = &mut self.rebuild {
                    self.telemetry.rebuild_failed(&error);
                    rebuild.finish(Err(RebuildError::Projection(error.clone())));
                    self.rebuild = None;
                }
                self.failing = Some((error.position, attempts));
                self.shared.set_state(RunnerState::Failed(error));
            }
        }
        true
    }

    /// Records a storage failure and waits the back-off, which grows with each failure of the
    /// same outage (until a round succeeds). `false` when asked to stop meanwhile.
    async fn store_trouble(&mut self, error: StoreError) -> bool {
        self.outage = self.outage.saturating_add(1);
        self.telemetry.outage(&error, self.outage);
        self.shared.set_state(RunnerState::StoreUnavailable {
            error: error.to_string(),
        });
        self.pause(self.config.retry.jittered(self.outage)).await
    }

    /// A round succeeded: the next outage starts its back-off from the first delay.
    fn recovered(&mut self) {
        if self.outage > 0 {
            self.telemetry.recovered(self.outage);
            self.outage = 0;
            let mut status = self.shared.lock();
            if matches!(status.0, RunnerState::StoreUnavailable { .. }) {
                status.0 = RunnerState::CatchingUp;
            }
        }
    }

    /// The sink's checkpoint, retried while its storage fails; `None` when asked to stop.
    async fn load_checkpoint(&mut self) -> Option<Position> {
        loop {
            match self.sink.checkpoint().await {
                Ok(position) => {
                    self.shared.publish(position);
                    return Some(position);
                }
                Err(e) => {
                    if !self.store_trouble(e).await {
                        return None;
                    }
                }
            }
        }
    }

    /// The number of segments the projection is stored in, retried while the sink's storage
    /// fails; `None` when asked to stop.
    async fn stored_segments(&mut self) -> Option<u32> {
        loop {
            match self.sink.stored_segments().await {
                Ok(count) => return Some(count),
                Err(e) => {
                    if !self.store_trouble(e).await {
                        return None;
                    }
                }
            }
        }
    }

    /// The store's head, retried while the store fails; `None` when asked to stop.
    async fn head(&mut self) -> Option<Position> {
        loop {
            match self.store.head().await {
                Ok(head) => return Some(head),
                Err(e) => {
                    if !self.store_trouble(e).await {
                        return None;
                    }
                }
            }
        }
    }
}

/// The last report of a catch-up or rebuild.
fn finish(mut done: Rebuild, checkpoint: Position) {
    if let Some(progress) = &done.progress {
        progress(&done.meter.report(checkpoint, true));
    }
    done.finish(Ok(checkpoint));
}

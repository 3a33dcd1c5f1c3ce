//! [`ProjectionRunner`]: the task that feeds one sink from its checkpoint, first in batches up
//! to the store's head, then live, retrying failures with back-off; and [`RunningProjection`],
//! the handle that watches, waits for, rebuilds and stops it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::envelope::RecordedEvent;
use crate::error::{ProjectionError, ProjectionFailure, QueryError, StoreError};
use crate::ids::Position;
use crate::runner::lease::{Lease, Leases, LocalLease};
use crate::runner::progress::{Meter, Progress, ProgressFn};
use crate::runner::sink::{ApplyError, ProjectionSink};
use crate::signal::Signal;
use crate::store::EventStore;

/// How often a failing event is retried, and how long the runner waits between tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per event before [`OnFailure`] applies (at least 1; default 5).
    pub max_attempts: u32,
    /// Wait before the second try (default 100 ms); it doubles on each further try…
    pub first_delay: Duration,
    /// …up to this (default 10 s).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` failed tries (1 = after the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doubling = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.first_delay
            .saturating_mul(doubling)
            .min(self.max_delay)
    }
}

/// What the runner does with an event whose handler still fails after every retry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop at the event, with the error in the status, until [`RunningProjection::restart`]
    /// or a rebuild (the default: nothing is skipped).
    #[default]
    Stop,
    /// Record the event as parked (with the error) and go on with the next one.
    Park,
}

/// What a runner is doing.
#[derive(Clone, Debug)]
pub enum RunnerState {
    /// Waiting for the lease (another process runs this projection).
    Standby,
    /// Reading stored events towards the store's head.
    CatchingUp,
    /// Caught up, following new events.
    Live,
    /// A handler failed on this event; the runner retries it after a back-off.
    Retrying {
        /// Tries so far.
        attempts: u32,
        /// The last failure.
        error: ProjectionError,
    },
    /// The sink's storage or the store failed; the runner retries after a back-off.
    StoreUnavailable {
        /// The last failure, as text.
        error: String,
    },
    /// Stopped at a failing event (with [`OnFailure::Stop`]).
    Failed(ProjectionError),
    /// Stopped on request.
    Stopped,
}

/// A snapshot of one runner.
#[derive(Clone, Debug)]
pub struct RunnerStatus {
    /// Projection name.
    pub name: &'static str,
    /// Stored names of the events it handles.
    pub events: &'static [&'static str],
    /// Position of the last event whose effects are committed.
    pub checkpoint: Position,
    /// What it is doing.
    pub state: RunnerState,
    /// Events parked since this runner started.
    pub parked: u64,
}

/// Why a rebuild did not finish.
#[derive(Debug)]
pub enum RebuildError {
    /// The projection failed on an event during the rebuild.
    Projection(ProjectionError),
    /// The reset hook or the store failed.
    Store(StoreError),
    /// The runner stopped before the rebuild finished.
    Stopped,
}

impl std::fmt::Display for RebuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RebuildError::Projection(e) => write!(f, "rebuild failed: {e}"),
            RebuildError::Store(e) => write!(f, "rebuild failed: {e}"),
            RebuildError::Stopped => f.write_str("the runner stopped before the rebuild finished"),
        }
    }
}

impl std::error::Error for RebuildError {}

/// Reads events from a store into one [`ProjectionSink`].
///
/// ```
/// # use cqrs_core::runner::{MemorySink, ProjectionRunner, RetryPolicy, DurableProjection};
/// # use cqrs_core::{MemoryStore, RecordedEvent, ProjectionError};
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
/// running.wait_for(cqrs_core::Position::ZERO, std::time::Duration::from_secs(1)).await.unwrap();
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

    /// Starts the runner on the tokio runtime.
    pub fn spawn(self) -> RunningProjection<K> {
        let (shared, control, task) = self.into_task();
        RunningProjection {
            shared,
            control,
            join: tokio::spawn(task),
        }
    }

    /// The projection's name.
    pub(crate) fn name(&self) -> &'static str {
        self.sink.name()
    }

    /// The shared state, the control channel and the task future (which returns the sink).
    pub(crate) fn into_task(
        self,
    ) -> (
        Arc<Shared>,
        mpsc::UnboundedSender<Control>,
        impl Future<Output = K> + Send + 'static,
    ) {
        let shared = Arc::new(Shared {
            name: self.sink.name(),
            events: self.sink.events(),
            checkpoint: AtomicU64::new(0),
            advanced: Signal::default(),
            status: Mutex::new((RunnerState::CatchingUp, 0)),
        });
        let (control, inbox) = mpsc::unbounded_channel();
        let task = Task {
            store: self.store,
            sink: self.sink,
            config: self.config,
            shared: Arc::clone(&shared),
            inbox,
            rebuild: None,
            failing: None,
        };
        (shared, control, task.run(self.leases))
    }
}

/// State the task shares with its handle.
pub(crate) struct Shared {
    name: &'static str,
    events: &'static [&'static str],
    checkpoint: AtomicU64,
    advanced: Signal,
    /// The state, and the number of events parked.
    status: Mutex<(RunnerState, u64)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, (RunnerState, u64)> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, state: RunnerState) {
        self.lock().0 = state;
        // Waiters check the state as well as the checkpoint.
        self.advanced.wake_all();
    }

    fn publish(&self, checkpoint: Position) {
        self.checkpoint.store(checkpoint.0, Ordering::SeqCst);
        self.advanced.wake_all();
    }

    pub(crate) fn checkpoint(&self) -> Position {
        Position(self.checkpoint.load(Ordering::SeqCst))
    }

    pub(crate) fn status(&self) -> RunnerStatus {
        let (state, parked) = self.lock().clone();
        RunnerStatus {
            name: self.name,
            events: self.events,
            checkpoint: self.checkpoint(),
            state,
            parked,
        }
    }

    /// See [`RunningProjection::wait_for`].
    pub(crate) async fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<(), QueryError> {
        let started = Instant::now();
        loop {
            let reached = || self.checkpoint.load(Ordering::SeqCst) >= position.0;
            let advanced = self.advanced.wait_unless(reached);
            if reached() {
                return Ok(());
            }
            if let RunnerState::Failed(error) = &self.lock().0 {
                return Err(QueryError::ProjectionFailed(error.clone()));
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(QueryError::Timeout {
                    projection: self.name,
                    target: position,
                    reached: self.checkpoint(),
                    waited,
                });
            }
            let _ = tokio::time::timeout(timeout - waited, advanced).await;
        }
    }
}

pub(crate) enum Control {
    Rebuild {
        progress: Option<ProgressFn>,
        done: oneshot::Sender<Result<Position, RebuildError>>,
    },
    Restart,
    Stop,
}

/// The handle of a spawned runner.
pub struct RunningProjection<K> {
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Control>,
    join: tokio::task::JoinHandle<K>,
}

impl<K: ProjectionSink> RunningProjection<K> {
    /// The projection's name.
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// Position of the last event whose effects are committed.
    pub fn checkpoint(&self) -> Position {
        self.shared.checkpoint()
    }

    /// Name, events, checkpoint, state and parked count.
    pub fn status(&self) -> RunnerStatus {
        self.shared.status()
    }

    /// Read-your-writes: waits until the checkpoint reaches `position` (e.g.
    /// `outcome.position()`). Fails at once with `QueryError::ProjectionFailed` if the runner
    /// stopped on a failing event, and with `QueryError::Timeout` after `timeout`.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<(), QueryError> {
        self.shared.wait_for(position, timeout).await
    }

    /// Resets the projection (its reset hook, checkpoint `ZERO`) and replays every event,
    /// reporting progress to `progress`. Resolves when it has caught up with the events stored
    /// when the rebuild began; the runner then goes on live.
    pub async fn rebuild(&self, progress: Option<ProgressFn>) -> Result<Position, RebuildError> {
        let (done, finished) = oneshot::channel();
        self.control
            .send(Control::Rebuild { progress, done })
            .map_err(|_| RebuildError::Stopped)?;
        finished.await.unwrap_or(Err(RebuildError::Stopped))
    }

    /// Resumes a runner that stopped on a failing event (after the cause was fixed), from its
    /// checkpoint, with a fresh retry count.
    pub fn restart(&self) {
        // Waiters see the failure cleared at once, not after the task wakes up.
        {
            let mut status = self.shared.lock();
            if matches!(status.0, RunnerState::Failed(_)) {
                status.0 = RunnerState::CatchingUp;
            }
        }
        let _ = self.control.send(Control::Restart);
    }

    /// Stops the runner between batches and returns its sink.
    pub async fn stop(self) -> K {
        let _ = self.control.send(Control::Stop);
        match self.join.await {
            Ok(sink) => sink,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Why `work` returned.
enum Exit {
    Stop,
}

struct Task<S, K> {
    store: S,
    sink: K,
    config: Config,
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<Control>,
    /// A rebuild in progress: its meter, progress callback and requester.
    rebuild: Option<Rebuild>,
    /// The event that failed last, and how many tries it has had.
    failing: Option<(Position, u32)>,
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
        self.sink
    }

    /// Waits for the lease; `None` when asked to stop meanwhile.
    async fn acquire<L: Leases>(&mut self, leases: &L) -> Option<L::Lease> {
        loop {
            match leases.try_acquire(self.shared.name).await {
                Ok(Some(lease)) => return Some(lease),
                Ok(None) => self.shared.set_state(RunnerState::Standby),
                Err(e) => self.shared.set_state(RunnerState::StoreUnavailable {
                    error: e.to_string(),
                }),
            }
            if !self.pause(self.config.lease_retry).await {
                return None;
            }
        }
    }

    /// Sleeps, handling control messages; `false` when asked to stop.
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
        let mut checkpoint = match self.load_checkpoint().await {
            Some(position) => position,
            None => return Exit::Stop,
        };
        self.shared.set_state(RunnerState::CatchingUp);
        // The first catch-up reports progress to the runner's callback.
        let mut catch_up = match (&self.config.progress, self.store.head().await) {
            (Some(progress), Ok(head)) if head > checkpoint => Some(Rebuild {
                meter: Meter::new(self.shared.name, checkpoint, head),
                progress: Some(Arc::clone(progress)),
                done: None,
            }),
            _ => None,
        };
        let mut rebuild_started = false;
        loop {
            // Control messages take effect between batches.
            while let Ok(message) = self.inbox.try_recv() {
                if matches!(message, Control::Stop) {
                    return Exit::Stop;
                }
                if matches!(message, Control::Rebuild { .. }) {
                    rebuild_started = false;
                }
                self.queue(message);
            }
            if let Some(rebuild) = &mut self.rebuild
                && !rebuild_started
            {
                match self.sink.reset().await {
                    Ok(()) => {}
                    Err(ApplyError::Store(e)) => {
                        rebuild.finish(Err(RebuildError::Store(e)));
                        self.rebuild = None;
                        continue;
                    }
                    Err(ApplyError::Handler(e)) => {
                        rebuild.finish(Err(RebuildError::Projection(e)));
                        self.rebuild = None;
                        continue;
                    }
                }
                rebuild_started = true;
                checkpoint = Position::ZERO;
                self.shared.publish(checkpoint);
                let head = self.store.head().await.unwrap_or(Position::ZERO);
                rebuild.meter = Meter::new(self.shared.name, Position::ZERO, head);
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
                    if !self.store_trouble(e, 1).await {
                        return Exit::Stop;
                    }
                    continue;
                }
            };
            let Some(last) = batch.last() else {
                for meters in [&mut catch_up, &mut self.rebuild] {
                    if let Some(done) = meters.take() {
                        finish(done, checkpoint);
                    }
                }
                rebuild_started = false;
                self.shared.set_state(RunnerState::Live);
                tokio::select! {
                    _ = self.store.wait_for_events(checkpoint) => {}
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
            let mut through = last.meta.position;
            let events = self.shared.events;
            let mut handled: Vec<RecordedEvent> = batch
                .into_iter()
                .filter(|e| events.contains(&&*e.meta.event_name))
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
            match self.sink.apply(&handled, through).await {
                Ok(()) => {
                    checkpoint = through;
                    if self.failing.is_some_and(|(p, _)| p <= checkpoint) {
                        self.failing = None;
                        self.shared.set_state(RunnerState::CatchingUp);
                    }
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
                Err(ApplyError::Store(e)) => {
                    if !self.store_trouble(e, 1).await {
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
            self.failing = Some((error.position, attempts));
            self.shared
                .set_state(RunnerState::Retrying { attempts, error });
            return self.pause(self.config.retry.delay(attempts)).await;
        }
        match (self.config.on_failure, event) {
            (OnFailure::Park, Some(event)) => {
                let mut tries = 0;
                loop {
                    tries += 1;
                    match self.sink.park(&event, &error).await {
                        Ok(()) => break,
                        Err(e) => {
                            if !self.store_trouble(e, tries).await {
                                return false;
                            }
                        }
                    }
                }
                self.failing = None;
                self.shared.lock().1 += 1;
                self.shared.set_state(RunnerState::CatchingUp);
            }
            _ => {
                if let Some(rebuild) = &mut self.rebuild {
                    rebuild.finish(Err(RebuildError::Projection(error.clone())));
                    self.rebuild = None;
                }
                self.failing = Some((error.position, attempts));
                self.shared.set_state(RunnerState::Failed(error));
            }
        }
        true
    }

    /// Records a storage failure and waits the back-off. `false` when asked to stop meanwhile.
    async fn store_trouble(&mut self, error: StoreError, failures: u32) -> bool {
        self.shared.set_state(RunnerState::StoreUnavailable {
            error: error.to_string(),
        });
        self.pause(self.config.retry.delay(failures)).await
    }

    /// The sink's checkpoint, retried while its storage fails; `None` when asked to stop.
    async fn load_checkpoint(&mut self) -> Option<Position> {
        let mut failures = 0;
        loop {
            match self.sink.checkpoint().await {
                Ok(position) => {
                    self.shared.publish(position);
                    return Some(position);
                }
                Err(e) => {
                    failures += 1;
                    if !self.store_trouble(e, failures).await {
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

//! [`RunningProjection`]: the handle of a spawned runner (status, `wait_for`, `rebuild`,
//! `restart`, `stop`), the state it shares with the runner's task, and the status types.
//!
//! **Rebuilds reset in place, without shadow tables.** `rebuild` calls the projection's `#[reset]`
//! hook (truncate) and replays; readers see the model fill up again. Shadow tables would need the
//! projection to write to renamed tables (every SQL statement parameterised by a table name) or one
//! transaction around the whole rebuild, which on SQLite blocks every append for its duration and
//! on PostgreSQL holds back the xmin horizon that gap-free reading relies on. A projection that
//! must never be seen half-built can be rebuilt under a new name, and the application switched to
//! it when its runner reports `Live`.
//!
//! **`settle` instead of a polling loop.** The runner records, per batch and before publishing the
//! checkpoint, the highest position the batch's effects appended (`ProjectionSink::caused_through`;
//! a process manager's commands). `settle` waits for the checkpoint, then for what the batches up
//! to it caused, until nothing more was caused.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::error::{ProjectionError, QueryError, StoreError};
use crate::ids::Position;
use crate::progress::ProgressFn;
use crate::runner::segment::Segment;
use crate::runner::sink::ProjectionSink;
use crate::signal::Signal;

/// What a runner is doing.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RunnerState {
    /// Waiting for the lease (another process runs this projection).
    Standby,
    /// Reading stored events towards the store's head, read when the runner started (or the
    /// rebuild began). It stays in this state while positions below that head are not readable
    /// yet (a PostgreSQL transaction that drew them is still running).
    CatchingUp,
    /// Caught up: every event up to that head is applied; following new events.
    Live,
    /// A handler failed on this event; the runner retries it after a back-off.
    Retrying {
        /// Tries so far.
        attempts: u32,
        /// The last failure.
        error: ProjectionError,
    },
    /// The sink's storage or the store failed (a lost connection, a database restarting); the
    /// runner retries after a back-off that grows while the outage lasts. Not counted toward
    /// [`RetryPolicy::max_attempts`](crate::runner::RetryPolicy::max_attempts): an outage
    /// never parks an event nor stops the runner.
    StoreUnavailable {
        /// The last failure, as text.
        error: String,
    },
    /// Stopped at a failing event (with [`OnFailure::Stop`](crate::runner::OnFailure::Stop)).
    Failed(ProjectionError),
    /// Stopped on request.
    Stopped,
}

/// A snapshot of one runner.
#[derive(Clone, Debug)]
pub struct RunnerStatus {
    /// Projection name.
    pub name: &'static str,
    /// The segment it runs ([`Segment::WHOLE`] for an unsegmented projection).
    pub segment: Segment,
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
#[non_exhaustive]
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

/// Batches whose `caused_through` a runner remembers for [`RunningProjection::settle`].
const CAUSED_KEPT: usize = 1024;

/// State the task shares with its handle.
pub(crate) struct Shared {
    pub(crate) name: &'static str,
    pub(crate) segment: Segment,
    pub(crate) events: &'static [&'static str],
    checkpoint: AtomicU64,
    /// `(checkpoint, the sink's caused_through)` after each recent batch, oldest first (at most
    /// [`CAUSED_KEPT`]), pushed before the checkpoint is published.
    caused: Mutex<VecDeque<(Position, Position)>>,
    advanced: Signal,
    /// The state, and the number of events parked.
    status: Mutex<(RunnerState, u64)>,
}

impl Shared {
    pub(crate) fn new(
        name: &'static str,
        events: &'static [&'static str],
        segment: Segment,
    ) -> Shared {
        Shared {
            name,
            segment,
            events,
            checkpoint: AtomicU64::new(0),
            caused: Mutex::default(),
            advanced: Signal::default(),
            status: Mutex::new((RunnerState::CatchingUp, 0)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, (RunnerState, u64)> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_state(&self, state: RunnerState) {
        self.lock().0 = state;
        // Waiters check the state as well as the checkpoint.
        self.advanced.wake_all();
    }

    pub(crate) fn publish(&self, checkpoint: Position) {
        self.checkpoint.store(checkpoint.0, Ordering::SeqCst);
        self.advanced.wake_all();
    }

    pub(crate) fn checkpoint(&self) -> Position {
        Position(self.checkpoint.load(Ordering::SeqCst))
    }

    /// Records what the batch that moves the checkpoint to `checkpoint` caused (call before
    /// [`Shared::publish`]).
    pub(crate) fn publish_caused(&self, checkpoint: Position, caused: Position) {
        let mut history = self.caused.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == CAUSED_KEPT {
            history.pop_front();
        }
        history.push_back((checkpoint, caused));
    }

    /// What the sink had caused when its checkpoint first reached `position` (the latest
    /// figure if that batch is no longer in the history).
    fn caused_at(&self, position: Position) -> Position {
        let history = self.caused.lock().unwrap_or_else(|p| p.into_inner());
        history
            .iter()
            .find(|(checkpoint, _)| *checkpoint >= position)
            .or(history.back())
            .map_or(Position::ZERO, |(_, caused)| *caused)
    }

    /// See [`RunningProjection::settle`].
    pub(crate) async fn settle(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<Position, QueryError> {
        let started = Instant::now();
        let mut target = position;
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            self.wait_for(target, left).await.map_err(|e| match e {
                // Report the whole wait, from the first target.
                QueryError::Timeout { reached, .. } => QueryError::Timeout {
                    projection: self.name,
                    target,
                    reached,
                    waited: started.elapsed(),
                },
                other => other,
            })?;
            let caused = self.caused_at(target);
            if caused <= target {
                return Ok(target);
            }
            target = caused;
        }
    }

    pub(crate) fn status(&self) -> RunnerStatus {
        let (state, parked) = self.lock().clone();
        RunnerStatus {
            name: self.name,
            segment: self.segment,
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
///
/// **Dropping the handle stops the runner** at its next batch boundary (as
/// [`stop`](RunningProjection::stop) does, without waiting for it and dropping the sink): a
/// runner nobody can watch, stop or rebuild any more would go on holding its lease and its
/// connections unseen. Keep the handle for as long as the projection should run.
pub struct RunningProjection<K> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) join: tokio::task::JoinHandle<K>,
    /// Where the task leaves its sink if it is cancelled (see [`Kept`]).
    pub(crate) left: Arc<Mutex<Option<K>>>,
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

    /// Waits until the runner has handled every event up to `position` and, for a process
    /// manager, every event that its commands (issued for those events) recorded, and what
    /// those caused in turn; returns the position it reached. The one call a test or an HTTP
    /// handler needs before it reads what a process manager did:
    ///
    /// ```text
    /// let outcome = app.execute(SendTransfer { .. }).await?;
    /// transfers.settle(outcome.position(), Duration::from_secs(5)).await?;
    /// ```
    ///
    /// For a projection that appends nothing it is [`wait_for`](Self::wait_for). What is not
    /// caused synchronously is not waited for: a deadline fires when it is due, not here. Fails
    /// like `wait_for`, the timeout counting the whole wait.
    pub async fn settle(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<Position, QueryError> {
        self.shared.settle(position, timeout).await
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
    ///
    /// Also returns the sink when the runner's task was cancelled (the runtime it was spawned
    /// on shut down): what the sink committed is what its checkpoint says, as after any
    /// interrupted batch.
    ///
    /// # Panics
    ///
    /// Resumes the panic of a runner task that panicked (handlers' panics are caught and
    /// reported as failures; this is a panic of the sink's own code).
    pub async fn stop(self) -> K {
        let _ = self.control.send(Control::Stop);
        match self.join.await {
            Ok(sink) => sink,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the task's future was dropped before this resolved, and dropping it
            // left the sink in `left` (see `Kept`).
            Err(_) => match lock(&self.left).take() {
                Some(sink) => sink,
                None => unreachable!("a cancelled runner task leaves its sink behind"),
            },
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The sink while the runner's task owns it. If the task's future is dropped before it returns
/// the sink (its runtime shut down, which cancels the task), the sink is left in `left`, so
/// [`RunningProjection::stop`] can still return it.
pub(crate) struct Kept<K> {
    sink: Option<K>,
    left: Arc<Mutex<Option<K>>>,
}

impl<K> Kept<K> {
    pub(crate) fn new(sink: K) -> (Kept<K>, Arc<Mutex<Option<K>>>) {
        let left = Arc::new(Mutex::new(None));
        let kept = Kept {
            sink: Some(sink),
            left: Arc::clone(&left),
        };
        (kept, left)
    }

    /// The sink, at the end of the task.
    pub(crate) fn into_inner(mut self) -> K {
        match self.sink.take() {
            Some(sink) => sink,
            None => unreachable!("the sink is only taken here"),
        }
    }
}

impl<K> Deref for Kept<K> {
    type Target = K;
    fn deref(&self) -> &K {
        match &self.sink {
            Some(sink) => sink,
            None => unreachable!("the sink is only taken by `into_inner`"),
        }
    }
}

impl<K> DerefMut for Kept<K> {
    fn deref_mut(&mut self) -> &mut K {
        match &mut self.sink {
            Some(sink) => sink,
            None => unreachable!("the sink is only taken by `into_inner`"),
        }
    }
}

impl<K> Drop for Kept<K> {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            *lock(&self.left) = Some(sink);
        }
    }
}

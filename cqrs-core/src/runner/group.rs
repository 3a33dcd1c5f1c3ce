//! Running many projections together, and listing every registered projection with its
//! checkpoint and lag.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::error::{BuildError, QueryError, StoreError};
use crate::ids::Position;
use crate::registry::{self, ProjectionKind};
use crate::runner::handle::{Control, RunnerStatus, Shared};
use crate::runner::lease::Leases;
use crate::runner::run::ProjectionRunner;
use crate::runner::sink::ProjectionSink;
use crate::store::Checkpoints;
use crate::store::EventStore;

type Starter = Box<dyn FnOnce() -> Member + Send>;

/// Projections started together: names are checked for duplicates (with the program-wide
/// registry checks) before any of them starts.
///
/// ```
/// # use eventweave_core::runner::*;
/// # use eventweave_core::{MemoryStore, RecordedEvent, ProjectionError, Position};
/// # #[derive(Default)] struct Audit;
/// # impl DurableProjection for Audit {
/// #     const NAME: &'static str = "doc_group_audit";
/// #     const EVENTS: &'static [&'static str] = &[];
/// #     async fn handle(&mut self, _: &(), _: &RecordedEvent) -> Result<(), ProjectionError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::new();
/// let running = ProjectionGroup::new()
///     .runner(ProjectionRunner::new(store.clone(), MemorySink::new(Audit)))
///     .start()
///     .unwrap();
/// running.wait_for(Position::ZERO, std::time::Duration::from_secs(1)).await.unwrap();
/// assert_eq!(running.statuses()[0].name, "doc_group_audit");
/// running.stop().await;
/// # }
/// ```
#[derive(Default)]
pub struct ProjectionGroup {
    names: Vec<&'static str>,
    starters: Vec<Starter>,
}

impl ProjectionGroup {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a runner (started by [`ProjectionGroup::start`]).
    pub fn runner<S, K, L>(mut self, runner: ProjectionRunner<S, K, L>) -> Self
    where
        S: EventStore,
        K: ProjectionSink,
        L: Leases,
    {
        self.names.push(runner.name());
        self.starters.push(Box::new(move || {
            let (shared, control, task, _) = runner.into_task();
            Member {
                shared,
                control,
                join: tokio::spawn(async move {
                    drop(task.await);
                }),
            }
        }));
        self
    }

    /// Starts every runner, unless two have the same name or the program-wide registry checks
    /// fail (then none starts).
    pub fn start(self) -> Result<RunningGroup, BuildError> {
        registry::check()?;
        let mut names = self.names.clone();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(BuildError::DuplicateProjection {
                name: pair[0],
                types: ["(runner)", "(runner)"],
            });
        }
        Ok(RunningGroup {
            members: self.starters.into_iter().map(|start| start()).collect(),
        })
    }
}

struct Member {
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Control>,
    join: tokio::task::JoinHandle<()>,
}

/// The handle of a started [`ProjectionGroup`]. Dropping it stops every runner at its next
/// batch boundary, as dropping a
/// [`RunningProjection`](crate::runner::RunningProjection) does.
pub struct RunningGroup {
    members: Vec<Member>,
}

impl RunningGroup {
    /// The status of every runner, in the order they were added.
    pub fn statuses(&self) -> Vec<RunnerStatus> {
        self.members.iter().map(|m| m.shared.status()).collect()
    }

    /// Waits until every runner's checkpoint reaches `position` (see
    /// [`RunningProjection::wait_for`](crate::runner::RunningProjection::wait_for)).
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<(), QueryError> {
        let started = Instant::now();
        for member in &self.members {
            let left = timeout.saturating_sub(started.elapsed());
            member.shared.wait_for(position, left).await?;
        }
        Ok(())
    }

    /// Waits until every runner has handled every event up to `position` and every event the
    /// process managers among them caused for those, transitively (see
    /// [`RunningProjection::settle`](crate::runner::RunningProjection::settle)): a process
    /// manager's commands record events the group's projections must handle too. Returns the
    /// position reached.
    pub async fn settle(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<Position, QueryError> {
        let started = Instant::now();
        let mut target = position;
        loop {
            let mut reached = target;
            for member in &self.members {
                let left = timeout.saturating_sub(started.elapsed());
                reached = reached.max(member.shared.settle(target, left).await?);
            }
            if reached == target {
                return Ok(target);
            }
            target = reached;
        }
    }

    /// Stops every runner between batches and waits for them.
    pub async fn stop(self) {
        for member in &self.members {
            let _ = member.control.send(Control::Stop);
        }
        for member in self.members {
            if let Err(e) = member.join.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

/// One registered projection with its progress in a store.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectionListing {
    /// Projection name.
    pub name: &'static str,
    /// `module::Type`.
    pub type_name: &'static str,
    /// Stored names of the events it handles.
    pub events: &'static [&'static str],
    /// In memory (rebuilt at start-up, no stored checkpoint) or durable.
    pub kind: ProjectionKind,
    /// Its stored checkpoint (`Position::ZERO` for in-memory projections).
    pub checkpoint: Position,
    /// Positions between the checkpoint and the store's head (an upper bound on the events
    /// it has still to read).
    pub lag: u64,
}

/// Every projection registered with `#[projection]` (through `inventory`), sorted by name, with
/// its checkpoint and lag in `store`.
pub async fn list_projections<S: EventStore + Checkpoints>(
    store: &S,
) -> Result<Vec<ProjectionListing>, StoreError> {
    let head = store.head().await?;
    let mut listings = Vec::new();
    for registration in registry::projections() {
        let checkpoint = match registration.kind {
            ProjectionKind::Durable => store.load_checkpoint(registration.name).await?,
            ProjectionKind::InMemory => Position::ZERO,
        };
        listings.push(ProjectionListing {
            name: registration.name,
            type_name: registration.type_name,
            events: registration.events,
            kind: registration.kind,
            checkpoint,
            lag: head.0.saturating_sub(checkpoint.0),
        });
    }
    Ok(listings)
}

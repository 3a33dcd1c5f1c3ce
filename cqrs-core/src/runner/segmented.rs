//! [`SegmentedRunner`]: one process's share of a projection stored in segments (see
//! `segment.rs`): a runner per segment, each taking its segment's lease when it can.

use std::time::{Duration, Instant};

use crate::error::QueryError;
use crate::ids::Position;
use crate::runner::handle::{RunnerStatus, RunningProjection};
use crate::runner::lease::{Leases, LocalLease};
use crate::runner::retry::{OnFailure, RetryPolicy};
use crate::runner::run::ProjectionRunner;
use crate::runner::segment::{Segment, SegmentError, SegmentLeases, checked_sink, load_layout};
use crate::runner::sink::ProjectionSink;
use crate::store::{Checkpoints, EventStore};

/// Runs the segments of a projection stored in `count` segments: one [`ProjectionRunner`] per
/// segment, each on the sink `sink(segment)` makes, each taking its segment's lease before it
/// works and standing by while another runner (in this process or another) holds it. Started
/// in several processes, the segments spread over them; when a process dies, the others take
/// its segments over from their checkpoints (every `lease_retry`).
///
/// ```
/// # use eventweave_core::runner::*;
/// # use eventweave_core::{MemoryStore, RecordedEvent, ProjectionError, Position};
/// # #[derive(Default)] struct Audit;
/// # impl DurableProjection for Audit {
/// #     const NAME: &'static str = "doc_segmented_audit";
/// #     const EVENTS: &'static [&'static str] = &[];
/// #     async fn handle(&mut self, _: &(), _: &RecordedEvent) -> Result<(), ProjectionError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::new();
/// let sink = |segment| CheckpointedSink::new(Audit, store.clone()).segment(segment);
/// // The stored layout is 1 segment until it is changed.
/// resegment(&store, &LocalLease, sink, 4, ResegmentOptions::default()).await.unwrap();
/// let running = SegmentedRunner::new(store.clone(), 4, sink).start().await.unwrap();
/// running.wait_for(Position::ZERO, std::time::Duration::from_secs(1)).await.unwrap();
/// assert_eq!(running.statuses().len(), 4);
/// running.stop().await;
/// # }
/// ```
pub struct SegmentedRunner<S, F, L = LocalLease> {
    store: S,
    sink: F,
    leases: L,
    count: u32,
    max_segments: usize,
    lease_retry: Duration,
    batch_size: usize,
    retry: RetryPolicy,
    on_failure: OnFailure,
}

impl<S, K, F> SegmentedRunner<S, F>
where
    S: EventStore + Checkpoints,
    K: ProjectionSink,
    F: FnMut(Segment) -> K,
{
    /// Runners of the `count` segments over `store`, on the sinks `sink` makes (each given
    /// its segment, e.g. `|s| PgSink::new(&store, P::default()).segment(s)`), with
    /// [`LocalLease`] (one process).
    pub fn new(store: S, count: u32, sink: F) -> Self {
        SegmentedRunner {
            store,
            sink,
            leases: LocalLease,
            count,
            max_segments: usize::MAX,
            lease_retry: Duration::from_secs(1),
            batch_size: 512,
            retry: RetryPolicy::default(),
            on_failure: OnFailure::Stop,
        }
    }
}

impl<S, K, F, L> SegmentedRunner<S, F, L>
where
    S: EventStore + Checkpoints,
    K: ProjectionSink,
    F: FnMut(Segment) -> K,
    L: Leases + Clone,
{
    /// Takes each segment's lease from `leases` (per segment: `{projection}#{k}/{n}`), trying
    /// again every `retry` while another holder has it.
    pub fn leases<L2: Leases + Clone>(
        self,
        leases: L2,
        retry: Duration,
    ) -> SegmentedRunner<S, F, L2> {
        SegmentedRunner {
            store: self.store,
            sink: self.sink,
            leases,
            count: self.count,
            max_segments: self.max_segments,
            lease_retry: retry,
            batch_size: self.batch_size,
            retry: self.retry,
            on_failure: self.on_failure,
        }
    }

    /// The most segments this process works on at once (default: all); the others stand by.
    pub fn max_segments(mut self, segments: usize) -> Self {
        self.max_segments = segments.max(1);
        self
    }

    /// Events read per round trip by each segment (default 512).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// How each segment retries failing events.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// What happens to an event that still fails after its retries (default: stop).
    pub fn on_failure(mut self, action: OnFailure) -> Self {
        self.on_failure = action;
        self
    }

    /// Checks the stored layout and the sinks, then starts a runner per segment. Fails with
    /// [`SegmentError::LayoutMismatch`] when the projection is stored in another number of
    /// segments ([`resegment`](crate::runner::resegment) changes it), and with
    /// [`SegmentError::WrongSink`] when a sink does not apply the segment it was made for.
    pub async fn start(mut self) -> Result<RunningSegments<K>, SegmentError> {
        if self.count == 0 {
            return Err(SegmentError::Invalid { index: 0, count: 0 });
        }
        let sinks = Segment::all(self.count)
            .map(|segment| checked_sink(segment, (self.sink)(segment)))
            .collect::<Result<Vec<K>, SegmentError>>()?;
        let name = sinks[0].name();
        let stored = load_layout(&self.store, name).await?;
        if stored != self.count {
            return Err(SegmentError::LayoutMismatch {
                projection: name,
                stored,
                requested: self.count,
            });
        }
        let leases = SegmentLeases::new(
            self.leases,
            self.store.clone(),
            name,
            self.count,
            self.max_segments,
        );
        let runners = sinks
            .into_iter()
            .map(|sink| {
                ProjectionRunner::new(self.store.clone(), sink)
                    .batch_size(self.batch_size)
                    .retry(self.retry)
                    .on_failure(self.on_failure)
                    .leases(leases.clone(), self.lease_retry)
                    .spawn()
            })
            .collect();
        Ok(RunningSegments { runners })
    }
}

/// The handle of a started [`SegmentedRunner`]. Dropping it stops every segment's runner at
/// its next batch boundary.
pub struct RunningSegments<K> {
    runners: Vec<RunningProjection<K>>,
}

impl<K: ProjectionSink> RunningSegments<K> {
    /// The status of every segment's runner, in segment order (`Standby` for a segment another
    /// process runs; its checkpoint is then the one this runner last saw).
    pub fn statuses(&self) -> Vec<RunnerStatus> {
        self.runners.iter().map(RunningProjection::status).collect()
    }

    /// Waits until every segment's checkpoint reaches `position`. Only segments this process
    /// runs advance here: with segments spread over processes, wait on each process (or read
    /// the checkpoints with [`segment_checkpoints`](crate::runner::segment_checkpoints)).
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<(), QueryError> {
        let started = Instant::now();
        for runner in &self.runners {
            let left = timeout.saturating_sub(started.elapsed());
            runner.wait_for(position, left).await?;
        }
        Ok(())
    }

    /// Stops every segment's runner between batches and returns their sinks, in segment order.
    pub async fn stop(self) -> Vec<K> {
        let mut sinks = Vec::with_capacity(self.runners.len());
        for runner in self.runners {
            sinks.push(runner.stop().await);
        }
        sinks
    }
}

//! Durable projections run from checkpoints.
//!
//! A [`ProjectionRunner`] feeds one [`ProjectionSink`] from the sink's checkpoint: stored
//! events in batches up to the store's head (reporting [`Progress`]), then live events as the
//! store's notifications announce them. A failing handler is retried with back-off
//! ([`RetryPolicy`]); after the last try the runner stops at that event with the error in its
//! status, or parks the event ([`OnFailure`]). Nothing is skipped silently.
//!
//! Sinks decide the delivery guarantee:
//! - [`MemorySink`]: the read model lives in memory and is rebuilt from the first event at
//!   every start;
//! - [`CheckpointedSink`]: effects outside the store (e-mail, HTTP, a broker), checkpoint saved
//!   in the store after each batch: **at least once**, deduplicate with `meta.event_id`;
//! - `eventweave_sqlite::SqliteSink` and `eventweave_postgres::PgSink`: the read model lives in the store's
//!   database and each batch commits its changes and the checkpoint in one transaction:
//!   **exactly once**.
//!
//! [`Leases`] let several processes run the same projections against one database: one of them
//! works, the others stand by and take over from the checkpoint when it dies.
//!
//! A projection can also be stored in **segments** by stream ([`Segment`], [`SegmentedRunner`]):
//! each segment has its own checkpoint and lease, so several processes or tasks share one
//! projection's work; [`resegment`] splits or merges them without a rebuild.

mod durable;
mod group;
mod handle;
mod lease;
pub(crate) mod retry;
mod run;
mod segment;
mod segmented;
mod sink;

// Defined below the runner (the store contract, the crate root) so that lower layers need not
// import the runner; re-exported here where users look for them.
pub use crate::progress::{Progress, ProgressFn};
pub use crate::store::{Checkpoints, ParkedEvent};
pub use durable::DurableProjection;
pub use group::{ProjectionGroup, ProjectionListing, list_projections};
pub use handle::{RebuildError, RunnerState, RunnerStatus, RunningProjection};
pub use lease::{Lease, Leases, LocalLease};
pub use retry::{OnFailure, RetryPolicy};
pub use run::ProjectionRunner;
pub use segment::{
    ResegmentOptions, Segment, SegmentError, SegmentLease, SegmentLeases, layout_key, load_layout,
    resegment, segment_checkpoints, stream_hash,
};
pub use segmented::{RunningSegments, SegmentedRunner};
pub use sink::{ApplyError, CheckpointedSink, MemorySink, ProjectionSink, not_parked};
// Helpers of the framework's own SQL sinks: public for those crates, not part of the API.
#[doc(hidden)]
pub use sink::{handle_caught, refuse_segment_reset, reset_caught, reset_error, stored_error};

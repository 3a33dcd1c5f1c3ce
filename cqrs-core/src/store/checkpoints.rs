//! [`Checkpoints`]: where a store keeps, per projection, the position of the last event whose
//! effects are committed, and the events a projection parked.
//!
//! A parked record is removed by [`Checkpoints::unpark_event`] once the event has been applied
//! again (`ProjectionSink::replay_parked`, the CLI's `replay-parked`), or by a rebuild, which
//! applies every event again (a sink's `reset` drops the projection's records in the
//! transaction that sets its checkpoint to zero). Removing a record never moves the checkpoint:
//! the events after the parked one were applied already.

use std::future::Future;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::ids::{Position, StreamId, Timestamp, Uuid};

/// An event a projection gave up on after its retries (`OnFailure::Park`), kept for an operator.
#[derive(Clone, Debug, PartialEq)]
pub struct ParkedEvent {
    /// The projection.
    pub projection: String,
    /// Global position of the event.
    pub position: Position,
    /// Its id.
    pub event_id: Uuid,
    /// Its stream.
    pub stream: StreamId,
    /// Its version in the stream.
    pub version: u64,
    /// Its stored name.
    pub event_name: String,
    /// The last error, as text.
    pub error: String,
    /// When it was parked.
    pub parked_at: Timestamp,
}

impl ParkedEvent {
    /// The record of `event` parked by `projection` with `error`.
    pub fn new(projection: &str, event: &RecordedEvent, error: String) -> Self {
        let meta = &event.meta;
        ParkedEvent {
            projection: projection.to_owned(),
            position: meta.position,
            event_id: meta.event_id,
            stream: meta.stream.clone(),
            version: meta.version,
            event_name: meta.event_name.to_string(),
            error,
            parked_at: Timestamp::now(),
        }
    }
}

/// Per-projection checkpoints and parked events, kept in the event store itself (so a SQL
/// store can commit a read-model change and its checkpoint in one transaction).
///
/// Every store of this project implements it; the conformance suite tests it.
pub trait Checkpoints: Clone + Send + Sync + 'static {
    /// The checkpoint of `projection` (`Position::ZERO` when it has none).
    fn load_checkpoint(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<Position, StoreError>> + Send;

    /// Sets the checkpoint of `projection`.
    fn save_checkpoint(
        &self,
        projection: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a parked event and moves the checkpoint of its projection to the event's position.
    fn park_event(
        &self,
        parked: ParkedEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The events `projection` parked, in position order.
    fn parked_events(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<Vec<ParkedEvent>, StoreError>> + Send;

    /// Removes the record of the event at `position` that `projection` parked, without moving
    /// the checkpoint; `false` when there was none (another replay removed it first).
    /// `position: None` removes every record of `projection` (a rebuild applies them all).
    ///
    /// Exactly-once SQL sinks run the same statement inside the transaction that applies the
    /// event again, so the record goes if and only if the effect commits.
    fn unpark_event(
        &self,
        projection: &str,
        position: Option<Position>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

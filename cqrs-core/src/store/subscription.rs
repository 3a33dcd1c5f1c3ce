use std::collections::VecDeque;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::ids::Position;
use crate::store::{EmptyReads, EventStore};

/// How many events a subscription reads per round trip.
const BATCH: usize = 512;

/// A reader of every event from a position on: catch-up in batches, then live.
///
/// Built on [`EventStore::read_all`] and [`EventStore::wait_for_events`], so it inherits the
/// store's no-gap, no-duplicate ordering.
pub struct Subscription<S> {
    store: S,
    next: Position,
    buffer: VecDeque<RecordedEvent>,
    empty: EmptyReads,
}

impl<S: EventStore> Subscription<S> {
    /// Starts at `from` (inclusive; `Position::ZERO` means the beginning).
    pub fn new(store: S, from: Position) -> Self {
        Subscription {
            store,
            next: Position(from.0.max(1)),
            buffer: VecDeque::new(),
            empty: EmptyReads::default(),
        }
    }

    /// The position the next event will have at least.
    pub fn position(&self) -> Position {
        self.next
    }

    /// The next event, waiting for one to be committed if none is stored yet.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.next = event.meta.position.next();
                return Ok(event);
            }
            let batch = self.store.read_all(self.next, BATCH).await?;
            if batch.is_empty() {
                // Paced: with a position held by a running transaction, events may exist
                // beyond it and the store's wake-up resolve at once.
                self.empty
                    .wait(&self.store, Position(self.next.0 - 1))
                    .await;
            } else {
                self.empty.reset();
                self.buffer.extend(batch);
            }
        }
    }

    /// The next event if one is readable now, without waiting.
    ///
    /// `None` does not mean that the subscription reached the store's head: a position drawn
    /// by a transaction that is still running (PostgreSQL) is not readable yet, while events
    /// beyond it are stored. Compare [`position`](Subscription::position) with
    /// [`EventStore::head`] to know whether it has.
    pub async fn try_next(&mut self) -> Result<Option<RecordedEvent>, StoreError> {
        if self.buffer.is_empty() {
            self.buffer
                .extend(self.store.read_all(self.next, BATCH).await?);
        }
        Ok(self.buffer.pop_front().inspect(|event| {
            self.next = event.meta.position.next();
        }))
    }
}

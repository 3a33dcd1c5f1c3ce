//! The store wrapper the course races run on: it holds the first `n` conditional appends until
//! all `n` are there, so every racer has read and decided on the same state before any of them
//! appends, and only the store's append conditions keep them from all succeeding.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eventweave_core::{
    AppendCondition, EventQuery, EventStore, ExpectedVersion, NewEvent, Position, QueryRead,
    RecordedEvent, StoreError, StreamId, StreamWrite, Uuid,
};
use tokio::sync::Barrier;

/// A store whose first `n` conditional appends wait until all `n` are there.
#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    gate: Arc<Barrier>,
    gated: Arc<AtomicUsize>,
    n: usize,
}

impl<S> Gated<S> {
    pub fn new(inner: S, n: usize) -> Self {
        Gated {
            inner,
            gate: Arc::new(Barrier::new(n)),
            gated: Arc::new(AtomicUsize::new(0)),
            n,
        }
    }
}

impl<S: EventStore> EventStore for Gated<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, limit).await
    }
    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }
    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }
    async fn read_event(&self, id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.inner.read_event(id).await
    }
    async fn wait_for_events(&self, after: Position) {
        self.inner.wait_for_events(after).await;
    }
    async fn read_query(
        &self,
        query: &EventQuery,
        from: Position,
        limit: usize,
    ) -> Result<QueryRead, StoreError> {
        self.inner.read_query(query, from, limit).await
    }
    async fn append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.gated.fetch_add(1, Ordering::SeqCst) < self.n {
            self.gate.wait().await;
        }
        self.inner.append_conditional(writes, condition).await
    }
}

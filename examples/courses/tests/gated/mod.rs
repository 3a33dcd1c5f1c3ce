//! The store wrapper the course races run on: it holds the first `n` conditional appends until
//! all `n` are there, so every racer has read and decided on the same state before any of them
//! appends, and only the store's append conditions keep them from all succeeding.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eventweave_core::{AppendCondition, EventStore, RecordedEvent, StoreError, StreamWrite};
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
    eventweave_core::forward_event_store!(
        inner: append, read_stream, read_all, head, read_event, wait_for_events, read_query
    );

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

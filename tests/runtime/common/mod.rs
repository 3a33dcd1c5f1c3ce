//! Store wrappers shared by the runtime tests: [`HoleStore`] (a `MemoryStore` whose `read_all`
//! stops before a "pending hole", as PostgreSQL's does before a position a running
//! transaction holds, while `head()` already shows the events beyond it) and [`FlakyStore`]
//! (a `MemoryStore` whose reads fail for a while, counting the calls).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eventweave_core::{
    BackendError, EventStore, ExpectedVersion, MemoryStore, NewEvent, Payload, Position,
    RecordedEvent, StoreError, StreamId, UserMetadata, new_id,
};

/// An event of the test domain's counter, stored by name.
pub fn raw(name: &str, json: &str) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: name.to_owned().into(),
        event_version: 1,
        payload: Payload::from_json(json),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

/// Appends `count` `counter.added` events (n = 1, 2, …) to `counter-<stream>` behind the
/// application's back; returns the last position.
pub async fn append_added(store: &MemoryStore, stream: u64, count: u64) -> Position {
    let events = (1..=count)
        .map(|n| raw("counter.added", &format!(r#"{{"n":{n}}}"#)))
        .collect();
    let stored = store
        .append(
            &StreamId::from(format!("counter-{stream}")),
            ExpectedVersion::Any,
            events,
        )
        .await
        .unwrap();
    stored.last().unwrap().meta.position
}

#[derive(Default)]
struct Hole {
    /// Positions from this one on are not readable (`None`: everything is).
    at: Option<Position>,
    /// Release the hole by itself after this many empty reads at it.
    release_after: Option<u64>,
    /// Reads that came back empty because of the hole.
    empty_reads: u64,
}

/// A `MemoryStore` with a pending hole: `read_all` returns nothing from the hole on (an empty
/// batch at it, a short one before it) while `head()` shows every event, until released.
#[derive(Clone, Default)]
pub struct HoleStore {
    pub inner: MemoryStore,
    hole: Arc<Mutex<Hole>>,
}

impl HoleStore {
    /// Hides `at` and every later position from `read_all`.
    pub fn hold(&self, at: Position) {
        let mut hole = self.hole.lock().unwrap();
        hole.at = Some(at);
        hole.release_after = None;
    }

    /// As [`HoleStore::hold`], releasing the hole by itself after `reads` empty reads at it.
    pub fn hold_for(&self, at: Position, reads: u64) {
        let mut hole = self.hole.lock().unwrap();
        hole.at = Some(at);
        hole.release_after = Some(reads);
    }

    /// Makes every event readable.
    pub fn release(&self) {
        self.hole.lock().unwrap().at = None;
    }

    /// Reads that came back empty at the hole so far.
    pub fn empty_reads(&self) -> u64 {
        self.hole.lock().unwrap().empty_reads
    }

    /// Waits (yielding) until at least `reads` reads came back empty at the hole.
    pub async fn until_empty_reads(&self, reads: u64) {
        for _ in 0..100_000 {
            if self.empty_reads() >= reads {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("only {} empty reads at the hole", self.empty_reads());
    }
}

impl EventStore for HoleStore {
    eventweave_core::forward_event_store!(inner: append, read_stream, head);

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let at = {
            let mut hole = self.hole.lock().unwrap();
            match hole.at {
                Some(at) if from >= at => {
                    hole.empty_reads += 1;
                    if hole.release_after.is_some_and(|n| hole.empty_reads >= n) {
                        hole.at = None;
                        None
                    } else {
                        return Ok(Vec::new());
                    }
                }
                at => at,
            }
        };
        let mut events = self.inner.read_all(from, limit).await?;
        if let Some(at) = at {
            events.retain(|e| e.meta.position < at);
        }
        Ok(events)
    }

    // Like a store that does not know about the hole: events exist beyond it, so this
    // resolves at once while it is held (after yielding, so a reader that does nothing but
    // re-read does not starve the other tasks of a single-threaded test).
    async fn wait_for_events(&self, after: Position) {
        let held = self
            .hole
            .lock()
            .unwrap()
            .at
            .is_some_and(|at| after.next() >= at);
        if held {
            tokio::task::yield_now().await;
        }
        self.inner.wait_for_events(after).await
    }
}

/// A `MemoryStore` whose `read_all` fails with `Unavailable` while `failures` is above 0
/// (counting down), counting every call.
#[derive(Clone, Default)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub failures: Arc<AtomicU64>,
    pub reads: Arc<AtomicU64>,
}

impl EventStore for FlakyStore {
    eventweave_core::forward_event_store!(inner: append, read_stream, head, wait_for_events);

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Unavailable(BackendError::new(
                "connection refused (test outage)",
            )));
        }
        self.inner.read_all(from, limit).await
    }
}

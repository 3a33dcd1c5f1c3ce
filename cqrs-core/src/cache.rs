//! The hydrated-aggregate cache: the reason a command's cost does not grow with its stream.
//!
//! An entry is *taken out* while a command runs and put back only after its events are
//! appended and applied. A handler that panics, a conflict, or a dropped future therefore never
//! leaves a half-updated state behind: the entry is simply missing and the next command reloads
//! it from the store. A stale entry (another process appended) is caught by the append's
//! expected-version check, evicted, and the command retried on fresh state.
//!
//! Eviction is arbitrary when a type's cache is full (default 10 000 entries): a miss costs one
//! reload, never correctness. An LRU is a later refinement.

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex, RwLock};

use crate::FastMap;
use crate::aggregate::Aggregate;
use crate::ids::StreamId;

/// One aggregate's state at a known version.
pub(crate) struct Hydrated<A> {
    pub state: A,
    pub version: u64,
    pub stream: StreamId,
}

/// The cache of one aggregate type.
pub(crate) struct AggregateCache<A: Aggregate> {
    entries: Mutex<FastMap<A::Id, Hydrated<A>>>,
    capacity: usize,
}

impl<A: Aggregate> AggregateCache<A> {
    fn new(capacity: usize) -> Self {
        AggregateCache {
            entries: Mutex::new(FastMap::default()),
            capacity,
        }
    }

    /// Removes and returns the entry, so no other command sees it while this one runs.
    pub fn take(&self, id: &A::Id) -> Option<Hydrated<A>> {
        self.lock().remove(id)
    }

    /// Puts a state back after a successful (or rejected) command.
    pub fn put(&self, id: &A::Id, entry: Hydrated<A>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(id) {
            // Any entry will do: a miss only costs a reload, never correctness.
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(id.clone(), entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<A::Id, Hydrated<A>>> {
        // Only map operations run under this lock; user code never does.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One cache per aggregate type, created on first use.
pub(crate) struct Caches {
    by_type: RwLock<FastMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    capacity: usize,
}

impl Caches {
    pub fn new(capacity: usize) -> Self {
        Caches {
            by_type: RwLock::new(FastMap::default()),
            capacity,
        }
    }

    pub fn of<A: Aggregate>(&self) -> Arc<AggregateCache<A>> {
        let key = TypeId::of::<A>();
        let found = self
            .by_type
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let any = match found {
            Some(any) => any,
            None => self
                .by_type
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key)
                .or_insert_with(|| Arc::new(AggregateCache::<A>::new(self.capacity)))
                .clone(),
        };
        any.downcast::<AggregateCache<A>>()
            .unwrap_or_else(|_| unreachable!("caches are keyed by the TypeId of their aggregate"))
    }
}

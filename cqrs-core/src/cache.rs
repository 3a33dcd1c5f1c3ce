//! The hydrated-aggregate cache, and the turn a command takes on its aggregate id.
//!
//! **The cache** is the reason a command's cost does not grow with its stream. An entry is
//! *taken out* while a command runs and put back only after its events are appended and applied.
//! A handler that panics, a conflict, or a dropped future therefore never leaves a half-updated
//! state behind: the entry is simply missing and the next command reloads it from the store. A
//! stale entry (another process appended) is caught by the append's expected-version check, and
//! the command retried on fresh state.
//!
//! **The turn**: commands on one aggregate id run one at a time inside a process, in arrival
//! order. Without it a second command on an id whose entry is out (taken by the command in
//! flight) replayed the whole stream, decided on that older state and lost the append with a
//! conflict: N concurrent commands on one hot aggregate cost O(N²) replays and retries. Now the
//! second command waits for the first one's turn to end and receives the state it put back. A
//! turn is a guard ([`Turn`]): it ends when the command puts a state back, or when it is dropped
//! (an error, a panic caught by the bus, or the command's future dropped mid-way), and then the
//! entry stays empty, so the next command reloads. A command still queued when its future is
//! dropped leaves the queue; one dropped just after the turn was handed to it hands it on. The
//! turn only orders this process's commands: other processes are still caught by the append's
//! expected version (invariant 2), and their conflicts are retried while the turn is held.
//!
//! Uncontended, a turn costs what the old take and put cost: one map lock to begin (taking the
//! state out) and one to end (putting it back). Waiters queue inside the entry, so no allocation
//! is made unless commands actually wait. Everything runs under the one map lock of the
//! aggregate type, and no user code runs under it.
//!
//! Eviction is arbitrary when a type's cache holds more entries than its capacity (default
//! 10 000): any entry whose turn is free goes; a miss costs one reload, never correctness. An
//! entry whose turn is held or awaited is never evicted (its queue lives in it). An LRU is a
//! later refinement.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::task::{Context, Poll, Waker};

use crate::FastMap;
use crate::aggregate::Aggregate;
use crate::ids::StreamId;
use crate::tag::Tags;

/// One aggregate's state at a known version.
pub(crate) struct Hydrated<A> {
    pub state: A,
    pub version: u64,
    pub stream: StreamId,
    /// The tags every event of the aggregate carries (its id tag), once a command made them.
    pub id_tags: Option<Tags>,
}

impl<A> Hydrated<A> {
    /// A state whose id tags are not made yet.
    pub fn new(state: A, version: u64, stream: StreamId) -> Self {
        Hydrated {
            state,
            version,
            stream,
            id_tags: None,
        }
    }
}

/// One aggregate id: its cached state and its turn.
struct Entry<A> {
    /// The state, while no command holds the turn (a holder took it out).
    hydrated: Option<Hydrated<A>>,
    /// A command holds the turn, or it was handed to a queued command that has not taken it yet.
    held: bool,
    /// Commands waiting for the turn, in arrival order.
    queue: VecDeque<Waiting>,
    /// The ticket the turn was handed to, until that command takes it.
    granted: Option<u64>,
    next_ticket: u64,
}

impl<A> Entry<A> {
    fn new() -> Self {
        Entry {
            hydrated: None,
            held: false,
            queue: VecDeque::new(),
            granted: None,
            next_ticket: 0,
        }
    }

    /// Hands the turn to the next waiting command, or frees it; the waker to call (after the
    /// lock is released).
    fn pass_on(&mut self) -> Option<Waker> {
        match self.queue.pop_front() {
            Some(next) => {
                self.granted = Some(next.ticket);
                // A waiter not polled yet has no waker; it sees its grant when first polled.
                next.waker
            }
            None => {
                self.held = false;
                None
            }
        }
    }
}

/// A command queued for a turn.
struct Waiting {
    ticket: u64,
    waker: Option<Waker>,
}

/// The cache of one aggregate type.
pub(crate) struct AggregateCache<A: Aggregate> {
    entries: Mutex<FastMap<A::Id, Entry<A>>>,
    capacity: usize,
    /// `false` only for the benchmark of the old behaviour (`CqrsBuilder::__without_turns`).
    turns: bool,
}

impl<A: Aggregate> AggregateCache<A> {
    fn new(capacity: usize, turns: bool) -> Self {
        AggregateCache {
            entries: Mutex::new(FastMap::default()),
            capacity,
            turns,
        }
    }

    /// Begins the turn on `id` at once if it is free, with the state the cache held (if any),
    /// else queues for it: await the [`Queued`] future for the same. Either way the caller
    /// holds or awaits the turn until it drops what it got.
    pub fn try_turn<'a>(&'a self, id: &'a A::Id) -> Result<Began<'a, A>, Queued<'a, A>> {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(id) {
            if entry.held && !self.turns {
                // The old behaviour: run beside the holder on a reloaded state.
                let mut turn = Turn::new(self, id);
                turn.detached = true;
                return Ok((turn, None));
            }
            if entry.held {
                let ticket = entry.next_ticket;
                entry.next_ticket += 1;
                entry.queue.push_back(Waiting {
                    ticket,
                    waker: None,
                });
                return Err(Queued {
                    cache: self,
                    id,
                    ticket,
                    done: false,
                });
            }
            entry.held = true;
            let found = entry.hydrated.take();
            return Ok((Turn::new(self, id), found));
        }
        let mut entry = Entry::new();
        entry.held = true;
        entries.insert(id.clone(), entry);
        Ok((Turn::new(self, id), None))
    }

    /// Forgets the cached state of `id` (a decision wrote into its stream). A command holding
    /// the turn keeps the state it took out; should it put back a state older than the stream,
    /// the next append on it meets the expected version and reloads (invariant 2).
    pub fn evict(&self, id: &A::Id) {
        let mut entries = self.lock();
        let free = match entries.get_mut(id) {
            Some(entry) => {
                entry.hydrated = None;
                !entry.held
            }
            None => false,
        };
        if free {
            entries.remove(id);
        }
    }

    /// Keeps the state of a command that ran without the turn, if the turn is free.
    fn end_detached(&self, id: &A::Id, hydrated: Hydrated<A>) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(id)
            && !entry.held
            && self.capacity > 0
        {
            entry.hydrated = Some(hydrated);
        }
    }

    /// Ends the turn on `id`, keeping `hydrated` (if any, and if the cache keeps states) for
    /// the next command.
    fn end_turn(&self, id: &A::Id, hydrated: Option<Hydrated<A>>) {
        let waker = {
            let mut entries = self.lock();
            let Some(entry) = entries.get_mut(id) else {
                // Held entries are never removed; nothing to hand on.
                return;
            };
            entry.hydrated = if self.capacity == 0 { None } else { hydrated };
            let waker = entry.pass_on();
            if !entry.held {
                if entry.hydrated.is_none() {
                    entries.remove(id);
                } else if entries.len() > self.capacity {
                    // Any entry whose turn is free will do: a miss only costs a reload.
                    let victim = entries
                        .iter()
                        .find(|(key, e)| !e.held && *key != id)
                        .map(|(key, _)| key.clone());
                    if let Some(victim) = victim {
                        entries.remove(&victim);
                    }
                }
            }
            waker
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn lock(&self) -> MutexGuard<'_, FastMap<A::Id, Entry<A>>> {
        // Only map operations run under this lock; user code never does.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A turn just begun, with the state the cache held for the id (if any).
pub(crate) type Began<'a, A> = (Turn<'a, A>, Option<Hydrated<A>>);

/// A command's turn on one aggregate id: no other command of this process runs on the id
/// until it ends. [`Turn::put`] ends it keeping a state for the next command; dropping it ends
/// it with the entry empty (the next command reloads). It holds no state itself: the command's
/// future keeps it across every await, so it stays a few words.
pub(crate) struct Turn<'a, A: Aggregate> {
    cache: &'a AggregateCache<A>,
    id: &'a A::Id,
    ended: bool,
    /// Not the id's turn: a command run beside the holder (`AggregateCache::turns` off).
    detached: bool,
}

impl<'a, A: Aggregate> Turn<'a, A> {
    fn new(cache: &'a AggregateCache<A>, id: &'a A::Id) -> Self {
        Turn {
            cache,
            id,
            ended: false,
            detached: false,
        }
    }

    /// Ends the turn, leaving `entry` for the next command on this id.
    pub fn put(mut self, entry: Hydrated<A>) {
        self.ended = true;
        if self.detached {
            self.cache.end_detached(self.id, entry);
        } else {
            self.cache.end_turn(self.id, Some(entry));
        }
    }
}

impl<A: Aggregate> Drop for Turn<'_, A> {
    fn drop(&mut self) {
        if !self.ended && !self.detached {
            // A failed, panicking or dropped command: whatever it held is not trusted.
            self.cache.end_turn(self.id, None);
        }
    }
}

/// A command waiting for its turn on an id; resolves to the [`Turn`]. Dropping it leaves the
/// queue (or hands the turn on, if it was already handed to it).
pub(crate) struct Queued<'a, A: Aggregate> {
    cache: &'a AggregateCache<A>,
    id: &'a A::Id,
    ticket: u64,
    done: bool,
}

impl<'a, A: Aggregate> Future for Queued<'a, A> {
    type Output = Began<'a, A>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Began<'a, A>> {
        let this = self.get_mut();
        let mut entries = this.cache.lock();
        let Some(entry) = entries.get_mut(this.id) else {
            // Unreachable (an entry with a queue is never removed); begin a turn on a fresh
            // entry rather than wait for ever.
            let mut entry = Entry::new();
            entry.held = true;
            entries.insert(this.id.clone(), entry);
            this.done = true;
            return Poll::Ready((Turn::new(this.cache, this.id), None));
        };
        if entry.granted == Some(this.ticket) {
            entry.granted = None;
            this.done = true;
            let found = entry.hydrated.take();
            return Poll::Ready((Turn::new(this.cache, this.id), found));
        }
        if let Some(waiting) = entry.queue.iter_mut().find(|w| w.ticket == this.ticket) {
            match &mut waiting.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl<A: Aggregate> Drop for Queued<'_, A> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let waker = {
            let mut entries = self.cache.lock();
            let Some(entry) = entries.get_mut(self.id) else {
                return;
            };
            if entry.granted == Some(self.ticket) {
                // Handed to us but never taken: hand it on, with the state the last holder left.
                entry.granted = None;
                let waker = entry.pass_on();
                if !entry.held && entry.hydrated.is_none() {
                    entries.remove(self.id);
                }
                waker
            } else {
                entry.queue.retain(|w| w.ticket != self.ticket);
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// How many aggregate types get a slot found without a lock (the rest go through a map).
const SLOTS: usize = 32;

/// One cache per aggregate type, created on first use.
///
/// A command looks its type's cache up on every call, so the first [`SLOTS`] types live in
/// write-once slots scanned without a lock or a reference count (a few atomic loads); further
/// types go through a map behind a lock.
pub(crate) struct Caches {
    slots: [OnceLock<(TypeId, Box<dyn Any + Send + Sync>)>; SLOTS],
    more: RwLock<FastMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    capacity: usize,
    turns: bool,
}

/// An aggregate type's cache, borrowed from its slot or shared from the map.
pub(crate) enum CacheRef<'a, A: Aggregate> {
    Slot(&'a AggregateCache<A>),
    Shared(Arc<AggregateCache<A>>),
}

impl<A: Aggregate> std::ops::Deref for CacheRef<'_, A> {
    type Target = AggregateCache<A>;
    fn deref(&self) -> &AggregateCache<A> {
        match self {
            CacheRef::Slot(cache) => cache,
            CacheRef::Shared(cache) => cache,
        }
    }
}

impl Caches {
    /// Caches of `capacity` entries per type; `turns: false` lets commands on one id run side
    /// by side (the behaviour before turns, kept for the contention benchmark only).
    pub fn new(capacity: usize, turns: bool) -> Self {
        Caches {
            slots: [const { OnceLock::new() }; SLOTS],
            more: RwLock::new(FastMap::default()),
            capacity,
            turns,
        }
    }

    pub fn of<A: Aggregate>(&self) -> CacheRef<'_, A> {
        let key = TypeId::of::<A>();
        let downcast = "caches are keyed by the TypeId of their aggregate";
        // Slots fill in order and are never emptied, so a type is in the first slot that is
        // either its own or was empty when it was first asked for.
        for slot in &self.slots {
            let (id, any) = slot.get_or_init(|| {
                let cache = AggregateCache::<A>::new(self.capacity, self.turns);
                (key, Box::new(cache))
            });
            if *id == key {
                return match any.downcast_ref::<AggregateCache<A>>() {
                    Some(cache) => CacheRef::Slot(cache),
                    None => unreachable!("{downcast}"),
                };
            }
        }
        let found = self
            .more
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let any = match found {
            Some(any) => any,
            None => self
                .more
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key)
                .or_insert_with(|| Arc::new(AggregateCache::<A>::new(self.capacity, self.turns)))
                .clone(),
        };
        match any.downcast::<AggregateCache<A>>() {
            Ok(cache) => CacheRef::Shared(cache),
            Err(_) => unreachable!("{downcast}"),
        }
    }
}

//! In-process projections, fed in global-position order, each at its own pace.
//!
//! After each commit the command bus hands its events here with their typed values, so a
//! projection in the same process reads them without decoding. Commits of concurrent commands
//! can arrive out of order; an event is handed on only when every earlier position has been,
//! either from another command of this process or from the store (`read_all`), which also brings
//! in events that other processes appended. Events that arrive too early wait in `pending`.
//! This ordering (the *sequencer*) runs under one short lock that never runs user code.
//!
//! **Each projection is a lane** with its own lock and its own applied position, so a slow
//! projection holds up neither the other projections, nor queries on them, nor the commands
//! of other tasks. Events leave the sequencer in order and go to every lane. The first lane no
//! task is applying to is *claimed* at once by the task that handed the events over and gets
//! them directly, after the sequencer's lock is released (a command's own events with their
//! typed values, nothing copied: the usual case of one projection costs no more). Every other
//! lane gets them in its *inbox*; the task then claims, one at a time, each lane that is free
//! and applies its inbox, so a projection that blocks holds only its own lane. A lane's claimer
//! applies everything in order and, before letting the lane go, what other tasks left in its
//! inbox meanwhile, at most [`DRAIN_ROUNDS`] times (a command does not feed a busy projection for
//! ever); what is left waits for the next task that claims the lane: the next command, a query
//! on it, or a `query_after` waiting for it. An inbox holding more than [`INBOX_LIMIT`] events
//! makes the tasks that fill it wait for the projection (and help apply): the memory a slow
//! projection holds stays bounded, and a projection that cannot keep up with the write rate
//! slows the writers down to its pace instead of losing events.
//!
//! `query` answers from the projection's current state (after applying its inbox, when no other
//! task is applying to it). `query_after(position)` waits for *its* projection to apply every
//! event up to `position` (read-your-writes), whatever the other projections do. The position of
//! the read side ([`ReadSide::applied`], `Cqrs::position`) is the lowest of its projections'.
//!
//! Reading the store costs a round trip, so a command only does it when no other command of
//! this process is between its append and its delivery ([`Writing`]): while one is, the gap is
//! usually its events, on their way. The last writer out reads the store for whatever is still
//! missing (events of other processes, holes of failed appends). Under sustained concurrency
//! there may be no last writer for a long time, so `pending` is also bounded: when it holds
//! more than [`PENDING_LIMIT`] events, the command that pushed it over reads the store, and if
//! the gap is still not readable (a position a running transaction holds), drops the buffer:
//! those events are stored, and the next read brings them back.
//!
//! Catch-ups read [`CATCH_UP_BATCH`] events per round trip and, after a full batch, send the
//! next read before applying it (`ReadSide::apply_reading_ahead`): the store finds and sends
//! the next rows while the projections apply these, instead of the two taking turns.
//!
//! "Caught up" is always measured against the store's head: `build()` and
//! [`Cqrs::catch_up`](crate::Cqrs::catch_up) apply every event up to the head they read when
//! they began, however many reads come back empty or short before it (PostgreSQL's `read_all`
//! stops before a position a running transaction may still fill).
//!
//! Lock order: a lane's lock may be held while taking the sequencer's, never the reverse.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::envelope::RecordedEvent;
use crate::error::{ProjectionError, ProjectionFailure, QueryError, StoreError};
use crate::event::EventSet;
use crate::ids::Position;
use crate::progress::Meter;
use crate::progress::ProgressFn;
use crate::projection::{DynProjection, EventRef};
use crate::query::RoutedQuery;
use crate::signal::Signal;
use crate::store::{EmptyReads, EventStore};
use crate::unwind;

/// Events read from the store per catch-up round trip (the next batch is read while one is
/// applied: `ReadSide::apply_reading_ahead`).
const CATCH_UP_BATCH: usize = 4096;

/// Events that may wait in `pending` before the command that adds one more reads the store.
const PENDING_LIMIT: usize = 256;

/// Events a projection's inbox may hold before the tasks that add more wait for it.
const INBOX_LIMIT: usize = 4096;

/// How many times a claimer takes its lane's inbox before it lets the lane go.
const DRAIN_ROUNDS: usize = 4;

/// How often a catch-up that waits for unreadable positions below the head reports progress.
const WAITING_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// One projection and where it stands.
struct Lane {
    name: &'static str,
    events: &'static [&'static str],
    /// The projection's concrete type, to route queries without locking it.
    type_id: TypeId,
    /// Locked by the task applying events to it (its claimer) and by queries.
    work: Mutex<Work>,
    /// Why it stopped, if it did (readable while another task applies).
    failed: Mutex<Option<ProjectionError>>,
    /// The last position applied (or skipped, once stopped).
    applied: AtomicU64,
}

struct Work {
    projection: Box<dyn DynProjection>,
    /// Set when the projection stopped on an event; it then receives nothing more.
    stopped: bool,
}

/// A lane's place in the sequencer.
#[derive(Default)]
struct Inbox {
    /// A task is applying events to the lane; others leave theirs in `events`.
    claimed: bool,
    /// Sequenced events waiting for the lane's claimer, in position order.
    events: VecDeque<RecordedEvent>,
}

/// The sequencer: what has been handed to the lanes, and what waits for an earlier position.
struct Order {
    sequenced: Position,
    pending: BTreeMap<Position, RecordedEvent>,
    inboxes: Vec<Inbox>,
}

pub(crate) struct ReadSide {
    /// Never held across an `await` nor while user code runs.
    order: Mutex<Order>,
    lanes: Vec<Lane>,
    /// Mirror of `Order::sequenced`, readable without the lock.
    sequenced: AtomicU64,
    /// Whether `Order::pending` holds events, readable without the lock (every command asks).
    pending_any: AtomicBool,
    /// Woken when the sequencer or any lane moves on, or a lane is let go.
    advanced: Signal,
    enabled: bool,
    /// Commands of this process between the start of their append and the end of their
    /// delivery (counted only when projections are attached).
    writers: AtomicUsize,
    /// Held around every hand-over and query when set: the old coupling of all projections
    /// under one lock, kept only for the benchmark that measures it
    /// (`CqrsBuilder::__coupled_projections`).
    coupled: Option<Mutex<()>>,
}

/// A command's write in progress, from before its append until its events are delivered. Made
/// by [`ReadSide::start_write`]; end it with [`Writing::finish`] (dropping it only uncounts).
pub(crate) struct Writing<'a> {
    side: &'a ReadSide,
    counted: bool,
}

impl<'a> Writing<'a> {
    /// Ends the write (at once, when called). The last writer out reads the store for the
    /// events that still wait for an earlier position: await the future for that.
    pub fn finish<'s, S: EventStore>(mut self, store: &'s S) -> impl Future<Output = ()> + 's
    where
        'a: 's,
    {
        let side = self.side;
        let read = self.counted
            && side.writers.fetch_sub(1, Ordering::SeqCst) == 1
            && side.pending_any.load(Ordering::SeqCst);
        self.counted = false;
        // Only a few words: a command's future holds this one while it waits.
        async move {
            if read {
                // A failed read only delays: the next delivery or `query_after` reads again.
                // (Boxed: rare, and it would make every command's future larger.)
                let _ = Box::pin(side.read_available(store)).await;
            }
        }
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.side.writers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A status line of one projection.
#[derive(Clone, Debug)]
pub struct ProjectionStatus {
    /// Projection name.
    pub name: &'static str,
    /// Stored names of the events it handles.
    pub events: &'static [&'static str],
    /// The last global position it has seen.
    pub position: Position,
    /// Why it stopped, if it did.
    pub error: Option<ProjectionError>,
}

/// Typed values of the events a command hands over (none for events read from the store).
trait Typed {
    fn at(&self, index: usize) -> Option<&(dyn Any + Send + Sync)>;
}

impl<E: EventSet> Typed for [E] {
    fn at(&self, index: usize) -> Option<&(dyn Any + Send + Sync)> {
        self.get(index).map(EventSet::as_any)
    }
}

impl Typed for () {
    fn at(&self, _: usize) -> Option<&(dyn Any + Send + Sync)> {
        None
    }
}

/// Typed values of a command's events from `offset` on (those sequenced in one hand-over).
struct Offset<'a, T: ?Sized> {
    typed: &'a T,
    offset: usize,
}

impl<T: Typed + ?Sized> Offset<'_, T> {
    fn at(&self, index: usize) -> Option<&(dyn Any + Send + Sync)> {
        self.typed.at(self.offset + index)
    }
}

/// What one hand-over did beyond applying to the lanes it claimed.
struct HandedOver {
    /// `pending` holds more than [`PENDING_LIMIT`] events.
    pending_overflows: bool,
    /// An inbox holds more than [`INBOX_LIMIT`] events.
    backlog: bool,
}

impl ReadSide {
    pub fn new(projections: Vec<Box<dyn DynProjection>>, coupled: bool) -> Self {
        let inboxes = projections.iter().map(|_| Inbox::default()).collect();
        let lanes = projections
            .into_iter()
            .map(|projection| Lane {
                name: projection.name(),
                events: projection.events(),
                type_id: projection.as_any().type_id(),
                work: Mutex::new(Work {
                    projection,
                    stopped: false,
                }),
                failed: Mutex::new(None),
                applied: AtomicU64::new(0),
            })
            .collect::<Vec<_>>();
        ReadSide {
            enabled: !lanes.is_empty(),
            order: Mutex::new(Order {
                sequenced: Position::ZERO,
                pending: BTreeMap::new(),
                inboxes,
            }),
            lanes,
            sequenced: AtomicU64::new(0),
            pending_any: AtomicBool::new(false),
            advanced: Signal::default(),
            writers: AtomicUsize::new(0),
            coupled: coupled.then(|| Mutex::new(())),
        }
    }

    /// The lock of the old coupling, when the benchmark asked for it.
    fn couple(&self) -> Option<MutexGuard<'_, ()>> {
        let coupled = self.coupled.as_ref()?;
        Some(
            coupled
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Counts a command's write until [`Writing::finish`].
    pub fn start_write(&self) -> Writing<'_> {
        if self.enabled {
            self.writers.fetch_add(1, Ordering::SeqCst);
        }
        Writing {
            side: self,
            counted: self.enabled,
        }
    }

    /// The lowest position every projection has applied.
    pub fn applied(&self) -> Position {
        let lowest = self
            .lanes
            .iter()
            .map(|lane| lane.applied.load(Ordering::Acquire))
            .min();
        Position(lowest.unwrap_or_else(|| self.sequenced.load(Ordering::Acquire)))
    }

    /// The last position handed to the projections (applied or in their inboxes).
    fn sequenced(&self) -> Position {
        Position(self.sequenced.load(Ordering::Acquire))
    }

    /// Hands the events of one commit (with their typed values) to every projection, at once
    /// when nothing needs the store (the usual case); else `Some` of the rest of the work
    /// (boxed: it would make every command's future larger), to await.
    pub fn deliver<'a, S: EventStore, E: EventSet>(
        &'a self,
        store: &'a S,
        recorded: &'a [RecordedEvent],
        typed: &'a [E],
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>> {
        let last = recorded.last()?;
        if !self.enabled || self.sequenced() >= last.meta.position {
            return None;
        }
        if recorded[0].meta.position > self.sequenced().next()
            && self.writers.load(Ordering::SeqCst) <= 1
        {
            return Some(Box::pin(self.deliver_with(store, recorded, typed)));
        }
        let handed = self.hand_over(recorded, typed, Vec::new());
        if handed.pending_overflows || handed.backlog {
            return Some(Box::pin(self.after_hand_over(store, handed)));
        }
        None
    }

    /// Hands the events of one commit to every projection, which decode them (a decision's
    /// events come from several event types, with no typed value at hand).
    pub async fn deliver_stored<S: EventStore>(&self, store: &S, recorded: &[RecordedEvent]) {
        self.deliver_with(store, recorded, &()).await;
    }

    async fn deliver_with<S: EventStore, T: Typed + ?Sized>(
        &self,
        store: &S,
        recorded: &[RecordedEvent],
        typed: &T,
    ) {
        let Some(last) = recorded.last() else {
            return;
        };
        if !self.enabled || self.sequenced() >= last.meta.position {
            return;
        }
        // This command is one of the writers; with others in flight the gap is probably theirs,
        // and the last of them reads the store if it is not (see `Writing::finish`).
        if recorded[0].meta.position > self.sequenced().next()
            && self.writers.load(Ordering::SeqCst) <= 1
        {
            // A failed read only delays: these events wait in `pending` for the next catch-up.
            // (Boxed, as the other rare paths here: every command's future stays small.)
            let _ = Box::pin(self.read_available(store)).await;
        }
        let handed = self.hand_over(recorded, typed, Vec::new());
        self.after_hand_over(store, handed).await;
    }

    /// What a hand-over left to do: read the gap when `pending` overflows, wait for a backlog.
    async fn after_hand_over<S: EventStore>(&self, store: &S, handed: HandedOver) {
        if handed.pending_overflows {
            // No last writer came to read the gap (writers kept overlapping): read it now.
            let _ = Box::pin(self.read_available(store)).await;
            let mut order = self.lock_order();
            if order.pending.len() > PENDING_LIMIT {
                // The gap is not readable yet (a running transaction holds it). Every waiting
                // event is stored, so the next read brings it back; keeping them would let the
                // buffer grow for as long as the gap stays.
                order.pending.clear();
                self.pending_any.store(false, Ordering::SeqCst);
            }
        }
        if handed.backlog {
            Box::pin(self.relieve_backlog()).await;
        }
    }

    /// Sequences `own` (a command's events, with their typed values) or `stored` (events read
    /// from the store, in position order) after what is sequenced, with whatever `pending` then
    /// lets through, and hands what is ready to every lane.
    ///
    /// The first lane no other task is applying to is claimed at once and gets the events
    /// directly (typed, not copied); every other lane gets them in its inbox, and this task then
    /// applies each inbox whose lane is free, one lane at a time. So a projection that blocks
    /// holds only its own lane: the others stay free for other tasks.
    fn hand_over<T: Typed + ?Sized>(
        &self,
        own: &[RecordedEvent],
        typed: &T,
        stored: Vec<RecordedEvent>,
    ) -> HandedOver {
        let _coupled = self.couple();
        let mut after = stored;
        let mut ready = 0..0;
        let mut handed = HandedOver {
            pending_overflows: false,
            backlog: false,
        };
        // The lane claimed at once, and the events of its inbox (sequenced before these).
        let mut direct: Option<(usize, VecDeque<RecordedEvent>)> = None;
        {
            let mut order = self.lock_order();
            let order = &mut *order;
            for (index, event) in own.iter().enumerate() {
                let position = event.meta.position;
                if position <= order.sequenced {
                    // Already read from the store by another task.
                    ready = index + 1..index + 1;
                } else if position == order.sequenced.next() {
                    ready.end = index + 1;
                    order.sequenced = position;
                } else {
                    order.pending.insert(position, event.clone());
                }
            }
            // Read from the store: the store never returns a position while an earlier one may
            // still appear, so a jump here is a permanent hole (a transaction that never
            // committed). Another task may have sequenced part of the batch meanwhile.
            after.retain(|event| event.meta.position > order.sequenced);
            if let Some(last) = after.last() {
                order.sequenced = last.meta.position;
                let sequenced = order.sequenced;
                order.pending.retain(|&position, _| position > sequenced);
            }
            while let Some(entry) = order.pending.first_entry() {
                if *entry.key() != order.sequenced.next() {
                    break;
                }
                let event = entry.remove();
                order.sequenced = event.meta.position;
                after.push(event);
            }
            handed.pending_overflows = order.pending.len() > PENDING_LIMIT;
            self.pending_any
                .store(!order.pending.is_empty(), Ordering::SeqCst);
            if ready.is_empty() && after.is_empty() {
                return handed;
            }
            self.sequenced.store(order.sequenced.0, Ordering::SeqCst);
            for (lane, inbox) in order.inboxes.iter_mut().enumerate() {
                if direct.is_none() && !inbox.claimed {
                    inbox.claimed = true;
                    direct = Some((lane, std::mem::take(&mut inbox.events)));
                } else {
                    inbox.events.extend(own[ready.clone()].iter().cloned());
                    inbox.events.extend(after.iter().cloned());
                    handed.backlog |= inbox.events.len() > INBOX_LIMIT;
                }
            }
        }
        let own = &own[ready.clone()];
        let typed = Offset {
            typed,
            offset: ready.start,
        };
        let first = direct.as_ref().map(|(lane, _)| *lane);
        if let Some((lane, earlier)) = direct {
            self.run_lane(lane, earlier, own, &typed, &after);
        }
        for lane in (0..self.lanes.len()).filter(|&lane| Some(lane) != first) {
            self.claim_and_drain(lane, own, &typed);
        }
        self.advanced.wake_all();
        handed
    }

    /// Applies, on the lane this task claimed in [`ReadSide::hand_over`], its earlier inbox,
    /// then `own` (with their typed values), then `after`; then what other tasks left in its
    /// inbox meanwhile, and lets the lane go.
    fn run_lane<T: Typed + ?Sized>(
        &self,
        index: usize,
        earlier: VecDeque<RecordedEvent>,
        own: &[RecordedEvent],
        typed: &Offset<'_, T>,
        after: &[RecordedEvent],
    ) {
        let lane = &self.lanes[index];
        let mut work = lane.lock_work();
        let mut applied = Position(lane.applied.load(Ordering::Acquire));
        for event in &earlier {
            lane.apply(&mut work, &mut applied, EventRef::stored(event));
        }
        for (i, event) in own.iter().enumerate() {
            let event = match typed.at(i) {
                Some(value) => EventRef::with_typed(event, value),
                None => EventRef::stored(event),
            };
            lane.apply(&mut work, &mut applied, event);
        }
        for event in after {
            lane.apply(&mut work, &mut applied, EventRef::stored(event));
        }
        lane.applied.store(applied.0, Ordering::SeqCst);
        self.drain_and_release(index, &mut work, applied, own, typed);
    }

    /// Claims lane `index` if no other task is applying to it and applies its inbox (the typed
    /// values of `own` for those of its events); `false` if another task holds the lane.
    fn claim_and_drain<T: Typed + ?Sized>(
        &self,
        index: usize,
        own: &[RecordedEvent],
        typed: &Offset<'_, T>,
    ) -> bool {
        let batch = {
            let mut order = self.lock_order();
            let inbox = &mut order.inboxes[index];
            if inbox.claimed {
                return false;
            }
            if inbox.events.is_empty() {
                return true;
            }
            inbox.claimed = true;
            std::mem::take(&mut inbox.events)
        };
        let lane = &self.lanes[index];
        let mut work = lane.lock_work();
        let mut applied = Position(lane.applied.load(Ordering::Acquire));
        Self::apply_batch(lane, &mut work, &mut applied, &batch, own, typed);
        lane.applied.store(applied.0, Ordering::SeqCst);
        self.drain_and_release(index, &mut work, applied, own, typed);
        true
    }

    /// Applies `batch` (events of an inbox) to a lane this task holds; events of `own` get their
    /// typed values.
    fn apply_batch<T: Typed + ?Sized>(
        lane: &Lane,
        work: &mut Work,
        applied: &mut Position,
        batch: &VecDeque<RecordedEvent>,
        own: &[RecordedEvent],
        typed: &Offset<'_, T>,
    ) {
        for event in batch {
            let value = own
                .binary_search_by_key(&event.meta.position, |e| e.meta.position)
                .ok()
                .and_then(|i| typed.at(i));
            let event = match value {
                Some(value) => EventRef::with_typed(event, value),
                None => EventRef::stored(event),
            };
            lane.apply(work, applied, event);
        }
    }

    /// Applies what waits in the inbox of a lane this task holds (`work` locked), at most
    /// [`DRAIN_ROUNDS`] times, then lets the lane go. Events of `own` get their typed values.
    fn drain_and_release<T: Typed + ?Sized>(
        &self,
        index: usize,
        work: &mut Work,
        mut applied: Position,
        own: &[RecordedEvent],
        typed: &Offset<'_, T>,
    ) {
        let lane = &self.lanes[index];
        let mut rounds = 0;
        loop {
            let batch = {
                let mut order = self.lock_order();
                let inbox = &mut order.inboxes[index];
                if inbox.events.is_empty() || rounds == DRAIN_ROUNDS {
                    inbox.claimed = false;
                    break;
                }
                std::mem::take(&mut inbox.events)
            };
            rounds += 1;
            Self::apply_batch(lane, work, &mut applied, &batch, own, typed);
            lane.applied.store(applied.0, Ordering::SeqCst);
            self.advanced.wake_all();
        }
        self.advanced.wake_all();
    }

    /// Applies a lane's inbox if no other task is applying to it; `false` if one is.
    fn help(&self, index: usize) -> bool {
        let _coupled = self.couple();
        self.help_coupled(index)
    }

    /// [`ReadSide::help`], the coupling lock (if any) already held.
    fn help_coupled(&self, index: usize) -> bool {
        let none = Offset {
            typed: &(),
            offset: 0,
        };
        self.claim_and_drain(index, &[], &none)
    }

    /// Waits (helping) until no inbox holds more than [`INBOX_LIMIT`] events.
    async fn relieve_backlog(&self) {
        loop {
            let over = |order: &Order| {
                order
                    .inboxes
                    .iter()
                    .position(|inbox| inbox.events.len() > INBOX_LIMIT)
            };
            let advanced = self.advanced.wait_unless(|| false);
            let Some(index) = over(&self.lock_order()) else {
                return;
            };
            if !self.help(index) {
                advanced.await;
            }
        }
    }

    /// Waits (helping) until every lane has applied every event up to `target` that was
    /// sequenced.
    async fn settle_lanes(&self, target: Position) {
        for (index, lane) in self.lanes.iter().enumerate() {
            loop {
                let advanced = self
                    .advanced
                    .wait_unless(|| lane.applied.load(Ordering::SeqCst) >= target.0);
                if lane.applied.load(Ordering::SeqCst) >= target.0 {
                    break;
                }
                if self.help(index) && lane.applied.load(Ordering::SeqCst) >= target.0 {
                    break;
                }
                advanced.await;
            }
        }
    }

    /// Reads and applies what the store lets a reader see now beyond what was sequenced: it
    /// stops at the first read that comes back short, which may be below the store's head.
    /// Used on the command path, which must not wait for other processes' transactions.
    pub async fn read_available<S: EventStore>(&self, store: &S) -> Result<Position, StoreError> {
        if !self.enabled {
            return Ok(self.sequenced());
        }
        let mut batch = self.read_next(store).await?;
        // A full batch says more is probably readable: read it while this one is applied.
        while batch.len() == CATCH_UP_BATCH {
            batch = self.apply_reading_ahead(store, batch).await?;
        }
        self.apply_read(batch).await;
        Ok(self.sequenced())
    }

    /// Reads and applies every event up to the store's head as it is now, waiting for positions
    /// below it that are not readable yet (see [`ReadSide::catch_up_reporting`]).
    pub async fn catch_up<S: EventStore>(&self, store: &S) -> Result<Position, StoreError> {
        self.catch_up_reporting(store, None).await
    }

    /// [`ReadSide::catch_up`], reporting progress after each batch, about once a second while it
    /// waits for unreadable positions, and at the end (`done == total`).
    ///
    /// It returns only once every event up to the head it read first is applied by every
    /// projection. A position a running transaction holds (PostgreSQL) keeps it waiting until
    /// that transaction commits or ends; it reads again whenever the store says events may have
    /// arrived.
    pub async fn catch_up_reporting<S: EventStore>(
        &self,
        store: &S,
        progress: Option<&ProgressFn>,
    ) -> Result<Position, StoreError> {
        if !self.enabled {
            return Ok(self.applied());
        }
        let head = store.head().await?;
        let meter = progress.map(|_| Meter::new("(in-memory projections)", self.applied(), head));
        let report = |position: Position, finished: bool| {
            if let (Some(progress), Some(meter)) = (progress, &meter) {
                progress(&meter.report(position, finished));
            }
        };
        let mut empty = EmptyReads::default();
        let mut reported = Instant::now();
        let mut batch = self.read_next(store).await?;
        loop {
            let read = batch.len();
            // A full batch that ends below the head: the next one is readable (or waits only
            // for a running transaction), so it is read while this one is applied.
            let ahead =
                read == CATCH_UP_BATCH && batch.last().is_some_and(|e| e.meta.position < head);
            let next = if ahead {
                Some(self.apply_reading_ahead(store, batch).await?)
            } else {
                self.apply_read(batch).await;
                None
            };
            let sequenced = self.sequenced();
            if sequenced >= head {
                self.settle_lanes(sequenced).await;
                let applied = self.applied();
                report(applied, true);
                return Ok(applied);
            }
            if read > 0 {
                empty.reset();
                report(sequenced, false);
                reported = Instant::now();
            }
            if read < CATCH_UP_BATCH {
                // Below the head and nothing more readable: positions after `sequenced` are
                // held by a transaction still running. Wait for them, and say so now and then.
                empty.wait(store, sequenced).await;
                if reported.elapsed() >= WAITING_REPORT_INTERVAL {
                    report(sequenced, false);
                    reported = Instant::now();
                }
            }
            batch = match next {
                Some(read_ahead) => read_ahead,
                None => self.read_next(store).await?,
            };
        }
    }

    /// One `read_all` after what is sequenced.
    async fn read_next<S: EventStore>(&self, store: &S) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = self.lock_order().sequenced.next();
        store.read_all(from, CATCH_UP_BATCH).await
    }

    /// Hands events read from the store over (and helps a lane whose inbox overflows).
    async fn apply_read(&self, batch: Vec<RecordedEvent>) {
        let handed = self.hand_over(&[], &(), batch);
        if handed.backlog {
            self.relieve_backlog().await;
        }
    }

    /// Hands `batch` (a full read) over while the store reads the batch after it: the read is
    /// sent first, so the server finds and sends the next rows while this task decodes and
    /// applies these. Returns the next batch.
    ///
    /// A store's request may need its connection task to run before it leaves the process (on
    /// a current-thread runtime that task runs only when this one yields), so the read is
    /// polled, this task yields once, and the read is polled again before the work starts.
    async fn apply_reading_ahead<S: EventStore>(
        &self,
        store: &S,
        batch: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = match batch.last() {
            Some(last) => last.meta.position.next(),
            None => self.lock_order().sequenced.next(),
        };
        let mut next = pin!(store.read_all(from, CATCH_UP_BATCH));
        let mut early = poll_once(next.as_mut()).await;
        if early.is_none() {
            tokio::task::yield_now().await;
            early = poll_once(next.as_mut()).await;
        }
        self.apply_read(batch).await;
        match early {
            Some(read) => read,
            None => next.await,
        }
    }

    fn lock_order(&self) -> MutexGuard<'_, Order> {
        // No user code runs under this lock, so a poisoned lock still holds consistent data.
        self.order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The lane of projection type `P`.
    fn lane_of<P: 'static>(&self) -> Option<(usize, &Lane)> {
        let wanted = TypeId::of::<P>();
        self.lanes
            .iter()
            .enumerate()
            .find(|(_, lane)| lane.type_id == wanted)
    }

    /// Answers `query` from its projection's current state (its inbox applied first, unless
    /// another task is applying to it).
    pub async fn query<Q: RoutedQuery>(&self, query: &Q) -> Result<Q::Response, QueryError> {
        let Some((index, lane)) = self.lane_of::<Q::Projection>() else {
            return Err(QueryError::ProjectionNotRegistered {
                query: std::any::type_name::<Q>(),
                projection: <Q::Projection as crate::Projection>::NAME,
            });
        };
        let _coupled = self.couple();
        self.help_coupled(index);
        if let Some(error) = lane.failed() {
            return Err(QueryError::ProjectionFailed(error));
        }
        let work = lane.lock_work();
        match work.projection.as_any().downcast_ref::<Q::Projection>() {
            Some(projection) => Ok(Q::answer(projection, query)),
            None => unreachable!("lanes are found by the TypeId of their projection"),
        }
    }

    /// Waits until the query's projection has applied every event up to `target` (reading the
    /// store while it waits), then answers `query`; `QueryError::Timeout` after `timeout`.
    pub async fn query_after<S: EventStore, Q: RoutedQuery>(
        &self,
        store: &S,
        target: Position,
        query: &Q,
        timeout: Duration,
    ) -> Result<Q::Response, QueryError> {
        let Some((index, lane)) = self.lane_of::<Q::Projection>() else {
            return self.query(query).await;
        };
        let started = Instant::now();
        let mut empty = EmptyReads::default();
        let reached = || Position(lane.applied.load(Ordering::SeqCst));
        loop {
            let advanced = self
                .advanced
                .wait_unless(|| lane.applied.load(Ordering::SeqCst) >= target.0);
            if reached() >= target {
                break;
            }
            let before = self.sequenced();
            let sequenced = if before < target {
                self.read_available(store)
                    .await
                    .map_err(QueryError::Store)?
            } else {
                before
            };
            if sequenced > before {
                empty.reset();
            }
            // The events may wait in the lane's inbox with nobody applying them.
            self.help(index);
            if reached() >= target {
                break;
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(QueryError::Timeout {
                    projection: <Q::Projection as crate::Projection>::NAME,
                    target,
                    reached: reached(),
                    waited,
                });
            }
            // Woken by a delivery of this process or a lane let go, by the store (events of
            // other processes, or a position that became readable), or by the deadline.
            let from_store = sequenced < target;
            tokio::select! {
                _ = advanced => {}
                _ = empty.wait(store, sequenced), if from_store => {}
                _ = tokio::time::sleep(timeout - waited) => {}
            }
        }
        self.query(query).await
    }

    /// How many events wait in `pending` for an earlier position.
    #[cfg(feature = "testing")]
    pub fn pending_len(&self) -> usize {
        self.lock_order().pending.len()
    }

    pub fn status(&self) -> Vec<ProjectionStatus> {
        self.lanes
            .iter()
            .map(|lane| ProjectionStatus {
                name: lane.name,
                events: lane.events,
                position: Position(lane.applied.load(Ordering::Acquire)),
                error: lane.failed(),
            })
            .collect()
    }
}

impl Lane {
    /// Applies `event` unless the lane already has it (or stopped: then it only moves on).
    fn apply(&self, work: &mut Work, applied: &mut Position, event: EventRef<'_>) {
        let position = event.meta().position;
        if position <= *applied {
            return;
        }
        if !work.stopped {
            let projection = &mut work.projection;
            let failure = match unwind::catch(|| projection.handle_dyn(event)) {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error),
                Err(message) => Some(event.error(self.name, ProjectionFailure::Panicked(message))),
            };
            if let Some(error) = failure {
                work.stopped = true;
                *self
                    .failed
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
            }
        }
        *applied = position;
    }

    fn lock_work(&self) -> MutexGuard<'_, Work> {
        // Projection handlers run under `catch_unwind`; a panicking query handler only had `&`
        // access. Either way the state is consistent, so a poisoned lock is still usable.
        self.work
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn failed(&self) -> Option<ProjectionError> {
        self.failed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Polls `future` once: its output if it is ready, else `None` (its waker is registered).
async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

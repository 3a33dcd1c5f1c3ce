//! In-process projections, fed in global-position order.
//!
//! After each commit the command bus hands its events here with their typed values, so a
//! projection in the same process reads them without decoding. Commits of concurrent commands
//! can arrive out of order; an event is applied only when every earlier position has been, either
//! from another command of this process or from the store (`read_all`), which also brings in
//! events that other processes appended. Events that arrive too early wait in `pending`.
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
//! "Caught up" is always measured against the store's head: `build()` and
//! [`Cqrs::catch_up`](crate::Cqrs::catch_up) apply every event up to the head they read when
//! they began, however many reads come back empty or short before it (PostgreSQL's `read_all`
//! stops before a position a running transaction may still fill).
//!
//! `pending` holds at most [`PENDING_LIMIT`] (256) events. `query_after` waits for the head like
//! `build()`, bounded by its timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// Events read from the store per catch-up round trip.
const CATCH_UP_BATCH: usize = 1024;

/// Events that may wait in `pending` before the command that adds one more reads the store.
const PENDING_LIMIT: usize = 256;

/// How often a catch-up that waits for unreadable positions below the head reports progress.
const WAITING_REPORT_INTERVAL: Duration = Duration::from_secs(1);

struct Slot {
    projection: Box<dyn DynProjection>,
    /// Set when the projection stopped on an event; it then receives nothing more.
    failed: Option<ProjectionError>,
}

struct State {
    applied: Position,
    slots: Vec<Slot>,
    pending: BTreeMap<Position, RecordedEvent>,
}

pub(crate) struct ReadSide {
    /// Never held across an `await`: store reads happen outside it.
    state: Mutex<State>,
    /// Mirror of `State::applied`, readable without the lock.
    applied: AtomicU64,
    advanced: Signal,
    enabled: bool,
    /// Commands of this process between the start of their append and the end of their
    /// delivery (counted only when projections are attached).
    writers: AtomicUsize,
}

/// A command's write in progress, from before its append until its events are delivered. Made
/// by [`ReadSide::start_write`]; end it with [`Writing::finish`] (dropping it only uncounts).
pub(crate) struct Writing<'a> {
    side: &'a ReadSide,
    counted: bool,
}

impl Writing<'_> {
    /// Ends the write. The last writer out reads the store for the events that still wait for
    /// an earlier position.
    pub async fn finish<S: EventStore>(mut self, store: &S) {
        if !self.counted {
            return;
        }
        self.counted = false;
        let last = self.side.writers.fetch_sub(1, Ordering::SeqCst) == 1;
        if last && !self.side.lock().pending.is_empty() {
            // A failed read only delays: the next delivery or `query_after` reads again.
            let _ = self.side.read_available(store).await;
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

impl ReadSide {
    pub fn new(projections: Vec<Box<dyn DynProjection>>) -> Self {
        ReadSide {
            enabled: !projections.is_empty(),
            state: Mutex::new(State {
                applied: Position::ZERO,
                slots: projections
                    .into_iter()
                    .map(|projection| Slot {
                        projection,
                        failed: None,
                    })
                    .collect(),
                pending: BTreeMap::new(),
            }),
            applied: AtomicU64::new(0),
            advanced: Signal::default(),
            writers: AtomicUsize::new(0),
        }
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

    pub fn applied(&self) -> Position {
        Position(self.applied.load(Ordering::Acquire))
    }

    /// Hands the events of one commit (with their typed values) to every projection.
    pub async fn deliver<S: EventStore, E: EventSet>(
        &self,
        store: &S,
        recorded: &[RecordedEvent],
        typed: &[E],
    ) {
        self.deliver_with(store, recorded, |i| typed.get(i).map(|e| e.as_any()))
            .await;
    }

    /// Hands the events of one commit to every projection, which decode them (a decision's
    /// events come from several event types, with no typed value at hand).
    pub async fn deliver_stored<S: EventStore>(&self, store: &S, recorded: &[RecordedEvent]) {
        self.deliver_with(store, recorded, |_| None).await;
    }

    async fn deliver_with<'t, S: EventStore>(
        &self,
        store: &S,
        recorded: &[RecordedEvent],
        typed: impl Fn(usize) -> Option<&'t (dyn std::any::Any + Send + Sync)>,
    ) {
        let Some(last) = recorded.last() else {
            return;
        };
        if !self.enabled || self.applied() >= last.meta.position {
            return;
        }
        // This command is one of the writers; with others in flight the gap is probably theirs,
        // and the last of them reads the store if it is not (see `Writing::finish`).
        if recorded[0].meta.position > self.applied().next()
            && self.writers.load(Ordering::SeqCst) <= 1
        {
            // A failed read only delays: these events wait in `pending` for the next catch-up.
            let _ = self.read_available(store).await;
        }
        let overflowing = {
            let mut state = self.lock();
            for (i, event) in recorded.iter().enumerate() {
                let position = event.meta.position;
                if position <= state.applied {
                    continue;
                }
                if position == state.applied.next() {
                    state.apply(match typed(i) {
                        Some(value) => EventRef::with_typed(event, value),
                        None => EventRef::stored(event),
                    });
                    state.applied = position;
                } else {
                    state.pending.insert(position, event.clone());
                }
            }
            state.drain_pending();
            self.publish(&state);
            state.pending.len() > PENDING_LIMIT
        };
        if overflowing {
            // No last writer came to read the gap (writers kept overlapping): read it now.
            let _ = self.read_available(store).await;
            let mut state = self.lock();
            if state.pending.len() > PENDING_LIMIT {
                // The gap is not readable yet (a running transaction holds it). Every waiting
                // event is stored, so the next read brings it back; keeping them would let the
                // buffer grow for as long as the gap stays.
                state.pending.clear();
            }
        }
    }

    /// Reads and applies what the store lets a reader see now beyond what was applied: it stops
    /// at the first read that comes back short, which may be below the store's head. Used on
    /// the command path, which must not wait for other processes' transactions.
    pub async fn read_available<S: EventStore>(&self, store: &S) -> Result<Position, StoreError> {
        if !self.enabled {
            return Ok(self.applied());
        }
        loop {
            let (applied, read) = self.read_once(store).await?;
            if read < CATCH_UP_BATCH {
                return Ok(applied);
            }
        }
    }

    /// Reads and applies every event up to the store's head as it is now, waiting for positions
    /// below it that are not readable yet (see [`ReadSide::catch_up_reporting`]).
    pub async fn catch_up<S: EventStore>(&self, store: &S) -> Result<Position, StoreError> {
        self.catch_up_reporting(store, None).await
    }

    /// [`ReadSide::catch_up`], reporting progress after each batch, about once a second while it
    /// waits for unreadable positions, and at the end (`done == total`).
    ///
    /// It returns only once every event up to the head it read first is applied. A position a
    /// running transaction holds (PostgreSQL) keeps it waiting until that transaction commits or
    /// ends; it reads again whenever the store says events may have arrived.
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
        loop {
            let (applied, read) = self.read_once(store).await?;
            if applied >= head {
                report(applied, true);
                return Ok(applied);
            }
            if read > 0 {
                empty.reset();
                report(applied, false);
                reported = Instant::now();
            }
            if read < CATCH_UP_BATCH {
                // Below the head and nothing more readable: positions after `applied` are held
                // by a transaction still running. Wait for them, and say so now and then.
                empty.wait(store, applied).await;
                if reported.elapsed() >= WAITING_REPORT_INTERVAL {
                    report(applied, false);
                    reported = Instant::now();
                }
            }
        }
    }

    /// One `read_all` after what is applied, applied: the position reached and the number of
    /// events the read returned.
    async fn read_once<S: EventStore>(&self, store: &S) -> Result<(Position, usize), StoreError> {
        let from = self.lock().applied.next();
        let batch = store.read_all(from, CATCH_UP_BATCH).await?;
        let mut state = self.lock();
        for event in &batch {
            // Another task may have applied part of this batch meanwhile; skip that part.
            // The store never returns a position while an earlier one may still appear, so
            // a jump here is a permanent hole (a transaction that never committed).
            if event.meta.position > state.applied {
                state.apply(EventRef::stored(event));
                state.applied = event.meta.position;
            }
        }
        let applied = state.applied;
        state.pending.retain(|&position, _| position > applied);
        state.drain_pending();
        self.publish(&state);
        Ok((state.applied, batch.len()))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Projection handlers run under `catch_unwind`; a panicking query handler only had `&`
        // access. Either way the state is consistent, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, state: &State) {
        if state.applied.0 > self.applied.load(Ordering::Acquire) {
            self.applied.store(state.applied.0, Ordering::SeqCst);
            self.advanced.wake_all();
        }
    }

    /// Answers `query` from its projection's current state.
    pub async fn query<Q: RoutedQuery>(&self, query: &Q) -> Result<Q::Response, QueryError> {
        let state = self.lock();
        for slot in &state.slots {
            if let Some(projection) = slot.projection.as_any().downcast_ref::<Q::Projection>() {
                if let Some(error) = &slot.failed {
                    return Err(QueryError::ProjectionFailed(error.clone()));
                }
                return Ok(Q::answer(projection, query));
            }
        }
        Err(QueryError::ProjectionNotRegistered {
            query: std::any::type_name::<Q>(),
            projection: <Q::Projection as crate::Projection>::NAME,
        })
    }

    /// Waits until every event up to `target` is applied (reading the store while it waits),
    /// then answers `query`; `QueryError::Timeout` after `timeout`.
    pub async fn query_after<S: EventStore, Q: RoutedQuery>(
        &self,
        store: &S,
        target: Position,
        query: &Q,
        timeout: Duration,
    ) -> Result<Q::Response, QueryError> {
        let started = Instant::now();
        let mut empty = EmptyReads::default();
        loop {
            let applied = &self.applied;
            let advanced = self
                .advanced
                .wait_unless(|| applied.load(Ordering::SeqCst) >= target.0);
            let before = self.applied();
            if before >= target {
                break;
            }
            let reached = self
                .read_available(store)
                .await
                .map_err(QueryError::Store)?;
            if reached >= target {
                break;
            }
            if reached > before {
                empty.reset();
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(QueryError::Timeout {
                    projection: <Q::Projection as crate::Projection>::NAME,
                    target,
                    reached: self.applied(),
                    waited,
                });
            }
            // Woken by a delivery of this process, by the store (events of other processes,
            // or a position that became readable), or by the deadline.
            tokio::select! {
                _ = advanced => {}
                _ = empty.wait(store, reached) => {}
                _ = tokio::time::sleep(timeout - waited) => {}
            }
        }
        self.query(query).await
    }

    /// How many events wait in `pending` for an earlier position.
    #[cfg(feature = "testing")]
    pub fn pending_len(&self) -> usize {
        self.lock().pending.len()
    }

    pub fn status(&self) -> Vec<ProjectionStatus> {
        let state = self.lock();
        state
            .slots
            .iter()
            .map(|slot| ProjectionStatus {
                name: slot.projection.name(),
                events: slot.projection.events(),
                position: state.applied,
                error: slot.failed.clone(),
            })
            .collect()
    }
}

impl State {
    fn apply(&mut self, event: EventRef<'_>) {
        for slot in &mut self.slots {
            if slot.failed.is_some() {
                continue;
            }
            let projection = &mut slot.projection;
            match unwind::catch(|| projection.handle_dyn(event)) {
                Ok(Ok(())) => {}
                Ok(Err(error)) => slot.failed = Some(error),
                Err(message) => {
                    slot.failed = Some(
                        event.error(slot.projection.name(), ProjectionFailure::Panicked(message)),
                    )
                }
            }
        }
    }

    fn drain_pending(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.applied.next() {
                break;
            }
            let event = entry.remove();
            self.apply(EventRef::stored(&event));
            self.applied = event.meta.position;
        }
    }
}

//! Which missing positions a reader may step over: the bookkeeping behind gap-free `read_all`.
//!
//! A *hole* is a position that no visible row holds although a later position is visible. Its
//! writer (if it ever had one) took its transaction id, then its *appender lock* (an advisory
//! lock keyed by that id, held to the end of the transaction), and only then drew the position;
//! the visible later row was drawn after that and committed before the reader's snapshot, so the
//! writer's id is below the snapshot's `next_xid` (the next id to be assigned, read right after
//! the snapshot), and the writer was still running then or it rolled back. A hole therefore
//! becomes *permanent* (safe to skip) once no transaction that could have drawn it can still
//! commit it, which a reader learns in one of two ways:
//!
//! - a later snapshot's `xmin` reaches the hole's bound: every transaction with an id below it
//!   has ended (cheap, read with every batch, but `xmin` is cluster-wide: one idle session holding
//!   an id anywhere on the server holds it back);
//! - the appender locks held at some moment after the hole was first seen include none with an
//!   id below the bound: every *appender of this store* that could have drawn it has ended, and a
//!   snapshot taken after that moment still lacks the row. This one ignores transactions that
//!   never appended to this store, so stray sessions, batch jobs and migrations do not stall
//!   readers. It costs a look at `pg_locks`, made only for a hole that outlived a first read.
//!
//! See ARCHITECTURE.md for the proof.
//!
//! Holes are remembered as ranges `[start, end)` bounded by visible rows, with the `next_xid` of
//! the first snapshot that showed them. Holes only shrink (rows appear, none vanish), so a hole
//! seen later that starts inside a remembered range lies wholly inside it and inherits what is
//! known of it. Forgetting a range (the table is bounded) is safe: it is re-learnt with a newer
//! bound, which only delays the reader.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// How many hole ranges are remembered; beyond that the lowest positions are forgotten.
const MAX_RANGES: usize = 10_000;

/// The transaction horizon of a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Every transaction id below this had ended when the snapshot was taken
    /// (`pg_snapshot_xmin`).
    pub xmin: u64,
    /// No transaction id at or above this had been assigned when the snapshot was taken (the
    /// next id to be assigned, read just after it).
    pub next_xid: u64,
}

/// What a read may take: `admitted` positions from the first, and whether it stopped at a hole
/// that an earlier read already saw pending (worth a look at the appender locks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    pub admitted: usize,
    pub stopped_at_old_hole: bool,
}

/// A read, numbered before its statement is sent (see [`Holes::begin_read`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Read(u64);

/// Which remembered holes a look at the appender locks may decide: those recorded before the
/// look began (see [`Holes::ticket`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket(u64);

#[derive(Default)]
pub(crate) struct Holes {
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug)]
struct Range {
    /// One past the last missing position (a visible row).
    end: u64,
    /// The `next_xid` of the first snapshot that showed the hole: its writer's id is below it.
    bound: u64,
    /// The read that recorded it.
    seen_by: u64,
    /// In which order ranges were recorded.
    recorded: u64,
    /// Set when no appender with an id below `bound` was running at a moment after the hole was
    /// seen: reads numbered above this were sent after that moment, so their snapshots would
    /// show the rows if their writer had committed them.
    decided_for_reads_after: Option<u64>,
}

#[derive(Default)]
struct State {
    /// By start position.
    ranges: BTreeMap<u64, Range>,
    /// The largest `xmin` seen so far (transaction horizons only move forward).
    newest_xmin: u64,
    /// How many reads were begun.
    reads: u64,
    /// How many ranges were recorded.
    recorded: u64,
}

impl Holes {
    /// Numbers a read; call it before sending the read's statement.
    pub fn begin_read(&self) -> Read {
        let mut state = self.lock();
        state.reads += 1;
        Read(state.reads)
    }

    /// Given the positions `read` (from `from`) returned (ascending) under `snapshot`, how many
    /// of them, from the first, a reader may take: everything before the first hole that is not
    /// yet known to be permanent.
    pub fn admit(&self, read: Read, from: u64, positions: &[u64], snapshot: Snapshot) -> Admitted {
        let mut expected = from.max(1);
        let mut state = self.lock();
        state.newest_xmin = state.newest_xmin.max(snapshot.xmin);
        let mut stop = None;
        for (i, &position) in positions.iter().enumerate() {
            if position > expected {
                // Every hole of the read is remembered, also those past the first pending
                // one, so one look at the appender locks can decide all of them: a reader far
                // behind (a fresh process catching up over many rolled-back holes) then pays
                // one look per batch, not one per hole.
                let range = state.range_of(expected, position, snapshot, read);
                let decided = range.decided_for_reads_after.is_some_and(|r| read.0 > r);
                if stop.is_none() && snapshot.xmin < range.bound && !decided {
                    stop = Some(Admitted {
                        admitted: i,
                        stopped_at_old_hole: range.seen_by < read.0,
                    });
                }
            }
            expected = position + 1;
        }
        stop.unwrap_or(Admitted {
            admitted: positions.len(),
            stopped_at_old_hole: false,
        })
    }

    /// Reading by query (`dcb/read.rs`): given the holes `read` saw under `snapshot` (ranges
    /// `[start, end)` missing before a visible row `end`, ascending), the first that is not yet
    /// known to be permanent, and whether an earlier read already saw it. The same rules as
    /// [`Holes::admit`], over holes instead of positions.
    pub fn first_pending(
        &self,
        read: Read,
        holes: &[(u64, u64)],
        snapshot: Snapshot,
    ) -> Option<(u64, bool)> {
        let mut state = self.lock();
        state.newest_xmin = state.newest_xmin.max(snapshot.xmin);
        let mut first = None;
        for &(start, end) in holes {
            // Every hole is remembered, as in `admit`, so one look decides them all.
            let range = state.range_of(start, end, snapshot, read);
            let decided = range.decided_for_reads_after.is_some_and(|r| read.0 > r);
            if first.is_none() && snapshot.xmin < range.bound && !decided {
                first = Some((start, range.seen_by < read.0));
            }
        }
        first
    }

    /// Taken right before the appender locks are read: the holes remembered now were all seen
    /// in snapshots taken before that look.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().recorded)
    }

    /// Records what a look at the appender locks found, once its answer is in: `running` holds
    /// the low 32 bits of the ids of this store's appenders that held their lock at a moment
    /// after `ticket` was taken. Every hole remembered by then that no running appender's id is
    /// below is decided for the reads begun from now on. Returns whether any hole was decided.
    pub fn appenders_running(&self, ticket: Ticket, running: &[u32]) -> bool {
        let mut state = self.lock();
        let reads = state.reads;
        let mut decided = false;
        for range in state.ranges.values_mut() {
            if range.recorded <= ticket.0
                && range.decided_for_reads_after.is_none()
                && !running.iter().any(|&id| below(id, range.bound))
            {
                range.decided_for_reads_after = Some(reads);
                decided = true;
            }
        }
        decided
    }

    /// Whether `position` lies in a remembered hole that is not yet known to be permanent: a
    /// reader stopped there waits for a commit, or for time to pass.
    pub fn pending_at(&self, position: u64) -> bool {
        let state = self.lock();
        state.covering(position).is_some_and(|range| {
            state.newest_xmin < range.bound && range.decided_for_reads_after.is_none()
        })
    }

    /// How many hole ranges are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().ranges.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code that can panic runs under this lock; a poisoned one still holds valid data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether a running transaction whose id has the low 32 bits `id` has an id below `bound`.
/// A running id is within 2^31 of the next id to be assigned (PostgreSQL's wraparound
/// protection), and `bound` was such a next id earlier, so the distance modulo 2^32 decides. Ids
/// 2^31 or more above a very old bound count as below it: that only makes a reader wait.
fn below(id: u32, bound: u64) -> bool {
    let distance = (bound as u32).wrapping_sub(id);
    distance != 0 && distance < 1 << 31
}

/// The low 32 bits of an appender's transaction id from its lock's `objid` as `pg_locks` shows
/// it (the lock's second key, `low - 2^31` as `int4`, read as unsigned).
pub(crate) fn xid_from_lock(objid: i64) -> u32 {
    (objid as u32) ^ (1 << 31)
}

impl State {
    /// The remembered range holding `position`.
    fn covering(&self, position: u64) -> Option<Range> {
        self.ranges
            .range(..=position)
            .next_back()
            .map(|(_, &range)| range)
            .filter(|range| range.end > position)
    }

    /// What is known of the hole `start..end` (missing in `snapshot`, with position `end`
    /// visible), remembering it if it is new.
    fn range_of(&mut self, start: u64, end: u64, snapshot: Snapshot, read: Read) -> Range {
        if let Some(range) = self.covering(start) {
            return range;
        }
        self.recorded += 1;
        let range = Range {
            end,
            bound: snapshot.next_xid,
            seen_by: read.0,
            recorded: self.recorded,
            decided_for_reads_after: None,
        };
        self.ranges.insert(start, range);
        while self.ranges.len() > MAX_RANGES {
            self.ranges.pop_first();
        }
        range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(xmin: u64, next_xid: u64) -> Snapshot {
        Snapshot { xmin, next_xid }
    }

    /// A read begun and admitted at once: how many positions it may take.
    fn admit(holes: &Holes, from: u64, positions: &[u64], snapshot: Snapshot) -> usize {
        let read = holes.begin_read();
        holes.admit(read, from, positions, snapshot).admitted
    }

    #[test]
    fn contiguous_positions_are_all_admitted() {
        let holes = Holes::default();
        assert_eq!(admit(&holes, 1, &[1, 2, 3], snap(10, 12)), 3);
        assert_eq!(admit(&holes, 0, &[1, 2], snap(10, 12)), 2);
        assert_eq!(admit(&holes, 5, &[], snap(10, 12)), 0);
        assert_eq!(holes.len(), 0);
    }

    #[test]
    fn a_hole_with_transactions_running_stops_the_reader() {
        let holes = Holes::default();
        // Position 2 is missing while 3 is visible, and transaction 11 is still running.
        assert_eq!(admit(&holes, 1, &[1, 3, 4], snap(11, 13)), 1);
        assert!(holes.pending_at(2));
        // A later snapshot: still running (xmin 11 < 13), the reader still stops.
        assert_eq!(admit(&holes, 2, &[3, 4, 5], snap(11, 20)), 0);
        // Everything below 13 has ended and 2 is still missing: permanent, stepped over.
        assert_eq!(admit(&holes, 2, &[3, 4, 5], snap(13, 25)), 3);
        assert!(!holes.pending_at(2));
    }

    #[test]
    fn the_first_bound_counts_not_a_later_one() {
        let holes = Holes::default();
        assert_eq!(admit(&holes, 1, &[2], snap(5, 8)), 0);
        // xmin 9 passes the first bound (8), though not this snapshot's (30).
        assert_eq!(admit(&holes, 1, &[2], snap(9, 30)), 1);
    }

    #[test]
    fn a_hole_seen_with_nothing_running_is_permanent_at_once() {
        let holes = Holes::default();
        // Nothing was running and no id was handed out since: the hole's holder rolled back.
        assert_eq!(admit(&holes, 1, &[1, 4, 5], snap(40, 40)), 3);
    }

    #[test]
    fn a_hole_that_fills_in_is_read_normally() {
        let holes = Holes::default();
        assert_eq!(admit(&holes, 1, &[1, 3], snap(7, 9)), 1);
        // The holder of 2 committed: 2 is now visible, nothing is skipped.
        assert_eq!(admit(&holes, 2, &[2, 3], snap(7, 12)), 2);
    }

    #[test]
    fn sub_ranges_inherit_the_remembered_horizon() {
        let holes = Holes::default();
        // 2..6 missing before 6.
        assert_eq!(admit(&holes, 1, &[1, 6], snap(3, 10)), 1);
        // 3 filled in; a reader from 4 sees the hole 4..6, inside the remembered range.
        assert_eq!(admit(&holes, 4, &[6], snap(9, 50)), 0);
        assert_eq!(admit(&holes, 4, &[6], snap(10, 50)), 1);
        assert_eq!(holes.len(), 1);
    }

    #[test]
    fn several_holes_in_one_read() {
        let holes = Holes::default();
        assert_eq!(admit(&holes, 1, &[2, 4, 7], snap(5, 5)), 3);
        assert_eq!(
            admit(&holes, 1, &[2, 4, 7], snap(5, 6)),
            3,
            "remembered as permanent"
        );
        let fresh = Holes::default();
        assert_eq!(admit(&fresh, 1, &[1, 2, 4, 7], snap(5, 6)), 2);
    }

    #[test]
    fn the_table_is_bounded() {
        let holes = Holes::default();
        for i in 0..(MAX_RANGES as u64 + 50) {
            let start = 10 + 3 * i;
            admit(&holes, start, &[start + 1], snap(1, 2));
        }
        assert_eq!(holes.len(), MAX_RANGES);
        // The lowest were forgotten; a forgotten hole is re-learnt, never skipped early.
        assert_eq!(admit(&holes, 10, &[11], snap(1, 2)), 0);
    }

    /// A stray session holds transaction 5 open for ever, so `xmin` stays at 5: only the
    /// appender locks can decide the hole.
    #[test]
    fn a_hole_is_decided_by_the_appenders_alone() {
        let holes = Holes::default();
        let first = holes.begin_read();
        let seen = holes.admit(first, 1, &[1, 3], snap(5, 13));
        assert_eq!(
            seen,
            Admitted {
                admitted: 1,
                stopped_at_old_hole: false
            },
            "a hole seen for the first time is not worth a look at the locks yet"
        );
        let second = holes.begin_read();
        assert!(
            holes
                .admit(second, 2, &[3], snap(5, 14))
                .stopped_at_old_hole
        );

        // A read sent before the look at the locks answered must not pass: its snapshot may
        // predate the writer's commit.
        let early = holes.begin_read();
        let ticket = holes.ticket();
        // Appenders 13 and 20 run (ids at or above the bound 13): none could have drawn 2.
        assert!(holes.appenders_running(ticket, &[13, 20]));
        assert!(!holes.pending_at(2));
        assert_eq!(holes.admit(early, 2, &[3], snap(5, 21)).admitted, 0);
        assert_eq!(admit(&holes, 2, &[3, 4], snap(5, 21)), 2);
    }

    #[test]
    fn one_look_decides_every_hole_of_a_read() {
        let holes = Holes::default();
        // Three rolled-back holes in one batch; xmin held back by a stray transaction.
        assert_eq!(admit(&holes, 1, &[1, 3, 5, 7, 8], snap(5, 13)), 1);
        assert_eq!(
            holes.len(),
            3,
            "the holes past the first are remembered too"
        );
        let second = holes.begin_read();
        assert!(
            holes
                .admit(second, 2, &[3, 5, 7, 8], snap(5, 14))
                .stopped_at_old_hole
        );
        let ticket = holes.ticket();
        assert!(holes.appenders_running(ticket, &[]));
        assert_eq!(admit(&holes, 2, &[3, 5, 7, 8], snap(5, 15)), 4);
    }

    #[test]
    fn reads_by_query_stop_at_the_first_pending_hole_as_reads_of_positions_do() {
        let holes = Holes::default();
        let read = holes.begin_read();
        // 2..3 and 5..7 missing; transaction 11 still runs.
        assert_eq!(
            holes.first_pending(read, &[(2, 3), (5, 7)], snap(11, 13)),
            Some((2, false))
        );
        let read = holes.begin_read();
        assert_eq!(
            holes.first_pending(read, &[(2, 3), (5, 7)], snap(11, 14)),
            Some((2, true)),
            "seen by an earlier read: worth a look at the appender locks"
        );
        // Everything below 13 ended: both permanent, shared with `admit`.
        let read = holes.begin_read();
        assert_eq!(
            holes.first_pending(read, &[(2, 3), (5, 7)], snap(13, 20)),
            None
        );
        assert_eq!(admit(&holes, 1, &[1, 3, 4, 7], snap(13, 20)), 4);
        let read = holes.begin_read();
        assert_eq!(holes.first_pending(read, &[], snap(13, 20)), None);
    }

    #[test]
    fn an_older_appender_keeps_the_hole_pending() {
        let holes = Holes::default();
        assert_eq!(admit(&holes, 1, &[1, 3], snap(5, 13)), 1);
        let ticket = holes.ticket();
        // Appender 12 is below the bound: it may hold position 2.
        assert!(!holes.appenders_running(ticket, &[12, 30]));
        assert!(holes.pending_at(2));
        assert_eq!(admit(&holes, 2, &[3], snap(5, 31)), 0);
    }

    #[test]
    fn a_look_decides_only_holes_recorded_before_it() {
        let holes = Holes::default();
        let ticket = holes.ticket();
        // Recorded after the ticket: its writer may have begun after the locks were read.
        assert_eq!(admit(&holes, 1, &[1, 3], snap(5, 13)), 1);
        assert!(!holes.appenders_running(ticket, &[]));
        assert!(holes.pending_at(2));
    }

    #[test]
    fn ids_compare_across_the_32_bit_boundary() {
        // Epoch 1, low ids near the wrap.
        let bound = (1u64 << 32) + 5;
        assert!(below(u32::MAX - 2, bound), "an id just before the wrap");
        assert!(below(4, bound));
        assert!(!below(5, bound), "the bound itself was not yet assigned");
        assert!(!below(6, bound));
        // The second key of the lock as the writer computes it, and back.
        for low in [0u32, 1, 1 << 31, u32::MAX, 123_456_789] {
            let key = (i64::from(low) - (1 << 31)) as i32;
            let objid = i64::from(key as u32);
            assert_eq!(xid_from_lock(objid), low);
        }
    }
}

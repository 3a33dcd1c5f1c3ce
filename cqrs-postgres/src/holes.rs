//! Which missing positions a reader may step over: the bookkeeping behind gap-free `read_all`.
//!
//! A *hole* is a position that no visible row holds although a later position is visible. Its
//! transaction (if it ever had one) took its transaction id before drawing the position, and
//! the visible later row was drawn after that and committed before the reader's snapshot, so the
//! holder's id was assigned before the snapshot: it is below the snapshot's `next_xid` (the next
//! id to be assigned, read right after the snapshot). The holder was still running then, or it
//! rolled back. A hole therefore becomes *permanent* (safe to skip) as soon as a later
//! snapshot's `xmin` reaches the `next_xid` of a snapshot in which the hole was seen before a
//! visible row: every transaction that could hold it has ended, and it is still missing. See
//! ARCHITECTURE.md for the proof.
//!
//! Holes are remembered as ranges `[start, end)` bounded by visible rows, with the `next_xid` of
//! the first snapshot that showed them. Holes only shrink (rows appear, none vanish), so a hole
//! seen later that starts inside a remembered range lies wholly inside it and inherits its bound.
//! Forgetting a range (the table is bounded) is safe: it is re-learnt with a newer bound, which
//! only delays the reader.

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

#[derive(Default)]
pub(crate) struct Holes {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `start -> (end, bound)`: positions `start..end` were missing before a visible row in a
    /// snapshot whose `next_xid` was `bound`.
    ranges: BTreeMap<u64, (u64, u64)>,
    /// The largest `xmin` seen so far (transaction horizons only move forward).
    newest_xmin: u64,
}

impl Holes {
    /// Given the positions a read from `from` returned (ascending) under `snapshot`, how many
    /// of them, from the first, a reader may take: everything before the first hole that is not
    /// yet known to be permanent.
    pub fn admit(&self, from: u64, positions: &[u64], snapshot: Snapshot) -> usize {
        let mut expected = from.max(1);
        let mut state = self.lock();
        state.newest_xmin = state.newest_xmin.max(snapshot.xmin);
        for (i, &position) in positions.iter().enumerate() {
            if position > expected && !state.passable(expected, position, snapshot) {
                return i;
            }
            expected = position + 1;
        }
        positions.len()
    }

    /// Whether `position` lies in a remembered hole that was not yet permanent at the newest
    /// snapshot seen: a reader stopped there waits for a commit, or for time to pass.
    pub fn pending_at(&self, position: u64) -> bool {
        let state = self.lock();
        state
            .covering(position)
            .is_some_and(|(_, bound)| state.newest_xmin < bound)
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

impl State {
    /// The remembered range holding `position`, as `(end, bound)`.
    fn covering(&self, position: u64) -> Option<(u64, u64)> {
        self.ranges
            .range(..=position)
            .next_back()
            .map(|(_, &range)| range)
            .filter(|&(end, _)| end > position)
    }

    /// Whether the hole `start..end` (missing in `snapshot`, with position `end` visible) may be
    /// stepped over. Remembers it if it is new.
    fn passable(&mut self, start: u64, end: u64, snapshot: Snapshot) -> bool {
        let bound = match self.covering(start) {
            Some((_, bound)) => bound,
            None => {
                self.ranges.insert(start, (end, snapshot.next_xid));
                while self.ranges.len() > MAX_RANGES {
                    self.ranges.pop_first();
                }
                snapshot.next_xid
            }
        };
        snapshot.xmin >= bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(xmin: u64, next_xid: u64) -> Snapshot {
        Snapshot { xmin, next_xid }
    }

    #[test]
    fn contiguous_positions_are_all_admitted() {
        let holes = Holes::default();
        assert_eq!(holes.admit(1, &[1, 2, 3], snap(10, 12)), 3);
        assert_eq!(holes.admit(0, &[1, 2], snap(10, 12)), 2);
        assert_eq!(holes.admit(5, &[], snap(10, 12)), 0);
        assert_eq!(holes.len(), 0);
    }

    #[test]
    fn a_hole_with_transactions_running_stops_the_reader() {
        let holes = Holes::default();
        // Position 2 is missing while 3 is visible, and transaction 11 is still running.
        assert_eq!(holes.admit(1, &[1, 3, 4], snap(11, 13)), 1);
        assert!(holes.pending_at(2));
        // A later snapshot: still running (xmin 11 < 13), the reader still stops.
        assert_eq!(holes.admit(2, &[3, 4, 5], snap(11, 20)), 0);
        // Everything below 13 has ended and 2 is still missing: permanent, stepped over.
        assert_eq!(holes.admit(2, &[3, 4, 5], snap(13, 25)), 3);
        assert!(!holes.pending_at(2));
    }

    #[test]
    fn the_first_bound_counts_not_a_later_one() {
        let holes = Holes::default();
        assert_eq!(holes.admit(1, &[2], snap(5, 8)), 0);
        // xmin 9 passes the first bound (8), though not this snapshot's (30).
        assert_eq!(holes.admit(1, &[2], snap(9, 30)), 1);
    }

    #[test]
    fn a_hole_seen_with_nothing_running_is_permanent_at_once() {
        let holes = Holes::default();
        // Nothing was running and no id was handed out since: the hole's holder rolled back.
        assert_eq!(holes.admit(1, &[1, 4, 5], snap(40, 40)), 3);
    }

    #[test]
    fn a_hole_that_fills_in_is_read_normally() {
        let holes = Holes::default();
        assert_eq!(holes.admit(1, &[1, 3], snap(7, 9)), 1);
        // The holder of 2 committed: 2 is now visible, nothing is skipped.
        assert_eq!(holes.admit(2, &[2, 3], snap(7, 12)), 2);
    }

    #[test]
    fn sub_ranges_inherit_the_remembered_horizon() {
        let holes = Holes::default();
        // 2..6 missing before 6.
        assert_eq!(holes.admit(1, &[1, 6], snap(3, 10)), 1);
        // 3 filled in; a reader from 4 sees the hole 4..6, inside the remembered range.
        assert_eq!(holes.admit(4, &[6], snap(9, 50)), 0);
        assert_eq!(holes.admit(4, &[6], snap(10, 50)), 1);
        assert_eq!(holes.len(), 1);
    }

    #[test]
    fn several_holes_in_one_read() {
        let holes = Holes::default();
        assert_eq!(holes.admit(1, &[2, 4, 7], snap(5, 5)), 3);
        assert_eq!(
            holes.admit(1, &[2, 4, 7], snap(5, 6)),
            3,
            "remembered as permanent"
        );
        let fresh = Holes::default();
        assert_eq!(fresh.admit(1, &[1, 2, 4, 7], snap(5, 6)), 2);
    }

    #[test]
    fn the_table_is_bounded() {
        let holes = Holes::default();
        for i in 0..(MAX_RANGES as u64 + 50) {
            let start = 10 + 3 * i;
            holes.admit(start, &[start + 1], snap(1, 2));
        }
        assert_eq!(holes.len(), MAX_RANGES);
        // The lowest were forgotten; a forgotten hole is re-learnt, never skipped early.
        assert_eq!(holes.admit(10, &[11], snap(1, 2)), 0);
    }
}

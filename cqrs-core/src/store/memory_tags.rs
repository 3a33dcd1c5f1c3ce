//! `MemoryStore`'s dynamic consistency boundaries: reading by [`EventQuery`] and the atomic,
//! conditional append to several streams (a child module of `memory.rs`, so it works on the
//! same log under the same lock).
//!
//! **The index is built lazily.** [`TagIndex`] maps each tag and each event type to the
//! indexes of its events, in position order. It is brought up to date, under the log's lock,
//! by the operations that need it (a query read, a condition check), not by every append: the
//! plain append path, the hot path of aggregates, is untouched, and an application that never
//! reads by query never pays for the index.
//!
//! **Why a condition cannot miss a write.** Every append (plain or conditional) holds the
//! log's one lock from its checks to its last write, and a conditional append checks its
//! condition and writes under the same hold. Positions are indexes in the log, assigned in
//! lock order, and a reader sees the log only under the lock: so `read_query` is complete
//! through the head it saw (no lower position can appear later), and when a condition with
//! `after = P` is checked, every event with a position after `P` is in the log. If none
//! matches, none can be added before the append's own events. Appends whose queries do not
//! overlap are serialised here anyway (one lock, microseconds); the SQL stores are where they
//! must not be.
//!
//! Query evaluation: per item, the shortest posting list among its tags (or the union of its
//! types' lists when it has no tag) from the first index at or after `from`, each candidate
//! checked against the item; the items' answers merged in position order.

use std::borrow::Cow;

use crate::FastMap;
use crate::envelope::{NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::event_query::{AppendCondition, EventQuery, QueryItem, QueryRead};
use crate::ids::{Position, Timestamp};
use crate::store::{StreamWrite, check_query, check_retry, check_writes};
use crate::tag::Tag;

use super::{Log, MemoryStore};

/// Indexes of events by tag and by type, for the events `..indexed` of the log.
#[derive(Default)]
pub(super) struct TagIndex {
    indexed: usize,
    by_tag: FastMap<Tag, Vec<usize>>,
    by_type: FastMap<Cow<'static, str>, Vec<usize>>,
}

impl TagIndex {
    /// Indexes the events appended since the last call.
    fn catch_up(&mut self, events: &[RecordedEvent]) {
        for (i, event) in events.iter().enumerate().skip(self.indexed) {
            for tag in &event.meta.tags {
                self.by_tag.entry(tag.clone()).or_default().push(i);
            }
            match self.by_type.get_mut(event.meta.event_name.as_ref()) {
                Some(list) => list.push(i),
                None => {
                    self.by_type.insert(event.meta.event_name.clone(), vec![i]);
                }
            }
        }
        self.indexed = events.len();
    }

    /// Indexes (at least `from`) of events matching `item`, ascending, at most `limit`.
    fn item_matches(
        &self,
        events: &[RecordedEvent],
        item: &QueryItem,
        from: usize,
        limit: usize,
        out: &mut Vec<usize>,
    ) {
        fn suffix(list: &[usize], from: usize) -> &[usize] {
            &list[list.partition_point(|&i| i < from)..]
        }
        let matches = |i: &usize| {
            let meta = &events[*i].meta;
            item.matches(&meta.event_name, &meta.tags)
        };
        if !item.required_tags().is_empty() {
            // The rarest tag's events; a tag never seen means no event matches.
            let mut shortest: Option<&[usize]> = None;
            for tag in item.required_tags() {
                let Some(list) = self.by_tag.get(tag) else {
                    return;
                };
                let list = suffix(list, from);
                if shortest.is_none_or(|s| list.len() < s.len()) {
                    shortest = Some(list);
                }
            }
            let list = shortest.unwrap_or_default();
            out.extend(list.iter().filter(|i| matches(i)).take(limit));
        } else {
            let start = out.len();
            for name in item.event_types() {
                if let Some(list) = self.by_type.get(name.as_ref()) {
                    out.extend(suffix(list, from).iter().take(limit));
                }
            }
            out[start..].sort_unstable();
        }
    }

    /// Indexes (at least `from`) of events matching `query`, ascending, at most `limit`.
    fn matches(
        &self,
        events: &[RecordedEvent],
        query: &EventQuery,
        from: usize,
        limit: usize,
    ) -> Vec<usize> {
        let Some(items) = query.items() else {
            return (from..events.len()).take(limit).collect();
        };
        let mut found = Vec::new();
        for item in items {
            self.item_matches(events, item, from, limit, &mut found);
        }
        if items.len() > 1 {
            found.sort_unstable();
            found.dedup();
        }
        found.truncate(limit);
        found
    }
}

impl Log {
    /// The first event after `after` matching `query`, if any (the index is caught up first).
    fn first_match_after(&mut self, query: &EventQuery, after: Position) -> Option<Position> {
        self.tags.catch_up(&self.events);
        let from = after.0 as usize; // position after+1 is index after
        self.tags
            .matches(&self.events, query, from, 1)
            .first()
            .map(|&i| Position(i as u64 + 1))
    }

    /// The answer to a conditional append whose ids are stored: the stored events if it is a
    /// retry of the same append (every id stored, in one run, each in its write's stream, the
    /// same events); `IdempotencyConflict` when they differ; `DuplicateEventId` otherwise.
    fn replayed_writes(
        &self,
        writes: &[StreamWrite],
    ) -> Option<Result<Vec<RecordedEvent>, StoreError>> {
        let first = writes.iter().find_map(|w| w.events.first())?;
        let &start = self.ids.get(&first.event_id)?;
        let total: usize = writes.iter().map(|w| w.events.len()).sum();
        let duplicate = |e: &NewEvent, w: &StreamWrite| StoreError::DuplicateEventId {
            event_id: e.event_id,
            stream: w.stream.clone(),
        };
        let Some(stored) = self.events.get(start..start + total) else {
            return Some(Err(duplicate(first, &writes[0])));
        };
        let mut at = 0;
        for write in writes {
            let run = &stored[at..at + write.events.len()];
            for (s, e) in run.iter().zip(&write.events) {
                if s.meta.event_id != e.event_id || s.meta.stream != write.stream {
                    return Some(Err(duplicate(e, write)));
                }
            }
            if let Err(e) = check_retry(&write.stream, run, &write.events) {
                return Some(Err(e));
            }
            at += write.events.len();
        }
        Some(Ok(stored.to_vec()))
    }
}

impl MemoryStore {
    pub(super) fn read_query_now(
        &self,
        query: &EventQuery,
        from: Position,
        limit: usize,
    ) -> Result<QueryRead, StoreError> {
        check_query(query)?;
        let mut log = self.lock();
        let log = &mut *log;
        log.tags.catch_up(&log.events);
        let from = (from.0.max(1) - 1) as usize;
        let found = log.tags.matches(&log.events, query, from, limit);
        let through = if limit > 0 && found.len() == limit {
            Position(found[limit - 1] as u64 + 1)
        } else if limit == 0 {
            // Nothing was read: complete through just before `from`.
            Position(from as u64)
        } else {
            Position(log.events.len() as u64)
        };
        let events = found.into_iter().map(|i| log.events[i].clone()).collect();
        Ok(QueryRead { events, through })
    }

    pub(super) fn append_conditional_now(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_writes(&writes, self.shared.max_event_bytes)?;
        if let Some(condition) = condition {
            check_query(&condition.query)?;
        }
        let now = Timestamp::now();
        let recorded = {
            let mut log = self.lock();
            if let Some(answer) = log.replayed_writes(&writes) {
                return answer;
            }
            // No first id is stored; any other stored id makes the append a duplicate.
            for write in &writes {
                if let Some(e) = write
                    .events
                    .iter()
                    .find(|e| log.ids.contains_key(&e.event_id))
                {
                    return Err(StoreError::DuplicateEventId {
                        event_id: e.event_id,
                        stream: write.stream.clone(),
                    });
                }
            }
            let mut versions = Vec::with_capacity(writes.len());
            for write in &writes {
                let version = log.streams.get(&write.stream).map_or(0, Vec::len) as u64;
                if !write.expected.admits(version) {
                    return Err(StoreError::Conflict {
                        stream: write.stream.clone(),
                        expected: write.expected,
                        actual: version,
                    });
                }
                versions.push(version);
            }
            if let Some(condition) = condition
                && let Some(conflicting) = log.first_match_after(&condition.query, condition.after)
            {
                return Err(StoreError::ConditionFailed {
                    after: condition.after,
                    conflicting,
                });
            }
            let mut recorded = Vec::new();
            for (write, version) in writes.into_iter().zip(versions) {
                let start = log.events.len();
                for (i, event) in write.events.into_iter().enumerate() {
                    let index = start + i;
                    log.ids.insert(event.event_id, index);
                    let record = event.record(
                        write.stream.clone(),
                        version + 1 + i as u64,
                        Position(index as u64 + 1),
                        now,
                    );
                    log.events.push(record.clone());
                    recorded.push(record);
                }
                let end = log.events.len();
                if end > start {
                    log.streams
                        .entry(write.stream)
                        .or_default()
                        .extend(start..end);
                }
            }
            self.shared
                .head
                .store(log.events.len() as u64, std::sync::atomic::Ordering::SeqCst);
            recorded
        };
        if !recorded.is_empty() {
            self.shared.appended.wake_all();
        }
        Ok(recorded)
    }
}

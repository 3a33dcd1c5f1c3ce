//! Dynamic consistency boundaries on PostgreSQL: tags stored with events, reading by
//! [`EventQuery`](eventweave_core::EventQuery), and the atomic, conditional append to several
//! streams.
//!
//! - **Storage** (migration 5, `schema.rs`): `events.tags` (`text[]`, NULL without tags) is read
//!   back with every event; `event_tags (tag, position)` is the index a query reads by.
//! - **Reading by query** (`read.rs`): one statement returns the matching events and the holes
//!   after a known gap-free position, so the read states a completeness position `P` that is
//!   gap-free: every position up to `P` is committed or a permanent hole. A matching event the
//!   read did not return therefore has a position above `P`.
//! - **A lone event under a condition** (`append_one.rs`), the common decision: one statement
//!   (`statements::append_one`) that takes the dcb locks in one sorted pass, then calls a
//!   `VOLATILE` PL/pgSQL check (migration 8, `statements::conflict_function`) whose query takes
//!   its own snapshot, after the locks, and inserts only if that found nothing. What it cannot
//!   answer (a version refused, a unique violation) goes to the function below.
//! - **Appends to several streams, with or without a condition** (`append.rs`): one call of a
//!   `VOLATILE` PL/pgSQL function (migrations 6 and 7, `statements::function`), one request in an
//!   implicit transaction. It takes the `ROW EXCLUSIVE` lock on the events table, then the dcb
//!   locks (`locks.rs`) in one sorted pass, then runs one statement that checks the condition
//!   and every write's version and inserts all rows or none. Each statement of a `VOLATILE`
//!   function takes a fresh snapshot in `READ COMMITTED`, so the check's snapshot is taken after
//!   the locks were granted, which the argument below needs. (One statement that took the locks
//!   and checked would check on a snapshot taken before the locks: it could miss an event
//!   committed by the transaction it waited for.)
//!
//! # Why a condition cannot miss a concurrent write
//!
//! Every append takes, shared, before it draws a position, the dcb locks of its events' types,
//! tags and (type, tag) pairs; a conditional append takes exclusively, for each item of its
//! query, a key every matching event holds shared (`locks.rs`). Let the condition be "no event
//! matching Q after P" and W the transaction of an event e matching Q. Either
//! - W took its shared lock before the checker's exclusive one: the checker waits until W ends;
//!   its check statement (or, for a lone event, its check function's query) starts after
//!   that, so its snapshot shows e if W committed. If e's
//!   position is above P the check refuses; if not, e was committed when the read ran (P is
//!   gap-free: a position up to P was committed or permanently empty then), so the decision
//!   already saw it. Or
//! - W takes its lock after the checker's transaction ended: W draws after it, so e's position is
//!   above every position of the checker's events (positions are handed out in increasing order),
//!   and e comes after the decision in the global order, which is what the condition allows.
//!
//! A condition on every event ([`EventQuery::all`](eventweave_core::EventQuery::all)) has no key
//! every event holds; it locks the events table in `SHARE ROW EXCLUSIVE` mode instead, which
//! waits for every transaction that has begun an insert and keeps new ones waiting until it
//! commits. Appends whose queries do not overlap take different exclusive keys and never wait for
//! each other (a hash collision only makes some wait); the gap-free order is untouched, since
//! positions are still drawn only after the transaction id and the appender lock
//! (`statements::next_position`).

pub(crate) mod append;
mod append_one;
pub(crate) mod locks;
mod read;
pub(crate) mod statements;

use std::sync::atomic::{AtomicU64, Ordering};

use eventweave_core::{Tag, Tags};

use crate::config::Names;

/// The store's SQL for reading by query and conditional appends, and what it knows about the
/// gap-free prefix.
pub(crate) struct DcbState {
    /// The call of the append function (`statements::call`).
    pub call: String,
    /// Reading by query (`statements::read`).
    pub read: String,
    /// A lone conditional event's statements (`statements::append_one`), by
    /// [`statements::OneShape`]: new stream, checked version, any version.
    pub one: [String; 3],
    /// A position every position up to which is known committed or permanently empty: reads
    /// by query look for holes only after it. Only grows; a fact about the table, not about a
    /// reader, so one per store.
    frontier: AtomicU64,
}

impl DcbState {
    pub fn new(n: &Names) -> DcbState {
        DcbState {
            call: statements::call(n),
            read: statements::read(n),
            one: [
                statements::append_one(n, statements::OneShape::New),
                statements::append_one(n, statements::OneShape::Checked),
                statements::append_one(n, statements::OneShape::Any),
            ],
            frontier: AtomicU64::new(0),
        }
    }

    fn frontier(&self) -> u64 {
        self.frontier.load(Ordering::Acquire)
    }

    fn advance(&self, gap_free: u64) {
        self.frontier.fetch_max(gap_free, Ordering::AcqRel);
    }
}

/// The `tags` column of a row: NULL for none; each element a valid tag, or why not.
pub(crate) fn decode_tags(column: Option<Vec<&str>>) -> Result<Tags, String> {
    let Some(texts) = column else {
        return Ok(Tags::empty());
    };
    let mut tags = Vec::with_capacity(texts.len());
    for text in texts {
        tags.push(Tag::parse(text).map_err(|e| format!("holds a bad tag: {e}"))?);
    }
    Ok(Tags::new(tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_columns_decode_to_sets_or_typed_problems() {
        assert_eq!(decode_tags(None), Ok(Tags::empty()));
        let tags = decode_tags(Some(vec!["b:2", "a:1"])).unwrap();
        assert_eq!(
            tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
            ["a:1", "b:2"]
        );
        assert!(
            decode_tags(Some(vec!["no key"]))
                .unwrap_err()
                .contains("bad tag")
        );
    }
}

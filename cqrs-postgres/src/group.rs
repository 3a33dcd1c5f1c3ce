//! Group commit: appends that arrive while the store's append statements are all in flight wait,
//! and the next free statement writes all of them at once, in one statement and one commit, each
//! with its own expected-version check and its own outcome.
//!
//! # How an append goes
//!
//! The store runs at most [`append_statements`](crate::PostgresConfig::append_statements)
//! append statements at a time. An append that finds one of these slots free (and nobody
//! waiting) takes it and runs alone, exactly as without grouping (`append.rs`): with one client
//! nothing waits and nothing changes. An append that finds every slot busy joins the queue and
//! waits for its answer. When a slot is given back and appends are waiting, a writer task takes
//! the slot and writes the queue in groups until it is empty.
//!
//! A group is the waiting appends in arrival order, at most one per stream (a second append to
//! a stream waits for the next group, so the appends of one group never meet each other's
//! rows) and at most [`MAX_GROUP_ROWS`] events. It is one `INSERT … SELECT … FROM unnest(…)` in
//! its own implicit transaction (`statements.rs`, `append_group`): every row carries its
//! append's stream and expected version, and the statement inserts the rows of exactly those
//! appends whose check holds on its snapshot. Then:
//!
//! - an append whose rows all came back is committed: it gets its events;
//! - an append that inserted nothing was refused (its version did not hold): it runs again
//!   alone, which resolves it as every lone append is resolved (a retry with the same ids
//!   returns the stored events, other stored ids are `DuplicateEventId`, otherwise `Conflict`,
//!   and a stream that moved on to the expected version meanwhile is written);
//! - a statement that failed on a row (a unique violation: a known version the stream has moved
//!   past, a concurrent writer, a reused event id; a value the server refuses; a deadlock)
//!   wrote nothing: the group
//!   is split in two and each half written again, down to lone appends, so the one at fault gets
//!   its own error and the others are written (about 2·log2(n) statements for one bad append of
//!   n);
//! - a lost connection or a server that ended the session leaves every append of the group with
//!   the same answer (`OutcomeUnknown`, or `Unavailable` before anything was sent).
//!
//! # Why gap-free order still holds
//!
//! The proof in ARCHITECTURE.md needs one thing of writers: no position is drawn before the
//! drawing transaction has its id and its appender lock, held until it ends (invariant 2). A
//! group is one statement in one implicit transaction, and every row's position is the same
//! `CASE WHEN pg_try_advisory_xact_lock(…, pg_current_xact_id() …) THEN nextval(…) END` as a
//! lone append's: the first row evaluated gives the transaction its id and takes the lock
//! before its `nextval`, and every later row finds both already held. How many appends share
//! the statement does not enter the argument; a group is, to readers, a batch that happens to
//! span several streams. A group that fails rolls back whole, leaving rolled-back holes as a
//! failed batch does.
//!
//! # Choices
//!
//! - **Group only what queued while the slots were busy**, no timer: an append that finds a slot
//!   free never waits, so single-client latency is the lone append's.
//! - **As many slots as the pool has connections** (by default): up to that many clients nothing
//!   waits and nothing changes (PostgreSQL already shares WAL flushes between concurrent
//!   commits); grouping takes over where the pool would have made appends wait anyway. With 2
//!   slots, 4 to 8 clients ran at about half the ungrouped rate (two statements in flight
//!   instead of eight, groups of 3 to 7); with 8, at the ungrouped rate up to 8 clients and
//!   several times it beyond (BENCHMARKS.md, "Group commit"). With a single slot, the writer
//!   finds the queue empty right after answering a group (its clients have not sent their next
//!   commands yet), gives the slot back, and the first of them takes it alone while the rest
//!   queue: a lone append between every two groups.
//! - **The writer is a spawned task**, so a caller whose future is dropped while its group is
//!   written cannot leave the other appends of the group without answers. A waiting append whose
//!   caller has gone is left out of the next group, so it is not written.
//! - **Versions the store has not seen are checked on both sides** (`v` exists, `v + 1` does
//!   not), so a stale expectation is a refusal that fails only its own append. Versions it has
//!   seen committed (and 0) skip the probes, as a lone append does: a stream that moved past
//!   them meets the unique constraint and splits the group. The probes' generic plan may be a
//!   per-row sequential scan on a young table (`statements.rs`), so the common case avoids it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use eventweave_core::{
    BackendError, ExpectedVersion, NewEvent, RecordedEvent, StoreError, StreamId, Uuid,
};
use tokio::sync::oneshot;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::append::{Encoded, EventArrays, expected_param, recorded};
use crate::error::{closed_before_sending, session_ended, write_failed};
use crate::pool::Conn;
use crate::store::Shared;

/// The most events one group statement carries (an append larger than this goes alone).
pub(crate) const MAX_GROUP_ROWS: usize = 1024;

/// What an append waiting in the queue gets back.
type Reply = Result<Vec<RecordedEvent>, StoreError>;

/// An append waiting for its group.
pub(crate) struct Waiting {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    encoded: Encoded,
    reply: oneshot::Sender<Reply>,
}

/// The slots and the queue of one store (shared by its clones).
#[derive(Default)]
pub(crate) struct Appends {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Append statements in flight (lone appends and writers of groups).
    running: usize,
    waiting: VecDeque<Waiting>,
}

impl Appends {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Only pushes, pops and counts happen under this lock.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next group: waiting appends in arrival order, one per stream, at most
    /// [`MAX_GROUP_ROWS`] events (at least one append); appends whose caller has gone are
    /// dropped unwritten. The others stay queued, in order.
    fn take_group(&self) -> Vec<Waiting> {
        let mut queue = self.lock();
        let mut group: Vec<Waiting> = Vec::new();
        let mut streams = HashSet::new();
        let mut rows = 0;
        let mut kept = VecDeque::new();
        while let Some(next) = queue.waiting.pop_front() {
            if next.reply.is_closed() {
                continue;
            }
            let fits = group.is_empty() || rows + next.events.len() <= MAX_GROUP_ROWS;
            if fits && !streams.contains(&next.stream) {
                rows += next.events.len();
                streams.insert(next.stream.clone());
                group.push(next);
                if rows >= MAX_GROUP_ROWS {
                    break;
                }
            } else {
                kept.push_back(next);
            }
        }
        kept.append(&mut queue.waiting);
        queue.waiting = kept;
        group
    }
}

/// How an append enters: at once, with a slot, or queued.
enum Entry {
    Now(Vec<NewEvent>, Encoded),
    Queued(oneshot::Receiver<Reply>),
}

/// A statement slot, held: given back on drop, or handed to a new writer when appends wait.
struct Slot<'a> {
    shared: &'a Arc<Shared>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut queue = self.shared.appends.lock();
        if queue.waiting.is_empty() {
            queue.running -= 1;
            return;
        }
        drop(queue);
        // The slot passes to a writer of the waiting appends. Without a runtime (one shutting
        // down) nothing can run them; their callers cannot be polled either.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(write_groups(Arc::clone(self.shared)));
            }
            Err(_) => self.shared.appends.lock().running -= 1,
        }
    }
}

/// Writes groups until nobody waits; holds one slot meanwhile.
async fn write_groups(shared: Arc<Shared>) {
    let _slot = Slot { shared: &shared };
    loop {
        let group = shared.appends.take_group();
        if group.is_empty() {
            return;
        }
        shared.write_group(group).await;
    }
}

impl Shared {
    /// An append with group commit on: alone at once if a slot is free and nobody waits,
    /// otherwise queued for the next group.
    pub(crate) async fn append_grouped(
        self: &Arc<Self>,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        encoded: Encoded,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // The lock is released before any `.await` (its guard is not `Send`).
        let entry = {
            let mut queue = self.appends.lock();
            if queue.running < self.config.get_append_statements() && queue.waiting.is_empty() {
                queue.running += 1;
                Entry::Now(events, encoded)
            } else {
                let (reply, answer) = oneshot::channel();
                queue.waiting.push_back(Waiting {
                    stream: stream.clone(),
                    expected,
                    events,
                    encoded,
                    reply,
                });
                Entry::Queued(answer)
            }
        };
        let answer = match entry {
            Entry::Now(events, encoded) => {
                let _slot = Slot { shared: self };
                return self.append_alone(stream, expected, events, &encoded).await;
            }
            Entry::Queued(answer) => answer,
        };
        answer.await.unwrap_or_else(|_| {
            // The writer stopped (a panic, a runtime shutting down) while the append was in
            // its hands: it may have been sent.
            Err(StoreError::OutcomeUnknown(BackendError::new(format!(
                "the group writer of the append to `{stream}` stopped before answering"
            ))))
        })
    }

    /// Writes one group and answers each of its appends.
    fn write_group(&self, group: Vec<Waiting>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let mut group = group;
            if group.len() == 1 {
                let Some(one) = group.pop() else { return };
                let result = self
                    .append_alone(&one.stream, one.expected, one.events, &one.encoded)
                    .await;
                let _ = one.reply.send(result);
                return;
            }
            let mut conn = match self.pool.get().await {
                Ok(conn) => conn,
                Err(e) => return answer_all(group, e),
            };
            if conn.client.is_closed() {
                return answer_all(group, closed_before_sending());
            }
            let known: Vec<bool> = group
                .iter()
                .map(|w| self.version_known(&w.stream, w.expected))
                .collect();
            match insert_group(&conn, &group, &known).await {
                Ok(rows) => {
                    drop(conn);
                    self.settle(group, rows).await;
                }
                Err(e) if row_dependent(&e) => {
                    // Nothing was written: write the halves again, so the append at fault ends
                    // up alone with its own answer.
                    drop(conn);
                    let second = group.split_off(group.len() / 2);
                    self.write_group(group).await;
                    self.write_group(second).await;
                }
                Err(e) => {
                    if session_ended(&e) {
                        conn.discard_on_drop();
                    }
                    answer_all(group, write_failed(e));
                }
            }
        })
    }

    /// Answers a group's appends from the rows its statement returned: those whose rows all
    /// came back are committed; those that inserted nothing run again alone for their own
    /// answer.
    async fn settle(&self, group: Vec<Waiting>, rows: Vec<Row>) {
        let mut owner = HashMap::with_capacity(rows.len());
        for (i, waiting) in group.iter().enumerate() {
            for event in &waiting.events {
                owner.insert(event.event_id, i);
            }
        }
        let mut placed: Vec<Vec<Row>> = group.iter().map(|_| Vec::new()).collect();
        let mut stray = 0;
        for row in rows {
            match row.try_get::<_, Uuid>(3).ok().and_then(|id| owner.get(&id)) {
                Some(&i) => placed[i].push(row),
                None => stray += 1,
            }
        }
        let mut refused = Vec::new();
        let mut committed = false;
        for (waiting, rows) in group.into_iter().zip(placed) {
            if rows.is_empty() && stray == 0 {
                refused.push(waiting);
                continue;
            }
            // The statement committed, so a reply that does not read leaves the caller unsure,
            // not the store.
            let result = if stray > 0 {
                Err(StoreError::OutcomeUnknown(BackendError::new(format!(
                    "the group append returned {stray} rows that name no event of the group"
                ))))
            } else {
                recorded(&waiting.stream, waiting.events, &rows).map_err(|e| match e {
                    StoreError::Backend(e) => StoreError::OutcomeUnknown(e),
                    other => other,
                })
            };
            if let Ok(events) = &result
                && let Some(last) = events.last()
            {
                self.versions.saw(&waiting.stream, last.meta.version);
                committed = true;
            }
            let _ = waiting.reply.send(result);
        }
        if committed {
            self.notifier.committed();
        }
        let answers = refused.into_iter().map(|waiting| async move {
            let result = self
                .append_alone(
                    &waiting.stream,
                    waiting.expected,
                    waiting.events,
                    &waiting.encoded,
                )
                .await;
            let _ = waiting.reply.send(result);
        });
        futures_util::future::join_all(answers).await;
    }
}

/// Runs a group's statement: the rows it inserted (position, version, recorded_at, event_id).
/// `known[i]`: the version the `i`-th append expects is known to exist, so the statement skips
/// its checks (a stream already beyond it fails on the unique constraint instead).
async fn insert_group(
    conn: &Conn,
    group: &[Waiting],
    known: &[bool],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let rows: usize = group.iter().map(|w| w.events.len()).sum();
    let mut arrays = EventArrays::with_capacity(rows);
    let mut streams = Vec::with_capacity(rows);
    let mut expected = Vec::with_capacity(rows);
    let mut nth = Vec::with_capacity(rows);
    let mut checked = Vec::with_capacity(rows);
    for (waiting, &known) in group.iter().zip(known) {
        arrays.extend(&waiting.events, &waiting.encoded);
        let base = expected_param(waiting.expected);
        for i in 1..=waiting.events.len() {
            streams.push(waiting.stream.as_str());
            expected.push(base);
            nth.push(i as i64);
            checked.push(!known);
        }
    }
    let tail: [&(dyn ToSql + Sync); 4] = [&streams, &expected, &nth, &checked];
    let params: Vec<&(dyn ToSql + Sync)> = arrays.params().into_iter().chain(tail).collect();
    conn.client.query(&conn.st.append_group, &params).await
}

/// Whether a failed group statement failed because of some of its rows, so that writing the
/// halves again may succeed for the others: an `ERROR` (the statement rolled back, nothing was
/// written) of class 22 (a value the server refuses), 23 (a unique violation: a concurrent
/// writer, a reused id), 40 (a deadlock between writers of the same streams) or 54 (a limit).
fn row_dependent(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.severity() == "ERROR"
            && matches!(db.code().code().get(..2), Some("22" | "23" | "40" | "54"))
    })
}

/// Gives every append of the group the answer `error` (the first gets it, the others a copy).
fn answer_all(group: Vec<Waiting>, error: StoreError) {
    let copies: Vec<StoreError> = (1..group.len()).map(|_| copy(&error)).collect();
    for (waiting, error) in group.into_iter().zip(std::iter::once(error).chain(copies)) {
        let _ = waiting.reply.send(Err(error));
    }
}

/// The same answer for another append: kind, message and SQLSTATE (not the driver's error
/// value, which is not `Clone`).
fn copy(error: &StoreError) -> StoreError {
    let same = |e: &BackendError| {
        let copy = BackendError::new(e.message());
        match e.code() {
            Some(code) => copy.with_code(code),
            None => copy,
        }
    };
    match error {
        StoreError::Unavailable(e) => StoreError::Unavailable(same(e)),
        StoreError::OutcomeUnknown(e) => StoreError::OutcomeUnknown(same(e)),
        StoreError::Backend(e) => StoreError::Backend(same(e)),
        other => StoreError::Backend(BackendError::new(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventweave_core::testing::conformance::event;

    fn waiting(stream: &str, events: usize) -> (Waiting, oneshot::Receiver<Reply>) {
        let events: Vec<NewEvent> = (0..events).map(|i| event(&i.to_string())).collect();
        let encoded = Encoded {
            metadata: vec![None; events.len()],
        };
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting {
            stream: StreamId::from(stream),
            expected: ExpectedVersion::Any,
            events,
            encoded,
            reply,
        };
        (waiting, answer)
    }

    fn streams(group: &[Waiting]) -> Vec<&str> {
        group.iter().map(|w| w.stream.as_str()).collect()
    }

    #[test]
    fn a_group_takes_one_append_per_stream_in_order_and_leaves_the_rest_queued() {
        let appends = Appends::default();
        let mut answers = Vec::new();
        for stream in ["a", "b", "a", "c", "b", "a"] {
            let (w, answer) = waiting(stream, 1);
            answers.push(answer);
            appends.lock().waiting.push_back(w);
        }
        assert_eq!(streams(&appends.take_group()), ["a", "b", "c"]);
        assert_eq!(streams(&appends.take_group()), ["a", "b"]);
        assert_eq!(streams(&appends.take_group()), ["a"]);
        assert!(appends.take_group().is_empty());
    }

    #[test]
    fn appends_whose_callers_left_are_not_written() {
        let appends = Appends::default();
        let (gone, answer) = waiting("a", 1);
        drop(answer);
        let (stays, _answer) = waiting("b", 1);
        appends.lock().waiting.extend([gone, stays]);
        assert_eq!(streams(&appends.take_group()), ["b"]);
        assert!(appends.lock().waiting.is_empty());
    }

    #[test]
    fn a_group_holds_at_most_the_row_limit_but_always_one_append() {
        let appends = Appends::default();
        let mut answers = Vec::new();
        for (stream, events) in [
            ("big", MAX_GROUP_ROWS + 5),
            ("a", 600),
            ("b", 600),
            ("c", 1),
        ] {
            let (w, answer) = waiting(stream, events);
            answers.push(answer);
            appends.lock().waiting.push_back(w);
        }
        assert_eq!(streams(&appends.take_group()), ["big"]);
        // `b` does not fit beside `a`; `c` does, and goes ahead of it.
        assert_eq!(streams(&appends.take_group()), ["a", "c"]);
        assert_eq!(streams(&appends.take_group()), ["b"]);
    }

    #[test]
    fn copies_keep_the_kind_message_and_code() {
        let error = StoreError::OutcomeUnknown(BackendError::new("lost").with_code("08006"));
        match copy(&error) {
            StoreError::OutcomeUnknown(e) => {
                assert_eq!((e.message(), e.code()), ("lost", Some("08006")));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            copy(&StoreError::Unavailable(BackendError::new("x"))),
            StoreError::Unavailable(_)
        ));
    }
}

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
//! appends whose check holds on its snapshot. Tagged appends (their events carry tags) group
//! like untagged ones: a group holding one takes the tagged form of the statement, which also
//! writes every row's `tags` column and the `event_tags` rows of the rows it inserted, and takes
//! the shared dcb locks of all its rows (see below). Conditional appends never group
//! (`dcb/append.rs`). Then:
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
//! # Why an append condition still sees every grouped write
//!
//! The argument in `dcb/mod.rs` needs of every plain append that it holds, shared and before it
//! draws a position, the dcb key of its events' types, tags and (tag, type) pairs, taken in one
//! ascending pass after the events table's `ROW EXCLUSIVE` lock. A group's statement takes the
//! union of its rows' keys, deduplicated and in ascending order, in one init plan inside the
//! first row's position `CASE`: after the table locks the statement took when it started, before
//! its first draw, held until its transaction ends. To a conditional append, a group is one
//! writer holding every key any of its events holds: it waits for the group or the group draws
//! after it, as for a lone append. Keys of an append the statement then refuses are held too,
//! which only makes a condition wait a little longer. At most [`MAX_GROUP_KEYS`] keys a group.
//!
//! # Choices
//!
//! - **Group only what queued while the slots were busy**, no timer: an append that finds a slot
//!   free never waits, so single-client latency is the lone append's.
//! - **Two slots by default**, whatever the pool size. Concurrent append statements meet on
//!   the same hot spots (the last page of the position index, the sequence, the shared dcb key
//!   of a common event type, the lock manager), and on a small server their backends take turns
//!   on its cores: measured on 2 cores (BENCHMARKS.md, "How many append statements"), 8 slots
//!   cost about 230 µs of server CPU per command at 8 clients where 1 or 2 slots cost 60–120,
//!   and wrote 10,000–11,000 commands/s at 64 clients where 1 or 2 slots wrote 20,000–33,000.
//!   One slot groups the most but runs appends strictly one statement at a time: a statement
//!   waiting on a row lock of another process's uncommitted transaction would hold up every
//!   append of this store, and no statement's work overlaps another's commit. Two keep both.
//!   (An earlier build, on a machine at load 8.5, measured 2 slots at half the ungrouped rate
//!   for 4 to 8 clients and the default was the pool size; runs of this build alternating 1, 2
//!   and 8 slots do not show that: 2 slots were at or above the ungrouped rate at every count.)
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
    BackendError, ExpectedVersion, NewEvent, RecordedEvent, StoreError, StreamId, Tags, Uuid,
};
use tokio::sync::oneshot;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::append::{Encoded, EventArrays, expected_param, recorded};
use crate::dcb::locks;
use crate::error::{closed_before_sending, session_ended, write_failed};
use crate::pool::Conn;
use crate::store::Shared;

/// The most events one group statement carries (an append larger than this goes alone).
pub(crate) const MAX_GROUP_ROWS: usize = 1024;

/// The most dcb lock keys one group statement takes, counted as an append sends them (one per
/// event type, two more per tag: `dcb/locks.rs`), before deduplication. A transaction's
/// advisory locks share the server's lock table (`max_locks_per_transaction` × connections);
/// a group never takes more than an append of [`MAX_GROUP_ROWS`] untagged events would.
pub(crate) const MAX_GROUP_KEYS: usize = MAX_GROUP_ROWS;

/// What an append waiting in the queue gets back.
type Reply = Result<Vec<RecordedEvent>, StoreError>;

/// An append waiting for its group.
pub(crate) struct Waiting {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    encoded: Encoded,
    /// The dcb lock keys its events take (see [`MAX_GROUP_KEYS`]).
    keys: usize,
    reply: oneshot::Sender<Reply>,
}

impl Waiting {
    fn new(
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        encoded: Encoded,
        reply: oneshot::Sender<Reply>,
    ) -> Waiting {
        let tags: usize = events.iter().map(|e| e.tags.len()).sum();
        Waiting {
            stream,
            expected,
            keys: events.len() + 2 * tags,
            events,
            encoded,
            reply,
        }
    }
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
    /// [`MAX_GROUP_ROWS`] events and [`MAX_GROUP_KEYS`] lock keys (at least one append);
    /// appends whose caller has gone are dropped unwritten. The others stay queued, in order.
    fn take_group(&self) -> Vec<Waiting> {
        let mut queue = self.lock();
        let mut group: Vec<Waiting> = Vec::new();
        let mut streams = HashSet::new();
        let (mut rows, mut keys) = (0, 0);
        let mut kept = VecDeque::new();
        while let Some(next) = queue.waiting.pop_front() {
            if next.reply.is_closed() {
                continue;
            }
            let fits = group.is_empty()
                || (rows + next.events.len() <= MAX_GROUP_ROWS
                    && keys + next.keys <= MAX_GROUP_KEYS);
            if fits && !streams.contains(&next.stream) {
                rows += next.events.len();
                keys += next.keys;
                streams.insert(next.stream.clone());
                group.push(next);
                if rows >= MAX_GROUP_ROWS || keys >= MAX_GROUP_KEYS {
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
                queue.waiting.push_back(Waiting::new(
                    stream.clone(),
                    expected,
                    events,
                    encoded,
                    reply,
                ));
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
    let appends: Vec<Pending<'_>> = group
        .iter()
        .zip(known)
        .map(|(w, &known)| Pending {
            stream: &w.stream,
            expected: w.expected,
            events: &w.events,
            encoded: &w.encoded,
            known,
        })
        .collect();
    insert_appends(conn, &appends).await
}

/// One append of a group statement, borrowed.
pub(crate) struct Pending<'a> {
    pub stream: &'a StreamId,
    pub expected: ExpectedVersion,
    pub events: &'a [NewEvent],
    pub encoded: &'a Encoded,
    /// The version it expects is known to exist: the statement skips its checks.
    pub known: bool,
}

/// Runs the group statement for `appends`: the rows it inserted (position, version,
/// recorded_at, event_id). Appends with a tagged event take the tagged statement, with every
/// row's tags and every row's dcb keys; a lone tagged append comes here too (`append::insert`),
/// as a group of one.
pub(crate) async fn insert_appends(
    conn: &Conn,
    appends: &[Pending<'_>],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let rows: usize = appends.iter().map(|a| a.events.len()).sum();
    let mut arrays = EventArrays::with_capacity(rows);
    let mut streams = Vec::with_capacity(rows);
    let mut expected = Vec::with_capacity(rows);
    let mut nth = Vec::with_capacity(rows);
    let mut checked = Vec::with_capacity(rows);
    for append in appends {
        arrays.extend(append.events, append.encoded);
        let base = expected_param(append.expected);
        for i in 1..=append.events.len() {
            streams.push(append.stream.as_str());
            expected.push(base);
            nth.push(i as i64);
            checked.push(!append.known);
        }
    }
    let tail: [&(dyn ToSql + Sync); 4] = [&streams, &expected, &nth, &checked];
    let params = arrays.params().into_iter().chain(tail);
    let events = || appends.iter().flat_map(|a| a.events);
    if events().all(|e| e.tags.is_empty()) {
        let params: Vec<&(dyn ToSql + Sync)> = params.collect();
        return conn.client.query(&conn.st.append_group, &params).await;
    }
    let mut tags = Vec::with_capacity(rows);
    let mut keys = Vec::with_capacity(rows * 3);
    for event in events() {
        tags.push(tags_literal(&event.tags));
        locks::event_keys(&event.event_name, &event.tags, &mut keys);
    }
    let tagged: [&(dyn ToSql + Sync); 2] = [&tags, &keys];
    let params: Vec<&(dyn ToSql + Sync)> = params.chain(tagged).collect();
    conn.client
        .query(&conn.st.append_group_tagged, &params)
        .await
}

/// An event's tags as the text of a `text[]` literal (`None` without tags): each element
/// double-quoted, with `"` and `\` escaped by a backslash, so any text a tag may hold (commas,
/// braces, quotes, spaces, `NULL`) reads back as itself (`array_in`'s quoting rules).
pub(crate) fn tags_literal(tags: &Tags) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    Some(text_array_literal(tags.iter().map(|t| t.as_str())))
}

/// The text of a `text[]` literal holding `texts` in order, each element quoted (so any text,
/// empty or with commas, braces or spaces, is one element) with `"` and `\` escaped.
pub(crate) fn text_array_literal<'a>(texts: impl Iterator<Item = &'a str> + Clone) -> String {
    let mut literal = String::with_capacity(2 + texts.clone().map(|t| t.len() + 3).sum::<usize>());
    literal.push('{');
    for (i, text) in texts.enumerate() {
        if i > 0 {
            literal.push(',');
        }
        literal.push('"');
        for c in text.chars() {
            if matches!(c, '"' | '\\') {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
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
        let waiting = Waiting::new(
            StreamId::from(stream),
            ExpectedVersion::Any,
            events,
            encoded,
            reply,
        );
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
    fn a_group_of_tagged_appends_holds_at_most_the_key_limit() {
        let appends = Appends::default();
        let mut answers = Vec::new();
        let tags = Tags::new(["a:1", "b:2"].map(|t| eventweave_core::Tag::parse(t).unwrap()));
        for k in 0..300 {
            let (mut w, answer) = waiting(&format!("s{k}"), 1);
            w.events[0].tags = tags.clone();
            let w = Waiting::new(w.stream, w.expected, w.events, w.encoded, w.reply);
            assert_eq!(w.keys, 5, "one type key, two per tag");
            answers.push(answer);
            appends.lock().waiting.push_back(w);
        }
        assert_eq!(appends.take_group().len(), MAX_GROUP_KEYS / 5);
        assert_eq!(appends.take_group().len(), 300 - MAX_GROUP_KEYS / 5);
    }

    #[test]
    fn tag_literals_quote_every_element_and_escape_quotes_and_backslashes() {
        assert_eq!(tags_literal(&Tags::empty()), None);
        let tags = Tags::new(
            [r#"note:a,b {c} "d" \e"#, "course:NULL"]
                .map(|t| eventweave_core::Tag::parse(t).unwrap()),
        );
        assert_eq!(
            tags_literal(&tags).unwrap(),
            r#"{"course:NULL","note:a,b {c} \"d\" \\e"}"#
        );
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

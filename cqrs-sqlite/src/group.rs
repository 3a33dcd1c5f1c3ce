//! Group commit: appends that wait for the file's write turn are written together when it comes,
//! in one transaction and one commit.
//!
//! An append that finds the turn free takes it and is written alone, exactly as without grouping
//! (`append.rs`): a single writer never waits and pays nothing more. An append that finds the
//! turn taken puts itself in the store's queue and then waits for whichever comes first: its
//! answer, or the turn. Whoever gets the turn next takes every queued append and writes them in
//! one `BEGIN IMMEDIATE` transaction, each in a savepoint of its own (`append::append_group`),
//! answers each through its channel, and commits once. The writer holds the turn throughout and
//! never awaits while writing, so a dropped future cannot leave a group half answered; a queued
//! append whose caller has gone is left out (not written). An append that then gets the turn
//! and finds its answer already there gives the turn back at once.
//!
//! Each append of a group gets the answer it would have got alone at that point: its version
//! check runs in its savepoint and sees the appends written before it in the group (appends of
//! one stream may share a group), a conflict or a reused id rolls back to its savepoint only,
//! and a retry with the same ids finds the stored events. If the one `COMMIT` fails, every append
//! that wrote gets its error. Positions are rowids assigned inside the one write transaction,
//! so order stays gap-free.
//!
//! Tagged appends queue like the others: `append.rs` writes their `tags` column and `event_tags`
//! rows in their savepoint. A conditional append never queues (`dcb.rs`): it takes the turn and
//! checks its condition inside its own `BEGIN IMMEDIATE`, after every group before it committed.
//!
//! When does this happen? SQLite calls run inline on the calling task (`store.rs`), so on a
//! `current_thread` runtime an append never waits for another append: only behind a sink batch
//! (which holds the turn across its handlers' awaits). On a multi-thread runtime, appends on
//! other workers wait while one commits, and go together in the next commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use eventweave_core::Position;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::append::{Reply, Request, append_group};
use eventweave_core::Timestamp;

/// An append waiting for the turn, and where its answer goes.
pub(crate) struct Waiting {
    id: u64,
    request: Request,
    reply: oneshot::Sender<Reply>,
}

/// The appends waiting for the write turn of one store handle (shared by its clones).
#[derive(Default)]
pub(crate) struct Queue {
    waiting: Mutex<Vec<Waiting>>,
    next_id: AtomicU64,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Vec<Waiting>> {
        // Only pushes and takes happen under this lock.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `request`: its id (for [`Queue::remove`]) and where its answer will come.
    pub(crate) fn push(&self, request: Request) -> (u64, oneshot::Receiver<Reply>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.lock().push(Waiting { id, request, reply });
        (id, answer)
    }

    /// Every queued append whose caller is still waiting, in arrival order (the others are
    /// dropped unwritten).
    pub(crate) fn take_all(&self) -> Vec<Waiting> {
        let mut waiting = std::mem::take(&mut *self.lock());
        waiting.retain(|w| !w.reply.is_closed());
        waiting
    }

    /// Takes the append `id` back out of the queue; `false` if a writer has it already.
    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut waiting = self.lock();
        let before = waiting.len();
        waiting.retain(|w| w.id != id);
        waiting.len() < before
    }
}

/// Writes the queued appends and then `own` (if any) in one transaction on `conn`, answers the
/// queued ones through their channels, and returns `own`'s answer and the highest position
/// written.
pub(crate) fn write_all(
    conn: &mut Connection,
    queued: Vec<Waiting>,
    own: Option<Request>,
    now: Timestamp,
) -> (Option<Reply>, Option<Position>) {
    let mut requests = Vec::with_capacity(queued.len() + 1);
    let mut replies = Vec::with_capacity(queued.len());
    for waiting in queued {
        requests.push(waiting.request);
        replies.push(waiting.reply);
    }
    requests.extend(own);
    let mut last = None;
    let mut answers = append_group(conn, requests, now).into_iter();
    for reply in replies {
        let Some(answer) = answers.next() else { break };
        last = last.max(highest(&answer));
        let _ = reply.send(answer);
    }
    let own = answers.next();
    if let Some(answer) = &own {
        last = last.max(highest(answer));
    }
    (own, last)
}

/// The highest position of a successful answer.
fn highest(answer: &Reply) -> Option<Position> {
    answer
        .as_ref()
        .ok()
        .and_then(|events| events.last())
        .map(|e| e.meta.position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventweave_core::{ExpectedVersion, StreamId};

    fn request(stream: &str) -> Request {
        Request {
            stream: StreamId::from(stream),
            expected: ExpectedVersion::Any,
            events: Vec::new(),
        }
    }

    #[test]
    fn the_queue_hands_out_appends_in_order_without_those_whose_caller_left() {
        let queue = Queue::default();
        let (_, _a) = queue.push(request("a"));
        let (_, b) = queue.push(request("b"));
        let (c_id, _c) = queue.push(request("c"));
        drop(b);
        assert!(queue.remove(c_id));
        assert!(!queue.remove(c_id), "removed once");
        let (_, _d) = queue.push(request("d"));
        let taken: Vec<String> = queue
            .take_all()
            .iter()
            .map(|w| w.request.stream.as_str().to_owned())
            .collect();
        assert_eq!(taken, ["a", "d"]);
        assert!(queue.take_all().is_empty());
    }
}

/// Appends queued behind the held write turn, all answered by one writer in one transaction.
#[cfg(test)]
mod queued_behind_the_turn {
    use std::collections::{HashMap, HashSet};

    use eventweave_core::testing::conformance::event;
    use eventweave_core::{
        EventQuery, EventStore, ExpectedVersion, NewEvent, Position, QueryItem, RecordedEvent,
        StoreError, StreamId, Tag, Tags, Uuid,
    };

    use crate::SqliteStore;

    async fn append(
        store: &SqliteStore,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        store
            .append(&StreamId::from(stream), expected, events)
            .await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn fifty_queued_appends_each_get_their_own_answer_in_one_commit() {
        let store = SqliteStore::temporary().unwrap();
        append(
            &store,
            "moved",
            ExpectedVersion::NoStream,
            vec![event("1"), event("2")],
        )
        .await
        .unwrap();
        let earlier = vec![event(r#"{"a":1}"#), event(r#"{"b":2}"#)];
        append(
            &store,
            "retried",
            ExpectedVersion::NoStream,
            earlier.clone(),
        )
        .await
        .unwrap();
        let taken = event("{}");
        append(
            &store,
            "owner",
            ExpectedVersion::NoStream,
            vec![taken.clone()],
        )
        .await
        .unwrap();

        // Hold the turn, as a sink batch does: every append below queues.
        let turn = store.turn().take().await.unwrap();
        let mut tasks = Vec::new();
        let mut spawn = |stream: &str, expected, events: Vec<NewEvent>| {
            let store = store.clone();
            let stream = stream.to_owned();
            tasks.push(tokio::spawn(async move {
                append(&store, &stream, expected, events).await
            }));
        };
        spawn("moved", ExpectedVersion::Exact(1), vec![event("3")]);
        spawn("retried", ExpectedVersion::NoStream, earlier.clone());
        spawn(
            "reuses",
            ExpectedVersion::NoStream,
            vec![event("{}"), taken.clone()],
        );
        // One stream twice in one group: the second sees the first's rows.
        spawn("twice", ExpectedVersion::NoStream, vec![event("1")]);
        spawn(
            "twice",
            ExpectedVersion::Exact(1),
            vec![event("2"), event("3")],
        );
        spawn("twice", ExpectedVersion::NoStream, vec![event("4")]);
        let mut fresh = Vec::new();
        for k in 0..44 {
            let e = event(&k.to_string());
            fresh.push(e.event_id);
            spawn(&format!("fresh-{k}"), ExpectedVersion::NoStream, vec![e]);
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        drop(turn);
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        assert!(matches!(
            &results[0],
            Err(StoreError::Conflict { actual: 2, .. })
        ));
        let retried = results[1].as_ref().unwrap();
        assert_eq!(
            retried.iter().map(|e| e.meta.event_id).collect::<Vec<_>>(),
            earlier.iter().map(|e| e.event_id).collect::<Vec<_>>()
        );
        assert!(matches!(
            &results[2],
            Err(StoreError::DuplicateEventId { event_id, .. }) if *event_id == taken.event_id
        ));
        assert_eq!(results[3].as_ref().unwrap()[0].meta.version, 1);
        let second: Vec<u64> = results[4]
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.meta.version)
            .collect();
        assert_eq!(second, [2, 3]);
        assert!(matches!(
            &results[5],
            Err(StoreError::Conflict { actual: 3, .. })
        ));
        let mut stamps = HashSet::new();
        for (k, result) in results[6..].iter().enumerate() {
            let events = result.as_ref().unwrap();
            assert_eq!(events[0].meta.event_id, fresh[k]);
            stamps.insert(events[0].meta.recorded_at);
        }
        // One group, one transaction, one clock reading.
        assert_eq!(
            stamps.len(),
            1,
            "the queued appends were not written together"
        );

        // Stored: 2 + 2 + 1 before; 1 + 2 (twice) + 44 now; nothing of the refused ones.
        let all = store.read_all(Position::ZERO, 1_000).await.unwrap();
        assert_eq!(all.len(), 5 + 3 + 44);
        let mut seen: HashMap<Uuid, usize> = HashMap::new();
        for e in &all {
            *seen.entry(e.meta.event_id).or_default() += 1;
        }
        assert!(seen.values().all(|n| *n == 1));
        assert!(
            all.windows(2)
                .all(|w| w[1].meta.position.0 == w[0].meta.position.0 + 1)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_queued_append_whose_caller_left_is_not_written() {
        let store = SqliteStore::temporary().unwrap();
        let turn = store.turn().take().await.unwrap();
        let left = event("{}");
        let leaving = {
            let store = store.clone();
            let left = left.clone();
            tokio::spawn(async move {
                append(&store, "left", ExpectedVersion::NoStream, vec![left]).await
            })
        };
        let staying = {
            let store = store.clone();
            tokio::spawn(async move {
                append(
                    &store,
                    "stays",
                    ExpectedVersion::NoStream,
                    vec![event("{}")],
                )
                .await
            })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        leaving.abort();
        assert!(leaving.await.unwrap_err().is_cancelled());
        drop(turn);
        staying.await.unwrap().unwrap();
        assert!(store.read_event(left.event_id).await.unwrap().is_none());
    }

    fn tagged(tags: &[&str]) -> NewEvent {
        let mut e = event("{}");
        e.event_name = "booked".to_owned().into();
        e.tags = Tags::new(tags.iter().map(|t| Tag::parse(t).unwrap()));
        e
    }

    #[tokio::test(flavor = "current_thread")]
    async fn queued_tagged_appends_share_one_commit_with_their_tags_and_a_conflict_fails_alone() {
        let store = SqliteStore::temporary().unwrap();
        append(
            &store,
            "moved",
            ExpectedVersion::NoStream,
            vec![tagged(&["course:c0"]), tagged(&["course:c0"])],
        )
        .await
        .unwrap();
        let turn = store.turn().take().await.unwrap();
        let mut tasks = Vec::new();
        let mut spawn = |stream: String, expected, events: Vec<NewEvent>| {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                append(&store, &stream, expected, events).await
            }));
        };
        // A stale tagged append first: it rolls back to its savepoint, tags and all.
        spawn(
            "moved".to_owned(),
            ExpectedVersion::Exact(1),
            vec![tagged(&["course:c0", "student:stale"])],
        );
        for k in 0..9 {
            let tags = [format!("course:c{}", k % 3), format!("student:s{k}")];
            spawn(
                format!("t-{k}"),
                ExpectedVersion::NoStream,
                vec![tagged(&[&tags[0], &tags[1]])],
            );
        }
        spawn(
            "plain".to_owned(),
            ExpectedVersion::NoStream,
            vec![event("{}")],
        );
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        drop(turn);
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        assert!(matches!(
            &results[0],
            Err(StoreError::Conflict { actual: 2, .. })
        ));
        let stamps: HashSet<_> = results[1..]
            .iter()
            .map(|r| r.as_ref().unwrap()[0].meta.recorded_at)
            .collect();
        assert_eq!(
            stamps.len(),
            1,
            "the queued appends were not written together"
        );

        let read = |tag: &str| {
            let query = EventQuery::from_items([QueryItem::tags([Tag::parse(tag).unwrap()])]);
            let store = store.clone();
            async move { store.read_query(&query, Position(1), 100).await.unwrap() }
        };
        // `moved`'s two, then k = 0, 3, 6.
        assert_eq!(read("course:c0").await.events.len(), 2 + 3);
        assert!(read("student:stale").await.events.is_empty());
        let s4 = read("student:s4").await;
        assert_eq!(s4.events.len(), 1);
        assert_eq!(s4.events[0].meta.stream.as_str(), "t-4");
        assert_eq!(
            s4.events[0]
                .meta
                .tags
                .iter()
                .map(Tag::as_str)
                .collect::<Vec<_>>(),
            ["course:c1", "student:s4"]
        );
    }
}

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

//! Write turns: every writer of one database file in this process takes turns, waiting with
//! `.await` instead of in SQLite's busy handler.
//!
//! SQLite admits one write transaction per file at a time. A connection that finds the write
//! lock taken waits in SQLite's busy handler, which *sleeps the calling thread* (up to the busy
//! timeout) and then fails with `SQLITE_BUSY`. That is right for other processes, but within
//! one process it is wrong: a [`SqliteSink`](crate::SqliteSink) batch holds the lock across its
//! handlers' `.await`s, so an append that slept in the busy handler would block the very runtime
//! thread the batch needs to finish (on a `current_thread` runtime it always fails), and on a
//! multi-thread runtime each waiting append would occupy a worker.
//!
//! So every writer in the process (appends, snapshot and checkpoint saves, parked events, sink
//! batches) first takes the file's [`WriteTurn`] with `.await`, and only then opens its write
//! transaction; it holds the turn until `COMMIT` or `ROLLBACK`. Writers of one file in this
//! process therefore never meet SQLite's lock held by each other, and the busy timeout only
//! concerns other processes. (The exceptions are synchronous and cannot await: statements through
//! `SqliteSink::unit()` outside a batch, and opening a file whose schema must be migrated.)
//!
//! - **One turn per file**: a process-wide registry maps the file's canonical path to its turn,
//!   held weakly, so two `SqliteStore` handles opened on the same file, their clones and every
//!   sink of that file share one turn, and the entry is freed when the last of them closes. A
//!   path that cannot be canonicalised gets a turn of its own.
//! - **Fair**: a tokio semaphore with one permit hands the turn out in the order it was asked
//!   for, so a stream of appends cannot starve a sink, nor a sink the appends.
//! - **Cancellation**: a dropped future that was waiting gives up its place; a [`TurnGuard`]
//!   gives the turn back when dropped, after the transaction it guards is closed.
//! - **A write that would wait for its own task**: a sink handler that appends through the store
//!   (rather than writing through its `SqliteTx`) would wait forever for the turn its own batch
//!   holds. The turn records which task holds it for a sink batch, and such a write fails at
//!   once with [`WriteInSinkBatch`] instead. (A write from *another* task that the handler
//!   awaits cannot be told apart from an ordinary wait: it waits for the batch, which waits for
//!   it, forever; the sink's docs forbid it.)
//!
//! # Why a turn, and what it costs
//!
//! This replaced waiting in the busy handler (issue 10, item 9). Before it, an append that met the
//! lock of a sink batch slept in SQLite's busy handler: on a `current_thread` runtime the batch's
//! handler could never resume, so the append always failed with `SQLITE_BUSY` after the busy
//! timeout, and on a multi-thread runtime each waiting append held a worker.
//!
//! - **The semaphore**: a tokio `Semaphore` with one permit is fair (FIFO), a dropped waiter leaves
//!   the queue, and the permit is taken and wrapped in its RAII guard in the same poll, so a
//!   cancelled future never loses it.
//! - **Per file, not per handle**: two `SqliteStore::open` of one path, and sinks (which have their
//!   own connections), would otherwise meet each other's lock in the busy handler. The registry key
//!   is the path given by `std::fs::canonicalize`, taken after the file exists; the value is a
//!   `Weak` reference, so a closed store frees its entry, and dead entries are pruned when a new
//!   file is registered.
//! - **Hard links**: one file opened under two names gets two turns, and the two then meet in the
//!   busy handler, as before. Keying by device and inode would catch that, but it is Unix-only and
//!   an inode can be reused by a new file; nobody opens an event store through two hard links.
//! - **The price**: an append of this process may wait for a whole sink batch, its handlers' awaits
//!   included, with no time bound; the busy timeout no longer bounds it. Keep batches short. The
//!   SQLite calls themselves still run inline (see `store.rs`): only the wait moved.
//! - **`WriteInSinkBatch`**: while a sink batch holds the turn, the turn records the holder's
//!   `tokio::task::Id` (`try_id`, hence tokio's `rt` feature). The error comes inside
//!   `StoreError::Backend`. Before the turn, such an append failed with `SQLITE_BUSY` after the
//!   busy timeout. Handlers write through their `SqliteTx`; commands caused by events belong in
//!   process managers, which have their own sink.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use eventweave_core::{BackendError, StoreError};
use tokio::sync::Semaphore;
use tokio::task;

use crate::error::WriteInSinkBatch;

/// The turns of the files open in this process, by canonical path.
static TURNS: Mutex<BTreeMap<PathBuf, Weak<Turn>>> = Mutex::new(BTreeMap::new());

/// The write turn of one database file, shared by every writer of the file in this process.
#[derive(Clone)]
pub(crate) struct WriteTurn {
    turn: Arc<Turn>,
}

struct Turn {
    /// One permit: whoever holds it may write.
    permit: Semaphore,
    /// The task holding the turn for a sink batch, and the batch's projection.
    batch: Mutex<Option<(task::Id, &'static str)>>,
}

impl WriteTurn {
    /// The turn of the (existing) file at `path`: the one already used in this process for that
    /// file, or a new one.
    pub(crate) fn of_file(path: &Path) -> WriteTurn {
        let Ok(canonical) = std::fs::canonicalize(path) else {
            return WriteTurn::new();
        };
        let mut turns = TURNS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(turn) = turns.get(&canonical).and_then(Weak::upgrade) {
            return WriteTurn { turn };
        }
        // Forget the files closed since; the map stays as small as the set of open files.
        turns.retain(|_, turn| turn.strong_count() > 0);
        let turn = WriteTurn::new();
        turns.insert(canonical, Arc::downgrade(&turn.turn));
        turn
    }

    /// A turn of its own, shared with nobody yet.
    fn new() -> WriteTurn {
        WriteTurn {
            turn: Arc::new(Turn {
                permit: Semaphore::new(1),
                batch: Mutex::new(None),
            }),
        }
    }

    /// Waits for the turn, for a write that does not `.await` while it holds it (an append, a
    /// save). Fails at once with [`WriteInSinkBatch`] when the current task holds the turn for
    /// a sink batch: waiting would never end.
    pub(crate) async fn take(&self) -> Result<TurnGuard, StoreError> {
        self.refuse_in_own_batch()?;
        self.acquire().await
    }

    /// [`WriteInSinkBatch`] when the current task holds the turn for a sink batch.
    pub(crate) fn refuse_in_own_batch(&self) -> Result<(), StoreError> {
        if let Some(current) = task::try_id()
            && let Some((holder, projection)) = *self.turn.batch()
            && holder == current
        {
            return Err(StoreError::Backend(BackendError::from_error(
                WriteInSinkBatch { projection },
            )));
        }
        Ok(())
    }

    /// The turn if it is free now and nobody waits for it (the semaphore is fair: a permit
    /// given back goes to the first waiter, so it is never free while someone waits). Used by
    /// group commit and by a lease released in `Drop`, which cannot wait.
    pub(crate) fn try_take(&self) -> Option<TurnGuard> {
        let permit = self.turn.permit.try_acquire().ok()?;
        permit.forget();
        Some(TurnGuard {
            turn: Arc::clone(&self.turn),
        })
    }

    /// Waits for the turn, for the batch of the sink of `projection`, which holds it across its
    /// handlers' `.await`s.
    pub(crate) async fn take_for_batch(
        &self,
        projection: &'static str,
    ) -> Result<TurnGuard, StoreError> {
        let guard = self.acquire().await?;
        *self.turn.batch() = task::try_id().map(|id| (id, projection));
        Ok(guard)
    }

    async fn acquire(&self) -> Result<TurnGuard, StoreError> {
        // The semaphore is never closed; the error is kept rather than unwrapped. Between the
        // permit and the guard there is no `.await`, so a dropped future never loses a permit.
        let permit = self.turn.permit.acquire().await.map_err(|e| {
            StoreError::Backend(format!("the write turn of the store is closed: {e}").into())
        })?;
        permit.forget();
        Ok(TurnGuard {
            turn: Arc::clone(&self.turn),
        })
    }
}

impl Turn {
    fn batch(&self) -> std::sync::MutexGuard<'_, Option<(task::Id, &'static str)>> {
        // Only plain assignments happen under this lock; a poisoned one still holds a valid value.
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The write turn of a file, held: given back when dropped.
pub(crate) struct TurnGuard {
    turn: Arc<Turn>,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        *self.turn.batch() = None;
        self.turn.permit.add_permits(1);
    }
}

impl std::fmt::Debug for WriteTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTurn")
            .field("free", &(self.turn.permit.available_permits() > 0))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_of_one_file_share_a_turn_and_closed_files_free_theirs() {
        let dir =
            std::env::temp_dir().join(format!("eventweave-sqlite-turns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.db");
        std::fs::write(&file, b"").unwrap();
        let first = WriteTurn::of_file(&file);
        // Another spelling of the same file.
        let second = WriteTurn::of_file(&dir.join(".").join("a.db"));
        assert!(Arc::ptr_eq(&first.turn, &second.turn));
        let other = dir.join("b.db");
        std::fs::write(&other, b"").unwrap();
        assert!(!Arc::ptr_eq(&first.turn, &WriteTurn::of_file(&other).turn));
        let missing = WriteTurn::of_file(&dir.join("missing.db"));
        assert!(!Arc::ptr_eq(
            &missing.turn,
            &WriteTurn::of_file(&dir.join("missing.db")).turn
        ));
        let weak = Arc::downgrade(&first.turn);
        drop((first, second));
        assert!(weak.upgrade().is_none());
        // A new handle after all were closed gets a fresh turn, and the dead entry is gone.
        let again = WriteTurn::of_file(&file);
        let turns = TURNS.lock().unwrap();
        let canonical = std::fs::canonicalize(&file).unwrap();
        assert!(Arc::ptr_eq(
            &turns[&canonical].upgrade().unwrap(),
            &again.turn
        ));
        let closed = std::fs::canonicalize(&other).unwrap();
        assert!(!turns.contains_key(&closed), "a closed file keeps no entry");
        drop(turns);
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

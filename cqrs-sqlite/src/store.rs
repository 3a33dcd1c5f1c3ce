//! [`SqliteStore`]: the handle, its constructors and its [`EventStore`] implementation, which
//! delegates to `append`, `read` and `changes`.
//!
//! # Choices
//!
//! - **SQLite calls run inline on the calling task.** An append with `synchronous=NORMAL` costs
//!   about 35 µs, almost all of it inside SQLite's commit. Against raw insert transactions, inline
//!   measured 92–93 % of raw, `spawn_blocking` per append 58 %, and a dedicated writer thread fed
//!   by a channel 32 % (two thread wake-ups per append on two vCPUs); the figures are in
//!   BENCHMARKS.md, "Execution model, measured". The cost: an append occupies its runtime worker
//!   while it runs, and longer when it waits for an `fsync` (`Full`), a WAL checkpoint, or another
//!   process's write lock (bounded by the busy timeout). Applications that cannot accept that can
//!   wrap calls in `spawn_blocking` themselves; the store cannot make that choice cheaper for
//!   everyone else.
//! - **Opening is synchronous** (`SqliteStore::open(path)?`, no `.await`): it does blocking file
//!   I/O once, and an `async` signature would only hide that.
//! - **rusqlite 0.40** (features `bundled` and `cache` only): the newest release whose minimum Rust
//!   version fits the workspace's `rust-version` (1.88; rusqlite 0.43 needs 1.89). The resolver
//!   picks it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use eventweave_core::telemetry::AppendTelemetry;
use eventweave_core::{
    AppendCondition, BackendError, EventQuery, EventStore, ExpectedVersion, NewEvent, Position,
    QueryRead, RecordedEvent, Snapshot, StoreError, StreamId, StreamWrite, Timestamp, Uuid,
    check_append, check_query, check_snapshot, check_stream_id, check_writes,
};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::append::{Reply, Request};
use crate::changes::Changes;
use crate::config::SqliteConfig;
use crate::connection::{Readers, open_writer};
use crate::error::{OpenError, backend};
use crate::group::{self, Queue};
use crate::turns::{TurnGuard, WriteTurn};
use crate::{append, dcb, read, schema, snapshots};

/// An event store in one SQLite file: durable, embedded, no server.
///
/// Cheap to clone: clones share the connections and wake each other's waiters. See the
/// [crate documentation](crate) for durability settings and the execution model.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    config: SqliteConfig,
    /// The one write connection of this handle, used only while holding `turn`.
    writer: Mutex<Connection>,
    /// The write turn of the file, shared with every other handle and sink of it in this
    /// process.
    turn: WriteTurn,
    readers: Readers,
    changes: Changes,
    /// Appends waiting for the write turn, written together by whoever gets it (`group.rs`).
    queue: Queue,
    /// Set for [`SqliteStore::temporary`]: removes the files. Declared last so it drops after
    /// the connections are closed.
    _temporary: Option<TemporaryFiles>,
}

impl SqliteStore {
    /// Opens (creating if missing) the store in the file at `path` with the default
    /// [`SqliteConfig`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, SqliteConfig::default())
    }

    /// Opens (creating if missing) the store in the file at `path`: switches the file to WAL,
    /// creates or migrates the schema, and refuses a file of a newer schema version
    /// ([`OpenError::SchemaTooNew`]).
    pub fn open_with(path: impl AsRef<Path>, config: SqliteConfig) -> Result<Self, OpenError> {
        Self::open_inner(path.as_ref().to_owned(), config, None)
    }

    /// A new, empty store in a file of its own under [`std::env::temp_dir`], removed (with its
    /// WAL files) when the last clone is dropped. For tests and benchmarks.
    pub fn temporary() -> Result<Self, OpenError> {
        Self::temporary_with(SqliteConfig::default())
    }

    /// Like [`SqliteStore::temporary`], with a configuration.
    pub fn temporary_with(config: SqliteConfig) -> Result<Self, OpenError> {
        let files = TemporaryFiles::new();
        Self::open_inner(files.path.clone(), config, Some(files))
    }

    fn open_inner(
        path: PathBuf,
        config: SqliteConfig,
        temporary: Option<TemporaryFiles>,
    ) -> Result<Self, OpenError> {
        let mut writer = open_writer(&path, &config)?;
        // The file exists now, so its canonical path names it.
        let turn = WriteTurn::of_file(&path);
        schema::migrate(&mut writer, &path)?;
        let head: i64 = writer
            .query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |row| {
                row.get(0)
            })
            .map_err(OpenError::database(&path))?;
        let changes = Changes::default();
        changes.committed(Position(head.max(0) as u64));
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                path,
                config,
                writer: Mutex::new(writer),
                turn,
                readers: Readers::new(),
                changes,
                queue: Queue::default(),
                _temporary: temporary,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.shared.config
    }

    /// The write turn of the store's file, shared by every writer of the file in this process.
    pub(crate) fn turn(&self) -> &WriteTurn {
        &self.shared.turn
    }

    /// Lends the write connection to the holder of the file's write turn.
    fn lend(&self, turn: TurnGuard) -> Writer<'_> {
        // An append that panicked dropped its transaction, which rolls back: the connection is
        // clean, so a poisoned lock is still usable. Holding the turn, nobody else holds it.
        let conn = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Writer { conn, _turn: turn }
    }

    /// Waits (with `.await`) for the file's write turn, then lends the write connection. The
    /// caller runs its transaction to the end without `.await`ing and drops the [`Writer`].
    pub(crate) async fn writer(&self) -> Result<Writer<'_>, StoreError> {
        let turn = self.shared.turn.take().await?;
        Ok(self.lend(turn))
    }

    /// The write connection if the write turn is free now, without waiting (for `Drop`).
    pub(crate) fn try_writer(&self) -> Option<Writer<'_>> {
        let turn = self.shared.turn.try_take()?;
        let conn = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(Writer { conn, _turn: turn })
    }

    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let shared = &*self.shared;
        shared.readers.with(&shared.path, &shared.config, f)
    }

    fn read_head(&self) -> Result<Position, StoreError> {
        self.read(read::head)
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The append itself, with the wait for the write turn (the trait method adds telemetry).
    async fn append_now(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_append(stream, &events, self.shared.config.max_event_bytes)?;
        if !self.shared.config.group_commit {
            let now = Timestamp::now();
            let mut writer = self.writer().await?;
            let recorded = append::append(&mut writer.conn, stream, expected, events, now)?;
            drop(writer);
            self.committed(recorded.last().map(|e| e.meta.position));
            return Ok(recorded);
        }
        let shared = &*self.shared;
        shared.turn.refuse_in_own_batch()?;
        if let Some(turn) = shared.turn.try_take() {
            // Free: alone, unless appends queued meanwhile (then they go first, with it).
            let queued = shared.queue.take_all();
            let mut writer = self.lend(turn);
            let now = Timestamp::now();
            if queued.is_empty() {
                let recorded = append::append(&mut writer.conn, stream, expected, events, now);
                drop(writer);
                self.committed(
                    recorded
                        .as_ref()
                        .ok()
                        .and_then(|r| r.last())
                        .map(|e| e.meta.position),
                );
                return recorded;
            }
            let own = Request {
                stream: stream.clone(),
                expected,
                events,
            };
            let (answer, last) = group::write_all(&mut writer.conn, queued, Some(own), now);
            drop(writer);
            self.committed(last);
            return answer.unwrap_or_else(|| Err(unanswered(stream)));
        }
        let request = Request {
            stream: stream.clone(),
            expected,
            events,
        };
        let (id, mut answer) = shared.queue.push(request);
        match answer_or_turn(&mut answer, shared.turn.take()).await {
            Raced::Answer(reply) => reply.unwrap_or_else(|_| Err(unanswered(stream))),
            Raced::Turn(Err(e)) => {
                if shared.queue.remove(id) {
                    return Err(e);
                }
                // A writer has it: its answer comes.
                answer.await.unwrap_or_else(|_| Err(unanswered(stream)))
            }
            Raced::Turn(Ok(turn)) => {
                // Whoever held the turn before may have written it already.
                if let Ok(reply) = answer.try_recv() {
                    return reply;
                }
                let queued = shared.queue.take_all();
                let mut writer = self.lend(turn);
                let (_, last) = group::write_all(&mut writer.conn, queued, None, Timestamp::now());
                drop(writer);
                self.committed(last);
                answer
                    .try_recv()
                    .unwrap_or_else(|_| Err(unanswered(stream)))
            }
        }
    }

    /// The conditional append to several streams, with the wait for the write turn.
    async fn append_conditional_now(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_writes(&writes, self.shared.config.max_event_bytes)?;
        if let Some(condition) = condition {
            check_query(&condition.query)?;
        }
        let now = Timestamp::now();
        let mut writer = self.writer().await?;
        let recorded = dcb::append(&mut writer.conn, writes, condition, now)?;
        drop(writer);
        if let Some(last) = recorded.last() {
            self.shared.changes.committed(last.meta.position);
        }
        Ok(recorded)
    }
    /// Wakes waiters after a commit up to `last`.
    fn committed(&self, last: Option<Position>) {
        if let Some(last) = last {
            self.shared.changes.committed(last);
        }
    }
}

/// What a queued append answers when its answer never came (the writer panicked): it may have
/// been written.
fn unanswered(stream: &StreamId) -> StoreError {
    StoreError::OutcomeUnknown(BackendError::new(format!(
        "the group writing the append to `{stream}` stopped before answering"
    )))
}

/// Which came first for a queued append.
enum Raced {
    /// Its answer, written by whoever held the turn.
    Answer(Result<Reply, oneshot::error::RecvError>),
    /// The turn: now it writes the queue itself.
    Turn(Result<TurnGuard, StoreError>),
}

/// Waits for the append's answer or for the turn, whichever comes first (the answer when both
/// are there; the turn's waiter, dropped, gives back a permit it was handed).
async fn answer_or_turn(
    answer: &mut oneshot::Receiver<Reply>,
    turn: impl Future<Output = Result<TurnGuard, StoreError>>,
) -> Raced {
    let mut turn = std::pin::pin!(turn);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(reply) = Pin::new(&mut *answer).poll(cx) {
            return Poll::Ready(Raced::Answer(reply));
        }
        turn.as_mut().poll(cx).map(Raced::Turn)
    })
    .await
}

impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let telemetry = AppendTelemetry::start("sqlite", stream, expected, &events);
        // Tagged events go the same way, alone or queued into a group (`append.rs` writes their
        // `event_tags` rows in the append's transaction or savepoint).
        let appended = self.append_now(stream, expected, events);
        let result = telemetry.instrument(appended).await;
        telemetry.finish(&result);
        result
    }

    async fn read_query(
        &self,
        query: &EventQuery,
        from: Position,
        limit: usize,
    ) -> Result<QueryRead, StoreError> {
        check_query(query)?;
        self.read(|conn| dcb::read_query(conn, query, from, limit))
    }

    async fn append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.append_conditional_now(writes, condition).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream_id(stream)?;
        self.read(|conn| read::read_stream(conn, stream, from_version, limit))
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(|conn| read::read_all(conn, from, limit))
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.read(|conn| read::read_event(conn, event_id))
    }

    async fn head(&self) -> Result<Position, StoreError> {
        let head = self.read_head()?;
        self.shared.changes.observed(head);
        Ok(head)
    }

    async fn wait_for_events(&self, after: Position) {
        let shared = &*self.shared;
        shared
            .changes
            .wait_for(after, shared.config.poll_interval, || self.read_head())
            .await;
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        check_stream_id(stream)?;
        self.read(|conn| snapshots::load(conn, stream))
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError> {
        check_snapshot(stream, &snapshot)?;
        let writer = self.writer().await?;
        snapshots::save(&writer.conn, stream, &snapshot).map_err(backend)
    }
}

/// The write connection, lent while the file's write turn is held. The connection's lock is
/// released before the turn (field order).
pub(crate) struct Writer<'a> {
    pub(crate) conn: MutexGuard<'a, Connection>,
    _turn: TurnGuard,
}

/// The files of a temporary store, removed on drop.
struct TemporaryFiles {
    path: PathBuf,
}

impl TemporaryFiles {
    fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "eventweave-sqlite-{}-{}-{}.db",
            std::process::id(),
            Timestamp::now().unix_micros(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        TemporaryFiles {
            path: std::env::temp_dir().join(name),
        }
    }
}

impl Drop for TemporaryFiles {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = self.path.clone().into_os_string();
            file.push(suffix);
            // Missing files are fine: SQLite removes the WAL files when the last connection closes.
            let _ = std::fs::remove_file(file);
        }
    }
}

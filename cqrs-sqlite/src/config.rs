//! What a [`SqliteStore`](crate::SqliteStore) can be told at open: durability, lock waiting,
//! event size limit and how often it looks for other processes' appends.

use std::time::Duration;

use eventweave_core::DEFAULT_MAX_EVENT_BYTES;

/// How hard a commit works to survive a crash. The journal is always WAL (write-ahead log).
///
/// | setting | process crash (panic, `SIGKILL`, OOM kill) | OS crash or power loss |
/// |---|---|---|
/// | [`Durability::Normal`] | every acknowledged append survives | the database stays consistent and every batch stays whole, but appends acknowledged since the last WAL checkpoint may be lost |
/// | [`Durability::Full`] | every acknowledged append survives | every acknowledged append survives (as far as the disk honours `fsync`) |
///
/// Neither setting ever leaves part of a batch behind: an append is one SQLite transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// `PRAGMA synchronous = NORMAL`: a commit writes its pages to the WAL file without waiting
    /// for the disk; the WAL is synced to disk at each checkpoint (SQLite checkpoints every
    /// 1,000 pages or so by default). A commit is then in the operating system's file cache,
    /// which a process crash does not touch, but a power loss may. The default.
    #[default]
    Normal,
    /// `PRAGMA synchronous = FULL`: every commit waits for `fsync` of the WAL file, so an
    /// acknowledged append survives power loss; each commit costs one disk flush.
    Full,
}

impl Durability {
    /// The value of `PRAGMA synchronous` for this setting.
    pub fn pragma_value(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// Settings of a [`SqliteStore`](crate::SqliteStore), built fluently from the defaults:
///
/// ```
/// use std::time::Duration;
/// use eventweave_sqlite::{Durability, SqliteConfig};
///
/// let config = SqliteConfig::default()
///     .durability(Durability::Full)
///     .busy_timeout(Duration::from_secs(10))
///     .max_event_bytes(1024 * 1024)
///     .poll_interval(Duration::from_millis(100));
/// assert_eq!(config.durability, Durability::Full);
/// ```
///
/// The fields are public to read; each has a setter of the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// What a commit survives. See [`SqliteConfig::durability()`].
    pub durability: Durability,
    /// How long to wait for another *process*'s lock. See [`SqliteConfig::busy_timeout()`].
    pub busy_timeout: Duration,
    /// The event size limit. See [`SqliteConfig::max_event_bytes()`].
    pub max_event_bytes: usize,
    /// How often to look for other processes' appends. See [`SqliteConfig::poll_interval()`].
    pub poll_interval: Duration,
    /// Whether appends waiting for the write turn are committed together. See
    /// [`SqliteConfig::group_commit()`].
    pub group_commit: bool,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(5),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            poll_interval: Duration::from_millis(50),
            group_commit: true,
        }
    }
}

impl SqliteConfig {
    /// The defaults: [`Durability::Normal`], 5 s busy timeout,
    /// [`DEFAULT_MAX_EVENT_BYTES`] and a 50 ms poll interval.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a commit survives (default [`Durability::Normal`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long an operation waits for a lock held by **another process** (its appends, its
    /// sink batches, a checkpoint) before it fails with `StoreError::Unavailable` (`SQLITE_BUSY`;
    /// nothing written), default 5 s. This wait happens in SQLite's busy handler, which sleeps
    /// the calling thread (a runtime worker, or the only thread of a `current_thread` runtime).
    ///
    /// Writers of the same file **in this process** never wait here: every handle opened on the
    /// file, their clones and every [`SqliteSink`](crate::SqliteSink) of it take turns first
    /// (each waits for the file's write turn with `.await`, without blocking a thread, and holds
    /// it until its transaction ends). So this timeout does not bound how long an append of this
    /// process waits for a sink batch of this process: that is as long as the batch runs, its
    /// handlers' `.await`s included; keep batches short (`ProjectionRunner::batch_size`) if
    /// appends must not wait long.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The largest event (payload plus metadata, in bytes) an append accepts (default
    /// [`DEFAULT_MAX_EVENT_BYTES`], 16 MiB). A batch holding a larger event is refused with
    /// `StoreError::InvalidAppend` before anything is written.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Whether appends that wait for the file's write turn are written together when it comes,
    /// in one transaction and one commit (default `true`): each in a savepoint of its own, so
    /// each keeps its own version check and its own outcome. An append that finds the turn free
    /// is written at once, alone, as without grouping; appends only wait together when several
    /// run at once (a multi-thread runtime) or behind a sink batch. `false`: each append takes
    /// the turn and commits alone.
    pub fn group_commit(mut self, enabled: bool) -> Self {
        self.group_commit = enabled;
        self
    }

    /// How often `wait_for_events` (and so subscriptions and `query_after`) looks at the file
    /// for events appended by *other* processes or other handles of the same file (default
    /// 50 ms). Appends through this handle or its clones wake waiters at once.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
}

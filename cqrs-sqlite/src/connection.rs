//! Opening connections with the store's pragmas, and the pool of read connections.
//!
//! A store holds one write connection (behind a mutex, used only while holding the file's write
//! turn, see `turns.rs`) and any number of read connections. In WAL mode a reader works on a
//! snapshot and never blocks the writer, nor the writer it.
//!
//! The write connection sits behind a `std` mutex, and the pool keeps up to 4 read connections idle
//! (more are opened under load). The mutex is only taken while holding the file's write turn, so it
//! is never contended; it stays because it makes the handle `Sync`.
//!
//! WAL is always on; `synchronous` is `NORMAL` by default. In WAL mode `NORMAL` skips the `fsync`
//! per commit but keeps the file consistent on power loss (recent commits may roll back); `FULL`
//! syncs each commit. A process crash loses nothing acknowledged in either (the crash test uses
//! `NORMAL`, the weaker one). The crate docs have the table of what each setting survives.
//!
//! Nothing awaits while holding a connection: the writer mutex and pooled readers are only held by
//! synchronous code, so the store's futures are `Send` and a dropped future leaves no transaction
//! open (an unfinished `rusqlite::Transaction` rolls back on drop). The one exception is the sink's
//! batch, which awaits its handlers inside its transaction; its guard rolls back when the future is
//! dropped, then gives the write turn back.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use eventweave_core::StoreError;
use rusqlite::{Connection, OpenFlags};

use crate::config::SqliteConfig;
use crate::error::{OpenError, backend};

/// Prepared statements kept per connection (each connection runs a handful of statements).
const STATEMENT_CACHE: usize = 16;

/// Read connections kept open while idle; more are opened under load and closed after.
const MAX_IDLE_READERS: usize = 4;

/// Opens the write connection: creates the file if missing, switches it to WAL and applies the
/// durability setting.
pub(crate) fn open_writer(path: &Path, config: &SqliteConfig) -> Result<Connection, OpenError> {
    let failed = || OpenError::database(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(failed())?;
    conn.busy_timeout(config.busy_timeout).map_err(failed())?;
    let journal_mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(failed())?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::WalUnavailable {
            path: path.to_owned(),
            journal_mode,
        });
    }
    configure(&conn, config).map_err(failed())?;
    Ok(conn)
}

/// Opens a read connection (the file exists and is in WAL mode by then).
fn open_reader(path: &Path, config: &SqliteConfig) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(config.busy_timeout)?;
    configure(&conn, config)?;
    // A read connection never writes; this makes a mistake in this crate fail loudly.
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

fn configure(conn: &Connection, config: &SqliteConfig) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", config.durability.pragma_value())?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Read connections waiting to be reused.
pub(crate) struct Readers {
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub fn new() -> Self {
        Readers {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on an idle read connection, or on a new one if none is idle.
    pub fn with<T>(
        &self,
        path: &Path,
        config: &SqliteConfig,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(path, config).map_err(backend)?,
        };
        let result = read(&conn);
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Connection>> {
        // Only pushes and pops happen under this lock; a poisoned pool is still a valid pool.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Prepared statements kept by the connection of a projection sink: its own few, and those of
/// the projection's handlers.
const SINK_STATEMENT_CACHE: usize = 64;

/// Opens the connection of a projection sink to an existing store file (already in WAL mode),
/// with the store's busy timeout and durability.
pub(crate) fn open_sink(path: &Path, config: &SqliteConfig) -> Result<Connection, OpenError> {
    let failed = || OpenError::database(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(failed())?;
    conn.busy_timeout(config.busy_timeout).map_err(failed())?;
    configure(&conn, config).map_err(failed())?;
    conn.set_prepared_statement_cache_capacity(SINK_STATEMENT_CACHE);
    Ok(conn)
}

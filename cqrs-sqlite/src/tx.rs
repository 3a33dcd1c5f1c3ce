//! [`SqliteTx`]: the unit of work handlers of SQL projections get.
//!
//! It holds its own connection behind a mutex, so it is `Sync` (a durable projection's unit must
//! be, because the handler's future borrows it).

use std::sync::{Mutex, MutexGuard, TryLockError};

use rusqlite::{Connection, Params, Row};

/// The unit of work of a [`SqliteSink`](crate::SqliteSink): the handlers of a
/// `DurableProjection<SqliteTx>` write their read model through it, and every statement runs
/// **inside the batch's transaction**, which commits together with the projection's
/// checkpoint, or not at all. That is what makes the projection exactly once.
///
/// It wraps a connection of its own to the store's file (not the store's append connection), so
/// the read model's tables can live in the same file as the events, or in a database `ATTACH`ed
/// to this connection.
///
/// - [`execute`](SqliteTx::execute) and [`query_row`](SqliteTx::query_row) run one statement,
///   prepared once and cached on the connection;
/// - [`with`](SqliteTx::with) lends the [`Connection`] for anything else (several statements,
///   `query_map`, `execute_batch`).
///
/// Rules for handlers:
/// - do not run `BEGIN`, `COMMIT`, `ROLLBACK` or `RELEASE` of the sink's savepoints: the sink
///   owns the transaction (a handler that ends it fails the batch with a storage error);
/// - the connection is lent to one synchronous call at a time: nothing can hold it across an
///   `.await`, and calling the `SqliteTx` again from inside a `with` closure panics (the panic is
///   reported as a handler failure, not a deadlock);
/// - a statement that fails returns its `rusqlite::Error`; return it (the handler fails, the
///   sink rolls back the event's changes, the runner retries) rather than ignoring it.
///
/// It is `Sync`, so `&SqliteTx` may be held across `.await`s in handlers whose futures must be
/// `Send`.
pub struct SqliteTx {
    conn: Mutex<Connection>,
}

impl SqliteTx {
    pub(crate) fn new(conn: Connection) -> Self {
        SqliteTx {
            conn: Mutex::new(conn),
        }
    }

    /// Runs one statement with `params` (a tuple, an array, `rusqlite::params![…]` or
    /// `rusqlite::named_params!{…}`); returns the number of rows changed.
    ///
    /// ```text
    /// db.execute("UPDATE balances SET total = total + ?2 WHERE stream = ?1", (stream, n))?;
    /// ```
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.lock().prepare_cached(sql)?.execute(params)
    }

    /// Runs a query and maps its first row with `f`; `Err(QueryReturnedNoRows)` when there is
    /// none (`rusqlite::OptionalExtension::optional` turns that into `Ok(None)`).
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.lock().prepare_cached(sql)?.query_row(params, f)
    }

    /// Lends the connection to `f`, inside the batch's transaction. `f` is synchronous: it
    /// cannot hold the connection across an `.await`.
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        match self.conn.try_lock() {
            Ok(conn) => conn,
            // A handler that panicked inside `with` poisoned the lock; the sink rolls the
            // transaction back, so the connection is still usable.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => panic!(
                "the `SqliteTx` is already in use: do not call it from inside its own `with` \
                 closure, nor from several threads at once"
            ),
        }
    }

    /// The connection for the sink itself, which never calls it while a handler runs; `None`
    /// only if a handler still holds it (e.g. from a thread it leaked).
    pub(crate) fn try_conn(&self) -> Option<MutexGuard<'_, Connection>> {
        match self.conn.try_lock() {
            Ok(conn) => Some(conn),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

impl std::fmt::Debug for SqliteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTx").finish_non_exhaustive()
    }
}

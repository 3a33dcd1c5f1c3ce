//! A small connection pool: at most `size` connections, opened on demand, each with the store's
//! statements prepared once, handed out one operation at a time.
//!
//! A connection goes back to the pool when its guard drops, unless the driver reports it closed
//! or the guard was told to discard it (a connection left inside an open transaction).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use cqrs_core::StoreError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, NoTls, Statement};

use crate::error::backend;
use crate::statements::{Prepared, Sql};

/// Statements other than the store's own (projection SQL, checkpoints) a connection keeps
/// prepared, by text. Beyond this many, statements are prepared for one use: a handler that
/// formats values into its SQL text must not grow the cache without bound.
const CACHED_STATEMENTS: usize = 256;

/// One connection and its prepared statements.
pub(crate) struct Conn {
    pub client: Client,
    pub st: Prepared,
    /// Statements prepared on demand, by SQL text (see [`Conn::cached`]).
    cache: Mutex<HashMap<Box<str>, Statement>>,
}

impl Conn {
    fn new(client: Client, st: Prepared) -> Conn {
        Conn {
            client,
            st,
            cache: Mutex::default(),
        }
    }

    /// `sql` prepared on this connection: once, then from the cache.
    pub async fn cached(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.cache().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        let mut cache = self.cache();
        if cache.len() < CACHED_STATEMENTS {
            cache.insert(sql.into(), statement.clone());
        }
        Ok(statement)
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<Box<str>, Statement>> {
        // Only lookups and inserts happen under this lock.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Cheap to clone: clones share the connections.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    config: tokio_postgres::Config,
    sql: Sql,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Conn>>,
}

/// A connection checked out of the pool.
pub(crate) struct Pooled {
    conn: Option<Conn>,
    shared: Arc<Shared>,
    reuse: bool,
    _permit: OwnedSemaphorePermit,
}

/// Opens a connection and drives it on a spawned task (which ends when the connection closes).
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // An I/O error closes the client; callers see it as an error of their next request.
        let _ = connection.await;
    });
    Ok(client)
}

impl Pool {
    pub fn new(config: tokio_postgres::Config, sql: Sql, size: usize) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                config,
                sql,
                permits: Arc::new(Semaphore::new(size)),
                idle: Mutex::new(Vec::with_capacity(size)),
            }),
        }
    }

    /// Prepares the statements on an open connection and keeps it for later use.
    pub async fn adopt(&self, client: Client) -> Result<(), tokio_postgres::Error> {
        let conn = self.prepare(client).await?;
        self.shared.lock().push(conn);
        Ok(())
    }

    /// Sets the connection up for the store's statements and prepares them.
    ///
    /// The statements are planned once, generically: left to choose, PostgreSQL re-plans an
    /// append with custom plans on every execution (measured: 60 to 90 µs of server time per
    /// append instead of about 25), and a plan of these statements does not depend on the
    /// values anyway (they are index lookups by key).
    async fn prepare(&self, client: Client) -> Result<Conn, tokio_postgres::Error> {
        client
            .batch_execute("SET plan_cache_mode = force_generic_plan")
            .await?;
        let st = Prepared::new(&client, &self.shared.sql).await?;
        Ok(Conn::new(client, st))
    }

    /// A connection: an idle one, or a new one while fewer than `size` are open; otherwise
    /// waits for one to come back.
    pub async fn get(&self) -> Result<Pooled, StoreError> {
        let permit = Arc::clone(&self.shared.permits)
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        loop {
            let Some(conn) = self.shared.lock().pop() else {
                break;
            };
            if !conn.client.is_closed() {
                return Ok(self.guard(conn, permit));
            }
        }
        let client = connect(&self.shared.config).await.map_err(backend)?;
        let conn = self.prepare(client).await.map_err(backend)?;
        Ok(self.guard(conn, permit))
    }

    /// How the pool connects (for the dedicated connections of leases).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.shared.config
    }

    fn guard(&self, conn: Conn, permit: OwnedSemaphorePermit) -> Pooled {
        Pooled {
            conn: Some(conn),
            shared: Arc::clone(&self.shared),
            reuse: true,
            _permit: permit,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Conn>> {
        // Only pushes and pops happen under this lock; a poisoned one still holds valid data.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Pooled {
    /// Closes the connection instead of returning it (e.g. it may be inside a transaction).
    pub fn discard_on_drop(&mut self) {
        self.reuse = false;
    }

    /// Returns it to the pool on drop again (after the transaction ended cleanly).
    pub fn reuse_on_drop(&mut self) {
        self.reuse = true;
    }
}

impl Deref for Pooled {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.reuse
            && !conn.client.is_closed()
        {
            self.shared.lock().push(conn);
        }
    }
}

//! The store's connection pools (`deadpool::managed`): at most `size` connections, opened on
//! demand through the store's [`Connector`], each with the store's statements prepared once,
//! handed out one operation at a time. Waiting for a connection is bounded by the acquire
//! timeout, opening one by the connect timeout; both fail as `StoreError::Unavailable`.
//!
//! A connection goes back to the pool when its guard drops, unless the driver reports it closed
//! or the guard was told to discard it (a connection left inside an open transaction, or whose
//! session ended in an append).
//!
//! # Choices
//!
//! - **`deadpool::managed` with our own `Manager`** (issue 10): a maintained pool with wait and
//!   create timeouts, while each connection still has the store's statements prepared once and a
//!   guard can still take its connection out of the pool (`Object::take`). Not `deadpool-postgres`:
//!   its `Manager` owns connecting and its statement cache, and the store needs its own connector
//!   (TLS mode, a timeout over the whole connect, session settings, see `connect.rs`) and its own
//!   prepared set.
//! - **Recycling checks `is_closed` only** (like deadpool-postgres's `RecyclingMethod::Fast`): a
//!   round trip per checkout would cost every append. The pools' cost is in BENCHMARKS.md,
//!   "Connection pool (issue 10)".
//! - **No JIT** (`SET jit = off` on pooled connections): a generic plan's estimates are blind to
//!   the values, and the conditional append's (`dcb/statements.rs`) passed `jit_above_cost` once
//!   the table held some 70,000 events: every execution then compiled about 100 functions,
//!   300 ms for a statement that runs in a fraction of a millisecond. The store's statements are
//!   index lookups, never the long scans JIT pays off for.
//! - **No parallel plans** (`SET max_parallel_workers_per_gather = 0` on pooled connections): the
//!   store's statements are index lookups and short ranges, which workers only slow down, and
//!   `read_all` sends its snapshot row first through a `UNION ALL` whose branches a plain
//!   `Append` returns in order; a parallel one would not (`statements.rs`). Without `Gather`
//!   no plan is parallel.
//! - **Generic plans** (`SET plan_cache_mode = force_generic_plan` on pooled connections): the
//!   statements are key lookups whose plan does not depend on the values, and the append's earlier
//!   form, re-planned on every execution, cost 60–90 µs of server time instead of about 25 (see
//!   `append.rs`).
//! - **Two pools**: `commands` (`pool_size`) for appends and reads, `projections`
//!   (`sink_pool_size`, default 4) for `PgSink` batches and checkpoints. A sink batch holds its
//!   connection across handler awaits; taken from the commands pool, a few busy runners could leave
//!   `execute` waiting indefinitely.
//! - Driver default features are off except `runtime`; `with-uuid-1` is on. JSONB goes through two
//!   small `ToSql`/`FromSql` types (`decode.rs`), so payloads are never parsed into
//!   `serde_json::Value` on the way.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, PoolError, QueueMode, RecycleError, RecycleResult, TimeoutType};
use eventweave_core::{BackendError, StoreError};
use tokio_postgres::{Client, Statement};

use crate::config::PostgresConfig;
use crate::connect::{ConnectError, Connector};
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

/// Opens the pool's connections: through the store's [`Connector`], with the statements
/// prepared; a connection the driver reports closed is not handed out again.
pub(crate) struct Manager {
    connector: Connector,
    sql: Arc<Sql>,
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = ConnectError;

    /// Sets the connection up for the store's statements and prepares them.
    ///
    /// The statements are planned once, generically: left to choose, PostgreSQL re-plans an
    /// append with custom plans on every execution (measured: 60 to 90 µs of server time per
    /// append instead of about 25), and a plan of these statements does not depend on the
    /// values anyway (they are index lookups by key).
    async fn create(&self) -> Result<Conn, ConnectError> {
        let client = self
            .connector
            .connect(
                "SET plan_cache_mode = force_generic_plan; SET jit = off; \
                 SET max_parallel_workers_per_gather = 0",
            )
            .await?;
        let st = Prepared::new(&client, &self.sql).await?;
        Ok(Conn::new(client, st))
    }

    /// No round trip: a connection whose driver task saw it close is dropped; one that closes
    /// later fails its next request, which the store classifies like any lost connection.
    async fn recycle(&self, conn: &mut Conn, _: &managed::Metrics) -> RecycleResult<ConnectError> {
        if conn.client.is_closed() {
            return Err(RecycleError::message("the connection is closed"));
        }
        Ok(())
    }
}

/// A `deadpool` pool of store connections. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub(crate) struct Pool {
    pool: managed::Pool<Manager>,
    /// Which pool this is, for error messages (`commands`, `projections`).
    name: &'static str,
    acquire_timeout: Duration,
    connect_timeout: Duration,
}

/// A connection checked out of the pool.
pub(crate) struct Pooled {
    conn: Option<managed::Object<Manager>>,
    reuse: bool,
}

impl Pool {
    /// A pool of at most `size` connections, opened on demand.
    pub fn new(
        name: &'static str,
        connector: Connector,
        sql: Arc<Sql>,
        size: usize,
        config: &PostgresConfig,
    ) -> Pool {
        let pool = managed::Pool::builder(Manager { connector, sql })
            .max_size(size)
            // The most recently used connection first, as the hand-written pool did: a light
            // load stays on one warm server backend instead of cycling through all of them
            // (FIFO, deadpool's default, measured 4 points slower per command and 10-20 %
            // slower batch appends and reads; BENCHMARKS.md "Connection pool").
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.acquire_timeout))
            .create_timeout(Some(config.connect_timeout))
            .build()
            .expect("a runtime and no hooks are given, so building cannot fail");
        Pool {
            pool,
            name,
            acquire_timeout: config.acquire_timeout,
            connect_timeout: config.connect_timeout,
        }
    }

    /// A connection: an idle one, or a new one while fewer than `size` are open; otherwise
    /// waits for one to come back, at most the acquire timeout.
    pub async fn get(&self) -> Result<Pooled, StoreError> {
        // Boxed: it holds the (large) future of opening a connection, and every operation
        // awaits it.
        let conn = Box::pin(self.pool.get()).await.map_err(|e| self.error(e))?;
        Ok(Pooled {
            conn: Some(conn),
            reuse: true,
        })
    }

    fn error(&self, e: PoolError<ConnectError>) -> StoreError {
        let unavailable = |message: String| StoreError::Unavailable(BackendError::new(message));
        let size = self.pool.status().max_size;
        match e {
            PoolError::Backend(e) => e.into_store_error(),
            PoolError::Timeout(TimeoutType::Create) => unavailable(format!(
                "no new connection for the {} pool within the connect timeout of {:?}",
                self.name, self.connect_timeout
            )),
            PoolError::Timeout(_) => unavailable(format!(
                "all {size} connections of the {} pool stayed busy for the acquire timeout of {:?}",
                self.name, self.acquire_timeout
            )),
            PoolError::Closed => unavailable(format!("the {} pool is closed", self.name)),
            other => unavailable(format!("the {} pool failed: {other}", self.name)),
        }
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
            && (!self.reuse || conn.client.is_closed())
        {
            // Out of the pool, then dropped: the connection closes and frees its slot.
            drop(managed::Object::take(conn));
        }
    }
}

#[cfg(test)]
mod checkout_cost {
    /// Cost of one checkout and return, no query (`--ignored`, release build, needs
    /// `CQRS_POSTGRES_URL`).
    #[tokio::test(flavor = "current_thread")]
    #[ignore]
    async fn checkout_cost() {
        let url = std::env::var("CQRS_POSTGRES_URL").unwrap();
        let store = crate::PostgresStore::open(
            crate::PostgresConfig::new(url)
                .schema("cqrs_checkout_cost")
                .pool_size(8),
        )
        .await
        .unwrap();
        let pool = &store.shared.pool;
        drop(pool.get().await.unwrap());
        for round in 0..5 {
            let n = 200_000;
            let started = std::time::Instant::now();
            for _ in 0..n {
                let conn = pool.get().await.unwrap();
                std::hint::black_box(&conn);
            }
            let per = started.elapsed().as_nanos() as f64 / n as f64;
            println!("round {round}: {per:.0} ns per checkout");
        }
    }
}

//! [`PgLeases`]: one process at a time runs a projection, by a PostgreSQL advisory lock held on
//! a dedicated connection for as long as the lease lives.
//!
//! A lock held by a connection is released by the server when the process dies, so another process
//! takes over as soon as the server notices (about 150 ms after `SIGKILL` on loopback, measured). A
//! lease is lost when its connection ends or a periodic `SELECT 1` check fails. The checkpoint row
//! stays the fence: `PgSink` checks it inside each batch transaction, which keeps exactly-once even
//! in the moment two processes both believe they hold the lease. Lease locks use `bigint` keys, a
//! key space apart from the two-`int4` keys of appender locks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventweave_core::StoreError;
use eventweave_core::runner::{Lease, Leases};
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::config::Names;
use crate::connect::{ConnectError, Connector};
use crate::error::backend;
use crate::store::PostgresStore;

/// Leases of projections of one store, as session-level advisory locks
/// (`pg_try_advisory_lock`), each on its own connection outside the pool.
///
/// The lock key derives from the schema, the events table and the projection name. A process
/// that dies loses its connection and so its locks: the server releases them as soon as it
/// notices (at once for a killed process, whose socket the kernel closes; within
/// [`TcpKeepalives::bound`](crate::TcpKeepalives::bound), 25 s by default, for a vanished host,
/// through the TCP keepalives set on every connection of the store), and another
/// process's runner takes over from the checkpoint. [`Lease::lost`] resolves when the lease's
/// connection fails or a `SELECT 1` on it (every [`check_interval`](PgLeases::check_interval))
/// fails or takes longer than three intervals. Dropping the lease closes its connection, which
/// releases the lock.
///
/// While it holds a lease, a connection's `application_name` is
/// `eventweave-postgres lease <projection>`, so `pg_stat_activity` shows who runs what. A refused
/// attempt keeps its connection for the next try.
///
/// Advisory locks share one key space per database: other applications' locks on the same
/// database could, with a 2⁻⁶⁴ chance per pair, collide with a lease.
///
/// A lease is not a guarantee on its own (a process may not yet know that its lease is gone):
/// [`PgSink`](crate::PgSink) also fences each batch on the checkpoint row.
#[derive(Clone)]
pub struct PgLeases {
    shared: Arc<Shared>,
}

struct Shared {
    connector: Connector,
    names: Names,
    check_interval: Duration,
    /// A connection whose last attempt was refused, for the next attempt.
    spare: Mutex<Option<LeaseConn>>,
}

/// A dedicated connection and the signal that its connection task ended.
struct LeaseConn {
    client: Client,
    ended: watch::Receiver<()>,
}

impl PgLeases {
    /// Leases for projections of `store` (same database, same schema), checked every second.
    pub fn new(store: &PostgresStore) -> Self {
        PgLeases {
            shared: Arc::new(Shared {
                connector: store.shared.connector.clone(),
                names: store.shared.names.clone(),
                check_interval: Duration::from_secs(1),
                spare: Mutex::new(None),
            }),
        }
    }

    /// How often a held lease checks its connection with `SELECT 1` (default 1 s; at least
    /// 10 ms).
    pub fn check_interval(self, interval: Duration) -> Self {
        let shared = &self.shared;
        PgLeases {
            shared: Arc::new(Shared {
                connector: shared.connector.clone(),
                names: shared.names.clone(),
                check_interval: interval.max(Duration::from_millis(10)),
                spare: Mutex::new(None),
            }),
        }
    }

    async fn connect(&self) -> Result<LeaseConn, StoreError> {
        // The store's connector: TLS, the connect timeout, and the session settings, among
        // them the TCP keepalives by which the server drops the connection (and the lock) of a
        // host that vanished.
        let (alive, ended) = watch::channel(());
        let client = self
            .shared
            .connector
            .open_with("", |connection| {
                tokio::spawn(async move {
                    let _ = connection.await;
                    // Dropping the sender tells the lease its connection is gone.
                    drop(alive);
                });
            })
            .await
            .map_err(ConnectError::into_store_error)?;
        Ok(LeaseConn { client, ended })
    }

    fn take_spare(&self) -> Option<LeaseConn> {
        self.shared
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .filter(|conn| !conn.client.is_closed())
    }
}

impl Leases for PgLeases {
    type Lease = PgLease;

    async fn try_acquire(&self, projection: &str) -> Result<Option<PgLease>, StoreError> {
        let conn = match self.take_spare() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let key = self.shared.names.lease_key(projection);
        let name = format!("eventweave-postgres lease {projection}");
        // `CASE` evaluates its condition first, so the name is set only when the lock is taken.
        let row = conn
            .client
            .query_one(
                "SELECT CASE WHEN pg_try_advisory_lock($1::int8)
                    THEN set_config('application_name', $2::text, false) END",
                &[&key, &name],
            )
            .await
            .map_err(backend)?;
        let granted: Option<String> = row.try_get(0).map_err(backend)?;
        if granted.is_none() {
            *self.shared.spare.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
            return Ok(None);
        }
        Ok(Some(PgLease {
            conn,
            check_interval: self.shared.check_interval,
        }))
    }
}

/// A held [`PgLeases`] lease: an advisory lock on a dedicated connection. Dropping it closes
/// the connection, which releases the lock.
pub struct PgLease {
    conn: LeaseConn,
    check_interval: Duration,
}

impl Lease for PgLease {
    async fn lost(&mut self) {
        let conn = &mut self.conn;
        let mut tick = tokio::time::interval(self.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Err once the connection task has ended and dropped the sender.
                ended = conn.ended.changed() => if ended.is_err() {
                    return;
                },
                _ = tick.tick() => {
                    let ping = conn.client.simple_query("SELECT 1");
                    match tokio::time::timeout(self.check_interval * 3, ping).await {
                        Ok(Ok(_)) => {}
                        _ => return,
                    }
                }
            }
        }
    }
}

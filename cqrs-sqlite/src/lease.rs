//! [`SqliteLeases`]: which process runs a durable projection, among the processes that share
//! one SQLite file, so that `eventweave-cli`'s `rebuild` refuses while another process runs the
//! projection and `projections` can tell running from stopped.
//!
//! SQLite has no session-held locks to lean on (PostgreSQL's leases are advisory locks that die
//! with their connection), so a lease is a row of the `leases` table: the projection, its owner
//! (one id per `SqliteLeases`, the process id and a random part) and the time it expires unless
//! renewed.
//!
//! - **Taking** is one upsert that succeeds only when there is no row, the row has expired, or it
//!   is the caller's own: SQLite runs writers one at a time, so two processes never both take it.
//! - **Holding**: a task renews the expiry every third of the time to live. A renewal that finds
//!   the row taken by another owner (this process stalled past the expiry and someone took
//!   over) reports the lease lost at once; renewals that fail (the file is busy) report it lost
//!   only once the expiry has passed, since from then on another process may take it.
//! - **Letting go**: dropping the lease deletes its row, at once when the file's write turn is
//!   free (an operator's command exits right after), otherwise from a task; a process that dies
//!   leaves its row, which expires after the time to live (10 s by default), and then the next
//!   process takes over from the checkpoint.
//! - **Fenced like every sink**: the expiry only decides who works. A stalled holder that has
//!   not noticed its loss yet cannot commit a batch twice: the `SqliteSink` fence on the
//!   checkpoint refuses it, as on PostgreSQL.
//! - Clocks: the expiry is compared with each process's wall clock; processes sharing a file
//!   share a machine, hence a clock.

use std::sync::Arc;
use std::time::Duration;

use eventweave_core::runner::{Lease, Leases};
use eventweave_core::{StoreError, Timestamp, new_id};
use rusqlite::OptionalExtension;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::backend;
use crate::store::SqliteStore;

/// The default time to live of a lease: how long a crashed holder keeps a projection from
/// others.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

const TAKE: &str = "INSERT INTO leases (projection, owner, expires_at) VALUES (?1, ?2, ?3)
    ON CONFLICT (projection) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
    WHERE leases.expires_at <= ?4 OR leases.owner = excluded.owner";
const RENEW: &str = "UPDATE leases SET expires_at = ?3 WHERE projection = ?1 AND owner = ?2";
const RELEASE: &str = "DELETE FROM leases WHERE projection = ?1 AND owner = ?2";
const HOLDER: &str = "SELECT owner, expires_at FROM leases WHERE projection = ?1";

/// Leases across the processes that use one SQLite file (module docs above): give them to a
/// runner with `ProjectionRunner::leases(SqliteLeases::new(&store), retry)`.
#[derive(Clone, Debug)]
pub struct SqliteLeases {
    store: SqliteStore,
    owner: Arc<str>,
    ttl: Duration,
}

impl SqliteLeases {
    /// Leases in the file of `store`, held for [`DEFAULT_LEASE_TTL`] between renewals.
    pub fn new(store: &SqliteStore) -> Self {
        SqliteLeases {
            store: store.clone(),
            owner: format!("pid {} {}", std::process::id(), new_id().simple()).into(),
            ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// How long a lease lasts unless renewed (renewed every third of it; at least 300 ms).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// The owner these leases write in the `leases` table.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// One held lease: what its renewals and its release need.
struct Held {
    store: SqliteStore,
    projection: String,
    owner: Arc<str>,
    ttl: Duration,
}

impl Held {
    /// Moves the expiry on; `false` when the row is no longer this owner's.
    async fn renew(&self) -> Result<bool, StoreError> {
        let until = Timestamp::now()
            .unix_micros()
            .saturating_add(micros(self.ttl));
        let writer = self.store.writer().await?;
        let mut statement = writer.conn.prepare_cached(RENEW).map_err(backend)?;
        let renewed = statement
            .execute((&self.projection, &*self.owner, until))
            .map_err(backend)?;
        Ok(renewed == 1)
    }

    /// Renews until the lease is lost (then says so through `lost`).
    async fn keep(self: Arc<Self>, lost: watch::Sender<bool>) {
        let mut valid_until = tokio::time::Instant::now() + self.ttl;
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            match self.renew().await {
                Ok(true) => valid_until = tokio::time::Instant::now() + self.ttl,
                Ok(false) => break,
                Err(_) if tokio::time::Instant::now() >= valid_until => break,
                Err(_) => {}
            }
        }
        let _ = lost.send(true);
    }

    fn release_now(&self) -> bool {
        let Some(writer) = self.store.try_writer() else {
            return false;
        };
        let released = writer
            .conn
            .prepare_cached(RELEASE)
            .and_then(|mut s| s.execute((&self.projection, &*self.owner)));
        released.is_ok()
    }
}

/// A lease held through [`SqliteLeases`]: renewed by a task until dropped, then released.
pub struct SqliteLease {
    held: Arc<Held>,
    lost: watch::Receiver<bool>,
    renewer: JoinHandle<()>,
}

impl Lease for SqliteLease {
    async fn lost(&mut self) {
        // A renewer that ended without a word (it panicked) no longer holds anything either.
        let _ = self.lost.wait_for(|lost| *lost).await;
    }
}

impl Drop for SqliteLease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.held.release_now() {
            return;
        }
        // The file's turn is taken: release from a task; without a runtime the row expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let held = Arc::clone(&self.held);
            runtime.spawn(async move {
                if let Ok(writer) = held.store.writer().await
                    && let Ok(mut statement) = writer.conn.prepare_cached(RELEASE)
                {
                    let _ = statement.execute((&held.projection, &*held.owner));
                }
            });
        }
    }
}

impl Leases for SqliteLeases {
    type Lease = SqliteLease;

    async fn try_acquire(&self, projection: &str) -> Result<Option<SqliteLease>, StoreError> {
        let now = Timestamp::now().unix_micros();
        let until = now.saturating_add(micros(self.ttl));
        let taken = {
            let writer = self.store.writer().await?;
            let mut statement = writer.conn.prepare_cached(TAKE).map_err(backend)?;
            statement
                .execute((projection, &*self.owner, until, now))
                .map_err(backend)?
        };
        if taken == 0 {
            return Ok(None);
        }
        let held = Arc::new(Held {
            store: self.store.clone(),
            projection: projection.to_owned(),
            owner: Arc::clone(&self.owner),
            ttl: self.ttl,
        });
        let (sender, lost) = watch::channel(false);
        let renewer = tokio::spawn(Arc::clone(&held).keep(sender));
        Ok(Some(SqliteLease {
            held,
            lost,
            renewer,
        }))
    }

    /// Reads the row: held elsewhere when another owner's row has not expired.
    async fn held_elsewhere(&self, projection: &str) -> Result<bool, StoreError> {
        let now = Timestamp::now().unix_micros();
        let holder: Option<(String, i64)> = self.store.read(|conn| {
            conn.prepare_cached(HOLDER)
                .and_then(|mut s| {
                    s.query_row([projection], |row| Ok((row.get(0)?, row.get(1)?)))
                        .optional()
                })
                .map_err(backend)
        })?;
        Ok(holder.is_some_and(|(owner, expires_at)| expires_at > now && *owner != *self.owner))
    }
}

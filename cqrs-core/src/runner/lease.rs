//! Leases: which process runs a projection when several run the same application.

use std::future::Future;

use crate::error::StoreError;

/// Grants at most one holder at a time the right to run a projection.
///
/// `eventweave_postgres::PgLeases` uses a PostgreSQL advisory lock held by a connection: when its
/// process dies the server drops the connection and the lock, and another process's runner
/// takes over from the checkpoint. `eventweave_sqlite::SqliteLeases` keeps a row with an owner
/// and an expiry that the holder renews. [`LocalLease`] always grants (one process per store).
pub trait Leases: Send + Sync + 'static {
    /// A held lease; dropping it releases it.
    type Lease: Lease;

    /// Tries to take the lease of `projection` without waiting: `None` when another holds it.
    fn try_acquire(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<Option<Self::Lease>, StoreError>> + Send;

    /// Whether another holder has the lease of `projection` now, for an operator's listing.
    /// The default takes the lease and lets it go at once; leases that can tell without taking
    /// (a row to read) answer without writing.
    fn held_elsewhere(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move { Ok(self.try_acquire(projection).await?.is_none()) }
    }
}

/// A held lease.
pub trait Lease: Send + 'static {
    /// Resolves when the lease is lost (for example its connection failed). The runner stops
    /// working at once and tries to take the lease again.
    fn lost(&mut self) -> impl Future<Output = ()> + Send;
}

/// Leases for a store used by one process: always granted, never lost.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalLease;

impl Leases for LocalLease {
    type Lease = LocalLease;

    async fn try_acquire(&self, _projection: &str) -> Result<Option<LocalLease>, StoreError> {
        Ok(Some(LocalLease))
    }
}

impl Lease for LocalLease {
    async fn lost(&mut self) {
        std::future::pending::<()>().await
    }
}

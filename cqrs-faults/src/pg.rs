//! The suite's own PostgreSQL: a throwaway cluster (`cqrs-test-cluster`) that the scenarios may
//! restart and whose sessions they may terminate, with one schema per scenario. The shared server
//! is never touched.

use std::sync::{Arc, Mutex};

use cqrs_test_cluster::{Mode, Options, TempCluster};
use eventweave_postgres::{PostgresConfig, PostgresStore};
use tokio_postgres::{Client, NoTls};

use crate::domain::{PgTotals, Totals, quote};

/// The `application_name` of the writers' store sessions.
pub const WRITERS: &str = "faults-writers";
/// The `application_name` of a projection sink's store sessions.
pub const SINK: &str = "faults-sink";
/// The `application_name` of a store opened after the load, as a new process would.
pub const FRESH: &str = "faults-fresh";

/// The cluster, shared by the scenarios of a run.
#[derive(Clone)]
pub struct Pg {
    cluster: Arc<Mutex<TempCluster>>,
    url: String,
}

impl Pg {
    /// Starts a cluster; `Err` says why it cannot (no PostgreSQL binaries, …).
    pub fn start() -> Result<Pg, String> {
        let cluster = TempCluster::start(
            Options::new()
                .conf("max_connections = 200")
                .conf("fsync = off")
                .conf("synchronous_commit = on"),
        )
        .map_err(|e| format!("cannot start a throwaway PostgreSQL cluster: {e}"))?;
        let url = cluster.url();
        Ok(Pg {
            cluster: Arc::new(Mutex::new(cluster)),
            url,
        })
    }

    /// The cluster's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A store on `schema`, its sessions named `application` (so faults can target them).
    pub async fn store(
        &self,
        schema: &str,
        application: &str,
        pool: usize,
    ) -> Result<PostgresStore, String> {
        PostgresStore::open(self.config(schema, application, pool))
            .await
            .map_err(|e| format!("cannot open a store on schema {schema}: {e}"))
    }

    /// The configuration of [`Pg::store`].
    pub fn config(&self, schema: &str, application: &str, pool: usize) -> PostgresConfig {
        PostgresConfig::new(format!("{}?application_name={application}", self.url))
            .schema(schema)
            .pool_size(pool)
    }

    /// Stops the server with `mode` and starts it again (blocking the calling worker thread for
    /// the few seconds it takes; the runtime's other workers keep the clients going).
    pub async fn restart(&self, mode: Mode) -> Result<(), String> {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || {
            let mut cluster = cluster.lock().unwrap_or_else(|e| e.into_inner());
            cluster
                .restart(mode)
                .map_err(|e| format!("restart ({mode:?}) failed: {e}"))
        })
        .await
        .map_err(|e| format!("restart task failed: {e}"))?
    }

    /// A plain connection (for faults and for reading read models).
    pub async fn admin(&self) -> Result<Client, String> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(|e| format!("admin connection failed: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Terminates every session named `application`; returns how many.
    pub async fn terminate(&self, admin: &Client, application: &str) -> Result<u64, String> {
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&application],
            )
            .await
            .map_err(|e| format!("pg_terminate_backend failed: {e}"))?;
        Ok(rows.iter().filter(|row| row.get::<_, bool>(0)).count() as u64)
    }

    /// Creates the durable read model's table in `schema`.
    pub async fn create_model(&self, schema: &str) -> Result<(), String> {
        let admin = self.admin().await?;
        admin
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}; {}",
                quote(schema),
                PgTotals::create_table(schema)
            ))
            .await
            .map_err(|e| format!("cannot create the read model: {e}"))
    }

    /// The durable read model of `schema`.
    pub async fn model(&self, schema: &str) -> Result<Totals, String> {
        let admin = self.admin().await?;
        let rows = admin
            .query(&PgTotals::select(schema), &[])
            .await
            .map_err(|e| format!("cannot read the read model: {e}"))?;
        Ok(rows
            .iter()
            .map(|row| {
                let (stream, events, total): (String, i64, i64) =
                    (row.get(0), row.get(1), row.get(2));
                (stream, (events as u64, total as u64))
            })
            .collect())
    }
}

/// A schema name for one scenario.
pub fn schema(scenario: &str) -> String {
    format!(
        "faults_{}_{:06x}",
        scenario.replace('-', "_"),
        eventweave_core::new_id().as_u128() as u32 & 0xff_ffff
    )
}

//! Shared by the PostgreSQL test binaries: the database URL (tests say they are skipped without
//! one), a fresh schema per test, and raw connections for writing rows by hand.
//!
//! Test schemas are named `cqrs_test_<unix seconds>_<random>`. Each test binary drops those older
//! than 15 minutes when it starts, and tests that hold the name drop theirs at the end; the
//! conformance cases cannot, because the suite owns the test body.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod proxy;
pub mod read_model;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eventweave_core::{EventStore, Position, RecordedEvent, Uuid};

use eventweave_postgres::{PostgresConfig, PostgresStore};
use tokio_postgres::{Client, NoTls};

/// The variable that names the test database.
pub const URL_VAR: &str = "CQRS_POSTGRES_URL";

/// Test schemas older than this are dropped by the next test run (a whole test run takes well
/// under a minute, so schemas of a run that is still going are younger).
const STALE_AFTER_SECS: u64 = 900;

/// The test database's URL, if configured.
pub fn url() -> Option<String> {
    std::env::var(URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Why PostgreSQL tests are skipped, if they are (for `store_conformance_tests!`).
pub fn skip_reason() -> Option<String> {
    url().is_none().then(|| format!("{URL_VAR} is not set"))
}

/// The URL, or `None` after printing that `test` is skipped (past the output capture).
pub fn url_or_skip(test: &str) -> Option<String> {
    let url = url();
    if url.is_none() {
        eventweave_core::testing::report_skip(test, &format!("{URL_VAR} is not set"));
    }
    url
}

/// A schema name unique to this call: `cqrs_test_<unix seconds>_<random>`.
pub fn schema_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("cqrs_test_{secs}_{:08x}", random_u64() as u32)
}

/// 64 random bits (from a fresh UUIDv7's random part).
pub fn random_u64() -> u64 {
    eventweave_core::new_id().as_u128() as u64
}

/// A configuration on a new schema of the test database, with a small pool.
pub async fn fresh_config(url: &str) -> PostgresConfig {
    sweep_stale_schemas(url).await;
    PostgresConfig::new(url).schema(schema_name()).pool_size(4)
}

/// A store on a new, empty schema; `max_event_bytes` if given.
pub async fn open_fresh(max_event_bytes: Option<usize>) -> PostgresStore {
    let url = url().expect("checked by the caller's skip test");
    let mut config = fresh_config(&url).await;
    if let Some(max) = max_event_bytes {
        config = config.max_event_bytes(max);
    }
    PostgresStore::open(config)
        .await
        .expect("open a fresh store")
}

/// A plain connection to the test database.
pub async fn raw_client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops a test schema and everything in it.
pub async fn drop_schema(url: &str, schema: &str) {
    let client = raw_client(url).await;
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(schema)))
        .await;
}

/// `name` as a quoted SQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Once per test process: drops test schemas left behind by runs that ended long ago.
async fn sweep_stale_schemas(url: &str) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let client = raw_client(url).await;
    let Ok(rows) = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'cqrs\\_test\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .split('_')
            .nth(2)
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| secs + STALE_AFTER_SECS < now) {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(&name)))
                .await;
        }
    }
}

/// The ids of `events`, in their order.
pub fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.meta.event_id).collect()
}

/// Reads from the start until `want` events came back or `patience` ran out.
pub async fn read_until(
    store: &PostgresStore,
    want: usize,
    patience: Duration,
) -> Vec<RecordedEvent> {
    let started = Instant::now();
    loop {
        let all = store.read_all(Position::ZERO, 10_000).await.unwrap();
        if all.len() >= want || started.elapsed() > patience {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

//! Upcasting on SQLite: the stored rows of every older version of an event (the JSON fixtures
//! in `tests/fixtures/upcast`), written through the store's own append, load as current events;
//! and the cold-load throughput of a stream that is half version-1 rows.
//!
//! The measurement is ignored by default; run it in release:
//! `cargo test --release -p eventweave-sqlite --test upcast -- --ignored --nocapture`.

use std::path::PathBuf;
use std::time::Instant;

use eventweave_core::{Cqrs, EventStore, ExpectedVersion, MemoryStore, NewEvent, StreamId, new_id};
use eventweave_sqlite::SqliteStore;

#[path = "../../tests/fixtures/upcast/domain.rs"]
mod domain;

use domain::*;

/// A database file removed when the test ends.
struct TempFile(PathBuf);

impl TempFile {
    fn new(what: &str) -> Self {
        TempFile(
            std::env::temp_dir().join(format!("eventweave-sqlite-{what}-{}.db", new_id().simple())),
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

#[tokio::test]
async fn stored_rows_of_every_version_load_as_current_events() {
    let file = TempFile::new("upcast");
    let store = SqliteStore::open(&file.0).unwrap();
    append_fixtures(&store).await;
    let app = Cqrs::builder(store.clone()).build().await.unwrap();
    check_fixture_wallets(&app).await;

    // Again from a reopened file, as a new process would.
    drop(app);
    drop(store);
    let store = SqliteStore::open(&file.0).unwrap();
    let app = Cqrs::builder(store).build().await.unwrap();
    check_fixture_wallets(&app).await;
}

/// Events in the measured stream, the opening included.
const STREAM_EVENTS: u64 = 10_000;

/// `wallet-1`: opened, then deposits alternating between version 1 rows (two upcasters run)
/// and version 3 rows (decoded directly).
fn half_old_stream() -> Vec<NewEvent> {
    let opened = Row {
        stream: "wallet-1".into(),
        version: 1,
        event_name: "wallet.opened".into(),
        event_version: 1,
        payload: serde_json::json!({ "owner": "ada" }),
    };
    let mut events = vec![opened.new_event()];
    for i in 1..STREAM_EVENTS {
        let (event_version, payload) = if i % 2 == 1 {
            (1, serde_json::json!({ "cents": i }))
        } else {
            (
                3,
                serde_json::json!({ "amount": i, "currency": "CHF", "memo": "" }),
            )
        };
        let row = Row {
            stream: "wallet-1".into(),
            version: i + 1,
            event_name: "wallet.deposited".into(),
            event_version,
            payload,
        };
        events.push(row.new_event());
    }
    events
}

async fn fill<S: EventStore>(store: &S) {
    let stream = StreamId::from("wallet-1");
    let mut version = 0;
    let events = half_old_stream();
    for chunk in events.chunks(1_000) {
        store
            .append(&stream, ExpectedVersion::Exact(version), chunk.to_vec())
            .await
            .unwrap();
        version += chunk.len() as u64;
    }
}

/// Best of several cold loads (`Cqrs::load` reads the store, decodes, upcasts and applies;
/// it does not use the aggregate cache), in events per second.
async fn cold_loads_per_second<S: EventStore>(store: S) -> f64 {
    let app = Cqrs::builder(store).build().await.unwrap();
    let mut best = f64::MAX;
    for _ in 0..7 {
        let started = Instant::now();
        let (wallet, version) = app.load::<Wallet>(&1).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(version, STREAM_EVENTS);
        assert_eq!(wallet.deposits.len() as u64, STREAM_EVENTS - 1);
        assert_eq!(
            wallet.deposits[0].currency, "EUR",
            "a version 1 row, upcast"
        );
        best = best.min(secs);
    }
    STREAM_EVENTS as f64 / best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn cold_load_of_a_half_old_stream() {
    let memory = MemoryStore::new();
    fill(&memory).await;
    let memory_rate = cold_loads_per_second(memory).await;

    let file = TempFile::new("upcast-bench");
    let sqlite = SqliteStore::open(&file.0).unwrap();
    fill(&sqlite).await;
    let sqlite_rate = cold_loads_per_second(sqlite).await;

    println!(
        "cold load, {STREAM_EVENTS} events, half version 1 (decode + upcast + apply): \
         MemoryStore {memory_rate:.0} events/s, SQLite {sqlite_rate:.0} events/s"
    );
    if !cfg!(debug_assertions) {
        assert!(
            memory_rate >= 300_000.0,
            "MemoryStore: {memory_rate:.0} events/s"
        );
        assert!(
            sqlite_rate >= 300_000.0,
            "SQLite: {sqlite_rate:.0} events/s"
        );
    }
}

//! What the conformance suite does not cover: durability across reopening, the schema version
//! record, refusing newer or foreign files, other processes' appends, configuration.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eventweave_core::testing::conformance::event;
use eventweave_core::testing::domain::{Add, Counter, Open, TotalOf, Totals};
use eventweave_core::{Cqrs, EventStore, ExpectedVersion, Position, StreamId};
use eventweave_sqlite::rusqlite::Connection;
use eventweave_sqlite::{Durability, OpenError, SCHEMA_VERSION, SqliteConfig, SqliteStore};

/// A path in the temporary directory, its files removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        TempPath(std::env::temp_dir().join(format!(
            "eventweave-sqlite-test-{name}-{}-{}.db",
            std::process::id(),
            eventweave_core::new_id().simple()
        )))
    }
}

impl std::ops::Deref for TempPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

#[tokio::test]
async fn events_and_aggregates_survive_reopening() {
    let path = TempPath::new("reopen");
    {
        let app = Cqrs::builder(SqliteStore::open(&*path).unwrap())
            .build()
            .await
            .unwrap();
        app.execute(Open { id: 1 }).await.unwrap();
        app.execute(Add { id: 1, n: 40 }).await.unwrap();
        app.execute(Add { id: 1, n: 2 }).await.unwrap();
    }
    let store = SqliteStore::open(&*path).unwrap();
    assert_eq!(store.head().await.unwrap(), Position(3));
    let app = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    let (counter, version) = app.load::<Counter>(&1).await.unwrap();
    assert_eq!((counter.total, version), (42, 3));
    assert_eq!(
        app.position(),
        Position(3),
        "projections catch up at build()"
    );
    assert_eq!(app.query(TotalOf("counter-1".into())).await.unwrap(), 42);
    let outcome = app.execute(Add { id: 1, n: 1 }).await.unwrap();
    assert_eq!((outcome.version, outcome.position()), (4, Position(4)));
}

#[tokio::test]
async fn the_schema_version_is_recorded_in_the_file() {
    let path = TempPath::new("schema");
    drop(SqliteStore::open(&*path).unwrap());
    drop(SqliteStore::open(&*path).unwrap());
    let conn = Connection::open(&*path).unwrap();
    let versions: Vec<u32> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[tokio::test]
async fn a_file_of_a_newer_schema_is_refused_untouched() {
    let path = TempPath::new("newer");
    drop(SqliteStore::open(&*path).unwrap());
    let conn = Connection::open(&*path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations VALUES (?1, 'from the future', 0)",
        [SCHEMA_VERSION + 1],
    )
    .unwrap();
    match SqliteStore::open(&*path) {
        Err(e @ OpenError::SchemaTooNew { .. }) => {
            let OpenError::SchemaTooNew {
                found, supported, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            assert!(e.to_string().contains("upgrade eventweave-sqlite"), "{e}");
        }
        other => panic!("a newer schema must be refused, got {other:?}"),
    }
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(rows, i64::from(SCHEMA_VERSION) + 1, "the file is untouched");
}

#[tokio::test]
async fn files_that_are_not_event_stores_are_refused() {
    let garbage = TempPath::new("garbage");
    std::fs::write(&*garbage, vec![0x42; 8192]).unwrap();
    assert!(matches!(
        SqliteStore::open(&*garbage),
        Err(OpenError::Database { .. })
    ));
    let foreign = TempPath::new("foreign");
    Connection::open(&*foreign)
        .unwrap()
        .execute_batch("CREATE TABLE events (what TEXT)")
        .unwrap();
    let err = SqliteStore::open(&*foreign).unwrap_err();
    assert!(matches!(err, OpenError::Database { .. }), "{err:?}");
    assert!(err.to_string().contains("events"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_of_another_handle_are_found_by_polling() {
    let path = TempPath::new("poll");
    let config = SqliteConfig::new().poll_interval(Duration::from_millis(10));
    // Two handles on one file behave like two processes: they share nothing in memory.
    let writer = SqliteStore::open_with(&*path, config.clone()).unwrap();
    let reader = SqliteStore::open_with(&*path, config).unwrap();
    let mut subscription = reader.subscribe(Position::ZERO);
    let s = StreamId::from("polled");
    let appended = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer
            .append(&s, ExpectedVersion::NoStream, vec![event("1")])
            .await
            .unwrap()
    });
    let started = Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("an append of another handle is seen within the timeout")
        .unwrap();
    assert_eq!(seen, appended.await.unwrap()[0]);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_of_this_handle_wake_waiters_without_polling() {
    // A poll interval of an hour: only the in-process wake-up can end the wait in time.
    let store =
        SqliteStore::temporary_with(SqliteConfig::new().poll_interval(Duration::from_secs(3600)))
            .unwrap();
    let head = store.head().await.unwrap();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_events(head).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .append(
            &StreamId::from("woken"),
            ExpectedVersion::Any,
            vec![event("1")],
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by the append")
        .unwrap();
}

#[tokio::test]
async fn full_durability_is_applied_and_works() {
    let store =
        SqliteStore::temporary_with(SqliteConfig::new().durability(Durability::Full)).unwrap();
    assert_eq!(store.config().durability, Durability::Full);
    store
        .append(
            &StreamId::from("full"),
            ExpectedVersion::NoStream,
            vec![event("1")],
        )
        .await
        .unwrap();
    assert_eq!(store.read_all(Position::ZERO, 10).await.unwrap().len(), 1);
    let defaults = SqliteConfig::default();
    assert_eq!(defaults.durability, Durability::Normal);
    assert_eq!(
        defaults.max_event_bytes,
        eventweave_core::DEFAULT_MAX_EVENT_BYTES
    );
}

#[tokio::test]
async fn temporary_stores_remove_their_files() {
    let store = SqliteStore::temporary().unwrap();
    let path = store.path().to_owned();
    store
        .append(&StreamId::from("t"), ExpectedVersion::Any, vec![event("1")])
        .await
        .unwrap();
    let clone = store.clone();
    drop(store);
    assert!(path.exists(), "a clone keeps the file");
    drop(clone);
    assert!(!path.exists(), "the last clone removes it");
}

#[tokio::test]
async fn recorded_at_is_in_microseconds_and_empty_metadata_is_null() {
    let store = SqliteStore::temporary().unwrap();
    let before = eventweave_core::Timestamp::now();
    let recorded = store
        .append(
            &StreamId::from("time"),
            ExpectedVersion::Any,
            vec![event("1")],
        )
        .await
        .unwrap();
    let after = eventweave_core::Timestamp::now();
    let at = recorded[0].meta.recorded_at;
    assert!(before <= at && at <= after);
    let conn = Connection::open(store.path()).unwrap();
    let (micros, metadata): (i64, Option<String>) = conn
        .query_row("SELECT recorded_at, metadata FROM events", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!(micros, at.unix_micros());
    assert_eq!(metadata, None);
    assert_eq!(
        store
            .read_stream(&StreamId::from("time"), 1, 0)
            .await
            .unwrap(),
        []
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_append_concurrently_without_loss() {
    // Two handles share no memory, so they meet only at SQLite's write lock, like two
    // processes: expected versions still hold, and a busy writer waits (busy timeout).
    let path = TempPath::new("two-writers");
    let handles = [
        SqliteStore::open(&*path).unwrap(),
        SqliteStore::open(&*path).unwrap(),
    ];
    let s = StreamId::from("shared");
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let store = handles[w % 2].clone();
            let s = s.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for i in 0..50 {
                    let e = event(&format!("\"{w}-{i}\""));
                    loop {
                        let version = store.read_stream(&s, 1, usize::MAX).await.unwrap().len();
                        match store
                            .append(&s, ExpectedVersion::Exact(version as u64), vec![e.clone()])
                            .await
                        {
                            Ok(_) => break,
                            Err(eventweave_core::StoreError::Conflict { .. }) => conflicts += 1,
                            Err(other) => panic!("append failed: {other}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let read = handles[0].read_stream(&s, 1, usize::MAX).await.unwrap();
    assert_eq!(read.len(), 200, "every acknowledged append is stored once");
    assert!(read.iter().zip(1..).all(|(e, v)| e.meta.version == v));
    let mut payloads: Vec<_> = read.iter().map(|e| e.payload.as_str()).collect();
    payloads.sort_unstable();
    payloads.dedup();
    assert_eq!(payloads.len(), 200, "no event twice");
    assert_eq!(handles[1].head().await.unwrap(), Position(200));
}

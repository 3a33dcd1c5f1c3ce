//! Failures of a running store say what a caller may do: a write lock held by another process
//! beyond the busy timeout is `Unavailable` (nothing written, SQLite's code in the message) and
//! the same append succeeds once the lock is gone; an insert SQLite refuses is a permanent `Backend`.

use std::time::Duration;

use eventweave_core::testing::conformance::event;
use eventweave_core::{EventStore, ExpectedVersion, Retry, StoreError, StreamId};
use eventweave_sqlite::rusqlite::Connection;
use eventweave_sqlite::{SqliteConfig, SqliteStore};

#[tokio::test]
async fn a_lock_held_beyond_the_busy_timeout_is_unavailable_and_writes_nothing() {
    let config = SqliteConfig::default().busy_timeout(Duration::from_millis(50));
    let store = SqliteStore::temporary_with(config).unwrap();
    let s = StreamId::from("locked");
    // Another process's writer, as far as SQLite can tell: its own connection to the file.
    let other = Connection::open(store.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let batch = vec![event("1")];
    let refused = store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await;
    match &refused {
        Err(e @ StoreError::Unavailable(backend)) => {
            assert_eq!(e.retry(), Retry::Safe);
            assert!(
                backend.code().is_some_and(|c| c.starts_with("SQLITE_BUSY")),
                "{e}"
            );
            assert!(e.to_string().contains("(code SQLITE_BUSY"), "{e}");
        }
        other => panic!("want Unavailable, got {other:?}"),
    }
    other.execute_batch("ROLLBACK").unwrap();
    assert!(store.read_stream(&s, 1, 10).await.unwrap().is_empty());
    store
        .append(&s, ExpectedVersion::NoStream, batch)
        .await
        .expect("the same append succeeds once the lock is gone");
}

#[tokio::test]
async fn a_refused_insert_is_a_permanent_failure() {
    let store = SqliteStore::temporary().unwrap();
    let s = StreamId::from("read-only");
    store
        .append(&s, ExpectedVersion::NoStream, vec![event("1")])
        .await
        .unwrap();
    // A trigger stands in for a file the process may no longer write: SQLite refuses the
    // insert with an error no retry fixes.
    let admin = Connection::open(store.path()).unwrap();
    admin
        .execute_batch(
            "CREATE TRIGGER no_more BEFORE INSERT ON events BEGIN \
             SELECT RAISE(ABORT, 'the archive is closed'); END;",
        )
        .unwrap();
    let refused = store
        .append(&s, ExpectedVersion::Exact(1), vec![event("2")])
        .await;
    match &refused {
        Err(e @ StoreError::Backend(_)) => {
            assert_eq!(e.retry(), Retry::Never);
            assert!(e.to_string().contains("the archive is closed"), "{e}");
        }
        other => panic!("want Backend, got {other:?}"),
    }
}

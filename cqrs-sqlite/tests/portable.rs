//! The portable `Sql` unit of work on SQLite: the shared checks (`eventweave_core::testing::sql`)
//! on a sink's transaction and on the store's reader, what only SQLite shows (bytes, booleans
//! stored as integers, `?` placeholders refused), and a portable projection's constraint
//! violation stopping its runner.

use std::time::Duration;

use eventweave_core::runner::RetryPolicy;
use eventweave_core::sql::{Sql, SqlDialect, SqlErrorKind};
use eventweave_core::testing::sql::{
    UNIQUE_ADDED_TABLE, UniqueAdded, check_bad_statements, check_constraint_failure, check_values,
};
use eventweave_sqlite::{SqliteSink, SqliteStore, SqliteTx};

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn sink(store: &SqliteStore) -> SqliteSink<UniqueAdded> {
    SqliteSink::new(store, UniqueAdded).unwrap()
}

#[tokio::test]
async fn values_and_bad_statements_behave_as_on_every_database() {
    let store = SqliteStore::temporary().unwrap();
    let sink = sink(&store);
    let tx: &SqliteTx = sink.unit();
    assert_eq!(Sql::dialect(tx), SqlDialect::Sqlite);
    check_values(tx).await;
    check_bad_statements(tx).await;
    let reader = store.reader();
    check_values(&reader).await;
    check_bad_statements(&reader).await;
}

#[tokio::test]
async fn bytes_and_booleans_round_trip_and_the_reader_refuses_writes() {
    let store = SqliteStore::temporary().unwrap();
    let sink = sink(&store);
    sink.setup("CREATE TABLE kinds (b BLOB, flag BOOLEAN)")
        .await
        .unwrap();
    let tx = sink.unit();
    let written = Sql::execute(
        tx,
        "INSERT INTO kinds (b, flag) VALUES ($1, $2), ($1, $3)",
        (b"\x00\xffbytes".as_slice(), true, false),
    )
    .await
    .unwrap();
    assert_eq!(written, 2);
    let reader = store.reader();
    let rows = reader
        .query("SELECT b, flag FROM kinds ORDER BY flag", ())
        .await
        .unwrap();
    assert_eq!(rows[0].get::<Vec<u8>>(0).unwrap(), b"\x00\xffbytes");
    assert!(!rows[0].get::<bool>(1).unwrap());
    assert!(rows[1].get::<bool>(1).unwrap());

    let refused = reader.execute("DELETE FROM kinds", ()).await.unwrap_err();
    assert_eq!(refused.kind(), SqlErrorKind::Refused, "{refused}");
    let count = reader
        .query_opt("SELECT count(*) FROM kinds", ())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count.get::<i64>(0).unwrap(), 2, "nothing was deleted");
}

#[tokio::test]
async fn only_numbered_dollar_parameters_are_portable() {
    let store = SqliteStore::temporary().unwrap();
    let reader = store.reader();
    for sql in ["SELECT ?1", "SELECT :n", "SELECT ?"] {
        let error = reader.query(sql, (1,)).await.unwrap_err();
        assert_eq!(error.kind(), SqlErrorKind::Conversion, "{sql}: {error}");
        assert!(error.message().contains("$1"), "{sql}: {error}");
    }
}

#[tokio::test]
async fn a_constraint_violation_stops_the_runner_at_its_event() {
    let store = SqliteStore::temporary().unwrap();
    let sink = sink(&store);
    sink.setup(UNIQUE_ADDED_TABLE).await.unwrap();
    check_constraint_failure(&store, sink, quick_retries()).await;
    let rows = store
        .reader()
        .query("SELECT n FROM unique_added ORDER BY n", ())
        .await
        .unwrap();
    let committed: Vec<i64> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(committed, [1, 2], "the first two events only");
}

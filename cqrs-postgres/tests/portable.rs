//! The portable `Sql` unit of work on PostgreSQL: the shared checks
//! (`eventweave_core::testing::sql`) on the store's reader and inside a sink's transaction, the
//! server's types the values adapt to (and those they refuse, with words saying what to do),
//! and a portable projection's constraint violation stopping its runner.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventweave_core::runner::{DurableProjection, ProjectionRunner, RetryPolicy};
use eventweave_core::sql::{Sql, SqlDialect, SqlErrorKind, SqlValue};
use eventweave_core::testing::domain::Added;
use eventweave_core::testing::sql::{
    UNIQUE_ADDED_TABLE, UniqueAdded, check_bad_statements, check_constraint_failure, check_values,
};
use eventweave_core::{
    Event, EventStore, ExpectedVersion, NewEvent, Payload, ProjectionError, RecordedEvent,
    StreamId, Uuid, new_id,
};
use eventweave_postgres::{PgSink, PgTx, PostgresConfig, PostgresStore};

/// A store on a fresh schema whose sessions also use that schema for unqualified names (the
/// sink's and the reader's statements), or `None` when skipped.
async fn fresh(test: &str) -> Option<PostgresStore> {
    let url = common::url_or_skip(test)?;
    let schema = common::fresh_config(&url).await.schema_name().to_owned();
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-csearch_path%3D{schema}");
    let config = PostgresConfig::parse(&url)
        .unwrap()
        .schema(schema)
        .pool_size(4);
    Some(PostgresStore::open(config).await.unwrap())
}

async fn drop_schema(store: &PostgresStore) {
    common::drop_schema(&common::url().unwrap(), store.config().schema_name()).await;
}

#[tokio::test]
async fn the_reader_behaves_as_on_every_database_and_reads_only() {
    let Some(store) = fresh("the_reader_behaves_as_on_every_database_and_reads_only").await else {
        return;
    };
    let reader = store.reader();
    assert_eq!(reader.dialect(), SqlDialect::Postgres);
    check_values(&reader).await;
    check_bad_statements(&reader).await;
    let refused = reader
        .execute("CREATE TABLE nope (n BIGINT)", ())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), SqlErrorKind::Refused, "{refused}");
    assert!(refused.message().contains("read-only"), "{refused}");
    // The failed statement left its connection usable (`COMMIT` became a rollback).
    check_values(&reader).await;
    drop_schema(&store).await;
}

#[tokio::test]
async fn values_adapt_to_the_types_the_server_expects() {
    let Some(store) = fresh("values_adapt_to_the_types_the_server_expects").await else {
        return;
    };
    let reader = store.reader();
    let id = Uuid::from_u128(42);
    let row = reader
        .query_opt(
            "SELECT $1::int2, $2::int4, $3::float4, $4::uuid, $5::jsonb, $6::bytea, $7::bool, \
             $8::varchar, $9::json",
            (
                7,
                -70_000,
                1.5,
                id,
                serde_json::json!({"a": [1]}),
                b"\x00\x01".as_slice(),
                true,
                "v",
                serde_json::json!([true]),
            ),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<i16>(0).unwrap(), 7);
    assert_eq!(row.get::<i32>(1).unwrap(), -70_000);
    assert_eq!(row.get::<f64>(2).unwrap(), 1.5);
    assert_eq!(row.get::<Uuid>(3).unwrap(), id);
    assert_eq!(
        row.get::<serde_json::Value>(4).unwrap(),
        serde_json::json!({"a": [1]})
    );
    assert_eq!(row.get::<Vec<u8>>(5).unwrap(), b"\x00\x01");
    assert!(row.get::<bool>(6).unwrap());
    assert_eq!(row.get::<String>(7).unwrap(), "v");
    assert_eq!(row.values()[8], SqlValue::Text("[true]".into()));

    // An integer too large for the parameter's type is refused, not truncated.
    let error = reader
        .query("SELECT $1::int4", (1i64 << 40,))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), SqlErrorKind::Conversion, "{error}");
    assert!(error.message().contains("out of range"), "{error}");
    // A value the parameter's type cannot take says how to fix the statement.
    let error = reader.query("SELECT $1::numeric", (5,)).await.unwrap_err();
    assert_eq!(error.kind(), SqlErrorKind::Conversion, "{error}");
    assert!(error.message().contains("CAST"), "{error}");
    // So does a column type without a portable value: `sum` of a BIGINT is NUMERIC.
    let row = reader
        .query_opt("SELECT sum(n) FROM (VALUES (1::bigint)) AS t (n)", ())
        .await;
    let error = row.unwrap_err();
    assert_eq!(error.kind(), SqlErrorKind::Conversion, "{error}");
    assert!(
        error.message().contains("CAST(sum(n) AS BIGINT)"),
        "{error}"
    );
    drop_schema(&store).await;
}

/// Runs the shared value checks inside a batch's transaction, and records that they passed.
struct ChecksInBatch(Arc<AtomicBool>);

impl DurableProjection<PgTx> for ChecksInBatch {
    const NAME: &'static str = "checks-in-batch";
    const EVENTS: &'static [&'static str] = &[Added::NAME];

    async fn handle(&mut self, unit: &PgTx, _: &RecordedEvent) -> Result<(), ProjectionError> {
        assert_eq!(Sql::dialect(unit), SqlDialect::Postgres);
        check_values(unit).await;
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_sinks_transaction_behaves_as_on_every_database() {
    let Some(store) = fresh("a_sinks_transaction_behaves_as_on_every_database").await else {
        return;
    };
    let event = NewEvent {
        event_id: new_id(),
        event_name: Added::NAME.into(),
        event_version: 1,
        payload: Payload::from_json(r#"{"n":1}"#.to_owned()),
        correlation_id: None,
        causation_id: None,
        metadata: Default::default(),
        tags: eventweave_core::Tags::empty(),
    };
    let recorded = store
        .append(
            &StreamId::from("checks"),
            ExpectedVersion::NoStream,
            vec![event],
        )
        .await
        .unwrap();
    let passed = Arc::new(AtomicBool::new(false));
    let running = ProjectionRunner::new(
        store.clone(),
        PgSink::new(&store, ChecksInBatch(Arc::clone(&passed))),
    )
    .spawn();
    running
        .wait_for(recorded[0].meta.position, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(passed.load(Ordering::SeqCst));
    running.stop().await;
    drop_schema(&store).await;
}

#[tokio::test]
async fn a_constraint_violation_stops_the_runner_at_its_event() {
    let Some(store) = fresh("a_constraint_violation_stops_the_runner_at_its_event").await else {
        return;
    };
    let sink = PgSink::new(&store, UniqueAdded);
    sink.setup(UNIQUE_ADDED_TABLE).await.unwrap();
    let retry = RetryPolicy {
        max_attempts: 2,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    check_constraint_failure(&store, sink, retry).await;
    let rows = store
        .reader()
        .query("SELECT n FROM unique_added ORDER BY n", ())
        .await
        .unwrap();
    let committed: Vec<i64> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(committed, [1, 2], "the first two events only");
    drop_schema(&store).await;
}

//! Conformance checks of the portable [`Sql`] unit of work, for the stores that implement it:
//! the same statements and values must behave alike on every database.
//!
//! A store crate calls [`check_values`] and [`check_bad_statements`] on its units (a sink's
//! transaction, its reader) and runs [`UniqueAdded`] under its sink to see a handler's
//! constraint violation reach the runner as a handler failure.

use std::sync::Arc;
use std::time::Duration;

use crate::envelope::{ExpectedVersion, NewEvent, Payload, RecordedEvent, UserMetadata};
use crate::error::{ProjectionError, ProjectionFailure, QueryError};
use crate::event::Event;
use crate::ids::{StreamId, Uuid, new_id};
use crate::runner::{DurableProjection, ProjectionRunner, ProjectionSink, RetryPolicy};
use crate::sql::{Sql, SqlError, SqlErrorKind, SqlValue};
use crate::store::EventStore;
use crate::testing::domain::Added;

/// Values written as parameters come back as the same values, `$n` binds by number (in any
/// order, repeated), `NULL` reads as `None`, and `query_opt` gives the first row or `None`.
/// Read-only: runs on a reader as well as in a sink's transaction.
pub async fn check_values(db: &impl Sql) {
    let row = db
        .query_opt(
            "SELECT CAST($2 AS BIGINT), CAST($1 AS TEXT), CAST($3 AS DOUBLE PRECISION), \
             CAST($4 AS BIGINT), CAST($2 AS BIGINT) + 1",
            ("text ✓", i64::MIN + 1, 2.5, None::<i64>),
        )
        .await
        .expect("a SELECT of parameters")
        .expect("one row");
    assert_eq!(row.get::<i64>(0).unwrap(), i64::MIN + 1);
    assert_eq!(row.get::<String>(1).unwrap(), "text ✓");
    assert_eq!(row.get::<f64>(2).unwrap(), 2.5);
    assert_eq!(row.get::<Option<i64>>(3).unwrap(), None);
    assert_eq!(row.get::<i64>(4).unwrap(), i64::MIN + 2, "$2 bound twice");
    assert_eq!(row.columns().len(), 5);

    let id = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let row = db
        .query_opt("SELECT CAST($1 AS TEXT) AS id", (id,))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get_named::<Uuid>("id").unwrap(), id);

    let rows = db
        .query(
            "SELECT n FROM (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) AS t \
             WHERE n > $1 ORDER BY n",
            (1u8,),
        )
        .await
        .unwrap();
    let found: Vec<u32> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(found, [2, 3]);
    let none = db.query_opt("SELECT 1 WHERE 1 = $1", (0,)).await.unwrap();
    assert_eq!(none, None);
    assert_eq!(
        db.query("SELECT CAST($1 AS BIGINT)", [SqlValue::Int(7)].as_slice())
            .await
            .unwrap()[0]
            .values(),
        [SqlValue::Int(7)]
    );
}

/// Bad statements and values fail with the documented kinds, before anything runs where the
/// values are at fault. Read-only.
pub async fn check_bad_statements(db: &impl Sql) {
    let error = db
        .query("SELECT CAST($1 AS BIGINT)", (u64::MAX,))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), SqlErrorKind::Conversion, "{error}");
    assert!(error.message().contains("18446744073709551615"), "{error}");

    let error = db
        .query("SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT)", (1,))
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        SqlErrorKind::Conversion,
        "too few values: {error}"
    );

    let error = db.query("SELEKT 1", ()).await.unwrap_err();
    assert_eq!(error.kind(), SqlErrorKind::Refused, "{error}");

    let error = db
        .query("SELECT no_such_column FROM no_such_table", ())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), SqlErrorKind::Refused, "{error}");
    assert!(error.message().contains("no_such"), "{error}");

    let row = db
        .query_opt("SELECT CAST($1 AS TEXT)", ("seven",))
        .await
        .unwrap()
        .unwrap();
    let error = row.get::<i64>(0).unwrap_err();
    assert_eq!(error.kind(), SqlErrorKind::Conversion, "{error}");
    assert!(error.message().contains("column 0"), "{error}");
}

/// The name of [`UniqueAdded`] (its checkpoint's key).
pub const UNIQUE_ADDED: &str = "unique-added";

/// The table [`UniqueAdded`] writes, in SQL both databases accept.
pub const UNIQUE_ADDED_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS unique_added (n BIGINT NOT NULL UNIQUE, stream TEXT NOT NULL)";

/// A portable durable projection (written by hand, as `#[projection]` writes one whose handlers
/// take `db: &impl Sql`): one row per `counter.added` event in [`UNIQUE_ADDED_TABLE`], whose
/// `n` is unique, so a second event with the same `n` fails its handler with a constraint
/// violation.
#[derive(Debug, Default)]
pub struct UniqueAdded;

impl<U: Sql> DurableProjection<U> for UniqueAdded {
    const NAME: &'static str = UNIQUE_ADDED;
    const EVENTS: &'static [&'static str] = &[Added::NAME];

    async fn handle(&mut self, unit: &U, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let fail = |failure| ProjectionError::new(UNIQUE_ADDED, event, failure);
        let added: Added = serde_json::from_str(event.payload.as_str())
            .map_err(|e| fail(ProjectionFailure::Handler(Arc::new(e))))?;
        unit.execute(
            "INSERT INTO unique_added (n, stream) VALUES ($1, $2)",
            (added.n, &event.meta.stream),
        )
        .await
        .map_err(|e| fail(ProjectionFailure::Handler(Arc::new(e))))?;
        Ok(())
    }
}

/// Runs [`UniqueAdded`] in `sink` over three `counter.added` events of `store` (n = 1, 2, 1):
/// the third event's handler breaks the unique constraint, so the runner stops at it (after
/// `retry`'s attempts) with a handler failure of kind [`SqlErrorKind::Constraint`], the first
/// two rows committed and the checkpoint on the second event. The sink's table must exist
/// ([`UNIQUE_ADDED_TABLE`]) and be empty.
pub async fn check_constraint_failure<S, K>(store: &S, sink: K, retry: RetryPolicy)
where
    S: EventStore + Clone,
    K: ProjectionSink,
{
    let mut recorded = Vec::new();
    for (stream, n) in [("unique-a", 1), ("unique-b", 2), ("unique-c", 1)] {
        let event = NewEvent {
            event_id: new_id(),
            event_name: Added::NAME.into(),
            event_version: Added::VERSION,
            payload: Payload::from_json(serde_json::json!({ "n": n }).to_string()),
            correlation_id: None,
            causation_id: None,
            metadata: UserMetadata::default(),
            tags: crate::Tags::empty(),
        };
        let stream = StreamId::from(stream);
        let appended = store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .expect("append");
        recorded.extend(appended);
    }
    let running = ProjectionRunner::new(store.clone(), sink)
        .retry(retry)
        .spawn();
    let error = match running
        .wait_for(recorded[2].meta.position, Duration::from_secs(30))
        .await
    {
        Err(QueryError::ProjectionFailed(error)) => error,
        other => panic!("the runner must stop at the duplicate, got {other:?}"),
    };
    assert_eq!(error.position, recorded[2].meta.position, "{error}");
    let ProjectionFailure::Handler(cause) = &error.failure else {
        panic!("a handler failure, got {error}");
    };
    let cause = cause
        .downcast_ref::<SqlError>()
        .unwrap_or_else(|| panic!("the handler's SqlError, got {cause}"));
    assert_eq!(cause.kind(), SqlErrorKind::Constraint, "{cause}");
    assert_eq!(running.checkpoint(), recorded[1].meta.position);
    running.stop().await;
}

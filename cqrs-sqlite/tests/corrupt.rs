//! Bad rows written straight into the file with SQL: each is a typed error naming stream,
//! version and event name, through the store, the command bus and projections; nothing else
//! is lost and other streams keep working.

use eventweave_core::testing::domain::{Add, Counter, Open, TotalOf, Totals};
use eventweave_core::{
    CommandError, Cqrs, DecodeError, DecodeFailure, EventStore, Position, QueryError, StoreError,
    StreamId, new_id,
};
use eventweave_sqlite::SqliteStore;
use eventweave_sqlite::rusqlite::{self, Connection};

/// Writes one event row behind the store's back and returns its position.
fn insert_row(
    store: &SqliteStore,
    stream: &str,
    version: u64,
    name: &str,
    payload: &str,
    metadata: Option<&str>,
) -> Position {
    let conn = Connection::open(store.path()).unwrap();
    conn.execute(
        "INSERT INTO events (event_id, stream, version, event_name, event_version, payload, \
         metadata, recorded_at) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, 0)",
        rusqlite::params![
            &new_id().as_bytes()[..],
            stream,
            version as i64,
            name,
            payload,
            metadata
        ],
    )
    .unwrap();
    Position(conn.last_insert_rowid() as u64)
}

async fn build_app(store: &SqliteStore) -> Cqrs<SqliteStore> {
    Cqrs::builder(store.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap()
}

fn counter(id: u64) -> StreamId {
    StreamId::from(format!("counter-{id}"))
}

#[track_caller]
fn assert_names(e: &DecodeError, stream: &StreamId, version: u64, name: &str) {
    assert_eq!(
        (&e.stream, e.version, e.event_name.as_str()),
        (stream, version, name),
        "the error names stream, version and event: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_are_typed_errors_for_the_bus_and_projections() {
    let store = SqliteStore::temporary().unwrap();
    let app = build_app(&store).await;
    let (broken, unknown, reshaped, healthy) = (1, 2, 3, 4);
    for id in [broken, unknown, reshaped, healthy] {
        app.execute(Open { id }).await.unwrap();
    }
    app.execute(Add { id: healthy, n: 2 }).await.unwrap();
    let cases = [
        (broken, "counter.added", r#"{"n": 1"#),
        (unknown, "counter.exploded", r#"{"n": 1}"#),
        (reshaped, "counter.added", r#"{"n": "many"}"#),
    ];
    let mut positions = Vec::new();
    for (id, name, payload) in cases {
        let stream = counter(id);
        positions.push(insert_row(&store, stream.as_str(), 2, name, payload, None));
    }

    for (id, name, payload) in cases {
        let stream = counter(id);
        match app.load::<Counter>(&id).await {
            Err(CommandError::Decode(e)) => {
                assert_names(&e, &stream, 2, name);
                let unknown_name = name == "counter.exploded";
                assert_eq!(
                    matches!(e.failure, DecodeFailure::UnknownEvent),
                    unknown_name,
                    "{e}"
                );
                assert_eq!(
                    matches!(e.failure, DecodeFailure::InvalidPayload(_)),
                    !unknown_name,
                    "{e}"
                );
            }
            other => panic!("loading {stream} must fail to decode, got {other:?}"),
        }
        // The cached state is at version 1: the append conflicts, the reload fails to decode.
        match app.execute(Add { id, n: 1 }).await {
            Err(CommandError::Decode(e)) => assert_names(&e, &stream, 2, name),
            other => panic!("a command on {stream} must fail to decode, got {other:?}"),
        }
        let stored = store.read_stream(&stream, 1, 10).await.unwrap();
        assert_eq!(stored.len(), 2, "nothing is lost");
        assert_eq!(stored[1].payload.as_str(), payload, "stored verbatim");
    }

    // The projection stops at the first bad event it handles (the corrupt JSON one).
    match app
        .query_after(positions[2], TotalOf(counter(healthy).to_string()))
        .await
    {
        Err(QueryError::ProjectionFailed(e)) => {
            assert_eq!(
                (
                    e.projection,
                    &e.stream,
                    e.version,
                    e.position,
                    e.event_name.as_str()
                ),
                ("totals", &counter(broken), 2, positions[0], "counter.added")
            );
        }
        other => panic!("the projection must stop at the corrupt event, got {other:?}"),
    }

    // Other streams and later reads keep working.
    app.execute(Add { id: healthy, n: 5 }).await.unwrap();
    let (state, version) = app.load::<Counter>(&healthy).await.unwrap();
    assert_eq!((state.total, version), (7, 3));
    let all = store.read_all(Position::ZERO, 100).await.unwrap();
    assert_eq!(all.len(), 4 + 1 + 3 + 1, "every event is still readable");
    // A new application on the same file builds; its projection reports the same event.
    let again = build_app(&store).await;
    assert!(matches!(
        again.query(TotalOf(String::new())).await,
        Err(QueryError::ProjectionFailed(e)) if e.position == positions[0]
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_metadata_is_a_typed_store_error_not_a_panic() {
    let store = SqliteStore::temporary().unwrap();
    let app = build_app(&store).await;
    let (bad_json, not_object, healthy) = (1, 2, 3);
    for id in [bad_json, not_object, healthy] {
        app.execute(Open { id }).await.unwrap();
    }
    let first_bad = insert_row(
        &store,
        counter(bad_json).as_str(),
        2,
        "counter.added",
        r#"{"n":1}"#,
        Some("{not json"),
    );
    let second_bad = insert_row(
        &store,
        counter(not_object).as_str(),
        2,
        "counter.added",
        r#"{"n":1}"#,
        Some("[1, 2]"),
    );

    for (id, position) in [(bad_json, first_bad), (not_object, second_bad)] {
        let stream = counter(id);
        match store.read_stream(&stream, 1, 10).await {
            Err(StoreError::Decode(e)) => {
                assert_names(&e, &stream, 2, "counter.added");
                assert!(e.to_string().contains("metadata"), "{e}");
            }
            other => panic!("reading {stream} must fail to decode, got {other:?}"),
        }
        match store.read_all(position, 10).await {
            Err(StoreError::Decode(e)) => assert_names(&e, &stream, 2, "counter.added"),
            other => panic!("read_all over the bad row must fail to decode, got {other:?}"),
        }
        match app.load::<Counter>(&id).await {
            Err(CommandError::Decode(e)) => assert_names(&e, &stream, 2, "counter.added"),
            other => panic!("loading {stream} must fail to decode, got {other:?}"),
        }
        // The first version is still readable on its own.
        assert_eq!(store.read_stream(&stream, 1, 1).await.unwrap().len(), 1);
    }
    match app.query_after(second_bad, TotalOf(String::new())).await {
        Err(QueryError::Store(StoreError::Decode(e))) => {
            assert_names(&e, &counter(bad_json), 2, "counter.added")
        }
        other => panic!("catching up over the bad row must fail to decode, got {other:?}"),
    }

    // Other streams, appends and reads past the bad rows keep working.
    let outcome = app.execute(Add { id: healthy, n: 4 }).await.unwrap();
    assert_eq!(outcome.position(), second_bad.next());
    let (state, version) = app.load::<Counter>(&healthy).await.unwrap();
    assert_eq!((state.total, version), (4, 2));
    let after = store.read_all(second_bad.next(), 10).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].meta.stream, counter(healthy));
    assert_eq!(store.head().await.unwrap(), second_bad.next());
}

#[tokio::test]
async fn unreadable_ids_and_columns_are_typed_errors_too() {
    let store = SqliteStore::temporary().unwrap();
    let stream = StreamId::from("odd");
    let conn = Connection::open(store.path()).unwrap();
    // An event id of 3 bytes, then a correlation id that is text.
    conn.execute(
        "INSERT INTO events (event_id, stream, version, event_name, event_version, payload, \
         recorded_at) VALUES (x'010203', 'odd', 1, 'odd.short_id', 1, '{}', 0)",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO events (event_id, stream, version, event_name, event_version, payload, \
         correlation_id, recorded_at) VALUES (?1, 'odd', 2, 'odd.text_correlation', 1, '{}', \
         'not an id', 0)",
        [&new_id().as_bytes()[..]],
    )
    .unwrap_err(); // STRICT tables refuse text in a BLOB column: the schema guards it already.
    match store.read_stream(&stream, 1, 10).await {
        Err(StoreError::Decode(e)) => {
            assert_names(&e, &stream, 1, "odd.short_id");
            assert!(e.to_string().contains("event_id"), "{e}");
        }
        other => panic!("a 3-byte id must fail to decode, got {other:?}"),
    }
}

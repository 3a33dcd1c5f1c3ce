//! Stored data that no longer reads back, written by hand with SQL: typed errors that name the
//! stream, version and event, never a panic, and nothing else lost.
//!
//! Rows written with SQL: unknown event names, reshaped payloads, metadata of the wrong type,
//! negative schema versions, NULLs.

mod common;

use std::time::Duration;

use eventweave_core::testing::domain::{Add, Counter, Open, TotalOf, Totals};
use eventweave_core::{
    CommandError, Cqrs, DecodeError, EventStore, Position, QueryError, StoreError, StreamId,
};
use eventweave_postgres::PostgresStore;
use tokio_postgres::Client;

struct Fixture {
    url: String,
    schema: String,
    store: PostgresStore,
    sql: Client,
}

impl Fixture {
    async fn new(url: String) -> Fixture {
        let config = common::fresh_config(&url)
            .await
            .poll_interval(Duration::from_millis(50));
        let schema = config.schema_name().to_owned();
        let store = PostgresStore::open(config).await.unwrap();
        let sql = common::raw_client(&url).await;
        Fixture {
            url,
            schema,
            store,
            sql,
        }
    }

    /// Writes a row by hand (`columns` and `values` as SQL) and returns its position.
    async fn insert(&self, columns: &str, values: &str) -> Position {
        let row = self
            .sql
            .query_one(
                &format!(
                    "INSERT INTO \"{}\".events ({columns}) VALUES ({values}) RETURNING position",
                    self.schema
                ),
                &[],
            )
            .await
            .expect("the hand-written row is accepted");
        Position(row.get::<_, i64>(0) as u64)
    }

    async fn drop(self) {
        drop(self.store);
        common::drop_schema(&self.url, &self.schema).await;
    }
}

fn counter_stream(id: u64) -> StreamId {
    StreamId::from(format!("counter-{id}"))
}

#[track_caller]
fn assert_names(e: &DecodeError, stream: &StreamId, version: u64, event_name: &str) {
    assert_eq!(
        (&e.stream, e.version, e.event_name.as_str()),
        (stream, version, event_name),
        "the error names the bad row: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_and_reshaped_payloads_written_by_hand_are_typed_errors() {
    let Some(url) =
        common::url_or_skip("unknown_names_and_reshaped_payloads_written_by_hand_are_typed_errors")
    else {
        return;
    };
    let fx = Fixture::new(url).await;
    let app = Cqrs::builder(fx.store.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    let base = common::random_u64() & 0xffff_ffff_0000;
    let (renamed, reshaped, healthy) = (base + 1, base + 2, base + 3);
    for id in [renamed, reshaped, healthy] {
        app.execute(Open { id }).await.unwrap();
    }
    let columns = "stream, version, event_id, event_name, event_version, payload";
    fx.insert(
        columns,
        &format!("'counter-{renamed}', 2, gen_random_uuid(), 'counter.renamed', 1, '{{}}'"),
    )
    .await;
    let bad = fx
        .insert(
            columns,
            &format!(
                "'counter-{reshaped}', 2, gen_random_uuid(), 'counter.added', 1, '{{\"n\": \"many\"}}'"
            ),
        )
        .await;
    for (id, name) in [(renamed, "counter.renamed"), (reshaped, "counter.added")] {
        match app.load::<Counter>(&id).await {
            Err(CommandError::Decode(e)) => assert_names(&e, &counter_stream(id), 2, name),
            other => panic!("loading counter {id} must fail to decode, got {other:?}"),
        }
        match app.execute(Add { id, n: 1 }).await {
            Err(CommandError::Decode(e)) => assert_names(&e, &counter_stream(id), 2, name),
            other => panic!("a command on counter {id} must fail to decode, got {other:?}"),
        }
    }
    app.execute(Add { id: healthy, n: 5 })
        .await
        .expect("other streams keep working");
    match app
        .query_after(bad, TotalOf(format!("counter-{reshaped}")))
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
                ("totals", &counter_stream(reshaped), 2, bad, "counter.added")
            );
        }
        other => panic!("the projection must stop at the reshaped event, got {other:?}"),
    }
    // The commands on the damaged streams first ran on cached state and lost an append race
    // (a conflict), leaving holes in the positions; `read_all` steps over a hole once every
    // transaction that could still fill it has ended, which a long transaction elsewhere on
    // the server can delay. Wait for that, within a bound.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let all = loop {
        let all = fx.store.read_all(Position::ZERO, 100).await.unwrap();
        if all.len() >= 6 || std::time::Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        all.len(),
        6,
        "every row is still readable as stored: {all:?}"
    );
    fx.drop().await;
}

/// Row-level damage the store itself detects, as `(what, columns, values, event name)`.
/// Version 2 of the stream in each case; `{stream}` is replaced by the stream name.
const DAMAGE: &[(&str, &str, &str, &str)] = &[
    (
        "metadata that is an array",
        "stream, version, event_id, event_name, event_version, payload, metadata",
        "'{stream}', 2, gen_random_uuid(), 'counter.added', 1, '{\"n\": 1}', '[1, 2]'",
        "counter.added",
    ),
    (
        "metadata that is a string",
        "stream, version, event_id, event_name, event_version, payload, metadata",
        "'{stream}', 2, gen_random_uuid(), 'counter.added', 1, '{\"n\": 1}', '\"admin\"'",
        "counter.added",
    ),
    (
        "a negative schema version",
        "stream, version, event_id, event_name, event_version, payload",
        "'{stream}', 2, gen_random_uuid(), 'counter.added', -3, '{\"n\": 1}'",
        "counter.added",
    ),
    (
        "a NULL event name (after someone dropped the NOT NULL constraint)",
        "stream, version, event_id, event_name, event_version, payload",
        "'{stream}', 2, gen_random_uuid(), NULL, 1, '{\"n\": 1}'",
        "",
    ),
    (
        "a NULL payload (after someone dropped the NOT NULL constraint)",
        "stream, version, event_id, event_name, event_version, payload",
        "'{stream}', 2, gen_random_uuid(), 'counter.added', 1, NULL",
        "counter.added",
    ),
    (
        "a NULL event id (after someone dropped the NOT NULL constraint)",
        "stream, version, event_id, event_name, event_version, payload",
        "'{stream}', 2, NULL, 'counter.added', 1, '{\"n\": 1}'",
        "counter.added",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_store_cannot_read_are_typed_errors_naming_stream_version_and_event() {
    let Some(url) = common::url_or_skip(
        "rows_the_store_cannot_read_are_typed_errors_naming_stream_version_and_event",
    ) else {
        return;
    };
    let fx = Fixture::new(url).await;
    fx.sql
        .batch_execute(&format!(
            "ALTER TABLE \"{s}\".events ALTER COLUMN event_name DROP NOT NULL;
             ALTER TABLE \"{s}\".events ALTER COLUMN payload DROP NOT NULL;
             ALTER TABLE \"{s}\".events ALTER COLUMN event_id DROP NOT NULL;",
            s = fx.schema
        ))
        .await
        .unwrap();
    // Projections would stop at the first bad row; this test is about the store and loads.
    let app = Cqrs::builder(fx.store.clone()).build().await.unwrap();
    let base = common::random_u64() & 0xffff_ffff_0000;
    let healthy = base + 100;
    app.execute(Open { id: healthy }).await.unwrap();
    for (i, &(what, columns, values, name)) in DAMAGE.iter().enumerate() {
        let id = base + i as u64;
        let stream = counter_stream(id);
        let opened = app.execute(Open { id }).await.unwrap().events[0]
            .meta
            .position;
        let bad = fx
            .insert(columns, &values.replace("{stream}", stream.as_str()))
            .await;
        match fx.store.read_stream(&stream, 1, 100).await {
            Err(StoreError::Decode(e)) => assert_names(&e, &stream, 2, name),
            other => panic!("{what}: read_stream must fail to decode, got {other:?}"),
        }
        match app.load::<Counter>(&id).await {
            Err(CommandError::Decode(e)) => assert_names(&e, &stream, 2, name),
            other => panic!("{what}: loading must fail to decode, got {other:?}"),
        }
        match fx.store.read_all(bad, 10).await {
            Err(StoreError::Decode(e)) => assert_names(&e, &stream, 2, name),
            other => panic!("{what}: read_all at the row must fail to decode, got {other:?}"),
        }
        // A read that meets the bad row after good ones returns the good ones first.
        let before = fx.store.read_all(opened, 10).await.unwrap();
        assert_eq!(
            before.iter().map(|e| e.meta.position).collect::<Vec<_>>(),
            vec![opened],
            "{what}: the events before the bad row are delivered"
        );
        // Nothing else is lost: later positions, other streams, the stream's good prefix.
        fx.store
            .read_all(bad.next(), 10)
            .await
            .expect("reads past the bad row work");
        let prefix = fx.store.read_stream(&stream, 1, 1).await.unwrap();
        assert_eq!(prefix.len(), 1, "{what}: version 1 still reads");
        app.execute(Add { id: healthy, n: 1 })
            .await
            .unwrap_or_else(|e| panic!("{what}: another stream must keep working: {e}"));
    }
    let (state, version) = app.load::<Counter>(&healthy).await.unwrap();
    assert_eq!(
        (state.total, version),
        (DAMAGE.len() as u64, 1 + DAMAGE.len() as u64)
    );
    fx.drop().await;
}

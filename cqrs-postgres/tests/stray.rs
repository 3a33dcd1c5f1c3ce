//! Transactions that never touch the events table must not stall readers: an idle session
//! holding a transaction id anywhere on the server (a batch job, a migration, a forgotten
//! `BEGIN`) holds the server's `xmin` back, yet holes left by rolled-back appends of this store
//! are stepped over, while holes that a running appender of this store holds still are not.

mod common;

use std::time::Duration;

use eventweave_core::testing::conformance::event;
use eventweave_core::{EventStore, ExpectedVersion, Position, StoreError, StreamId};
use eventweave_postgres::{PostgresConfig, PostgresStore};
use tokio_postgres::Client;

/// A session of its own that holds a transaction id until it is committed.
async fn stray_transaction(url: &str) -> Client {
    let stray = common::raw_client(url).await;
    stray
        .batch_execute("BEGIN; SELECT pg_current_xact_id();")
        .await
        .unwrap();
    stray
}

/// The reproduction of the issue: `Open`, a refused second `Open` (a rolled-back hole), a stray
/// transaction, a `Deposit`. Before the appender locks, every reader stopped at the hole for as
/// long as the stray transaction stayed open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_transaction_does_not_stall_readers_at_a_rolled_back_hole() {
    let Some(url) =
        common::url_or_skip("a_stray_transaction_does_not_stall_readers_at_a_rolled_back_hole")
    else {
        return;
    };
    let config = common::fresh_config(&url).await;
    let schema = config.schema_name().to_owned();
    let writer = PostgresStore::open(config.clone()).await.unwrap();
    let account = StreamId::from("account-1");
    let opened = writer
        .append(&account, ExpectedVersion::NoStream, vec![event("\"open\"")])
        .await
        .unwrap();
    // Another instance's `Open` of the same account: refused by the unique (stream, version)
    // constraint after drawing a position, which rolls back and leaves a hole.
    let other = PostgresStore::open(config.clone()).await.unwrap();
    let refused = other
        .append(
            &account,
            ExpectedVersion::NoStream,
            vec![event("\"again\"")],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    let stray = stray_transaction(&url).await;
    let deposited = writer
        .append(
            &account,
            ExpectedVersion::Exact(1),
            vec![event("\"deposit\"")],
        )
        .await
        .unwrap();
    assert!(
        deposited[0].meta.position.0 > opened[0].meta.position.0 + 1,
        "the refused append left a hole between the two events"
    );
    let want = vec![opened[0].meta.event_id, deposited[0].meta.event_id];

    // A new store, as another application instance would open it, and the writer itself.
    let fresh = PostgresStore::open(config.clone()).await.unwrap();
    for store in [&fresh, &writer] {
        let read = common::read_until(store, 2, Duration::from_secs(10)).await;
        assert_eq!(
            common::ids(&read),
            want,
            "both events, while the stray transaction is still open"
        );
    }
    let mut subscription = fresh.subscribe(Position(opened[0].meta.position.0 + 1));
    let next = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("the subscription steps over the hole while the stray transaction is open")
        .unwrap();
    assert_eq!(next.meta.event_id, deposited[0].meta.event_id);

    stray.batch_execute("COMMIT").await.unwrap();
    drop((writer, other, fresh));
    common::drop_schema(&url, &schema).await;
}

/// The other half of the rule: a hole that an appender of this store still holds is not
/// stepped over, stray transaction or not, and is read once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_a_running_appender_holds_is_not_skipped_beside_a_stray_transaction() {
    let Some(url) = common::url_or_skip(
        "a_hole_a_running_appender_holds_is_not_skipped_beside_a_stray_transaction",
    ) else {
        return;
    };
    let config = common::fresh_config(&url).await;
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config.clone()).await.unwrap();
    let stray = stray_transaction(&url).await;
    let slow = event("\"slow\"");
    let held = store
        .__begin_append(
            &StreamId::from("slow"),
            ExpectedVersion::NoStream,
            vec![slow.clone()],
        )
        .await
        .unwrap();
    let fast = store
        .append(
            &StreamId::from("fast"),
            ExpectedVersion::NoStream,
            vec![event("\"fast\"")],
        )
        .await
        .unwrap();
    let reader = PostgresStore::open(config).await.unwrap();
    // Several reads, so the hole is old enough for the appender locks to be looked at.
    for _ in 0..5 {
        for store in [&store, &reader] {
            let read = store.read_all(Position::ZERO, 10).await.unwrap();
            assert!(read.is_empty(), "read past a running appender: {read:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.commit().await.unwrap();
    let read = common::read_until(&reader, 2, Duration::from_secs(10)).await;
    assert_eq!(
        common::ids(&read),
        vec![slow.event_id, fast[0].meta.event_id]
    );
    stray.batch_execute("COMMIT").await.unwrap();
    drop((store, reader));
    common::drop_schema(&url, &schema).await;
}

/// Many conflicting writers leave many rolled-back holes while a stray transaction is open: a
/// reader following them gets every committed event exactly once, in order, and is not held
/// back until the stray transaction ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_writers_beside_a_stray_transaction_are_read_in_full() {
    let Some(url) =
        common::url_or_skip("contended_writers_beside_a_stray_transaction_are_read_in_full")
    else {
        return;
    };
    let config: PostgresConfig = common::fresh_config(&url).await.pool_size(8);
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config.clone()).await.unwrap();
    let stray = stray_transaction(&url).await;
    let mut writers = Vec::new();
    for w in 0..4 {
        // Each writer has its own store handle, so it cannot know the others' versions: appends
        // race on a few streams, and the losers roll back after drawing positions.
        let store = PostgresStore::open(config.clone()).await.unwrap();
        writers.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            for i in 0..60u64 {
                let stream = StreamId::from(format!("hot-{}", (i + w) % 3));
                let version = store
                    .read_stream(&stream, 1, usize::MAX)
                    .await
                    .unwrap()
                    .len();
                let result = store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(version as u64),
                        vec![event(&i.to_string())],
                    )
                    .await;
                match result {
                    Ok(recorded) => committed.extend(common::ids(&recorded)),
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => panic!("unexpected failure: {e}"),
                }
            }
            committed
        }));
    }
    let mut committed = Vec::new();
    for writer in writers {
        committed.extend(writer.await.unwrap());
    }
    let reader = PostgresStore::open(config).await.unwrap();
    let read = common::read_until(&reader, committed.len(), Duration::from_secs(20)).await;
    assert_eq!(
        read.len(),
        committed.len(),
        "every committed event, while the stray transaction is still open"
    );
    assert!(
        read.windows(2)
            .all(|w| w[0].meta.position < w[1].meta.position)
    );
    let mut got = common::ids(&read);
    got.sort();
    committed.sort();
    assert_eq!(got, committed, "exactly the committed events");
    stray.batch_execute("COMMIT").await.unwrap();
    drop((store, reader));
    common::drop_schema(&url, &schema).await;
}

//! Gap-free global order under out-of-order commits: a reader never passes a position that a
//! running transaction may still fill, steps over positions of rolled-back transactions once
//! they are known to be empty, and a subscription sees every committed event exactly once, in
//! order, while many writers commit out of order and some roll back.
//!
//! Cases: a held transaction blocks readers; a rolled-back one is stepped over; another process is
//! woken by NOTIFY; eight writers sleep inside their transactions, some rolling back, while two
//! subscribers on two store instances must see every committed event once, in order. These fail
//! when `read_all` ignores holes. One case builds the interleaving that makes the snapshot's `xmax`
//! an unsafe bound: it fails with `xmax` and passes with `next_xid`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use eventweave_core::testing::conformance::event;
use eventweave_core::{EventStore, ExpectedVersion, Position, RecordedEvent, StreamId, Uuid};
use eventweave_postgres::{PostgresConfig, PostgresStore};

async fn store_on(config: PostgresConfig) -> PostgresStore {
    PostgresStore::open(config).await.expect("open the store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_passes_a_position_a_running_transaction_holds() {
    let Some(url) =
        common::url_or_skip("a_reader_never_passes_a_position_a_running_transaction_holds")
    else {
        return;
    };
    let config = common::fresh_config(&url).await;
    let schema = config.schema_name().to_owned();
    let store = store_on(config).await;
    let first = event("\"first\"");
    let held = store
        .__begin_append(
            &StreamId::from("slow"),
            ExpectedVersion::NoStream,
            vec![first.clone()],
        )
        .await
        .unwrap();
    let early = store
        .append(
            &StreamId::from("fast"),
            ExpectedVersion::NoStream,
            vec![event("\"second\"")],
        )
        .await
        .unwrap();
    let held_position = held.recorded()[0].meta.position;
    assert!(
        held_position < early[0].meta.position,
        "the held transaction drew first"
    );
    assert!(store.head().await.unwrap() >= early[0].meta.position);
    // The later event is committed and visible, but the earlier position may still fill.
    for _ in 0..3 {
        let read = store.read_all(Position::ZERO, 100).await.unwrap();
        assert!(
            read.is_empty(),
            "read past an uncommitted position: {read:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let committed = held.commit().await.unwrap();
    let read = store.read_all(Position::ZERO, 100).await.unwrap();
    assert_eq!(
        common::ids(&read),
        vec![first.event_id, early[0].meta.event_id],
        "both, in order"
    );
    assert_eq!(read[0].meta.position, committed[0].meta.position);
    drop(store);
    common::drop_schema(&url, &schema).await;
}

/// The holder of a hole may have a *higher* transaction id than every completed one: here the
/// later position is written by a transaction that took its id first. A reader that bounded
/// the holder by the snapshot's `xmax` (one past the newest completed id) would step over the
/// hole while its holder still runs, and miss its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_held_by_a_younger_transaction_than_the_visible_row_is_not_skipped() {
    let Some(url) = common::url_or_skip(
        "a_hole_held_by_a_younger_transaction_than_the_visible_row_is_not_skipped",
    ) else {
        return;
    };
    let config = common::fresh_config(&url).await;
    let schema = config.schema_name().to_owned();
    let store = store_on(config).await;
    // T1 takes its transaction id first...
    let t1 = common::raw_client(&url).await;
    t1.batch_execute("BEGIN; SELECT pg_current_xact_id();")
        .await
        .unwrap();
    // ...T2 takes a higher id and draws position g...
    let early = event("\"held\"");
    let t2 = store
        .__begin_append(
            &StreamId::from("t2"),
            ExpectedVersion::NoStream,
            vec![early.clone()],
        )
        .await
        .unwrap();
    // ...then T1 draws a later position and commits: the newest completed id is now T1's.
    let late: Uuid = t1
        .query_one(
            &format!(
                "INSERT INTO {}.events (stream, version, event_id, event_name, event_version, payload)
                 VALUES ('t1', 1, gen_random_uuid(), 'conformance.happened', 1, '1')
                 RETURNING event_id",
                common::quote(&schema)
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    t1.batch_execute("COMMIT").await.unwrap();
    for _ in 0..5 {
        let read = store.read_all(Position::ZERO, 10).await.unwrap();
        assert!(
            read.is_empty(),
            "stepped over a hole whose holder still runs: {read:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t2.commit().await.unwrap();
    let read = store.read_all(Position::ZERO, 10).await.unwrap();
    assert_eq!(
        common::ids(&read),
        vec![early.event_id, late],
        "both events, in position order"
    );
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_position_is_stepped_over_once_its_transaction_ended() {
    let Some(url) =
        common::url_or_skip("a_rolled_back_position_is_stepped_over_once_its_transaction_ended")
    else {
        return;
    };
    let config = common::fresh_config(&url)
        .await
        .poll_interval(Duration::from_millis(200));
    let schema = config.schema_name().to_owned();
    let store = store_on(config).await;
    let held = store
        .__begin_append(
            &StreamId::from("doomed"),
            ExpectedVersion::NoStream,
            vec![event("0"), event("1")],
        )
        .await
        .unwrap();
    let kept = store
        .append(
            &StreamId::from("kept"),
            ExpectedVersion::NoStream,
            vec![event("2")],
        )
        .await
        .unwrap();
    assert!(store.read_all(Position::ZERO, 10).await.unwrap().is_empty());
    let mut subscription = store.subscribe(Position::ZERO);
    held.rollback().await.unwrap();
    // Other tests' transactions may hold the horizon back for a moment; then the hole is
    // known to be empty and the reader steps over it.
    let read = common::read_until(&store, 1, Duration::from_secs(10)).await;
    assert_eq!(
        common::ids(&read),
        common::ids(&kept),
        "only the committed event, at its position"
    );
    assert_eq!(read[0].meta.position, kept[0].meta.position);
    let got = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("the subscription steps over the rolled-back positions")
        .unwrap();
    assert_eq!(got.meta.event_id, kept[0].meta.event_id);
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_is_woken_by_notify_not_by_polling() {
    let Some(url) = common::url_or_skip("another_process_is_woken_by_notify_not_by_polling") else {
        return;
    };
    // Polling every minute: only a notification can wake the reader within the test's bound.
    let config = common::fresh_config(&url)
        .await
        .poll_interval(Duration::from_secs(60));
    let schema = config.schema_name().to_owned();
    let writer = store_on(config.clone()).await;
    let reader = store_on(config).await;
    for round in 0..3 {
        let head = reader.head().await.unwrap();
        let waiting = {
            let reader = reader.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                reader.wait_for_events(head).await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer
            .append(
                &StreamId::from("s"),
                ExpectedVersion::Any,
                vec![event(&round.to_string())],
            )
            .await
            .unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("woken well before the poll interval")
            .unwrap();
        assert!(
            waited < Duration::from_secs(10),
            "round {round}: waited {waited:?}"
        );
        assert_eq!(reader.read_all(head.next(), 10).await.unwrap().len(), 1);
    }
    drop((writer, reader));
    common::drop_schema(&url, &schema).await;
}

/// One writer's share: transactions that draw positions, sleep inside the transaction, then
/// commit or roll back. Returns the ids it committed and the ids it rolled back.
async fn writer(store: PostgresStore, w: usize, transactions: usize) -> (Vec<Uuid>, Vec<Uuid>) {
    let stream = StreamId::from(format!("writer-{w}"));
    let (mut committed, mut rolled_back) = (Vec::new(), Vec::new());
    for t in 0..transactions {
        let r = common::random_u64();
        let batch: Vec<_> = (0..1 + r % 4)
            .map(|k| event(&format!("\"{w}-{t}-{k}\"")))
            .collect();
        let batch_ids: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
        let hold = Duration::from_millis((r >> 8) % 15);
        match (r >> 16) % 10 {
            // Plain appends: committed at once.
            0..=2 => {
                store
                    .append(&stream, ExpectedVersion::Any, batch)
                    .await
                    .unwrap();
                committed.extend(batch_ids);
            }
            // Rolled back after drawing positions.
            3..=4 => {
                let held = store
                    .__begin_append(&stream, ExpectedVersion::Any, batch)
                    .await
                    .unwrap();
                tokio::time::sleep(hold).await;
                held.rollback().await.unwrap();
                rolled_back.extend(batch_ids);
            }
            // Committed after sleeping inside the transaction.
            _ => {
                let held = store
                    .__begin_append(&stream, ExpectedVersion::Any, batch)
                    .await
                    .unwrap();
                tokio::time::sleep(hold).await;
                held.commit().await.unwrap();
                committed.extend(batch_ids);
            }
        }
    }
    (committed, rolled_back)
}

/// Follows the store from position 0 until the sentinel event arrives; returns what it saw.
async fn follow(store: PostgresStore, sentinel: String) -> Vec<RecordedEvent> {
    let mut subscription = store.subscribe(Position::ZERO);
    let mut seen = Vec::new();
    loop {
        let e = subscription.next().await.expect("the subscription reads");
        if e.meta.stream.as_str() == sentinel {
            return seen;
        }
        seen.push(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_every_committed_event_once_in_order_under_out_of_order_commits() {
    let Some(url) = common::url_or_skip(
        "subscribers_see_every_committed_event_once_in_order_under_out_of_order_commits",
    ) else {
        return;
    };
    let config = common::fresh_config(&url)
        .await
        .pool_size(12)
        .poll_interval(Duration::from_millis(100));
    let schema = config.schema_name().to_owned();
    let store = store_on(config.clone()).await;
    // A second instance on the same schema stands for another process: its own pool, hole
    // bookkeeping and notification connection.
    let other = store_on(config).await;
    let sentinel = format!("sentinel-{}", common::random_u64());
    let followers = [
        tokio::spawn(follow(store.clone(), sentinel.clone())),
        tokio::spawn(follow(other.clone(), sentinel.clone())),
    ];
    let writers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(writer(store.clone(), w, 30)))
        .collect();
    let (mut committed, mut rolled_back) = (Vec::new(), HashSet::new());
    for w in writers {
        let (c, r) = w.await.unwrap();
        committed.extend(c);
        rolled_back.extend(r);
    }
    store
        .append(
            &StreamId::from(sentinel.as_str()),
            ExpectedVersion::NoStream,
            vec![event("0")],
        )
        .await
        .unwrap();
    assert!(
        !rolled_back.is_empty() && committed.len() > 100,
        "the mix is exercised"
    );
    let want: HashSet<Uuid> = committed.iter().copied().collect();
    for (i, follower) in followers.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(30), follower)
            .await
            .expect("the subscriber reaches the sentinel")
            .unwrap();
        assert!(
            seen.windows(2)
                .all(|w| w[0].meta.position < w[1].meta.position),
            "subscriber {i}: positions strictly increase"
        );
        let got: Vec<Uuid> = common::ids(&seen);
        let unique: HashSet<Uuid> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "subscriber {i}: no event twice");
        assert!(
            got.iter().all(|id| !rolled_back.contains(id)),
            "subscriber {i}: nothing rolled back"
        );
        let missed = want.difference(&unique).count();
        let extra = unique.difference(&want).count();
        assert_eq!(
            (missed, extra),
            (0, 0),
            "subscriber {i}: missed {missed} committed events, saw {extra} unknown ones"
        );
    }
    let stored = store.read_all(Position::ZERO, 100_000).await.unwrap();
    assert_eq!(
        stored.len(),
        committed.len() + 1,
        "read_all agrees, plus the sentinel"
    );
    drop((store, other));
    common::drop_schema(&url, &schema).await;
}

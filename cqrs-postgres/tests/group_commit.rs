//! Group commit: appends queued while the store's append statements were busy are written
//! together, each with its own answer (a conflict, a retry, a reused id in one of them touch no
//! other), nothing lost or written twice, and readers still see every event once, in order.
//!
//! The tests make the queue deterministic: with one statement slot
//! (`append_statements(1)`), an append to a stream whose next version is held by an uncommitted
//! transaction (the `__begin_append` hook) waits on the unique index while holding the slot;
//! everything sent meanwhile queues. Rows written by one transaction share their `xmin`, which
//! shows how many statements wrote them.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use eventweave_core::testing::conformance::event;
use eventweave_core::{
    EventQuery, EventStore, ExpectedVersion, NewEvent, Position, QueryItem, RecordedEvent,
    StoreError, StreamId, Tag, Tags, Uuid,
};
use eventweave_postgres::{HeldAppend, PostgresStore};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

/// Waits until an append of `schema` waits for a lock (the blocked append holds the slot).
async fn until_blocked(sql: &Client, schema: &str) {
    for _ in 0..3_000 {
        let waiting: i64 = sql
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'",
                &[&format!("\"{schema}\".\"events\"")],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the blocking append never waited for the held transaction");
}

/// Holds the store's only statement slot: an uncommitted append holds version 1 of `blocker`,
/// and a second append to it, spawned, waits for that row while it holds the slot. Returns the
/// held append (roll it back to free the slot) and the blocked one.
async fn hold_the_slot(
    store: &PostgresStore,
    sql: &Client,
    schema: &str,
) -> (
    HeldAppend,
    JoinHandle<Result<Vec<RecordedEvent>, StoreError>>,
) {
    let blocker = StreamId::from("blocker");
    let held = store
        .__begin_append(&blocker, ExpectedVersion::NoStream, vec![event("{}")])
        .await
        .unwrap();
    let blocked = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(&blocker, ExpectedVersion::NoStream, vec![event("{}")])
                .await
        })
    };
    until_blocked(sql, schema).await;
    (held, blocked)
}

/// Lets spawned appends run up to their place in the queue.
async fn let_them_queue() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// How many transactions wrote the rows of these events.
async fn transactions(sql: &Client, schema: &str, ids: &[Uuid]) -> i64 {
    sql.query_one(
        &format!(
            "SELECT count(DISTINCT xmin::text) FROM \"{schema}\".events WHERE event_id = ANY($1)"
        ),
        &[&ids],
    )
    .await
    .unwrap()
    .get(0)
}

/// Every stored event, read with `read_all` (which stops at holes, so this also checks that
/// the positions the groups drew are gap-free for readers).
async fn all_events(store: &PostgresStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut from = Position::ZERO;
    loop {
        let batch = store.read_all(from, 100).await.unwrap();
        let Some(last) = batch.last() else {
            return all;
        };
        from = last.meta.position.next();
        all.extend(batch);
    }
}

/// What one append of the mixed workload must answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// Its events, written now.
    Written,
    /// `Conflict` with this actual version.
    Conflict(u64),
    /// The stored events of the earlier append it repeats.
    Retried,
    /// `DuplicateEventId` (its id is stored in another stream).
    Duplicate,
}

struct Case {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    want: Want,
}

fn case(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>, want: Want) -> Case {
    Case {
        stream: StreamId::from(stream),
        expected,
        events,
        want,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_queued_appends_each_get_their_own_answer_and_nothing_is_lost_or_doubled() {
    let Some(url) = common::url_or_skip(
        "fifty_queued_appends_each_get_their_own_answer_and_nothing_is_lost_or_doubled",
    ) else {
        return;
    };
    let config = common::fresh_config(&url).await.append_statements(1);
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config).await.unwrap();
    let sql = common::raw_client(&url).await;

    // Committed before: streams at version 2, and one earlier append the retries repeat.
    let mut cases = Vec::new();
    for k in 0..5 {
        let stream = StreamId::from(format!("moved-{k}"));
        store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event("1"), event("2")],
            )
            .await
            .unwrap();
        // Decided on version 1: the stream moved on.
        cases.push(case(
            stream.as_str(),
            ExpectedVersion::Exact(1),
            vec![event("3")],
            Want::Conflict(2),
        ));
    }
    for k in 0..5 {
        let stream = format!("retried-{k}");
        let events = vec![event(r#"{"a":1}"#), event(r#"{"b":2}"#)];
        store
            .append(
                &StreamId::from(stream.as_str()),
                ExpectedVersion::NoStream,
                events.clone(),
            )
            .await
            .unwrap();
        cases.push(case(
            &stream,
            ExpectedVersion::NoStream,
            events,
            Want::Retried,
        ));
    }
    let taken = event("{}");
    store
        .append(
            &StreamId::from("owner"),
            ExpectedVersion::NoStream,
            vec![taken.clone()],
        )
        .await
        .unwrap();
    // The bad row: an id already stored in another stream. Its group's statement fails on the
    // unique index; only this append may fail.
    cases.push(case(
        "reuses-an-id",
        ExpectedVersion::NoStream,
        vec![event("{}"), taken],
        Want::Duplicate,
    ));
    for k in 0..31 {
        cases.push(case(
            &format!("fresh-{k}"),
            ExpectedVersion::NoStream,
            vec![event(&k.to_string())],
            Want::Written,
        ));
    }
    for k in 0..4 {
        cases.push(case(
            &format!("any-{k}"),
            ExpectedVersion::Any,
            vec![event("1"), event("2"), event("3")],
            Want::Written,
        ));
    }
    // Two creations of one stream: exactly one wins.
    for _ in 0..2 {
        cases.push(case(
            "twice",
            ExpectedVersion::NoStream,
            vec![event("{}")],
            Want::Written,
        ));
    }
    cases.push(case(
        "two-at-once",
        ExpectedVersion::NoStream,
        vec![event("1")],
        Want::Written,
    ));
    cases.push(case(
        "two-at-once",
        ExpectedVersion::Exact(5),
        vec![event("1")],
        Want::Conflict(1),
    ));
    // Its actual version depends on which of the two was queued first (0 or 1); it conflicts
    // either way, since version 5 never exists.
    let undetermined = cases.len() - 1;
    assert_eq!(cases.len(), 50);

    // Hold the slot: an append waits for the held transaction's row at `blocker` version 1.
    let (held, blocked) = hold_the_slot(&store, &sql, &schema).await;
    let tasks: Vec<JoinHandle<Result<Vec<RecordedEvent>, StoreError>>> = cases
        .iter()
        .map(|c| {
            let store = store.clone();
            let (stream, expected, events) = (c.stream.clone(), c.expected, c.events.clone());
            tokio::spawn(async move { store.append(&stream, expected, events).await })
        })
        .collect();
    let_them_queue().await;
    held.rollback().await.unwrap();
    let blocked = blocked
        .await
        .unwrap()
        .expect("the blocked append goes in after the rollback");
    assert_eq!(blocked[0].meta.version, 1);

    let mut written_ids = Vec::new();
    let mut refused_ids = HashSet::new();
    let mut twice = Vec::new();
    for (i, (case, task)) in cases.iter().zip(tasks).enumerate() {
        let result = task.await.unwrap();
        let ids: Vec<Uuid> = case.events.iter().map(|e| e.event_id).collect();
        if case.stream.as_str() == "twice" {
            twice.push(result.is_ok());
            match result {
                Ok(events) => written_ids.extend(events.iter().map(|e| e.meta.event_id)),
                Err(StoreError::Conflict { actual: 1, .. }) => refused_ids.extend(ids),
                Err(other) => panic!("`twice`: {other:?}"),
            }
            continue;
        }
        if i == undetermined {
            assert!(
                matches!(result, Err(StoreError::Conflict { actual: 0 | 1, .. })),
                "{result:?}"
            );
            refused_ids.extend(ids);
            continue;
        }
        match (case.want, result) {
            (Want::Written, Ok(events)) => {
                assert_eq!(
                    events.iter().map(|e| e.meta.event_id).collect::<Vec<_>>(),
                    ids
                );
                assert!(events.iter().all(|e| e.meta.stream == case.stream));
                let versions: Vec<u64> = events.iter().map(|e| e.meta.version).collect();
                assert_eq!(versions, (1..=ids.len() as u64).collect::<Vec<_>>());
                written_ids.extend(ids);
            }
            (
                Want::Conflict(actual),
                Err(StoreError::Conflict {
                    actual: a, stream, ..
                }),
            ) => {
                assert_eq!((a, &stream), (actual, &case.stream), "{}", case.stream);
                refused_ids.extend(ids);
            }
            (Want::Retried, Ok(events)) => {
                assert_eq!(
                    events.iter().map(|e| e.meta.event_id).collect::<Vec<_>>(),
                    ids
                );
            }
            (Want::Duplicate, Err(StoreError::DuplicateEventId { event_id, stream })) => {
                assert_eq!((event_id, &stream), (ids[1], &case.stream));
                // The first event of this append was new: it must not have been written.
                refused_ids.insert(ids[0]);
            }
            (want, got) => panic!("{}: wanted {want:?}, got {got:?}", case.stream),
        }
    }
    assert_eq!(
        twice.iter().filter(|ok| **ok).count(),
        1,
        "one creation of `twice` wins"
    );

    // Stored: every written event exactly once, nothing of a refused append, in gap-free order.
    let all = all_events(&store).await;
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    for e in &all {
        *seen.entry(e.meta.event_id).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "an event was stored twice");
    for id in &written_ids {
        assert!(seen.contains_key(id), "a written event is missing");
    }
    for id in &refused_ids {
        assert!(
            !seen.contains_key(id),
            "an event of a refused append was stored"
        );
    }
    assert!(
        all.windows(2)
            .all(|w| w[0].meta.position < w[1].meta.position)
    );
    // Before: 10 moved, 10 retried, 1 owner; the blocker; now: 31 fresh, 12 any, 1 twice, 1
    // two-at-once.
    assert_eq!(all.len(), 10 + 10 + 1 + 1 + 31 + 12 + 1 + 1);

    // They went in groups: far fewer transactions than appends.
    let written_now: Vec<Uuid> = written_ids.clone();
    let txs = transactions(&sql, &schema, &written_now).await;
    assert!(
        txs < 20,
        "the 37 appends written now took {txs} transactions: they were not grouped"
    );
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_append_whose_caller_left_is_not_written_and_without_grouping_each_append_commits_alone()
 {
    let Some(url) = common::url_or_skip("a_queued_append_whose_caller_left_is_not_written") else {
        return;
    };
    let config = common::fresh_config(&url).await.append_statements(1);
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config.clone()).await.unwrap();
    let sql = common::raw_client(&url).await;
    let (held, blocked) = hold_the_slot(&store, &sql, &schema).await;
    let left = event("{}");
    let leaving = {
        let store = store.clone();
        let left = left.clone();
        tokio::spawn(async move {
            store
                .append(
                    &StreamId::from("left"),
                    ExpectedVersion::NoStream,
                    vec![left],
                )
                .await
        })
    };
    let stays = event("{}");
    let staying = {
        let store = store.clone();
        let stays = stays.clone();
        tokio::spawn(async move {
            store
                .append(
                    &StreamId::from("stays"),
                    ExpectedVersion::NoStream,
                    vec![stays],
                )
                .await
        })
    };
    let_them_queue().await;
    leaving.abort();
    assert!(leaving.await.unwrap_err().is_cancelled());
    held.rollback().await.unwrap();
    blocked.await.unwrap().unwrap();
    staying.await.unwrap().unwrap();
    assert!(store.read_event(left.event_id).await.unwrap().is_none());
    assert!(store.read_event(stays.event_id).await.unwrap().is_some());

    // The switch: without grouping, concurrent appends each commit in their own transaction.
    let alone = PostgresStore::open(config.group_commit(false))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|k| {
            let alone = alone.clone();
            tokio::spawn(async move {
                let stream = StreamId::from(format!("alone-{k}"));
                alone
                    .append(&stream, ExpectedVersion::NoStream, vec![event("{}")])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap().iter().map(|e| e.meta.event_id));
    }
    assert_eq!(transactions(&sql, &schema, &ids).await, 16);
    drop((store, alone));
    common::drop_schema(&url, &schema).await;
}

/// A tagged event of type `booked` (tags are the issue-15 `key:value` texts).
fn tagged(tags: &[&str]) -> NewEvent {
    let mut e = event("{}");
    e.event_name = "booked".to_owned().into();
    e.tags = Tags::new(tags.iter().map(|t| Tag::parse(t).unwrap()));
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tagged_appends_go_in_one_group_with_their_tags_and_a_conflict_fails_only_its_own() {
    let Some(url) = common::url_or_skip(
        "queued_tagged_appends_go_in_one_group_with_their_tags_and_a_conflict_fails_only_its_own",
    ) else {
        return;
    };
    let config = common::fresh_config(&url).await.append_statements(1);
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config.clone()).await.unwrap();
    let sql = common::raw_client(&url).await;

    // Written through another handle, so this store does not know the version and checks it in
    // the statement: the stale append is refused there, and the group is not split.
    let other = PostgresStore::open(config).await.unwrap();
    let moved = StreamId::from("moved");
    other
        .append(
            &moved,
            ExpectedVersion::NoStream,
            vec![tagged(&["course:c0"]), tagged(&["course:c0"])],
        )
        .await
        .unwrap();
    drop(other);

    // Hold the only statement slot: an append waits on the held version, the rest queue.
    let (held, blocked) = hold_the_slot(&store, &sql, &schema).await;

    // Tag texts that need quoting in an array literal read back as themselves.
    let odd = r#"note:a,b {c} "d" \e NULL"#;
    let mut tasks: Vec<(StreamId, Vec<NewEvent>, JoinHandle<_>)> = Vec::new();
    let mut spawn = |stream: StreamId, expected, events: Vec<NewEvent>| {
        let store = store.clone();
        let (s, e) = (stream.clone(), events.clone());
        let task = tokio::spawn(async move { store.append(&s, expected, e).await });
        tasks.push((stream, events, task));
    };
    for k in 0..12 {
        let course = format!("course:c{}", k % 3);
        let events = if k == 5 {
            vec![tagged(&[&course, odd]), tagged(&[&course, "student:s5"])]
        } else {
            vec![tagged(&[&course, &format!("student:s{k}")])]
        };
        spawn(
            StreamId::from(format!("t-{k}")),
            ExpectedVersion::NoStream,
            events,
        );
    }
    // An untagged append in the same group, and a stale tagged one.
    spawn(
        StreamId::from("plain"),
        ExpectedVersion::NoStream,
        vec![event("{}")],
    );
    spawn(
        moved.clone(),
        ExpectedVersion::Exact(1),
        vec![tagged(&["course:c0"])],
    );
    let_them_queue().await;
    held.rollback().await.unwrap();
    blocked.await.unwrap().unwrap();

    let mut written = Vec::new();
    let mut last = Position(0);
    for (stream, events, task) in tasks {
        let result = task.await.unwrap();
        if stream == moved {
            assert!(
                matches!(result, Err(StoreError::Conflict { actual: 2, .. })),
                "the stale append: {result:?}"
            );
            continue;
        }
        let recorded = result.unwrap_or_else(|e| panic!("{stream}: {e:?}"));
        assert_eq!(recorded.len(), events.len());
        for (r, e) in recorded.iter().zip(&events) {
            assert_eq!((r.meta.event_id, &r.meta.tags), (e.event_id, &e.tags));
        }
        written.extend(recorded.iter().map(|r| r.meta.event_id));
        last = last.max(recorded.last().unwrap().meta.position);
    }
    // One group: one transaction wrote every one of them.
    assert_eq!(
        transactions(&sql, &schema, &written).await,
        1,
        "the queued tagged appends were not written in one group"
    );

    // Their tags are stored and indexed: reading by each tag finds exactly its events. A read
    // by query is complete only through the gap-free head, which the blocker's rolled-back
    // position holds back while any older transaction on the server (another test's) is open:
    // read until it vouches for the group's last position.
    let read = |tag: &str| {
        let query = EventQuery::from_items([QueryItem::tags([Tag::parse(tag).unwrap()])]);
        let store = store.clone();
        async move {
            for _ in 0..1_000 {
                let read = store.read_query(&query, Position(1), 100).await.unwrap();
                if read.through >= last {
                    return read;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the read by query never became complete through {last:?}")
        }
    };
    let c0 = read("course:c0").await;
    // Two of `moved` (written before), then k = 0, 3, 6, 9 (one event each).
    assert_eq!(c0.events.len(), 2 + 4);
    let c2 = read("course:c2").await;
    // k = 2, 5 (two events), 8, 11.
    assert_eq!(c2.events.len(), 5);
    let odd_read = read(odd).await;
    assert_eq!(odd_read.events.len(), 1);
    assert_eq!(
        odd_read.events[0]
            .meta
            .tags
            .iter()
            .map(Tag::as_str)
            .collect::<Vec<_>>(),
        ["course:c2", odd]
    );
    let student = read("student:s7").await;
    assert_eq!(student.events.len(), 1);
    assert_eq!(student.events[0].meta.stream.as_str(), "t-7");
    // Readers still see every event once, in order (13 appends now, the blocker, `moved`).
    let all = all_events(&store).await;
    assert_eq!(all.len(), 2 + 1 + 12 + 1 + 1);
    drop(store);
    common::drop_schema(&url, &schema).await;
}

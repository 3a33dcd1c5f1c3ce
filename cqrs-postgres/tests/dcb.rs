//! Dynamic consistency boundaries under concurrent transactions, in the interleaving style of
//! `gap_free.rs`: an append or a conditional append held open inside its transaction
//! (`__begin_append`, `__begin_append_conditional`) while others run.
//!
//! Cases: conditional appends whose queries do not overlap complete while one is held (they do
//! not serialise); a matching event written by a transaction that commits after the check began
//! is refused (the check waits for it); a matching event holding a position below the read's is
//! not missed (the read's position is gap-free); appends of matching events wait for a held
//! condition and come after it in the global order; a condition waits for a group commit whose
//! statement holds a matching tagged event and is refused when it commits; a file of schema
//! version 4 upgrades in place; a stored tag that is not a tag is a typed decode error.
//!
//! Waits are observed, not timed: a session of its own (`application_name`) is polled in
//! `pg_stat_activity` until it waits on a lock; a bound of 20 s only turns a hang into a failure.

mod common;

use std::time::{Duration, Instant};

use eventweave_core::testing::dcb::{tag, tagged_event as event};
use eventweave_core::{
    AppendCondition, EventQuery, EventStore, ExpectedVersion, NewEvent, Position, QueryItem,
    StoreError, StreamId, StreamWrite, Tag,
};
use eventweave_postgres::{PostgresConfig, PostgresStore};

/// A hang becomes a failure after this long; nothing here should take more than milliseconds.
const HANG: Duration = Duration::from_secs(20);

fn write(stream: &str, events: Vec<NewEvent>) -> Vec<StreamWrite> {
    vec![StreamWrite::new(
        StreamId::from(stream),
        ExpectedVersion::Any,
        events,
    )]
}

/// A store on a fresh schema (the URL, the schema, the store), or `None` when there is no
/// PostgreSQL to test on (the test is skipped, as `common::url_or_skip` says).
async fn fresh(test: &str) -> Option<(String, String, PostgresStore)> {
    let url = common::url_or_skip(test)?;
    let config = common::fresh_config(&url).await;
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config).await.unwrap();
    Some((url, schema, store))
}

/// A store on `schema` whose sessions are named `app` (to find them in `pg_stat_activity`).
async fn store_named(url: &str, schema: &str, app: &str) -> PostgresStore {
    let sep = if url.contains('?') { '&' } else { '?' };
    let config = PostgresConfig::new(format!("{url}{sep}application_name={app}"))
        .schema(schema)
        .pool_size(4);
    PostgresStore::open(config).await.expect("open the store")
}

/// Waits until a session named `app` waits on a lock.
async fn until_waiting(url: &str, app: &str) {
    let client = common::raw_client(url).await;
    let started = Instant::now();
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(started.elapsed() < HANG, "`{app}` never waited on a lock");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {HANG:?}"))
}

fn app_name(role: &str) -> String {
    format!("dcb-{role}-{:08x}", common::random_u64() as u32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_with_disjoint_queries_do_not_wait_for_each_other() {
    let Some((url, schema, store)) =
        fresh("appends_with_disjoint_queries_do_not_wait_for_each_other").await
    else {
        return;
    };
    let (a, b) = (tag("course:a"), tag("course:b"));
    let on = |t: &Tag| {
        AppendCondition::new(
            EventQuery::from_items([QueryItem::types(["booked"]).with_tag(t.clone())]),
            Position::ZERO,
        )
    };
    let held = store
        .__begin_append_conditional(write("a", vec![event("booked", &[&a])]), Some(&on(&a)))
        .await
        .expect("the first decision on course a");
    // Course b's decision, a plain tagged append to course b and an untagged event of another
    // type: none overlaps the held query, so none waits for it.
    let on_b = within(
        "a condition on course b",
        store.append_conditional(write("b", vec![event("booked", &[&b])]), Some(&on(&b))),
    )
    .await
    .expect("course b is decided while course a is held");
    within(
        "a tagged append to course b",
        store.append(
            &StreamId::from("b"),
            ExpectedVersion::Any,
            vec![event("booked", &[&b])],
        ),
    )
    .await
    .unwrap();
    within(
        "an untagged event",
        store.append(
            &StreamId::from("c"),
            ExpectedVersion::Any,
            vec![event("noted", &[])],
        ),
    )
    .await
    .unwrap();
    // The same type on course a with another tag set still overlaps: a cancelled booking does
    // not (another type), so it goes through.
    within(
        "another type on course a",
        store.append(
            &StreamId::from("a2"),
            ExpectedVersion::Any,
            vec![event("cancelled", &[&a])],
        ),
    )
    .await
    .unwrap();
    let committed = held.commit().await.unwrap();
    assert!(committed[0].meta.position < on_b[0].meta.position);
    let read = store
        .read_query(
            &EventQuery::from_items([QueryItem::tags([a.clone()]), QueryItem::tags([b])]),
            Position(1),
            100,
        )
        .await
        .unwrap();
    assert_eq!(read.events.len(), 4, "all four tagged events, in order");
    assert!(
        read.events
            .windows(2)
            .all(|w| w[0].meta.position < w[1].meta.position)
    );
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_event_that_commits_after_the_check_began_is_refused() {
    let Some((url, schema, store)) =
        fresh("a_matching_event_that_commits_after_the_check_began_is_refused").await
    else {
        return;
    };
    let app = app_name("checker");
    let checker = store_named(&url, &schema, &app).await;
    let (course, student) = (tag("course:c1"), tag("student:s1"));
    let query = EventQuery::from_items([QueryItem::types(["booked"]).with_tag(course.clone())]);
    store
        .append(
            &StreamId::from("earlier"),
            ExpectedVersion::Any,
            vec![event("booked", &[&course])],
        )
        .await
        .unwrap();
    let read = store.read_query(&query, Position(1), 100).await.unwrap();
    assert_eq!(read.events.len(), 1);
    // A concurrent writer of a matching event (more tags than the query names) holds its
    // transaction open...
    let writer = store
        .__begin_append(
            &StreamId::from("writer"),
            ExpectedVersion::Any,
            vec![event("booked", &[&course, &student])],
        )
        .await
        .unwrap();
    let written = writer.recorded()[0].meta.position;
    assert!(written > read.through);
    // ...while the decision appends under the condition of its read.
    let condition = AppendCondition::new(query.clone(), read.through);
    let decision = tokio::spawn(async move {
        checker
            .append_conditional(
                write("decision", vec![event("booked", &[&course])]),
                Some(&condition),
            )
            .await
    });
    until_waiting(&url, &app).await;
    writer.commit().await.unwrap();
    match within("the decision", decision).await.unwrap() {
        Err(StoreError::ConditionFailed { after, conflicting }) => {
            assert_eq!((after, conflicting), (read.through, written));
        }
        other => panic!("the event committed after the check began must fail it: {other:?}"),
    }
    let after = store.read_query(&query, Position(1), 100).await.unwrap();
    assert_eq!(
        after.events.len(),
        2,
        "nothing of the refused decision was written"
    );
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_event_holding_a_position_below_the_reads_is_not_missed() {
    let Some((url, schema, store)) =
        fresh("a_matching_event_holding_a_position_below_the_reads_is_not_missed").await
    else {
        return;
    };
    let username = tag("username:ada");
    let query = EventQuery::from_items([QueryItem::types(["claimed"]).with_tag(username.clone())]);
    // A claim draws its position and stays uncommitted; a later, unrelated event commits.
    let held = store
        .__begin_append(
            &StreamId::from("first-claim"),
            ExpectedVersion::NoStream,
            vec![event("claimed", &[&username])],
        )
        .await
        .unwrap();
    let claim = held.recorded()[0].meta.position;
    let later = store
        .append(
            &StreamId::from("other"),
            ExpectedVersion::Any,
            vec![event("noted", &[])],
        )
        .await
        .unwrap();
    assert!(later[0].meta.position > claim);
    let read = store.read_query(&query, Position(1), 100).await.unwrap();
    assert!(read.events.is_empty());
    assert!(
        read.through < claim,
        "the read is complete only below the pending position: through {} with {claim} pending",
        read.through
    );
    held.commit().await.unwrap();
    let condition = AppendCondition::new(query.clone(), read.through);
    match store
        .append_conditional(
            write("second-claim", vec![event("claimed", &[&username])]),
            Some(&condition),
        )
        .await
    {
        Err(StoreError::ConditionFailed { conflicting, .. }) => assert_eq!(conflicting, claim),
        other => panic!("the claim below the read's head must fail the condition: {other:?}"),
    }
    let read = store.read_query(&query, Position(1), 100).await.unwrap();
    assert_eq!(read.events.len(), 1);
    assert!(
        read.through >= later[0].meta.position,
        "complete through the head once it commits"
    );
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_of_matching_events_wait_for_a_held_condition_and_come_after_it() {
    // A lone event: the statement of its own (`dcb/append_one.rs`).
    held_condition_case("appends_of_matching_events_wait_for_a_held_condition", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_of_matching_events_wait_for_a_held_function_call_and_come_after_it() {
    // Two events: the append function.
    held_condition_case(
        "appends_of_matching_events_wait_for_a_held_function_call",
        2,
    )
    .await;
}

/// A decision of `events` events (one debit, then notes) held under its condition while a
/// tagged and an untagged writer of matching events wait for it.
async fn held_condition_case(test: &str, events: usize) {
    let Some((url, schema, store)) = fresh(test).await else {
        return;
    };
    let decision = |account: &Tag| {
        let mut all = vec![event("debited", &[account])];
        all.extend((1..events).map(|_| event("noted", &[])));
        all
    };
    let (tagged_app, untagged_app) = (app_name("tagged"), app_name("untagged"));
    let tagged_writer = store_named(&url, &schema, &tagged_app).await;
    let untagged_writer = store_named(&url, &schema, &untagged_app).await;
    let account = tag("account:a1");
    // One item by tag (any type), one by type alone.
    let query = EventQuery::from_items([
        QueryItem::tags([account.clone()]),
        QueryItem::types(["limits-changed"]),
    ]);
    let condition = AppendCondition::new(query.clone(), Position::ZERO);
    let held = store
        .__begin_append_conditional(write("decision", decision(&account)), Some(&condition))
        .await
        .unwrap();
    let tagged = {
        let account = account.clone();
        tokio::spawn(async move {
            tagged_writer
                .append(
                    &StreamId::from("t"),
                    ExpectedVersion::Any,
                    vec![event("credited", &[&account])],
                )
                .await
        })
    };
    let untagged = tokio::spawn(async move {
        untagged_writer
            .append(
                &StreamId::from("u"),
                ExpectedVersion::Any,
                vec![event("limits-changed", &[])],
            )
            .await
    });
    until_waiting(&url, &tagged_app).await;
    until_waiting(&url, &untagged_app).await;
    let decided = held.commit().await.unwrap()[0].meta.position;
    for (what, writer) in [("tagged", tagged), ("untagged", untagged)] {
        let written = within(what, writer).await.unwrap().unwrap();
        assert!(
            written[0].meta.position > decided,
            "the {what} event comes after the decision it waited for"
        );
    }
    // The same decision again, on its old read, now fails.
    match store
        .append_conditional(write("again", decision(&account)), Some(&condition))
        .await
    {
        Err(StoreError::ConditionFailed { conflicting, .. }) => assert_eq!(conflicting, decided),
        other => panic!("want ConditionFailed, got {other:?}"),
    }
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_on_every_event_waits_for_running_appends() {
    let Some((url, schema, store)) =
        fresh("a_condition_on_every_event_waits_for_running_appends").await
    else {
        return;
    };
    let app = app_name("all");
    let checker = store_named(&url, &schema, &app).await;
    let head = store.head().await.unwrap();
    let held = store
        .__begin_append(
            &StreamId::from("w"),
            ExpectedVersion::Any,
            vec![event("noted", &[])],
        )
        .await
        .unwrap();
    let condition = AppendCondition::new(EventQuery::all(), head);
    let decision = tokio::spawn(async move {
        checker
            .append_conditional(write("d", vec![event("noted", &[])]), Some(&condition))
            .await
    });
    until_waiting(&url, &app).await;
    let written = held.commit().await.unwrap()[0].meta.position;
    match within("the decision", decision).await.unwrap() {
        Err(StoreError::ConditionFailed { conflicting, .. }) => assert_eq!(conflicting, written),
        other => panic!("want ConditionFailed, got {other:?}"),
    }
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_of_version_4_upgrades_in_place_and_bad_stored_tags_are_decode_errors() {
    let Some(url) = common::url_or_skip(
        "a_schema_of_version_4_upgrades_in_place_and_bad_stored_tags_are_decode_errors",
    ) else {
        return;
    };
    let config = common::fresh_config(&url).await;
    let schema = config.schema_name().to_owned();
    let s = common::quote(&schema);
    let store = PostgresStore::open(config.clone()).await.unwrap();
    let old = store
        .append(
            &StreamId::from("old"),
            ExpectedVersion::NoStream,
            vec![event("noted", &[])],
        )
        .await
        .unwrap();
    drop(store);
    // Back to what version 4 wrote: no tags column, no tags table, no append function.
    let client = common::raw_client(&url).await;
    let function: String = client
        .query_one(
            "SELECT p.oid::regprocedure::text FROM pg_proc AS p
             JOIN pg_namespace AS n ON n.oid = p.pronamespace
             WHERE n.nspname = $1 AND p.proname LIKE '%dcb\\_append'",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!(
            "ALTER TABLE {s}.events DROP COLUMN tags; DROP TABLE {s}.event_tags;
             DROP FUNCTION {function};
             DELETE FROM {s}.schema_migrations WHERE version >= 5;"
        ))
        .await
        .unwrap();
    let store = PostgresStore::open(config)
        .await
        .expect("version 4 upgrades");
    let read = store.read_all(Position::ZERO, 10).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].meta.event_id, old[0].meta.event_id);
    assert!(read[0].meta.tags.is_empty());
    let t = tag("k:v");
    store
        .append(
            &StreamId::from("new"),
            ExpectedVersion::NoStream,
            vec![event("noted", &[&t])],
        )
        .await
        .unwrap();
    let by_tag = store
        .read_query(
            &EventQuery::from_items([QueryItem::tags([t])]),
            Position(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_tag.events.len(), 1);

    // A row whose tags column holds something that is not a tag.
    client
        .batch_execute(&format!(
            "UPDATE {s}.events SET tags = ARRAY['no key'] WHERE stream = 'old'"
        ))
        .await
        .unwrap();
    match store.read_stream(&StreamId::from("old"), 1, 10).await {
        Err(StoreError::Decode(e)) => {
            assert_eq!((e.stream.as_str(), e.version), ("old", 1));
            assert!(e.to_string().contains("tags"), "{e}");
        }
        other => panic!("want a decode error naming the tags, got {other:?}"),
    }
    drop(store);
    common::drop_schema(&url, &schema).await;
}

/// The append functions in `schema`, as `name(types)`.
async fn append_functions(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    let rows = client
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc AS p
             JOIN pg_namespace AS n ON n.oid = p.pronamespace
             WHERE n.nspname = $1 AND p.proname LIKE '%dcb\\_append' ORDER BY 1",
            &[&schema],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Version 7 replaced the append function's parameters: a store at version 6 (its function with
/// the old signature) upgrades in place, the old signature is gone, and conditional appends run.
#[tokio::test]
async fn a_schema_of_version_6_upgrades_its_append_function_in_place() {
    let Some(url) =
        common::url_or_skip("a_schema_of_version_6_upgrades_its_append_function_in_place")
    else {
        return;
    };
    let config = common::fresh_config(&url).await;
    let schema = config.schema_name().to_owned();
    let s = common::quote(&schema);
    drop(PostgresStore::open(config.clone()).await.unwrap());
    let client = common::raw_client(&url).await;
    let now = append_functions(&client, &schema).await;
    assert_eq!(now.len(), 1, "{now:?}");
    let name = now[0].split('(').next().unwrap().to_owned();
    // Back to version 6: its function's signature (per event a write number and (event, tag)
    // pairs), with a body that must never run again.
    client
        .batch_execute(&format!(
            "DROP FUNCTION {current};
             CREATE FUNCTION {name}(text[], int8[], int4[], int8[], uuid[], text[], int4[],
                 jsonb[], jsonb[], uuid[], uuid[], int4[], text[], text[], int4, int8, jsonb,
                 bool[])
             RETURNS TABLE (o_kind int4, o_value int8, o_version int8,
                            o_recorded_at timestamptz, o_event_id uuid)
             LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'version 6 ran'; END$$;
             DELETE FROM {s}.schema_migrations WHERE version >= 7;",
            current = now[0],
        ))
        .await
        .unwrap();
    let store = PostgresStore::open(config)
        .await
        .expect("version 6 upgrades");
    let after = append_functions(&client, &schema).await;
    assert_eq!(
        after, now,
        "the old signature is dropped, the current one created"
    );
    let t = tag("course:c1");
    let condition = AppendCondition::new(
        EventQuery::from_items([QueryItem::tags([t.clone()])]),
        Position::ZERO,
    );
    // Two events: a lone event takes a statement of its own, and this is about the function.
    let book = |stream: &'static str| {
        let write = StreamWrite::new(
            StreamId::from(stream),
            ExpectedVersion::NoStream,
            vec![event("booked", &[&t]), event("noted", &[])],
        );
        store.append_conditional(vec![write], Some(&condition))
    };
    book("seat-1").await.expect("the upgraded function appends");
    match book("seat-2").await {
        Err(StoreError::ConditionFailed { .. }) => {}
        other => panic!("want the condition to fail, got {other:?}"),
    }
    drop(store);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_waits_for_a_group_holding_a_matching_tagged_event_and_is_refused() {
    let Some((url, schema, store)) =
        fresh("a_condition_waits_for_a_group_holding_a_matching_tagged_event_and_is_refused").await
    else {
        return;
    };
    // The grouping store: one statement slot, so appends sent while it is busy queue and go
    // together in one group statement.
    let group_app = app_name("group");
    let sep = if url.contains('?') { '&' } else { '?' };
    let grouping = PostgresStore::open(
        PostgresConfig::new(format!("{url}{sep}application_name={group_app}"))
            .schema(&schema)
            .pool_size(4)
            .append_statements(1),
    )
    .await
    .unwrap();
    let checker_app = app_name("checker");
    let checker = store_named(&url, &schema, &checker_app).await;
    let course = tag("course:c1");
    let query = EventQuery::from_items([QueryItem::types(["booked"]).with_tag(course.clone())]);
    let read = store.read_query(&query, Position(1), 100).await.unwrap();
    assert!(read.events.is_empty());

    // Two versions held by open transactions: `a` keeps the slot busy, `b` holds the group's
    // statement open after its tagged row (first in the group) went in.
    let (a, b) = (StreamId::from("a"), StreamId::from("b"));
    let held_a = store
        .__begin_append(&a, ExpectedVersion::NoStream, vec![event("noted", &[])])
        .await
        .unwrap();
    let held_b = store
        .__begin_append(&b, ExpectedVersion::NoStream, vec![event("noted", &[])])
        .await
        .unwrap();
    let append = |stream: StreamId, events: Vec<NewEvent>| {
        let grouping = grouping.clone();
        tokio::spawn(async move {
            grouping
                .append(&stream, ExpectedVersion::NoStream, events)
                .await
        })
    };
    let on_a = append(a, vec![event("noted", &[])]);
    until_waiting(&url, &group_app).await;
    let booking = event("booked", &[&course, &tag("student:s1")]);
    let booked = append(StreamId::from("booking"), vec![booking.clone()]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let on_b = append(b, vec![event("noted", &[])]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    held_a.rollback().await.unwrap();
    within("the append that held the slot", on_a)
        .await
        .unwrap()
        .unwrap();
    // The group [booking, b] runs: the booking's row is in, `b`'s waits for `held_b`.
    until_waiting(&url, &group_app).await;

    // A decision on the course, on the read from before the booking: it must wait for the group
    // (which holds the booking's dcb keys) and then see the booking.
    let condition = AppendCondition::new(query.clone(), read.through);
    let decision = tokio::spawn(async move {
        checker
            .append_conditional(
                write("decision", vec![event("booked", &[&course])]),
                Some(&condition),
            )
            .await
    });
    until_waiting(&url, &checker_app).await;
    assert!(!booked.is_finished(), "the booking is still in its group");
    held_b.rollback().await.unwrap();
    let booked = within("the booking", booked).await.unwrap().unwrap();
    let on_b = within("the group's untagged append", on_b)
        .await
        .unwrap()
        .unwrap();
    match within("the decision", decision).await.unwrap() {
        Err(StoreError::ConditionFailed { conflicting, .. }) => {
            assert_eq!(conflicting, booked[0].meta.position);
        }
        other => panic!("the grouped booking must fail the condition: {other:?}"),
    }
    // The booking and `b` went in one statement: one transaction id.
    let sql = common::raw_client(&url).await;
    let txs: i64 = sql
        .query_one(
            &format!(
                "SELECT count(DISTINCT xmin::text) FROM {}.events WHERE event_id = ANY($1)",
                common::quote(&schema)
            ),
            &[&vec![booking.event_id, on_b[0].meta.event_id]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(txs, 1, "the booking was not written in a group");
    drop((store, grouping));
    common::drop_schema(&url, &schema).await;
}

//! Durable projections in the store's database: checkpoints and parked events
//! (`Checkpoints for PostgresStore`), and `PgSink` (exactly once: a batch's read-model changes
//! and its checkpoint commit together) driven by the `ProjectionRunner`. Each test works in its
//! own schema and compares the read model with totals computed from what it appended.
//! Skipped, saying so, without `CQRS_POSTGRES_URL`.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::read_model::{self, Model, Totals, added_json, append_added, expected};
use eventweave_core::runner::{
    ApplyError, Checkpoints, OnFailure, ParkedEvent, Progress, ProjectionRunner, ProjectionSink,
    RetryPolicy, RunnerState,
};
use eventweave_core::{
    EventStore, ExpectedVersion, Position, ProjectionFailure, QueryError, StoreError, StreamId,
    Timestamp,
};
use eventweave_postgres::{PgSink, PostgresStore};

struct Main;
impl Model for Main {
    const NAME: &'static str = "totals";
    const TABLE: &'static str = "totals";
}

struct Lenient;
impl Model for Lenient {
    const NAME: &'static str = "totals_lenient";
    const TABLE: &'static str = "totals_lenient";
}

struct Parking;
impl Model for Parking {
    const NAME: &'static str = "totals_parking";
    const TABLE: &'static str = "totals_parking";
}

struct Staged;
impl Model for Staged {
    const NAME: &'static str = "totals_staged";
    const TABLE: &'static str = "totals_staged";
}

const WAIT: Duration = Duration::from_secs(30);

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

/// A fresh store, its schema name and a raw client, or `None` when skipped.
async fn setup(test: &str) -> Option<(PostgresStore, String, tokio_postgres::Client)> {
    let url = common::url_or_skip(test)?;
    let store = common::open_fresh(None).await;
    let schema = store.config().schema_name().to_owned();
    let client = common::raw_client(&url).await;
    Some((store, schema, client))
}

/// (stream, n) of the stored `counter.added` events up to `through`, read back from the store.
async fn stored_through(store: &PostgresStore, through: Position) -> Vec<(String, u64)> {
    let events = store.read_all(Position::ZERO, 100_000).await.unwrap();
    events
        .iter()
        .filter(|e| e.meta.position <= through)
        .map(|e| {
            let json: serde_json::Value = serde_json::from_str(e.payload.as_str()).unwrap();
            (e.meta.stream.to_string(), json["n"].as_u64().unwrap())
        })
        .collect()
}

fn parked(projection: &str, position: u64, error: &str) -> ParkedEvent {
    ParkedEvent {
        projection: projection.to_owned(),
        position: Position(position),
        event_id: eventweave_core::new_id(),
        stream: StreamId::from(format!("s-{position}")),
        version: position * 10,
        event_name: "counter.added".to_owned(),
        error: error.to_owned(),
        // Microseconds, as the database keeps them.
        parked_at: Timestamp(1_700_000_000_000_000 + position as i64),
    }
}

#[tokio::test]
async fn checkpoints_are_saved_overwritten_and_moved_by_parking() {
    let Some((store, _, _)) = setup("checkpoints_are_saved_overwritten_and_moved_by_parking").await
    else {
        return;
    };
    assert_eq!(
        store.load_checkpoint("unknown").await.unwrap(),
        Position::ZERO
    );
    assert!(store.parked_events("unknown").await.unwrap().is_empty());

    store.save_checkpoint("a", Position(5)).await.unwrap();
    assert_eq!(store.load_checkpoint("a").await.unwrap(), Position(5));
    store.save_checkpoint("a", Position(3)).await.unwrap();
    assert_eq!(
        store.load_checkpoint("a").await.unwrap(),
        Position(3),
        "overwritten"
    );
    assert_eq!(
        store.load_checkpoint("b").await.unwrap(),
        Position::ZERO,
        "per projection"
    );

    let late = parked("a", 10, "boom at 10");
    store.park_event(late.clone()).await.unwrap();
    assert_eq!(
        store.load_checkpoint("a").await.unwrap(),
        Position(10),
        "park moves it"
    );
    let early = parked("a", 7, "boom at 7");
    store.park_event(early.clone()).await.unwrap();
    assert_eq!(
        store.load_checkpoint("a").await.unwrap(),
        Position(10),
        "a park never moves a checkpoint back"
    );
    let unknown = parked("c", 4, "first park of c");
    store.park_event(unknown.clone()).await.unwrap();
    assert_eq!(store.load_checkpoint("c").await.unwrap(), Position(4));

    assert_eq!(
        store.parked_events("a").await.unwrap(),
        vec![early, late],
        "in position order"
    );
    assert_eq!(store.parked_events("c").await.unwrap(), vec![unknown]);
    assert!(store.parked_events("b").await.unwrap().is_empty());
}

#[tokio::test]
async fn exactly_once_when_a_handler_fails_once() {
    let Some((store, schema, client)) = setup("exactly_once_when_a_handler_fails_once").await
    else {
        return;
    };
    read_model::create_tables::<Main>(&client, &schema).await;
    let (appended, head) = append_added(&store, 1000, 7, 1).await;
    let projection = Totals::<Main>::new(&schema);
    let knobs = Arc::clone(&projection.knobs);
    // The 300th event fails once, after its upsert: the batch must roll back whole.
    knobs.fail_once_at.store(300, Ordering::SeqCst);
    let running = ProjectionRunner::new(store.clone(), PgSink::new(&store, projection))
        .batch_size(64)
        .retry(quick_retries())
        .spawn();
    running.wait_for(head, WAIT).await.unwrap();
    assert_eq!(
        knobs.fail_once_at.load(Ordering::SeqCst),
        0,
        "the failure happened"
    );
    assert!(
        knobs.calls.load(Ordering::SeqCst) > 1000,
        "some events were handled twice in vain"
    );
    assert_eq!(
        read_model::table::<Main>(&client, &schema).await,
        expected(&appended)
    );
    assert_eq!(store.load_checkpoint(Main::NAME).await.unwrap(), head);
    let state = read_model::wait_live(&running).await;
    assert!(matches!(state, RunnerState::Live), "{state:?}");
    assert_eq!(running.status().parked, 0);
    running.stop().await;
}

#[tokio::test]
async fn undecodable_payload_stops_or_parks_and_other_projections_go_on() {
    let Some((store, schema, client)) =
        setup("undecodable_payload_stops_or_parks_and_other_projections_go_on").await
    else {
        return;
    };
    read_model::create_tables::<Main>(&client, &schema).await;
    read_model::create_tables::<Lenient>(&client, &schema).await;
    read_model::create_tables::<Parking>(&client, &schema).await;
    let (mut before, _) = append_added(&store, 120, 3, 2).await;
    let bad_stream = StreamId::from("acct-bad");
    let bad = store
        .append(
            &bad_stream,
            ExpectedVersion::Any,
            vec![
                added_json(r#"{"n":5}"#),
                added_json(r#"{"n":"not a number"}"#),
            ],
        )
        .await
        .unwrap();
    before.push(("acct-bad".to_owned(), 5));
    let bad = bad[1].clone();
    let (after, head) = append_added(&store, 80, 3, 3).await;

    let strict = ProjectionRunner::new(
        store.clone(),
        PgSink::new(&store, Totals::<Main>::new(&schema)),
    )
    .batch_size(32)
    .retry(quick_retries())
    .spawn();
    let lenient = ProjectionRunner::new(
        store.clone(),
        PgSink::new(&store, Totals::<Lenient>::new(&schema).lenient()),
    )
    .batch_size(32)
    .spawn();
    let parking = ProjectionRunner::new(
        store.clone(),
        PgSink::new(&store, Totals::<Parking>::new(&schema)),
    )
    .batch_size(32)
    .retry(quick_retries())
    .on_failure(OnFailure::Park)
    .spawn();

    // The strict one stops at the bad event, naming it.
    let error = match strict.wait_for(head, WAIT).await {
        Err(QueryError::ProjectionFailed(error)) => error,
        other => panic!("expected the projection to fail, got {other:?}"),
    };
    assert_eq!(error.projection, Main::NAME);
    assert_eq!(error.stream, bad_stream);
    assert_eq!(error.version, bad.meta.version);
    assert_eq!(error.position, bad.meta.position);
    assert_eq!(error.event_name, "counter.added");
    assert!(
        matches!(error.failure, ProjectionFailure::Decode(_)),
        "{error}"
    );
    let text = error.to_string();
    for part in [Main::NAME, "acct-bad", "counter.added"] {
        assert!(text.contains(part), "`{text}` names {part}");
    }
    assert!(matches!(strict.status().state, RunnerState::Failed(_)));
    // Everything before the bad event is committed, also the events of its batch.
    let checkpoint = store.load_checkpoint(Main::NAME).await.unwrap();
    assert_eq!(checkpoint, Position(bad.meta.position.0 - 1));
    assert_eq!(
        read_model::table::<Main>(&client, &schema).await,
        expected(&stored_through(&store, checkpoint).await)
    );
    assert_eq!(
        read_model::table::<Main>(&client, &schema).await,
        expected(&before)
    );
    // The other projections reach the head.
    let mut all = before.clone();
    all.extend(after.iter().cloned());
    lenient.wait_for(head, WAIT).await.unwrap();
    let mut counted = expected(&all);
    counted.get_mut("acct-bad").unwrap().0 += 1; // the bad event counts, as 0
    assert_eq!(
        read_model::table::<Lenient>(&client, &schema).await,
        counted
    );

    parking.wait_for(head, WAIT).await.unwrap();
    assert_eq!(parking.status().parked, 1);
    assert_eq!(
        read_model::table::<Parking>(&client, &schema).await,
        expected(&all)
    );
    let listed = store.parked_events(Parking::NAME).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let p = &listed[0];
    assert_eq!(
        (
            p.position,
            p.event_id,
            &p.stream,
            p.version,
            p.event_name.as_str()
        ),
        (
            bad.meta.position,
            bad.meta.event_id,
            &bad_stream,
            bad.meta.version,
            "counter.added"
        )
    );
    assert!(p.error.contains("acct-bad"), "{}", p.error);
    assert_eq!(store.load_checkpoint(Parking::NAME).await.unwrap(), head);
    assert!(store.parked_events(Main::NAME).await.unwrap().is_empty());
    strict.stop().await;
    parking.stop().await;
    lenient.stop().await;
}

#[tokio::test]
async fn a_new_runner_resumes_from_the_checkpoint_and_a_rebuild_gives_the_same_table() {
    let Some((store, schema, client)) =
        setup("a_new_runner_resumes_from_the_checkpoint_and_a_rebuild_gives_the_same_table").await
    else {
        return;
    };
    read_model::create_tables::<Main>(&client, &schema).await;
    let (mut appended, head) = append_added(&store, 300, 4, 4).await;
    let first = ProjectionRunner::new(
        store.clone(),
        PgSink::new(&store, Totals::<Main>::new(&schema)),
    )
    .batch_size(50)
    .spawn();
    first.wait_for(head, WAIT).await.unwrap();
    let first_calls = first
        .stop()
        .await
        .projection()
        .knobs
        .calls
        .load(Ordering::SeqCst);
    assert_eq!(first_calls, 300);

    let (more, head) = append_added(&store, 200, 5, 5).await;
    appended.extend(more);
    let projection = Totals::<Main>::new(&schema);
    let knobs = Arc::clone(&projection.knobs);
    let second = ProjectionRunner::new(store.clone(), PgSink::new(&store, projection))
        .batch_size(50)
        .spawn();
    second.wait_for(head, WAIT).await.unwrap();
    assert_eq!(
        knobs.calls.load(Ordering::SeqCst),
        200,
        "the new runner handled only the events after the checkpoint"
    );
    let table = read_model::table::<Main>(&client, &schema).await;
    assert_eq!(table, expected(&appended));

    let reports: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = Arc::clone(&reports);
    let reached = second
        .rebuild(Some(Arc::new(move |p: &Progress| {
            sink.lock().unwrap().push(p.clone())
        })))
        .await
        .unwrap();
    assert_eq!(reached, head);
    assert_eq!(
        knobs.calls.load(Ordering::SeqCst),
        700,
        "the rebuild replayed all 500"
    );
    assert_eq!(read_model::table::<Main>(&client, &schema).await, table);
    let reports = reports.lock().unwrap().clone();
    assert!(reports.len() >= 3, "{reports:?}");
    for pair in reports.windows(2) {
        assert!(pair[0].done <= pair[1].done, "{reports:?}");
        assert!(pair[0].total <= pair[1].total, "{reports:?}");
        assert!(!pair[0].finished, "{reports:?}");
    }
    let last = reports.last().unwrap();
    assert!(last.finished);
    assert_eq!(
        (last.done, last.total, last.position),
        (head.0, head.0, head)
    );
    second.stop().await;
}

#[tokio::test]
async fn a_sink_whose_checkpoint_moved_elsewhere_refuses_to_apply() {
    let Some((store, schema, client)) =
        setup("a_sink_whose_checkpoint_moved_elsewhere_refuses_to_apply").await
    else {
        return;
    };
    read_model::create_tables::<Main>(&client, &schema).await;
    let (appended, head) = append_added(&store, 40, 2, 6).await;
    let events = store.read_all(Position::ZERO, 100).await.unwrap();
    let mut one = PgSink::new(&store, Totals::<Main>::new(&schema));
    let mut two = PgSink::new(&store, Totals::<Main>::new(&schema));
    assert_eq!(one.checkpoint().await.unwrap(), Position::ZERO);
    assert_eq!(two.checkpoint().await.unwrap(), Position::ZERO);
    one.apply(&events, head).await.unwrap();
    match two.apply(&events, head).await {
        Err(ApplyError::Store(e)) => {
            let text = e.to_string();
            assert!(text.contains("another process"), "{text}");
            assert!(text.contains(Main::NAME), "{text}");
        }
        other => panic!("expected the fence to refuse, got {other:?}"),
    }
    assert_eq!(
        read_model::table::<Main>(&client, &schema).await,
        expected(&appended)
    );
    // Once it reads the checkpoint again it goes on from there.
    assert_eq!(two.checkpoint().await.unwrap(), head);
    two.apply(&[], head).await.unwrap();
    assert_eq!(
        read_model::table::<Main>(&client, &schema).await,
        expected(&appended)
    );
}

#[tokio::test]
async fn a_dropped_apply_leaves_nothing_committed_and_no_transaction_open() {
    let Some((store, schema, client)) =
        setup("a_dropped_apply_leaves_nothing_committed_and_no_transaction_open").await
    else {
        return;
    };
    read_model::create_tables::<Main>(&client, &schema).await;
    let (appended, head) = append_added(&store, 30, 2, 7).await;
    let events = store.read_all(Position::ZERO, 100).await.unwrap();
    let projection = Totals::<Main>::new(&schema);
    let knobs = Arc::clone(&projection.knobs);
    knobs.hang_at.store(20, Ordering::SeqCst);
    let mut sink = PgSink::new(&store, projection);
    sink.checkpoint().await.unwrap();
    // Cancelled while the handler of event 20 hangs, inside the transaction.
    let cancelled =
        tokio::time::timeout(Duration::from_millis(500), sink.apply(&events, head)).await;
    assert!(cancelled.is_err(), "the apply hung and was dropped");
    assert!(read_model::table::<Main>(&client, &schema).await.is_empty());
    knobs.hang_at.store(0, Ordering::SeqCst);
    sink.apply(&events, head).await.unwrap();
    assert_eq!(
        read_model::table::<Main>(&client, &schema).await,
        expected(&appended)
    );
    // No connection of this schema's pool is left idle in a transaction.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE state LIKE 'idle in transaction%' AND application_name = 'eventweave-postgres'
                   AND query LIKE '%' || $1 || '%'",
                &[&schema],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections left in a transaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn staged_writes_commit_with_the_checkpoint_exactly_once() {
    let Some((store, schema, client)) =
        setup("staged_writes_commit_with_the_checkpoint_exactly_once").await
    else {
        return;
    };
    read_model::create_tables::<Staged>(&client, &schema).await;
    let (appended, head) = append_added(&store, 1000, 7, 11).await;
    let projection = Totals::<Staged>::new(&schema).staged(0);
    let knobs = Arc::clone(&projection.knobs);
    // The 300th event fails once after staging its upsert: nothing of its batch may stay,
    // staged or not, and the events before it commit once.
    knobs.fail_once_at.store(300, Ordering::SeqCst);
    let running = ProjectionRunner::new(store.clone(), PgSink::new(&store, projection))
        .batch_size(64)
        .retry(quick_retries())
        .spawn();
    running.wait_for(head, WAIT).await.unwrap();
    assert_eq!(knobs.fail_once_at.load(Ordering::SeqCst), 0, "it failed");
    assert!(knobs.calls.load(Ordering::SeqCst) > 1000);
    assert_eq!(
        read_model::table::<Staged>(&client, &schema).await,
        expected(&appended)
    );
    assert_eq!(store.load_checkpoint(Staged::NAME).await.unwrap(), head);
    running.stop().await;

    // A rebuild (whose reset runs in the transaction that sets the checkpoint to 0) gives the
    // same table.
    let mut sink = PgSink::new(&store, Totals::<Staged>::new(&schema).staged(0));
    sink.reset().await.unwrap();
    assert!(
        read_model::table::<Staged>(&client, &schema)
            .await
            .is_empty()
    );
    assert_eq!(sink.checkpoint().await.unwrap(), Position::ZERO);
    let events = store.read_all(Position::ZERO, 10_000).await.unwrap();
    for batch in events.chunks(100) {
        sink.apply(batch, batch.last().unwrap().meta.position)
            .await
            .unwrap();
    }
    assert_eq!(
        read_model::table::<Staged>(&client, &schema).await,
        expected(&appended)
    );
}

#[tokio::test]
async fn an_awaited_read_sees_the_writes_staged_before_it() {
    let Some((store, schema, client)) =
        setup("an_awaited_read_sees_the_writes_staged_before_it").await
    else {
        return;
    };
    read_model::create_tables::<Staged>(&client, &schema).await;
    let (appended, head) = append_added(&store, 300, 5, 12).await;
    // Every handler stages its upsert, then reads its row back and fails unless it shows the
    // upsert; every third does it, so the others' staged writes are sent by a later read.
    for read_every in [1, 3] {
        let mut sink = PgSink::new(&store, Totals::<Staged>::new(&schema).staged(read_every));
        sink.reset().await.unwrap();
        let events = store.read_all(Position::ZERO, 1000).await.unwrap();
        for batch in events.chunks(64) {
            sink.apply(batch, batch.last().unwrap().meta.position)
                .await
                .unwrap();
        }
        assert_eq!(sink.checkpoint().await.unwrap(), head);
        assert_eq!(
            read_model::table::<Staged>(&client, &schema).await,
            expected(&appended),
            "read_every {read_every}"
        );
    }
}

#[tokio::test]
async fn a_failing_staged_statement_stops_or_parks_at_the_event_that_staged_it() {
    let Some((store, schema, client)) =
        setup("a_failing_staged_statement_stops_or_parks_at_the_event_that_staged_it").await
    else {
        return;
    };
    read_model::create_tables::<Staged>(&client, &schema).await;
    read_model::create_tables::<Parking>(&client, &schema).await;
    for table in [Staged::TABLE, Parking::TABLE] {
        client
            .batch_execute(&format!(
                "ALTER TABLE \"{schema}\".\"{table}\" ADD CHECK (total >= 0)"
            ))
            .await
            .unwrap();
    }
    let (appended, head) = append_added(&store, 400, 4, 13).await;
    let events = store.read_all(Position::ZERO, 1000).await.unwrap();
    // In the middle of a batch of 32, and not at a multiple of 4: with `staged(4)` its upsert
    // is sent by the read of a later handler, which must not be blamed.
    let bad = events[150].clone();
    assert_ne!(bad.meta.position.0 % 4, 0);
    assert_ne!(bad.meta.position.0 % 32, 0);

    for (read_every, on_failure) in [(4, OnFailure::Stop), (0, OnFailure::Stop)] {
        let projection = Totals::<Staged>::new(&schema).staged(read_every);
        projection
            .knobs
            .negative_at
            .store(bad.meta.position.0, Ordering::SeqCst);
        let mut sink = PgSink::new(&store, projection);
        sink.reset().await.unwrap();
        let strict = ProjectionRunner::new(store.clone(), sink)
            .batch_size(32)
            .retry(quick_retries())
            .on_failure(on_failure)
            .spawn();
        let error = match strict.wait_for(head, WAIT).await {
            Err(QueryError::ProjectionFailed(error)) => error,
            other => panic!("expected the projection to fail, got {other:?}"),
        };
        assert_eq!(error.projection, Staged::NAME);
        assert_eq!(
            (&error.stream, error.version, error.position),
            (&bad.meta.stream, bad.meta.version, bad.meta.position),
            "read_every {read_every}: {error}"
        );
        match &error.failure {
            ProjectionFailure::Handler(e) => {
                let text = format!("{e:?}");
                assert!(text.contains("23514"), "a check violation: {text}");
            }
            other => panic!("expected a handler failure, got {other:?}"),
        }
        // Everything before the bad event is committed, also the events of its batch.
        let checkpoint = store.load_checkpoint(Staged::NAME).await.unwrap();
        assert_eq!(checkpoint, Position(bad.meta.position.0 - 1));
        assert_eq!(
            read_model::table::<Staged>(&client, &schema).await,
            expected(&stored_through(&store, checkpoint).await)
        );
        strict.stop().await;
    }

    let projection = Totals::<Parking>::new(&schema).staged(0);
    projection
        .knobs
        .negative_at
        .store(bad.meta.position.0, Ordering::SeqCst);
    let parking = ProjectionRunner::new(store.clone(), PgSink::new(&store, projection))
        .batch_size(32)
        .retry(quick_retries())
        .on_failure(OnFailure::Park)
        .spawn();
    parking.wait_for(head, WAIT).await.unwrap();
    let listed = store.parked_events(Parking::NAME).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].position, bad.meta.position);
    assert_eq!(listed[0].event_id, bad.meta.event_id);
    let mut kept = appended.clone();
    kept.remove(150);
    assert_eq!(
        read_model::table::<Parking>(&client, &schema).await,
        expected(&kept)
    );
    assert_eq!(store.load_checkpoint(Parking::NAME).await.unwrap(), head);
    parking.stop().await;
}

/// Indicative throughput of `PgSink::apply` with one upsert per event, batches of 512, each
/// upsert awaited in turn (`sink_throughput`) or staged (`sink_throughput_staged`). Run with
/// `CQRS_POSTGRES_URL=… CQRS_SINK_EVENTS=100000 cargo test --release -p eventweave-postgres --test
/// projections -- --ignored --nocapture sink_throughput`.
#[tokio::test]
#[ignore = "a measurement, not a check; see its doc comment"]
async fn sink_throughput() {
    throughput("sink_throughput", false).await;
}

/// See [`sink_throughput`].
#[tokio::test]
#[ignore = "a measurement, not a check; see the doc comment of sink_throughput"]
async fn sink_throughput_staged() {
    throughput("sink_throughput_staged", true).await;
}

async fn throughput(test: &str, staged: bool) {
    let Some((store, schema, client)) = setup(test).await else {
        return;
    };
    let count: usize = std::env::var("CQRS_SINK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    read_model::create_tables::<Main>(&client, &schema).await;
    let (appended, head) = append_added(&store, count, 100, 8).await;
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let from = events
            .last()
            .map_or(Position::ZERO, |e: &eventweave_core::RecordedEvent| {
                e.meta.position
            });
        events.extend(store.read_all(from.next(), 10_000).await.unwrap());
    }
    let projection = Totals::<Main>::new(&schema);
    let projection = if staged {
        projection.staged(0)
    } else {
        projection
    };
    let mut sink = PgSink::new(&store, projection);
    sink.checkpoint().await.unwrap();
    let started = Instant::now();
    for batch in events.chunks(512) {
        sink.apply(batch, batch.last().unwrap().meta.position)
            .await
            .unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(sink.checkpoint().await.unwrap(), head);
    assert_eq!(
        read_model::table::<Main>(&client, &schema).await,
        expected(&appended)
    );
    let how = if staged { "staged" } else { "awaited" };
    eprintln!(
        "PgSink: {count} events, one upsert each ({how}), batches of 512: {elapsed:?}, {:.0} events/s",
        count as f64 / elapsed.as_secs_f64()
    );
}

/// `PgSink::setup` creates the read model's tables before the runner starts (as
/// `SqliteSink::unit` does on SQLite), on the sink's own pool; a bad statement is a typed
/// `Backend` error that shows the server's message and SQLSTATE.
#[tokio::test]
async fn a_sink_sets_up_its_tables_and_reports_bad_set_up_sql() {
    let Some((store, schema, client)) =
        setup("a_sink_sets_up_its_tables_and_reports_bad_set_up_sql").await
    else {
        return;
    };
    let sink = PgSink::new(&store, Totals::<Main>::new(&schema));
    let table = format!("{}.set_up_here", common::quote(&schema));
    sink.setup(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY); \
         CREATE INDEX IF NOT EXISTS set_up_here_id ON {table} (id)"
    ))
    .await
    .expect("the set-up runs");
    // Twice is fine: set-up runs at every start.
    sink.setup(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY)"
    ))
    .await
    .expect("the set-up runs again");
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = $1 AND table_name = 'set_up_here'",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 1);

    let error = sink.setup("CREATE TABLEE nope ()").await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    let shown = error.to_string();
    assert!(
        shown.contains("42601") && shown.contains("syntax"),
        "{shown}"
    );
}

//! The command bus, read side and untyped dispatch, against a hand-written aggregate.

use std::time::Duration;

use eventweave_core::testing::domain::*;
use eventweave_core::{
    CommandContext, CommandError, Cqrs, DispatchError, EventStore, ExpectedVersion, MemoryStore,
    NewEvent, Payload, Position, QueryError, Router, StreamId, UserMetadata, new_id,
};

async fn app() -> Cqrs<MemoryStore> {
    Cqrs::builder(MemoryStore::new())
        .projection(Totals::default())
        .service(Limit(100))
        .build()
        .await
        .unwrap()
}

fn raw(name: &str, json: &str) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: name.to_owned().into(),
        event_version: 1,
        payload: Payload::from_json(json),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

#[tokio::test]
async fn create_then_update_records_versions_and_positions() {
    let app = app().await;
    let opened = app.execute(Open { id: 1 }).await.unwrap();
    assert_eq!(opened.version, 1);
    assert_eq!(opened.position(), Position(1));
    assert_eq!(opened.stream.as_str(), "counter-1");
    let added = app.execute(Add { id: 1, n: 5 }).await.unwrap();
    assert_eq!(added.version, 2);
    assert_eq!(added.events.len(), 1);
    assert_eq!(added.events[0].payload.as_str(), r#"{"n":5}"#);
    assert_eq!(added.events[0].meta.event_name, "counter.added");
    assert_eq!(app.store().len(), 2);
    let (state, version) = app.load::<Counter>(&1).await.unwrap();
    assert_eq!((state.total, version), (5, 2));
}

#[tokio::test]
async fn a_rejected_command_appends_nothing_and_returns_the_users_error() {
    let app = app().await;
    app.execute(Open { id: 1 }).await.unwrap();
    let err = app.execute(Add { id: 1, n: 0 }).await.unwrap_err();
    assert!(
        matches!(err, CommandError::Rejected(CounterError::Zero)),
        "{err:?}"
    );
    assert_eq!(app.store().len(), 1);
}

#[tokio::test]
async fn creation_and_update_rules() {
    let app = app().await;
    let err = app.execute(Add { id: 9, n: 1 }).await.unwrap_err();
    assert!(matches!(&err, CommandError::NotFound { stream } if stream.as_str() == "counter-9"));
    app.execute(Open { id: 9 }).await.unwrap();
    let err = app.execute(Open { id: 9 }).await.unwrap_err();
    assert!(
        matches!(err, CommandError::AlreadyExists { version: 1, .. }),
        "{err:?}"
    );
    assert_eq!(app.store().len(), 1);
}

#[tokio::test]
async fn a_panicking_handler_corrupts_nothing_and_the_next_command_works() {
    let app = app().await;
    app.execute(Open { id: 1 }).await.unwrap();
    app.execute(Add { id: 1, n: 2 }).await.unwrap();
    let err = app.execute(Add { id: 1, n: 13 }).await.unwrap_err();
    match err {
        CommandError::Panicked {
            message, command, ..
        } => {
            assert_eq!(command, "Add");
            assert!(message.contains("refuses 13"), "{message}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert_eq!(app.store().len(), 2);
    let outcome = app.execute(Add { id: 1, n: 3 }).await.unwrap();
    assert_eq!(outcome.version, 3);
    let (state, _) = app.load::<Counter>(&1).await.unwrap();
    assert_eq!(state.total, 5);
    let total = app
        .query_after(outcome.position(), TotalOf("counter-1".into()))
        .await;
    assert_eq!(total.unwrap(), 5);
}

#[tokio::test]
async fn a_panicking_apply_appends_nothing() {
    let app = app().await;
    app.execute(Open { id: 1 }).await.unwrap();
    let err = app.execute(Add { id: 1, n: 666 }).await.unwrap_err();
    assert!(matches!(err, CommandError::Panicked { .. }), "{err:?}");
    assert_eq!(app.store().len(), 1);
    assert_eq!(app.execute(Add { id: 1, n: 1 }).await.unwrap().version, 2);
}

#[tokio::test]
async fn a_stale_cache_is_detected_by_the_expected_version_and_retried() {
    let app = app().await;
    app.execute(Open { id: 1 }).await.unwrap();
    app.execute(Add { id: 1, n: 1 }).await.unwrap();
    // Another writer appends behind the cache's back.
    let stream = StreamId::from("counter-1");
    app.store()
        .append(
            &stream,
            ExpectedVersion::Exact(2),
            vec![raw("counter.added", r#"{"n":10}"#)],
        )
        .await
        .unwrap();
    let outcome = app.execute(Add { id: 1, n: 100 }).await.unwrap();
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.version, 4);
    assert_eq!(app.load::<Counter>(&1).await.unwrap().0.total, 111);
}

#[tokio::test]
async fn retries_are_bounded() {
    let app = Cqrs::builder(MemoryStore::new())
        .max_retries(0)
        .build()
        .await
        .unwrap();
    app.execute(Open { id: 1 }).await.unwrap();
    let stream = StreamId::from("counter-1");
    app.store()
        .append(
            &stream,
            ExpectedVersion::Exact(1),
            vec![raw("counter.added", r#"{"n":1}"#)],
        )
        .await
        .unwrap();
    let err = app.execute(Add { id: 1, n: 1 }).await.unwrap_err();
    assert!(
        matches!(err, CommandError::Conflict { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(app.store().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_nothing_and_projections_see_global_order() {
    let app = Cqrs::builder(MemoryStore::new())
        .projection(Totals::default())
        .max_retries(1_000)
        .build()
        .await
        .unwrap();
    for id in 0..4 {
        app.execute(Open { id }).await.unwrap();
    }
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut sum = [0u64; 4];
                for i in 0..200u64 {
                    let id = (task + i) % 4;
                    let n = 1 + (task * 7 + i) % 5;
                    app.execute(Add { id, n }).await.unwrap();
                    sum[id as usize] += n;
                }
                sum
            })
        })
        .collect();
    let mut expected = [0u64; 4];
    for task in tasks {
        for (total, n) in expected.iter_mut().zip(task.await.unwrap()) {
            *total += n;
        }
    }
    let mut events = 0;
    for id in 0..4u64 {
        let stream = StreamId::from(format!("counter-{id}"));
        let stored = app
            .store()
            .read_stream(&stream, 1, usize::MAX)
            .await
            .unwrap();
        let versions: Vec<u64> = stored.iter().map(|e| e.meta.version).collect();
        assert_eq!(versions, (1..=stored.len() as u64).collect::<Vec<_>>());
        assert_eq!(
            app.load::<Counter>(&id).await.unwrap().0.total,
            expected[id as usize]
        );
        let projected = app.query(TotalOf(stream.to_string())).await.unwrap();
        assert_eq!(projected, expected[id as usize]);
        events += stored.len();
    }
    assert_eq!(events, 4 + 8 * 200);
    let all = app
        .store()
        .read_all(Position::ZERO, usize::MAX)
        .await
        .unwrap();
    let mut ids: Vec<_> = all.iter().map(|e| e.meta.event_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "an event was duplicated");
    let seen = app.query(SeenPositions).await.unwrap();
    assert_eq!(
        seen,
        (5..=all.len() as u64).collect::<Vec<_>>(),
        "projection saw events out of order"
    );
}

#[tokio::test]
async fn services_are_injected_and_missing_ones_are_typed_errors() {
    let without = Cqrs::builder(MemoryStore::new()).build().await.unwrap();
    without.execute(Open { id: 1 }).await.unwrap();
    let err = without
        .execute(AddLimited { id: 1, n: 1 })
        .await
        .unwrap_err();
    match err {
        CommandError::MissingService { service, command } => {
            assert_eq!(command, "AddLimited");
            assert!(service.ends_with("Limit"), "{service}");
        }
        other => panic!("{other:?}"),
    }
    let app = app().await;
    app.execute(Open { id: 1 }).await.unwrap();
    app.execute(AddLimited { id: 1, n: 60 }).await.unwrap();
    let err = app.execute(AddLimited { id: 1, n: 60 }).await.unwrap_err();
    assert!(matches!(
        err,
        CommandError::Rejected(CounterError::OverLimit)
    ));
}

#[tokio::test]
async fn query_after_waits_and_times_out_with_a_typed_error() {
    let app = Cqrs::builder(MemoryStore::new())
        .projection(Totals::default())
        .query_timeout(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    app.execute(Open { id: 1 }).await.unwrap();
    let err = app
        .query_after(Position(99), TotalOf("counter-1".into()))
        .await
        .unwrap_err();
    match err {
        QueryError::Timeout {
            target,
            reached,
            projection,
            ..
        } => {
            assert_eq!(
                (target, reached, projection),
                (Position(99), Position(1), "totals")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn events_of_other_writers_reach_projections_on_build_and_on_query_after() {
    let store = MemoryStore::new();
    let stream = StreamId::from("counter-7");
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![
                raw("counter.opened", "null"),
                raw("counter.added", r#"{"n":4}"#),
            ],
        )
        .await
        .unwrap();
    let app = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    assert_eq!(app.query(TotalOf("counter-7".into())).await.unwrap(), 4);
    let more = store
        .append(
            &stream,
            ExpectedVersion::Exact(2),
            vec![raw("counter.added", r#"{"n":6}"#)],
        )
        .await
        .unwrap();
    let total = app
        .query_after(more[0].meta.position, TotalOf("counter-7".into()))
        .await;
    assert_eq!(total.unwrap(), 10);
}

#[tokio::test]
async fn queries_of_projections_the_app_does_not_run_are_typed_errors() {
    let app = Cqrs::builder(MemoryStore::new()).build().await.unwrap();
    let err = app.query(TotalOf("x".into())).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueryError::ProjectionNotRegistered {
                projection: "totals",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_projection_that_cannot_decode_stops_with_a_named_error() {
    let store = MemoryStore::new();
    let app = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    store
        .append(
            &"counter-3".into(),
            ExpectedVersion::Any,
            vec![raw("counter.added", r#"{"n":"many"}"#)],
        )
        .await
        .unwrap();
    let err = app
        .query_after(Position(1), TotalOf("counter-3".into()))
        .await
        .unwrap_err();
    match err {
        QueryError::ProjectionFailed(e) => {
            assert_eq!(
                (e.projection, e.stream.as_str(), e.version),
                ("totals", "counter-3", 1)
            );
            assert_eq!(e.event_name, "counter.added");
        }
        other => panic!("{other:?}"),
    }
    let status = app.projections();
    assert!(status[0].error.is_some());
}

#[tokio::test]
async fn corrupt_stored_events_are_typed_errors_and_other_streams_keep_working() {
    let app = app().await;
    app.execute(Open { id: 1 }).await.unwrap();
    app.execute(Open { id: 2 }).await.unwrap();
    let bad = StreamId::from("counter-1");
    app.store()
        .append(
            &bad,
            ExpectedVersion::Exact(1),
            // Stores refuse what is not JSON; a payload of the wrong shape is what remains.
            vec![raw("counter.added", "[1, 2]")],
        )
        .await
        .unwrap();
    app.store()
        .append(
            &bad,
            ExpectedVersion::Exact(2),
            vec![raw("counter.renamed", "{}")],
        )
        .await
        .unwrap();
    let err = app.load::<Counter>(&1).await.unwrap_err();
    match err {
        CommandError::Decode(d) => {
            assert_eq!(
                (d.stream.as_str(), d.version, d.event_name.as_str()),
                ("counter-1", 2, "counter.added")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.execute(Add { id: 2, n: 1 }).await.unwrap().version, 2);
}

#[tokio::test]
async fn untyped_dispatch_names_what_was_wrong() {
    let app = app().await;
    let router = Router::new(app.clone()).aggregate::<Counter>().unwrap();
    assert_eq!(router.commands(), vec!["Add", "AddLimited", "Open"]);
    router.dispatch("Open", r#"{"id": 4}"#).await.unwrap();
    let outcome = router
        .dispatch("Add", r#"{"id": 4, "n": 2}"#)
        .await
        .unwrap();
    assert_eq!(outcome.version, 2);

    match router.dispatch("Subtract", "{}").await.unwrap_err() {
        DispatchError::UnknownCommand { name, known } => {
            assert_eq!(name, "Subtract");
            assert_eq!(known, vec!["Add", "AddLimited", "Open"]);
        }
        other => panic!("{other:?}"),
    }
    match router
        .dispatch("Add", r#"{"id": 4, "n": "#)
        .await
        .unwrap_err()
    {
        DispatchError::InvalidBody { command, message } => {
            assert_eq!(command, "Add");
            assert!(message.contains("line 1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match router
        .dispatch("Add", r#"{"id": 4, "n": 0}"#)
        .await
        .unwrap_err()
    {
        DispatchError::Command(CommandError::Rejected(e)) => assert_eq!(e.to_string(), "Zero"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Router::new(app.clone())
            .aggregate::<Counter>()
            .unwrap()
            .aggregate::<Counter>(),
        Err(DispatchError::DuplicateCommand { .. })
    ));
    assert_eq!(app.store().len(), 2);
    let direct = app
        .dispatch::<Counter>("Add", r#"{"id": 4, "n": 1}"#)
        .await
        .unwrap();
    assert_eq!(direct.version, 3);
}

#[tokio::test]
async fn events_carry_correlation_and_causation() {
    let app = app().await;
    let opened = app.execute(Open { id: 1 }).await.unwrap();
    let meta = &opened.events[0].meta;
    assert_eq!(meta.causation_id, Some(opened.command_id));
    assert_eq!(meta.correlation_id, Some(opened.command_id));
    let follow = app
        .execute_with(
            Add { id: 1, n: 1 },
            CommandContext::new().caused_by(meta).with("user", "ada"),
        )
        .await
        .unwrap();
    let meta2 = &follow.events[0].meta;
    assert_eq!(meta2.correlation_id, Some(opened.correlation_id));
    assert_eq!(meta2.causation_id, Some(follow.command_id));
    assert_ne!(follow.command_id, opened.command_id);
    assert_eq!(
        meta2.metadata.get("user").and_then(|v| v.as_str()),
        Some("ada")
    );
    assert_eq!(
        meta2
            .metadata
            .get(eventweave_core::CAUSED_BY_EVENT)
            .and_then(|v| v.as_str()),
        Some(meta.event_id.to_string().as_str())
    );
}

#[tokio::test]
async fn events_carry_the_trace_context_and_commands_they_cause_join_it() {
    use eventweave_core::{TRACEPARENT, TRACESTATE, TraceContext, Uuid};
    let app = app().await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let trace = TraceContext::from_headers(tp, Some("v=1")).unwrap();
    let text = |meta: &eventweave_core::EventMeta, key: &str| {
        meta.metadata
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    // A user's entry under a reserved key is overwritten by the command's trace.
    let opened = app
        .execute_with(
            Open { id: 1 },
            CommandContext::new()
                .with(TRACEPARENT, "not mine")
                .with_trace(trace.clone()),
        )
        .await
        .unwrap();
    let meta = &opened.events[0].meta;
    assert_eq!(text(meta, TRACEPARENT).as_deref(), Some(tp));
    assert_eq!(text(meta, TRACESTATE).as_deref(), Some("v=1"));
    // `caused_by` joins the event's trace.
    let context = CommandContext::new().caused_by(meta);
    assert_eq!(context.trace(), Some(&trace));
    let follow = app
        .execute_with(Add { id: 1, n: 1 }, context)
        .await
        .unwrap();
    assert_eq!(
        text(&follow.events[0].meta, TRACEPARENT).as_deref(),
        Some(tp)
    );
    // Without a trace, nothing is written.
    let plain = app.execute(Add { id: 1, n: 1 }).await.unwrap();
    assert_eq!(text(&plain.events[0].meta, TRACEPARENT), None);
    // The trace is tracing, not content: a command id sent again with another trace is the
    // same command, answered by its first run.
    let id = Uuid::from_u128(0x5eed);
    let first = app
        .execute_with(
            Add { id: 1, n: 2 },
            CommandContext::new().with_command_id(id).with_trace(trace),
        )
        .await
        .unwrap();
    let other = TraceContext::from_headers(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        None,
    )
    .unwrap();
    let again = app
        .execute_with(
            Add { id: 1, n: 2 },
            CommandContext::new().with_command_id(id).with_trace(other),
        )
        .await
        .unwrap();
    assert_eq!(again.version, first.version);
    assert_eq!(again.events[0].meta.event_id, first.events[0].meta.event_id);
}

#[tokio::test]
async fn a_command_is_independent_of_its_streams_length_thanks_to_the_cache() {
    // With the cache disabled every command replays the stream; with it, none does. The
    // observable difference: a poisoned old event breaks uncached loads only.
    let store = MemoryStore::new();
    let app = Cqrs::builder(store.clone()).build().await.unwrap();
    app.execute(Open { id: 1 }).await.unwrap();
    for _ in 0..50 {
        app.execute(Add { id: 1, n: 1 }).await.unwrap();
    }
    assert_eq!(app.execute(Add { id: 1, n: 1 }).await.unwrap().version, 52);
    let uncached = Cqrs::builder(store)
        .cache_capacity(0)
        .build()
        .await
        .unwrap();
    assert_eq!(
        uncached.execute(Add { id: 1, n: 1 }).await.unwrap().version,
        53
    );
    // The first app's cache is now stale; it notices and retries.
    let outcome = app.execute(Add { id: 1, n: 1 }).await.unwrap();
    assert_eq!((outcome.version, outcome.attempts), (54, 2));
}

#[tokio::test]
async fn a_creation_command_on_an_uncached_existing_stream_is_already_exists() {
    let store = MemoryStore::new();
    let first = Cqrs::builder(store.clone()).build().await.unwrap();
    first.execute(Open { id: 5 }).await.unwrap();
    first.execute(Add { id: 5, n: 2 }).await.unwrap();
    // A second application (another process, or an evicted cache) has not seen counter 5.
    let second = Cqrs::builder(store.clone())
        .cache_capacity(0)
        .build()
        .await
        .unwrap();
    let err = second.execute(Open { id: 5 }).await.unwrap_err();
    assert!(
        matches!(err, CommandError::AlreadyExists { version: 2, .. }),
        "{err:?}"
    );
    assert_eq!(store.len(), 2, "nothing was appended");
    assert_eq!(
        second.execute(Add { id: 5, n: 1 }).await.unwrap().version,
        3
    );
}

#[tokio::test]
async fn build_reports_the_progress_of_the_start_up_catch_up() {
    let store = MemoryStore::new();
    let writer = Cqrs::builder(store.clone()).build().await.unwrap();
    writer.execute(Open { id: 1 }).await.unwrap();
    for _ in 0..8999 {
        writer.execute(Add { id: 1, n: 1 }).await.unwrap();
    }
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&reports);
    let app = Cqrs::builder(store)
        .projection(Totals::default())
        .on_progress(move |p| sink.lock().unwrap().push(p.clone()))
        .build()
        .await
        .unwrap();
    assert_eq!(app.query(TotalOf("counter-1".into())).await.unwrap(), 8999);
    let reports = reports.lock().unwrap();
    assert!(reports.len() >= 3, "one per batch of 4096 and a last one");
    assert!(reports.windows(2).all(|w| w[0].done <= w[1].done));
    let last = reports.last().unwrap();
    assert_eq!((last.done, last.total, last.finished), (9000, 9000, true));
    assert_eq!(reports.iter().filter(|r| r.finished).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_leave_no_event_waiting_for_the_projections() {
    // Commits of concurrent commands reach the read side out of order. While other commands of
    // this process are in flight a gap is left to them, and the last one out reads the store
    // for what is still missing: here, events of another application (another process) on the
    // same store. When every command of this process has returned, its projections must have
    // applied every event up to its last one, without a query having caught them up.
    for round in 0..20 {
        let store = MemoryStore::new();
        let app = Cqrs::builder(store.clone())
            .projection(Totals::default())
            .build()
            .await
            .unwrap();
        let other = Cqrs::builder(store.clone()).build().await.unwrap();
        let mut tasks = Vec::new();
        for task in 0..8u64 {
            let app = if task % 2 == 0 {
                app.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                let mut last = app.execute(Open { id: task }).await.unwrap().position();
                for _ in 0..50 {
                    last = app
                        .execute(Add { id: task, n: 1 })
                        .await
                        .unwrap()
                        .position();
                }
                (task % 2 == 0).then_some(last)
            }));
        }
        let mut own_last = Position::ZERO;
        for task in tasks {
            own_last = own_last.max(task.await.unwrap().unwrap_or(Position::ZERO));
        }
        assert!(
            app.position() >= own_last,
            "round {round}: applied {} of this process's events up to {own_last}",
            app.position()
        );
        app.catch_up().await.unwrap();
        for task in 0..8u64 {
            let total = app.query(TotalOf(format!("counter-{task}"))).await.unwrap();
            assert_eq!(total, 50, "round {round}, counter {task}");
        }
        let seen = app
            .query(eventweave_core::testing::domain::SeenPositions)
            .await
            .unwrap();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, once each");
    }
}

#[tokio::test]
async fn build_errors_unwrap_and_the_application_prints_itself() {
    // Two projections of one name: `build` refuses; `unwrap_err` needs `Cqrs: Debug`.
    let error = Cqrs::builder(MemoryStore::new())
        .projection(Totals::default())
        .projection(Totals::default())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            eventweave_core::BuildError::DuplicateProjection { .. }
        ),
        "{error}"
    );
    let shown = format!("{:?}", app().await);
    assert!(
        shown.starts_with("Cqrs {") && shown.contains("MemoryStore") && shown.contains("position"),
        "{shown}"
    );
}

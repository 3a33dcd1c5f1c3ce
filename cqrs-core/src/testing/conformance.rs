//! The store contract as executable checks. Each function takes a factory of fresh, empty stores
//! and panics with a message naming the broken promise. Run them all with
//! [`store_conformance_tests!`](crate::store_conformance_tests).

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

pub use crate::testing::contract::{
    a_command_id_sent_again_returns_the_first_outcome, invalid_input_is_refused_before_anything,
    read_event_finds_events_by_id, reads_with_invalid_stream_ids_are_refused,
    retries_with_other_content_are_idempotency_conflicts,
};
use crate::testing::domain::{Add, Counter, Open, TotalOf, Totals};
use crate::{
    Cqrs, EventStore, ExpectedVersion, InputField, InputProblem, InvalidInput, NewEvent, Payload,
    RecordedEvent, StoreError, StreamId, UserMetadata, new_id,
};

/// A new event with a fresh id and the given JSON payload.
pub fn event(json: &str) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: "conformance.happened".into(),
        event_version: 1,
        payload: Payload::from_json(json),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: crate::Tags::empty(),
    }
}

/// Whether two recorded events are the same event: equal envelopes and equal JSON payloads
/// (compared as JSON values, since a store may normalise formatting, as PostgreSQL's JSONB does).
pub fn same_event(a: &RecordedEvent, b: &RecordedEvent) -> bool {
    a.meta == b.meta && same_json(a.payload.as_str(), b.payload.as_str())
}

/// Whether two JSON documents are equal as values.
pub fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[track_caller]
fn assert_same_events(got: &[RecordedEvent], want: &[RecordedEvent], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: another number of events");
    for (g, w) in got.iter().zip(want) {
        assert!(same_event(g, w), "{what}:\n got  {g:?}\n want {w:?}");
    }
}

pub(crate) fn stream(name: &str) -> StreamId {
    // Unique per call, so a store reused across cases (e.g. one schema) cannot mix them up.
    StreamId::from(format!("{name}-{}", new_id().simple()))
}

/// What was appended comes back from both reads, with versions and positions assigned.
pub async fn append_and_read_round_trip<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let s = stream("round-trip");
    let written = vec![event(r#"{"a":1}"#), event(r#"{"b":[1,2,3]}"#)];
    let recorded = store
        .append(&s, ExpectedVersion::NoStream, written.clone())
        .await
        .expect("append to a new stream");
    assert_eq!(recorded.len(), 2, "append returns every recorded event");
    assert_eq!(
        recorded.iter().map(|e| e.meta.version).collect::<Vec<_>>(),
        vec![1, 2],
        "versions start at 1"
    );
    assert!(
        recorded[0].meta.position < recorded[1].meta.position,
        "positions grow within a batch"
    );
    let read = store.read_stream(&s, 1, 100).await.expect("read_stream");
    assert_same_events(&read, &recorded, "read_stream returns what append recorded");
    for (r, w) in read.iter().zip(&written) {
        assert_eq!(r.meta.event_id, w.event_id);
        assert_eq!(r.meta.event_name, w.event_name);
        assert!(same_json(r.payload.as_str(), w.payload.as_str()));
    }
    let from_second = store.read_stream(&s, 2, 100).await.unwrap();
    assert_same_events(
        &from_second,
        &recorded[1..],
        "read_stream starts at from_version",
    );
    let all = store
        .read_all(recorded[0].meta.position, 100)
        .await
        .unwrap();
    assert_same_events(
        &all[..2],
        &recorded,
        "read_all from the first position starts with the batch",
    );
    assert!(store.head().await.unwrap() >= recorded[1].meta.position);
}

/// `Any`, `NoStream` and `Exact` are enforced; a stale expectation is a typed conflict that
/// writes nothing.
pub async fn expected_versions_are_enforced<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let s = stream("versions");
    store
        .append(&s, ExpectedVersion::NoStream, vec![event("1")])
        .await
        .unwrap();
    match store
        .append(&s, ExpectedVersion::NoStream, vec![event("2")])
        .await
    {
        Err(StoreError::Conflict { actual: 1, .. }) => {}
        other => panic!("NoStream on an existing stream must conflict, got {other:?}"),
    }
    match store
        .append(&s, ExpectedVersion::Exact(3), vec![event("2")])
        .await
    {
        Err(StoreError::Conflict {
            expected: ExpectedVersion::Exact(3),
            actual: 1,
            ..
        }) => {}
        other => panic!("a wrong exact version must conflict, got {other:?}"),
    }
    store
        .append(&s, ExpectedVersion::Exact(1), vec![event("2"), event("3")])
        .await
        .unwrap();
    store
        .append(&s, ExpectedVersion::Any, vec![event("4")])
        .await
        .unwrap();
    let read = store.read_stream(&s, 1, 100).await.unwrap();
    let payloads: Vec<_> = read.iter().map(|e| e.payload.as_str().to_owned()).collect();
    assert_eq!(payloads, ["1", "2", "3", "4"], "conflicts wrote nothing");
}

/// A batch that fails part-way (an id in the middle is already stored) writes none of its events.
pub async fn batches_are_all_or_nothing<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let s = stream("atomic");
    let taken = event("0");
    store
        .append(&s, ExpectedVersion::NoStream, vec![taken.clone()])
        .await
        .unwrap();
    let batch = vec![event("1"), event("2"), taken, event("3")];
    let result = store.append(&s, ExpectedVersion::Exact(1), batch).await;
    assert!(
        matches!(result, Err(StoreError::DuplicateEventId { .. })),
        "a batch reusing a stored id in the middle must fail, got {result:?}"
    );
    let read = store.read_stream(&s, 1, 100).await.unwrap();
    assert_eq!(read.len(), 1, "the failed batch must leave nothing behind");
    store
        .append(&s, ExpectedVersion::Exact(1), vec![event("1")])
        .await
        .expect("the stream is still usable at version 1");
}

/// Appending the same events again (same ids, same stream) returns the original record and
/// writes nothing; the same ids elsewhere are an error.
pub async fn retries_with_the_same_event_ids_are_idempotent<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let s = stream("idempotent");
    let batch = vec![event("1"), event("2")];
    let first = store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    let again = store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("a retry of a committed append succeeds");
    assert_same_events(&again, &first, "a retry returns the original record");
    assert_eq!(store.read_stream(&s, 1, 100).await.unwrap().len(), 2);
    let elsewhere = store
        .append(&stream("other"), ExpectedVersion::Any, batch)
        .await;
    assert!(
        matches!(elsewhere, Err(StoreError::DuplicateEventId { .. })),
        "reusing ids on another stream must fail, got {elsewhere:?}"
    );
}

/// `read_all` returns every event once, in strictly increasing position order, from any start.
pub async fn read_all_returns_global_order_from_any_position<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let streams = [stream("a"), stream("b"), stream("c")];
    let mut positions = Vec::new();
    for i in 0..30 {
        let recorded = store
            .append(
                &streams[i % 3],
                ExpectedVersion::Any,
                vec![event(&i.to_string())],
            )
            .await
            .unwrap();
        positions.push(recorded[0].meta.position);
    }
    let first = positions[0];
    let all = store.read_all(first, 1000).await.unwrap();
    let ours: Vec<_> = all
        .iter()
        .filter(|e| streams.contains(&e.meta.stream))
        .collect();
    assert_eq!(
        ours.iter().map(|e| e.meta.position).collect::<Vec<_>>(),
        positions,
        "read_all returns events in append order with their positions"
    );
    assert!(
        all.windows(2)
            .all(|w| w[0].meta.position < w[1].meta.position),
        "positions strictly increase"
    );
    for start in [positions[7], positions[15], positions[29]] {
        let tail = store.read_all(start, 1000).await.unwrap();
        assert_eq!(
            tail[0].meta.position, start,
            "read_all is inclusive of `from`"
        );
    }
    let page = store.read_all(positions[3], 5).await.unwrap();
    assert_eq!(page.len(), 5, "read_all honours the limit");
    let after_last = store.read_all(positions[29].next(), 10).await.unwrap();
    assert!(
        after_last.iter().all(|e| !streams.contains(&e.meta.stream)),
        "nothing of ours lies beyond the last position"
    );
}

/// Stream names and payloads with quotes, semicolons, SQL and unicode, and a 1 MiB body, come
/// back byte for byte.
pub async fn data_is_stored_verbatim<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let s = StreamId::from(format!(
        "it's \"quoted\"; DROP TABLE events; -- ü 🦀 {}",
        new_id()
    ));
    let tricky = serde_json::json!({
        "text": "quote \" apostrophe ' semicolon ; backslash \\ newline \n tab \t",
        "unicode": "ü ß 漢字 🦀 \u{200b}",
        "sql": "'); DELETE FROM events; --",
    })
    .to_string();
    let big = serde_json::json!({ "blob": "x".repeat(1024 * 1024) }).to_string();
    let written = vec![event(&tricky), event(&big)];
    store
        .append(&s, ExpectedVersion::NoStream, written.clone())
        .await
        .unwrap();
    let read = store.read_stream(&s, 1, 10).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(
        read[0].meta.stream, s,
        "the stream name comes back verbatim"
    );
    for (r, w) in read.iter().zip(&written) {
        let (got, want): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(r.payload.as_str()).expect("stored payload is JSON"),
            serde_json::from_str(w.payload.as_str()).unwrap(),
        );
        assert_eq!(got, want, "payloads come back unchanged");
    }
}

/// Event id, name, version, correlation, causation, user metadata and time come back.
pub async fn metadata_round_trips<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let s = stream("meta");
    let mut e = event("{}");
    e.event_version = 3;
    e.correlation_id = Some(new_id());
    e.causation_id = Some(new_id());
    e.metadata.insert("user", "ada");
    e.metadata
        .insert("nested", serde_json::json!({"a": [1, 2]}));
    let before = crate::Timestamp::now();
    store
        .append(&s, ExpectedVersion::NoStream, vec![e.clone()])
        .await
        .unwrap();
    let read = &store.read_stream(&s, 1, 1).await.unwrap()[0];
    let m = &read.meta;
    assert_eq!(m.event_id, e.event_id);
    assert_eq!(m.event_name, e.event_name);
    assert_eq!(m.event_version, 3);
    assert_eq!(m.correlation_id, e.correlation_id);
    assert_eq!(m.causation_id, e.causation_id);
    assert_eq!(m.metadata, e.metadata, "user metadata round-trips");
    let slack = 5_000_000; // clocks of a database server may differ a little
    assert!(
        m.recorded_at.unix_micros() + slack >= before.unix_micros(),
        "recorded_at is the append time"
    );
}

/// An empty stream name is refused; an empty batch checks the version and writes nothing.
pub async fn empty_stream_names_and_empty_batches<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let refused = store
        .append(&StreamId::from(""), ExpectedVersion::Any, vec![event("1")])
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::InvalidInput(InvalidInput {
                field: InputField::StreamId,
                problem: InputProblem::Empty,
                ..
            }))
        ),
        "empty stream names are refused, got {refused:?}"
    );
    let s = stream("empty-batch");
    let none = store
        .append(&s, ExpectedVersion::NoStream, Vec::new())
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(store.read_stream(&s, 1, 10).await.unwrap().is_empty());
}

/// A subscription delivers the stored events, then live ones, without gap or duplicate, while
/// a writer appends concurrently.
pub async fn subscriptions_catch_up_then_follow_live<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let s = stream("sub");
    let mut positions = Vec::new();
    for i in 0..200 {
        let r = store
            .append(&s, ExpectedVersion::Any, vec![event(&i.to_string())])
            .await
            .unwrap();
        positions.push(r[0].meta.position);
    }
    let mut subscription = store.subscribe(positions[100]);
    let writer = {
        let store = store.clone();
        let s = s.clone();
        tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 200..400 {
                let r = store
                    .append(&s, ExpectedVersion::Any, vec![event(&i.to_string())])
                    .await
                    .unwrap();
                positions.push(r[0].meta.position);
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            positions
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 300 {
        let e = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("a live event arrives within 10 s")
            .expect("the subscription reads");
        if e.meta.stream == s {
            seen.push((e.meta.position, e.payload.as_str().to_owned()));
        }
    }
    positions.extend(writer.await.unwrap());
    let want: Vec<_> = positions[100..]
        .iter()
        .zip(100..)
        .map(|(p, i)| (*p, i.to_string()))
        .collect();
    assert_eq!(seen, want, "every event once, in order");
}

/// Eight writers append to four shared streams with expected versions, retrying on conflict:
/// versions stay contiguous and no event is lost or duplicated.
pub async fn concurrent_appends_lose_and_duplicate_nothing<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let streams: Vec<StreamId> = (0..4).map(|i| stream(&format!("race{i}"))).collect();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            let streams = streams.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let s = &streams[(w + i) % 4];
                    let e = event(&format!("\"{w}-{i}\""));
                    loop {
                        let version = store.read_stream(s, 1, usize::MAX).await.unwrap().len();
                        match store
                            .append(s, ExpectedVersion::Exact(version as u64), vec![e.clone()])
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(other) => panic!("append failed: {other}"),
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut payloads = HashSet::new();
    for s in &streams {
        let read = store.read_stream(s, 1, usize::MAX).await.unwrap();
        let versions: Vec<u64> = read.iter().map(|e| e.meta.version).collect();
        assert_eq!(
            versions,
            (1..=read.len() as u64).collect::<Vec<_>>(),
            "versions of {s} are contiguous from 1"
        );
        for e in read {
            assert!(
                payloads.insert(e.payload.as_str().to_owned()),
                "duplicated event"
            );
        }
    }
    assert_eq!(payloads.len(), 400, "every acknowledged append is stored");
}

/// Eight tasks send 500 commands each to four shared counters through `Cqrs` (conflicts guaranteed,
/// retried by the bus): totals equal the accepted additions, versions are contiguous, the
/// projection agrees.
pub async fn concurrent_commands_through_the_bus_lose_nothing<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let app = Cqrs::builder(store)
        .projection(Totals::default())
        .max_retries(10_000)
        .build()
        .await
        .unwrap();
    // Counter ids unique to this run, so a shared database cannot mix runs.
    let base = (new_id().as_u128() as u64) & 0x0000_ffff_ffff_0000;
    for c in 0..4 {
        app.execute(Open { id: base + c }).await.unwrap();
    }
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut sums = [0u64; 4];
                for i in 0..500u64 {
                    let c = (t + i) % 4;
                    let n = 1 + (t * 31 + i) % 7;
                    app.execute(Add { id: base + c, n }).await.unwrap();
                    sums[c as usize] += n;
                }
                sums
            })
        })
        .collect();
    let mut expected = [0u64; 4];
    for t in tasks {
        for (e, s) in expected.iter_mut().zip(t.await.unwrap()) {
            *e += s;
        }
    }
    let last = app.store().head().await.unwrap();
    for c in 0..4 {
        let id = base + c;
        let (state, version) = app.load::<Counter>(&id).await.unwrap();
        assert_eq!(
            state.total, expected[c as usize],
            "counter {id} lost or duplicated"
        );
        let s = StreamId::from(format!("counter-{id}"));
        let read = app.store().read_stream(&s, 1, usize::MAX).await.unwrap();
        assert_eq!(read.len() as u64, version);
        assert!(
            read.iter().zip(1..).all(|(e, v)| e.meta.version == v),
            "versions are contiguous"
        );
        let projected = app.query_after(last, TotalOf(s.to_string())).await.unwrap();
        assert_eq!(projected, expected[c as usize], "the projection agrees");
    }
}

/// An event above the store's size limit is refused with a typed error before anything of its
/// batch is written; events within the limit still go in.
pub async fn oversized_events_are_refused_before_anything_is_written<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = S>,
{
    let store = make(1024).await;
    let s = stream("limit");
    let big = format!("\"{}\"", "x".repeat(2000));
    let refused = store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![event("1"), event(&big), event("3")],
        )
        .await;
    match refused {
        Err(StoreError::InvalidInput(InvalidInput {
            field: InputField::EventSize,
            problem: InputProblem::TooLong { max: 1024, .. },
            event_id,
            ..
        })) => assert!(event_id.is_some(), "the error names the event"),
        other => panic!("an oversized event must be refused, got {other:?}"),
    }
    assert!(
        store.read_stream(&s, 1, 10).await.unwrap().is_empty(),
        "nothing of the refused batch is written"
    );
    let fits = format!("\"{}\"", "x".repeat(900));
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![event("1"), event(&fits)],
        )
        .await
        .expect("events within the limit are stored");
}

/// Stored events that no longer decode (an unknown name, a payload of the wrong shape) are typed
/// errors naming stream, version and event, for the command bus and for projections; other
/// streams and later reads keep working.
pub async fn undecodable_events_are_typed_errors_and_lose_nothing<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let app = Cqrs::builder(store.clone())
        .projection(Totals::default())
        .build()
        .await
        .unwrap();
    let base = (new_id().as_u128() as u64) & 0x0000_ffff_ffff_0000;
    let (renamed, reshaped, healthy) = (base + 1, base + 2, base + 3);
    for id in [renamed, reshaped, healthy] {
        app.execute(Open { id }).await.unwrap();
    }
    let named = |name: &str, json: &str| NewEvent {
        event_name: name.to_owned().into(),
        ..event(json)
    };
    let s_renamed = StreamId::from(format!("counter-{renamed}"));
    let s_reshaped = StreamId::from(format!("counter-{reshaped}"));
    store
        .append(
            &s_renamed,
            ExpectedVersion::Exact(1),
            vec![named("counter.renamed", "{}")],
        )
        .await
        .unwrap();
    let bad = store
        .append(
            &s_reshaped,
            ExpectedVersion::Exact(1),
            vec![named("counter.added", r#"{"n":"many"}"#)],
        )
        .await
        .unwrap();

    for (id, stream, name) in [
        (renamed, &s_renamed, "counter.renamed"),
        (reshaped, &s_reshaped, "counter.added"),
    ] {
        match app.load::<Counter>(&id).await {
            Err(crate::CommandError::Decode(e)) => {
                assert_eq!(
                    (&e.stream, e.version, e.event_name.as_str()),
                    (stream, 2, name)
                );
            }
            other => panic!("loading {stream} must fail to decode, got {other:?}"),
        }
        let err = app.execute(Add { id, n: 1 }).await.unwrap_err();
        assert!(matches!(err, crate::CommandError::Decode(_)), "{err:?}");
    }
    app.execute(Add { id: healthy, n: 5 })
        .await
        .expect("other streams keep working");
    match app
        .query_after(bad[0].meta.position, TotalOf(s_reshaped.to_string()))
        .await
    {
        Err(crate::QueryError::ProjectionFailed(e)) => {
            assert_eq!(
                (e.projection, &e.stream, e.version),
                ("totals", &s_reshaped, 2)
            );
            assert_eq!(e.event_name, "counter.added");
        }
        other => panic!("the projection must stop at the bad event, got {other:?}"),
    }
    let all = store.read_all(crate::Position::ZERO, 10_000).await.unwrap();
    assert!(
        all.iter()
            .any(|e| e.meta.stream == s_renamed && e.meta.version == 2),
        "nothing is lost"
    );
}

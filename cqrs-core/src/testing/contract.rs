//! Conformance cases of the input contract and of idempotency (re-exported from
//! [`conformance`](super::conformance), where the macro finds them): every store refuses the
//! same input with the same typed error, tells a retry from a reused id, and finds events by id.

use std::future::Future;

use crate::testing::conformance::{event, stream};
use crate::testing::domain::{Add, Counter, Open};
use crate::{
    CommandContext, CommandError, Cqrs, EventStore, ExpectedVersion, InputField, InputProblem,
    InvalidInput, Mismatch, NewEvent, Payload, Snapshot, StoreError, StreamId, Timestamp, new_id,
};

/// Which problem a case expects.
type Problem = fn(&InputProblem) -> bool;

/// An id of `len` bytes that does not compress (hex digits of random ids).
fn incompressible(len: usize) -> String {
    let mut id = String::with_capacity(len + 32);
    while id.len() < len {
        id.push_str(&new_id().simple().to_string());
    }
    id.truncate(len);
    id
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    got: Result<T, StoreError>,
    field: InputField,
    problem: Problem,
    what: &str,
) {
    match got {
        Err(StoreError::InvalidInput(InvalidInput {
            field: f,
            problem: p,
            ..
        })) if f == field && problem(&p) => {}
        other => panic!("{what}: want InvalidInput on the {field:?}, got {other:?}"),
    }
}

/// Stream ids, event names, payloads and metadata that some store cannot keep are refused by
/// every store with `InvalidInput` naming the field, and nothing of the batch is written.
pub async fn invalid_input_is_refused_before_anything<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let nul_stream = StreamId::from(format!("nul\0{}", new_id()));
    let long_stream = StreamId::from(incompressible(3000));
    for (s, problem, what) in [
        (
            &nul_stream,
            (|p| *p == InputProblem::ContainsNul) as Problem,
            "a NUL in a stream id",
        ),
        (
            &long_stream,
            |p| matches!(p, InputProblem::TooLong { max: 1024, .. }),
            "a 3 KB stream id",
        ),
    ] {
        let got = store
            .append(s, ExpectedVersion::Any, vec![event("1")])
            .await;
        assert_refused(got, InputField::StreamId, problem, what);
    }
    let longest = StreamId::from(incompressible(crate::MAX_STREAM_ID_BYTES));
    store
        .append(&longest, ExpectedVersion::NoStream, vec![event("1")])
        .await
        .expect("a stream id of exactly the limit is stored");
    assert_eq!(store.read_stream(&longest, 1, 10).await.unwrap().len(), 1);

    let named = |name: &str| NewEvent {
        event_name: name.to_owned().into(),
        ..event("1")
    };
    let mut metadata_nul = event("1");
    metadata_nul.metadata.insert("user", "a\0b");
    let mut huge_metadata = event("1");
    huge_metadata.metadata.insert("k", f64::MAX);
    let mut version_too_high = event("1");
    version_too_high.event_version = u32::MAX;
    let cases: Vec<(NewEvent, InputField, Problem, &str)> = vec![
        (
            named("a\0b"),
            InputField::EventName,
            |p| *p == InputProblem::ContainsNul,
            "a NUL in an event name",
        ),
        (
            named(""),
            InputField::EventName,
            |p| *p == InputProblem::Empty,
            "an empty event name",
        ),
        (
            named(&"n".repeat(1025)),
            InputField::EventName,
            |p| matches!(p, InputProblem::TooLong { .. }),
            "a long event name",
        ),
        (
            event(r#"{"a":"x\u0000y"}"#),
            InputField::Payload,
            |p| *p == InputProblem::NulEscape,
            "\\u0000 in a payload",
        ),
        (
            event("{not json"),
            InputField::Payload,
            |p| matches!(p, InputProblem::NotJson(_)),
            "a payload that is not JSON",
        ),
        (
            event(r#""\ud800""#),
            InputField::Payload,
            |p| *p == InputProblem::LoneSurrogate,
            "a lone surrogate escape",
        ),
        (
            event("1e200000"),
            InputField::Payload,
            |p| *p == InputProblem::NumberOutOfRange,
            "a number beyond numeric",
        ),
        (
            // PostgreSQL would store it and give back 401 digits, which serde_json cannot read.
            event(r#"{"n":1e400}"#),
            InputField::Payload,
            |p| *p == InputProblem::NumberOutOfRange,
            "a number beyond f64",
        ),
        (
            huge_metadata,
            InputField::Metadata,
            |p| *p == InputProblem::NumberOutOfRange,
            "f64::MAX in metadata",
        ),
        (
            metadata_nul,
            InputField::Metadata,
            |p| *p == InputProblem::ContainsNul,
            "a NUL in metadata",
        ),
        (
            version_too_high,
            InputField::EventVersion,
            |p| matches!(p, InputProblem::TooLarge { .. }),
            "a schema version above i32::MAX",
        ),
    ];
    let s = stream("contract");
    for (bad, field, problem, what) in cases {
        let got = store
            .append(&s, ExpectedVersion::Any, vec![event("1"), bad])
            .await;
        assert_refused(got, field, problem, what);
    }
    assert!(
        store.read_stream(&s, 1, 10).await.unwrap().is_empty(),
        "no refused batch wrote anything"
    );
    let escaped = event(r#"{"a":"x\\u0000y \ud83e\udd80"}"#);
    store
        .append(&s, ExpectedVersion::NoStream, vec![escaped])
        .await
        .expect("an escaped backslash before u0000 and a surrogate pair are fine");
}

/// Reads and snapshots of a stream id no store can hold are refused the same way.
pub async fn reads_with_invalid_stream_ids_are_refused<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let nul = StreamId::from("a\0b");
    let long = StreamId::from(incompressible(3000));
    let is_nul = |p: &InputProblem| *p == InputProblem::ContainsNul;
    let is_long = |p: &InputProblem| matches!(p, InputProblem::TooLong { .. });
    let field = InputField::StreamId;
    assert_refused(store.read_stream(&nul, 1, 10).await, field, is_nul, "read");
    assert_refused(
        store.read_stream(&long, 1, 10).await,
        field,
        is_long,
        "read",
    );
    assert_refused(store.load_snapshot(&nul).await, field, is_nul, "load");
    let snapshot = Snapshot {
        version: 1,
        snapshot_version: 1,
        payload: "{}".into(),
        taken_at: Timestamp::now(),
    };
    let saved = store.save_snapshot(&nul, snapshot.clone()).await;
    assert_refused(saved, field, is_nul, "save");
    let bad_payload = Snapshot {
        payload: "{\"a\":\"\0\"}".into(),
        ..snapshot
    };
    let saved = store.save_snapshot(&stream("snap"), bad_payload).await;
    let nul_payload = |p: &InputProblem| *p == InputProblem::ContainsNul;
    assert_refused(saved, InputField::SnapshotPayload, nul_payload, "save");
}

/// Ids sent again with other content are `IdempotencyConflict` naming the event and the field;
/// the same content, formatted differently, is still the idempotent retry.
pub async fn retries_with_other_content_are_idempotency_conflicts<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let s = stream("idempotency");
    let mut second = event(r#"{"amount":10,"to":"b"}"#);
    second.metadata.insert("user", "ada");
    let batch = vec![event(r#"{"x":1}"#), second];
    let first = store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();

    let mut reformatted = batch.clone();
    reformatted[1].payload = Payload::from_json(r#"{ "to": "b", "amount": 10 }"#);
    let again = store
        .append(&s, ExpectedVersion::NoStream, reformatted)
        .await
        .expect("the same JSON values are the same events");
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].meta.position, first[1].meta.position);

    let changed = |change: fn(&mut NewEvent)| {
        let mut sent = batch.clone();
        change(&mut sent[1]);
        sent
    };
    let cases: [(Vec<NewEvent>, InputField); 4] = [
        (
            changed(|e| e.payload = Payload::from_json(r#"{"amount":12,"to":"b"}"#)),
            InputField::Payload,
        ),
        (
            changed(|e| e.event_name = "conformance.other".into()),
            InputField::EventName,
        ),
        (changed(|e| e.event_version = 2), InputField::EventVersion),
        (
            changed(|e| e.metadata.insert("user", "bob")),
            InputField::Metadata,
        ),
    ];
    for (sent, field) in cases {
        let want_id = sent[1].event_id;
        match store.append(&s, ExpectedVersion::Any, sent).await {
            Err(StoreError::IdempotencyConflict {
                event_id,
                mismatch: Mismatch::EventField { index: 1, field: f },
                ..
            }) if f == field && event_id == want_id => {}
            other => panic!("ids sent again with another {field:?}: got {other:?}"),
        }
    }
    let stored = store.read_stream(&s, 1, 10).await.unwrap();
    assert_eq!(stored.len(), 2, "nothing was written");
    assert!(crate::testing::conformance::same_json(
        stored[1].payload.as_str(),
        r#"{"amount":10,"to":"b"}"#
    ));
}

/// `read_event` finds a stored event by id, and nothing for an unknown id.
pub async fn read_event_finds_events_by_id<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let s = stream("by-id");
    let recorded = store
        .append(&s, ExpectedVersion::NoStream, vec![event("1"), event("2")])
        .await
        .unwrap();
    let found = store
        .read_event(recorded[1].meta.event_id)
        .await
        .unwrap()
        .expect("a stored id is found");
    assert!(crate::testing::conformance::same_event(
        &found,
        &recorded[1]
    ));
    assert!(store.read_event(new_id()).await.unwrap().is_none());
}

/// A command sent again with its command id returns the first run's outcome, with a warm cache
/// and a cold one (another `Cqrs` on the store), also for a creation; the same id with another
/// command is `CommandIdReused` and records nothing.
pub async fn a_command_id_sent_again_returns_the_first_outcome<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let app = Cqrs::builder(store.clone()).build().await.unwrap();
    let id = (new_id().as_u128() as u64) & 0x0000_ffff_ffff_0000;
    let with = |command_id| CommandContext::new().with_command_id(command_id);
    let (open_id, deposit_id) = (new_id(), new_id());
    let opened = app.execute_with(Open { id }, with(open_id)).await.unwrap();
    let first = app
        .execute_with(Add { id, n: 10 }, with(deposit_id))
        .await
        .unwrap();
    app.execute(Add { id, n: 1 }).await.unwrap();

    let cold = Cqrs::builder(store.clone()).build().await.unwrap();
    for (app, cache) in [(&app, "warm"), (&cold, "cold")] {
        let again = app
            .execute_with(Add { id, n: 10 }, with(deposit_id))
            .await
            .unwrap_or_else(|e| panic!("a resent command ({cache} cache): {e}"));
        assert_eq!(again.version, first.version, "{cache} cache");
        assert_eq!(again.events.len(), 1);
        assert_eq!(again.events[0].meta.event_id, first.events[0].meta.event_id);
        assert_eq!(again.events[0].meta.position, first.events[0].meta.position);
        let reopened = app
            .execute_with(Open { id }, with(open_id))
            .await
            .unwrap_or_else(|e| panic!("a resent creation ({cache} cache): {e}"));
        assert_eq!(reopened.version, opened.version);
        match app.execute_with(Add { id, n: 12 }, with(deposit_id)).await {
            Err(CommandError::CommandIdReused {
                command_id,
                mismatch:
                    Mismatch::EventField {
                        index: 0,
                        field: InputField::Payload,
                    },
                ..
            }) if command_id == deposit_id => {}
            other => panic!("another amount under the same id ({cache} cache): {other:?}"),
        }
    }
    match cold
        .execute_with(Add { id: id + 1, n: 10 }, with(deposit_id))
        .await
    {
        Err(CommandError::CommandIdReused {
            mismatch: Mismatch::Stream { .. },
            ..
        }) => {}
        other => panic!("the same id on another counter: {other:?}"),
    }
    let (state, version) = cold.load::<Counter>(&id).await.unwrap();
    assert_eq!(
        (state.total, version),
        (11, 3),
        "every command recorded once"
    );
}

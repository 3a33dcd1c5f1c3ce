//! Error chains: each cause is named once, whether a chain is printed by walking `source()` or
//! by `Display` alone, and every error says whether it may be retried.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use super::*;

/// A business error with a cause of its own, as a user's `thiserror` type would have.
#[derive(Debug)]
struct Overdrawn(std::io::Error);

impl fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("account overdrawn")
    }
}

impl StdError for Overdrawn {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

fn cause() -> std::io::Error {
    std::io::Error::other("limit service timed out")
}

fn stream() -> StreamId {
    StreamId::from("account-1")
}

fn decode_error() -> DecodeError {
    DecodeError {
        stream: stream(),
        version: 3,
        event_name: "deposited".into(),
        event_version: 1,
        failure: DecodeFailure::InvalidPayload("missing field `amount`".into()),
    }
}

fn store_errors() -> Vec<StoreError> {
    vec![
        StoreError::Unavailable(BackendError::from_error(cause()).with_code("57P01")),
        StoreError::OutcomeUnknown(BackendError::new("connection closed")),
        StoreError::Backend(BackendError::new("permission denied").with_code("42501")),
        StoreError::Decode(decode_error()),
        StoreError::InvalidInput(InvalidInput::new(
            &stream(),
            None,
            InputField::StreamId,
            InputProblem::ContainsNul,
        )),
        StoreError::IdempotencyConflict {
            stream: stream(),
            event_id: Uuid::nil(),
            mismatch: Mismatch::EventField {
                index: 0,
                field: InputField::Payload,
            },
        },
    ]
}

fn projection_error() -> ProjectionError {
    ProjectionError {
        projection: "balances",
        stream: stream(),
        version: 3,
        position: Position(7),
        event_name: "deposited".into(),
        failure: ProjectionFailure::Handler(Arc::new(Overdrawn(cause()))),
    }
}

/// Every message of `error`'s chain, outermost first.
fn chain(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        messages.push(e.to_string());
        next = e.source();
    }
    messages
}

/// Printing the chain (`outer: cause: cause`) names each message once: no link's message is
/// part of an earlier link's.
#[track_caller]
fn assert_each_cause_once(error: &(dyn StdError + 'static)) {
    let messages = chain(error);
    for (i, outer) in messages.iter().enumerate() {
        for inner in &messages[i + 1..] {
            assert!(
                !outer.contains(inner.as_str()),
                "`{inner}` is printed twice in the chain {messages:?}"
            );
        }
    }
}

#[test]
fn no_chain_prints_a_message_twice() {
    for e in store_errors() {
        assert_each_cause_once(&e);
        assert_each_cause_once(&CommandError::<Overdrawn>::from(e));
    }
    for e in store_errors() {
        assert_each_cause_once(&QueryError::Store(e));
    }
    for e in store_errors() {
        assert_each_cause_once(&BuildError::Store(e));
    }
    for e in store_errors() {
        assert_each_cause_once(&DispatchError::Command(CommandError::Store(e)));
    }
    let rejected = CommandError::Rejected(Overdrawn(cause()));
    assert_each_cause_once(&rejected);
    assert_each_cause_once(&DispatchError::Command(CommandError::Rejected(Box::new(
        Overdrawn(cause()),
    ))));
    assert_each_cause_once(&CommandError::<Overdrawn>::Decode(decode_error()));
    assert_each_cause_once(&projection_error());
    assert_each_cause_once(&QueryError::ProjectionFailed(projection_error()));
}

#[test]
fn causes_below_a_shown_error_stay_reachable() {
    // The user's error is shown in the message and its own cause is the next link.
    let rejected = CommandError::Rejected(Overdrawn(cause()));
    assert_eq!(
        chain(&rejected),
        [
            "command rejected: account overdrawn",
            "limit service timed out"
        ]
    );
    // A projection handler's error is the source, not part of the message.
    let failed = QueryError::ProjectionFailed(projection_error());
    let messages = chain(&failed);
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].ends_with("): handler failed"), "{messages:?}");
    assert_eq!(
        messages[1..],
        ["account overdrawn", "limit service timed out"]
    );
}

#[test]
fn backend_messages_show_the_code() {
    let e = StoreError::Unavailable(
        BackendError::new("FATAL: terminating connection due to administrator command")
            .with_code("57P01"),
    );
    assert_eq!(
        e.to_string(),
        "event store unavailable, nothing was written: FATAL: terminating connection due to administrator command (code 57P01)"
    );
}

#[test]
fn every_error_says_whether_to_retry() {
    let retries: Vec<Retry> = store_errors().iter().map(StoreError::retry).collect();
    assert_eq!(
        retries,
        [
            Retry::Safe,
            Retry::SameIds,
            Retry::Never,
            Retry::Never,
            Retry::Never,
            Retry::Never
        ]
    );
    for e in store_errors() {
        let want = e.retry();
        assert_eq!(CommandError::<Overdrawn>::from(e).retry(), want);
    }
    let conflict = CommandError::<Overdrawn>::Conflict {
        stream: stream(),
        attempts: 6,
    };
    assert_eq!(conflict.retry(), Retry::Safe);
    assert_eq!(
        CommandError::Rejected(Overdrawn(cause())).retry(),
        Retry::Never
    );
    let reused = CommandError::<Overdrawn>::CommandIdReused {
        command_id: Uuid::nil(),
        stream: stream(),
        mismatch: Mismatch::EventCount { stored: 1, sent: 0 },
    };
    assert_eq!(reused.retry(), Retry::Never);
    let lost = DispatchError::Command(CommandError::Store(StoreError::OutcomeUnknown(
        BackendError::new("connection reset"),
    )));
    assert_eq!(lost.retry(), Retry::SameIds);
    assert_eq!(
        DispatchError::NotDeserializable { command: "Open" }.retry(),
        Retry::Never
    );
    // A query never writes: an unknown outcome of its read is simply a failed read.
    assert_eq!(
        QueryError::Store(StoreError::OutcomeUnknown(BackendError::new("reset"))).retry(),
        Retry::Safe
    );
}

#[test]
fn invalid_input_names_the_field_and_shows_long_ids_cut() {
    let long = StreamId::from(format!("a\0{}", "b".repeat(3000)));
    let e = StoreError::from(InvalidInput::new(
        &long,
        None,
        InputField::StreamId,
        InputProblem::TooLong {
            len: 3002,
            max: 1024,
        },
    ));
    let text = e.to_string();
    assert!(text.starts_with("stream id `a\\0bbb"), "{text}");
    assert!(
        text.ends_with("…` refused: it is 3002 bytes, above the limit of 1024 bytes"),
        "{text}"
    );
    assert!(text.len() < 200, "{text}");
}

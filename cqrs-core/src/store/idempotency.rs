//! Telling a retry from a reused idempotency key: events sent again under stored ids are the
//! same request only if they are the same events. Every store (and the command bus) compares
//! with these functions, so they agree on what "the same" means.

use serde_json::{Map, Value};

use crate::envelope::CAUSED_BY_EVENT;
use crate::envelope::{NewEvent, RecordedEvent};
use crate::error::{InputField, Mismatch, StoreError};
use crate::ids::StreamId;
use crate::telemetry::{TRACEPARENT, TRACESTATE};

/// What differs between a stored event and an event sent again under its id: its name, schema
/// version, payload, metadata or tags (`None`: the same event). Payloads and metadata are compared as
/// JSON values, since a store may normalise formatting (PostgreSQL's `jsonb` drops spaces,
/// reorders keys, writes `1e3` as `1000`); numbers are equal when their values are.
/// Correlation and causation ids, and the metadata entries [`CAUSED_BY_EVENT`], [`TRACEPARENT`]
/// and [`TRACESTATE`], are tracing, not content, and are not compared.
pub fn event_mismatch(stored: &RecordedEvent, sent: &NewEvent) -> Option<InputField> {
    if stored.meta.event_name != sent.event_name {
        Some(InputField::EventName)
    } else if stored.meta.event_version != sent.event_version {
        Some(InputField::EventVersion)
    } else if !same_json_text(stored.payload.as_str(), sent.payload.as_str()) {
        Some(InputField::Payload)
    } else if stored.meta.metadata != sent.metadata
        && !same_metadata(stored.meta.metadata.as_map(), sent.metadata.as_map())
    {
        Some(InputField::Metadata)
    } else if stored.meta.tags != sent.tags {
        Some(InputField::Tags)
    } else {
        None
    }
}

/// Metadata compared as JSON values, without the tracing entries ([`CAUSED_BY_EVENT`], the trace
/// context): like the
/// correlation and causation ids, it says where a command came from (a caller resending it may
/// not know), not what it is.
fn same_metadata(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let content = |m: &Map<String, Value>| {
        m.iter()
            .filter(|(k, _)| !matches!(k.as_str(), CAUSED_BY_EVENT | TRACEPARENT | TRACESTATE))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Map<String, Value>>()
    };
    same_json(&Value::Object(content(a)), &Value::Object(content(b)))
}

/// Checks that `sent`, whose ids are stored as the events `stored` (same ids, same order, one
/// earlier append to `stream`), is the same batch; otherwise
/// [`StoreError::IdempotencyConflict`] names the first event that differs and how.
pub fn check_retry(
    stream: &StreamId,
    stored: &[RecordedEvent],
    sent: &[NewEvent],
) -> Result<(), StoreError> {
    for (index, (s, e)) in stored.iter().zip(sent).enumerate() {
        if let Some(field) = event_mismatch(s, e) {
            return Err(StoreError::IdempotencyConflict {
                stream: stream.clone(),
                event_id: e.event_id,
                mismatch: Mismatch::EventField { index, field },
            });
        }
    }
    Ok(())
}

/// Whether two JSON documents are equal as values (byte-equal ones without parsing). Text that
/// does not parse is equal only to the same text.
pub(crate) fn same_json_text(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => same_json(&a, &b),
        _ => false,
    }
}

/// JSON equality where numbers compare by value: `1000`, `1e3` and `1000.0` are equal (serde's
/// `Value` would tell an integer from a float).
pub(crate) fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_is_not_content() {
        use crate::envelope::{Payload, UserMetadata};
        use crate::ids::{Position, Timestamp};
        let mut sent = NewEvent {
            event_id: crate::new_id(),
            event_name: "e".into(),
            event_version: 1,
            payload: Payload::from_json("{}"),
            correlation_id: Some(crate::new_id()),
            causation_id: None,
            metadata: UserMetadata::empty(),
            tags: crate::Tags::empty(),
        };
        sent.metadata.insert("user", "ada");
        let mut first = sent.clone();
        first.correlation_id = Some(crate::new_id());
        first.metadata.insert(CAUSED_BY_EVENT, "an event");
        first.metadata.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        first.metadata.insert(TRACESTATE, "vendor=1");
        let stored = first.record(StreamId::from("s"), 1, Position(1), Timestamp::now());
        assert_eq!(event_mismatch(&stored, &sent), None);
        sent.metadata.insert("user", "bob");
        assert_eq!(event_mismatch(&stored, &sent), Some(InputField::Metadata));
    }

    #[test]
    fn json_values_not_text() {
        assert!(same_json_text(
            r#"{"a":1,"b":[1,2]}"#,
            r#"{ "b": [1, 2], "a": 1 }"#
        ));
        assert!(same_json_text("1e15", "1000000000000000"));
        assert!(same_json_text("[1.0]", "[1]"));
        assert!(!same_json_text(r#"{"amount":10}"#, r#"{"amount":12}"#));
        assert!(!same_json_text(r#"{"a":1}"#, r#"{"a":1,"b":2}"#));
        assert!(!same_json_text("{bad", "{bad "));
        assert!(same_json_text("{bad", "{bad"));
    }
}

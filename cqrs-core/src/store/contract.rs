//! The input contract of every store, as one set of checks that stores call before they touch
//! anything: what an [`EventStore`](crate::EventStore) accepts is the same everywhere, and
//! what it refuses is an [`InvalidInput`] naming the field, never a back-end error.
//!
//! The limits are PostgreSQL's (the strictest store), so an application tested on
//! `MemoryStore` or SQLite does not meet them for the first time in production:
//! - `text` cannot hold the NUL character;
//! - `jsonb` refuses the escape `\u0000`, unpaired surrogate escapes and numbers beyond
//!   `numeric` (16,383 digits after the decimal point), and writes every number out in full
//!   (`1e400` comes back as 401 digits), which serde_json (what events are decoded with) reads
//!   as out of range from 1e308 on: numbers must stay below that;
//! - a B-tree index entry holds at most 2,704 bytes on 8 KiB pages, and the stream id is a key
//!   of the `(stream, version)` index (and of the snapshots table).
//!
//! Every store calls `check_append` (and `check_stream_id`, `check_snapshot`) before touching
//! anything, so `MemoryStore` and SQLite refuse what PostgreSQL would, with the same
//! `InvalidInput`. Stream ids and names: at most 1024 bytes (an incompressible 3 KB id fails in the
//! index), no NUL. Payloads: serde_json validates them without building a value (`IgnoredAny`),
//! then one byte scan finds `\u0000`, lone surrogate escapes, numbers of 1e308 or more (or beyond
//! `numeric`'s scale) and nesting deeper than 128 (serde_json's decoding limit). Payloads the bus
//! serialized itself skip to a `\u0000` substring search (`Payload::serialized`): bus throughput on
//! `MemoryStore` measured within noise of before.

use std::collections::HashSet;

use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::envelope::NewEvent;
use crate::error::{
    InputField, InputProblem, InvalidInput, InvalidQuery, QueryProblem, StoreError,
};
use crate::event_query::{EventQuery, MAX_ITEM_TAGS, MAX_ITEM_TYPES, MAX_QUERY_ITEMS};
use crate::ids::StreamId;
use crate::snapshot::Snapshot;
use crate::store::StreamWrite;

/// The longest stream id, in bytes. PostgreSQL's B-tree entries hold at most 2,704 bytes (8 KiB
/// pages), and an id close to that fails only when it does not compress, so the limit is set
/// well below: it leaves room for the version beside it in the index and for indexes an
/// application adds, and is still far above any id a naming scheme produces
/// (`account-<uuid>` is 44 bytes).
pub const MAX_STREAM_ID_BYTES: usize = 1024;

/// The longest stored event name, in bytes (names are identifiers such as `bank.deposited`; the
/// same bound as stream ids, so either can be indexed).
pub const MAX_EVENT_NAME_BYTES: usize = 1024;

/// The largest event schema version: PostgreSQL stores it as `integer`.
pub const MAX_EVENT_VERSION: u32 = i32::MAX as u32;

/// The most tags an event may carry (the same bound as a query item's tags). Each is an index
/// entry on the SQL stores; 32 is far above what a decision needs (an event is about a few
/// things: a course and a student, two accounts).
pub const MAX_EVENT_TAGS: usize = MAX_ITEM_TAGS;

/// How deep arrays and objects may nest: serde_json decodes no deeper (its recursion limit), so
/// a deeper payload could never be decoded into an event.
const MAX_DEPTH: usize = 128;

/// Digits a JSON number may have before the decimal point (counting a positive exponent):
/// below 1e308. Events are decoded with serde_json, which holds numbers as `f64` at most, and
/// PostgreSQL prints a stored number with all its digits: serde_json's parser reads a 309-digit
/// integer as out of range even where its value is `f64::MAX`, so a row holding one could never
/// be read back (the event, or a whole stream's reads, would fail to decode).
const MAX_INTEGER_DIGITS: i64 = 308;

/// Digits a JSON number may have after the decimal point (counting a negative exponent):
/// PostgreSQL's `numeric` limit.
const MAX_SCALE: i64 = 16_383;

/// Refuses a stream id that no store may hold: empty, holding NUL, or longer than
/// [`MAX_STREAM_ID_BYTES`]. Stores call it first in every operation that takes a stream.
pub fn check_stream_id(stream: &StreamId) -> Result<(), StoreError> {
    let problem = text_problem(stream.as_str(), MAX_STREAM_ID_BYTES);
    match problem {
        None => Ok(()),
        Some(problem) => Err(InvalidInput::new(stream, None, InputField::StreamId, problem).into()),
    }
}

/// Refuses, before anything is written, a batch that breaks the store contract: a bad stream
/// id ([`check_stream_id`]); an event name that is empty, holds NUL or is longer than
/// [`MAX_EVENT_NAME_BYTES`]; a schema version above [`MAX_EVENT_VERSION`]; a payload that is
/// not a JSON document a store can keep (see [`InputProblem`]); metadata holding NUL; an event
/// larger than `max_event_bytes` ([`check_event_sizes`]); or an id twice in the batch
/// ([`StoreError::DuplicateEventId`]), or an event with more than [`MAX_EVENT_TAGS`] tags.
/// Stores call it first thing in `append`.
pub fn check_append(
    stream: &StreamId,
    events: &[NewEvent],
    max_event_bytes: usize,
) -> Result<(), StoreError> {
    check_stream_id(stream)?;
    for event in events {
        let refuse =
            |field, problem| InvalidInput::new(stream, Some(event.event_id), field, problem);
        if let Some(problem) = text_problem(&event.event_name, MAX_EVENT_NAME_BYTES) {
            return Err(refuse(InputField::EventName, problem).into());
        }
        if event.event_version > MAX_EVENT_VERSION {
            let problem = InputProblem::TooLarge {
                value: event.event_version.into(),
                max: MAX_EVENT_VERSION.into(),
            };
            return Err(refuse(InputField::EventVersion, problem).into());
        }
        let payload = event.payload.as_str();
        let checked = if event.payload.is_serialized() {
            // serde_json wrote it from a Rust value: valid JSON, numbers of Rust's ranges, no
            // lone surrogates (Rust strings are UTF-8). Only a NUL in a string, written as
            // `\u0000`, or a float of 1e308 or more, written `…e+308` (the shortest form serde_json
            // writes), can break the contract: a scan for their `\` and `+` first (most payloads
            // have neither; two substring searches cost a command more), then substring
            // searches, then the exact check.
            let suspect = holds_either(payload.as_bytes(), b'\\', b'+')
                && (payload.contains("\\u0000") || payload.contains("e+308"));
            if suspect { check_json(payload) } else { Ok(()) }
        } else {
            check_json(payload)
        };
        checked.map_err(|p| refuse(InputField::Payload, p))?;
        if !event.metadata.is_empty()
            && let Some(problem) = map_problem(event.metadata.as_map())
        {
            return Err(refuse(InputField::Metadata, problem).into());
        }
        if event.tags.len() > MAX_EVENT_TAGS {
            let problem = InputProblem::TooMany {
                count: event.tags.len(),
                max: MAX_EVENT_TAGS,
            };
            return Err(refuse(InputField::Tags, problem).into());
        }
    }
    check_event_sizes(stream, events, max_event_bytes)?;
    if events.len() > 1 {
        let mut seen = HashSet::with_capacity(events.len());
        if let Some(e) = events.iter().find(|e| !seen.insert(e.event_id)) {
            return Err(StoreError::DuplicateEventId {
                event_id: e.event_id,
                stream: stream.clone(),
            });
        }
    }
    Ok(())
}

/// Refuses a query no store answers: one without items (use [`EventQuery::all`]), an item
/// naming neither types nor tags, more than [`MAX_QUERY_ITEMS`] items, an item with more than
/// [`MAX_ITEM_TAGS`] tags or [`MAX_ITEM_TYPES`] types, or a type that is not a valid event name
/// (empty, holding NUL, above [`MAX_EVENT_NAME_BYTES`]). Tags are valid by construction
/// ([`Tag`](crate::Tag)). Stores call it first in `read_query` and for an append's condition.
pub fn check_query(query: &EventQuery) -> Result<(), StoreError> {
    let Some(items) = query.items() else {
        return Ok(());
    };
    let refuse = |item, problem| Err(InvalidQuery::new(item, problem).into());
    if items.is_empty() {
        return refuse(None, QueryProblem::NoItems);
    }
    if items.len() > MAX_QUERY_ITEMS {
        let problem = QueryProblem::TooManyItems {
            count: items.len(),
            max: MAX_QUERY_ITEMS,
        };
        return refuse(None, problem);
    }
    for (i, item) in items.iter().enumerate() {
        let (types, tags) = (item.event_types(), item.required_tags());
        if types.is_empty() && tags.is_empty() {
            return refuse(Some(i), QueryProblem::EmptyItem);
        }
        if tags.len() > MAX_ITEM_TAGS {
            let problem = QueryProblem::TooManyTags {
                count: tags.len(),
                max: MAX_ITEM_TAGS,
            };
            return refuse(Some(i), problem);
        }
        if types.len() > MAX_ITEM_TYPES {
            let problem = QueryProblem::TooManyTypes {
                count: types.len(),
                max: MAX_ITEM_TYPES,
            };
            return refuse(Some(i), problem);
        }
        if let Some(problem) = types
            .iter()
            .find_map(|t| text_problem(t, MAX_EVENT_NAME_BYTES))
        {
            return refuse(Some(i), QueryProblem::EventType(problem));
        }
    }
    Ok(())
}

/// Refuses, before anything is written, the writes of an
/// [`append_conditional`](crate::EventStore::append_conditional): each as [`check_append`]
/// does, a stream written twice ([`InputProblem::Repeated`] on its id), or an event id twice
/// in the whole append ([`StoreError::DuplicateEventId`]).
pub fn check_writes(writes: &[StreamWrite], max_event_bytes: usize) -> Result<(), StoreError> {
    for (i, write) in writes.iter().enumerate() {
        check_append(&write.stream, &write.events, max_event_bytes)?;
        if writes[..i].iter().any(|w| w.stream == write.stream) {
            let problem = InputProblem::Repeated;
            let refused = InvalidInput::new(&write.stream, None, InputField::StreamId, problem);
            return Err(refused.into());
        }
    }
    if writes.len() > 1 {
        let mut seen = HashSet::new();
        for write in writes {
            if let Some(e) = write.events.iter().find(|e| !seen.insert(e.event_id)) {
                return Err(StoreError::DuplicateEventId {
                    event_id: e.event_id,
                    stream: write.stream.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Refuses, before anything is written, a batch holding an event whose payload and metadata
/// together exceed `max` bytes. Part of [`check_append`].
pub fn check_event_sizes(
    stream: &StreamId,
    events: &[NewEvent],
    max: usize,
) -> Result<(), StoreError> {
    for event in events {
        let metadata = if event.metadata.is_empty() {
            0
        } else {
            serde_json::to_string(event.metadata.as_map()).map_or(0, |m| m.len())
        };
        let size = event.payload.len() + metadata;
        if size > max {
            let problem = InputProblem::TooLong { len: size, max };
            return Err(InvalidInput::new(
                stream,
                Some(event.event_id),
                InputField::EventSize,
                problem,
            )
            .into());
        }
    }
    Ok(())
}

/// Refuses a snapshot no store may keep: a bad stream id, or a payload holding NUL.
pub fn check_snapshot(stream: &StreamId, snapshot: &Snapshot) -> Result<(), StoreError> {
    check_stream_id(stream)?;
    if snapshot.payload.contains('\0') {
        let problem = InputProblem::ContainsNul;
        return Err(InvalidInput::new(stream, None, InputField::SnapshotPayload, problem).into());
    }
    Ok(())
}

/// What is wrong with a name or id: empty, holding NUL, or longer than `max` bytes.
fn text_problem(text: &str, max: usize) -> Option<InputProblem> {
    if text.is_empty() {
        Some(InputProblem::Empty)
    } else if text.len() > max {
        Some(InputProblem::TooLong {
            len: text.len(),
            max,
        })
    } else if holds_either(text.as_bytes(), 0, 0) {
        Some(InputProblem::ContainsNul)
    } else {
        None
    }
}

/// Whether `bytes` holds `a` or `b`. Every append scans its stream id, event names and payloads,
/// mostly a few dozen bytes each, so eight bytes are compared at a time (where `memchr` and a
/// byte loop cost several times more on such short texts).
fn holds_either(bytes: &[u8], a: u8, b: u8) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `word` is zero exactly when the result has its high bit set (exact for the
    // lowest zero byte, which is all a yes-or-no answer needs).
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let (splat_a, splat_b) = (ONES * u64::from(a), ONES * u64::from(b));
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        if has_zero(word ^ splat_a) || has_zero(word ^ splat_b) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| c == a || c == b)
}

/// Whether a JSON object holds NUL in a key or in a string anywhere inside.
/// What in a metadata map breaks the contract: NUL in a key or string, or a number of 1e308
/// or more in magnitude (see [`MAX_INTEGER_DIGITS`]).
fn map_problem(map: &Map<String, Value>) -> Option<InputProblem> {
    map.iter().find_map(|(key, value)| {
        if key.contains('\0') {
            Some(InputProblem::ContainsNul)
        } else {
            value_problem(value)
        }
    })
}

fn value_problem(value: &Value) -> Option<InputProblem> {
    match value {
        Value::String(s) => s.contains('\0').then_some(InputProblem::ContainsNul),
        Value::Array(items) => items.iter().find_map(value_problem),
        Value::Object(map) => map_problem(map),
        Value::Number(n) => n
            .as_f64()
            .is_some_and(|f| f.abs() >= 1e308)
            .then_some(InputProblem::NumberOutOfRange),
        Value::Null | Value::Bool(_) => None,
    }
}

/// Checks that `text` is one JSON document every store keeps: serde_json parses it (without
/// building it), then one pass over its bytes finds what PostgreSQL's `jsonb` refuses.
pub(crate) fn check_json(text: &str) -> Result<(), InputProblem> {
    serde_json::from_str::<IgnoredAny>(text).map_err(|e| InputProblem::NotJson(e.to_string()))?;
    let bytes = text.as_bytes();
    let (mut i, mut depth) = (0, 0);
    while i < bytes.len() {
        i = match bytes[i] {
            b'"' => string_end(bytes, i + 1)?,
            b'-' | b'0'..=b'9' => number_end(bytes, i)?,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(InputProblem::TooDeep { max: MAX_DEPTH });
                }
                i + 1
            }
            b']' | b'}' => {
                depth -= 1;
                i + 1
            }
            _ => i + 1,
        };
    }
    Ok(())
}

/// The index after the string whose content starts at `i` (the text is valid JSON), refusing
/// `\u0000` and unpaired surrogate escapes.
fn string_end(bytes: &[u8], mut i: usize) -> Result<usize, InputProblem> {
    loop {
        match bytes.get(i) {
            None => return Ok(i),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') if bytes.get(i + 1) == Some(&b'u') => {
                let unit = hex4(bytes, i + 2);
                i += 6;
                match unit {
                    0 => return Err(InputProblem::NulEscape),
                    0xD800..=0xDBFF => {
                        let paired = bytes.get(i..i + 2) == Some(b"\\u")
                            && matches!(hex4(bytes, i + 2), 0xDC00..=0xDFFF);
                        if !paired {
                            return Err(InputProblem::LoneSurrogate);
                        }
                        i += 6;
                    }
                    0xDC00..=0xDFFF => return Err(InputProblem::LoneSurrogate),
                    _ => {}
                }
            }
            Some(b'\\') => i += 2,
            Some(_) => i += 1,
        }
    }
}

/// The four hex digits at `i` as a number (the text is valid JSON, so they are there).
fn hex4(bytes: &[u8], i: usize) -> u32 {
    bytes
        .get(i..i + 4)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(u32::MAX)
}

/// The index after the number starting at `i`, refusing one beyond PostgreSQL's `numeric`.
fn number_end(bytes: &[u8], mut i: usize) -> Result<usize, InputProblem> {
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        (*i - start) as i64
    };
    if bytes[i] == b'-' {
        i += 1;
    }
    let integer = digits(&mut i);
    let mut fraction = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        fraction = digits(&mut i);
    }
    let mut exponent: i64 = 0;
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative = bytes.get(i) == Some(&b'-');
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while let Some(d) = bytes.get(i).filter(|d| d.is_ascii_digit()) {
            // Saturates far above the limits, so a long exponent cannot overflow.
            exponent = (exponent * 10 + i64::from(d - b'0')).min(1 << 40);
            i += 1;
        }
        if negative {
            exponent = -exponent;
        }
    }
    if integer + exponent > MAX_INTEGER_DIGITS || fraction - exponent > MAX_SCALE {
        return Err(InputProblem::NumberOutOfRange);
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time scan answers as a byte loop does, wherever the byte is and whatever
    /// surrounds it (bytes with their high bit set, the neighbours of the searched bytes).
    #[test]
    fn holds_either_finds_what_a_byte_loop_finds() {
        let fillers = [b'a', 0x7f, 0x80, 0xff, b'[', b'*', b',', 0x01, b'\\' - 1];
        for len in 0..40 {
            for &filler in &fillers {
                let mut text = vec![filler; len];
                for (a, b) in [(b'\\', b'+'), (0, 0), (b'"', b'e')] {
                    let naive = |t: &[u8]| t.iter().any(|&c| c == a || c == b);
                    assert_eq!(holds_either(&text, a, b), naive(&text), "{text:?}");
                    for at in 0..len {
                        for put in [a, b] {
                            let kept = text[at];
                            text[at] = put;
                            assert!(holds_either(&text, a, b), "{text:?} at {at}");
                            text[at] = kept;
                        }
                    }
                }
            }
        }
        assert!(!holds_either("account-1234567890".as_bytes(), 0, 0));
        assert!(holds_either("{\"amount\":1e+308}".as_bytes(), b'\\', b'+'));
    }

    #[test]
    fn json_that_every_store_keeps() {
        for ok in [
            "1",
            "null",
            r#"{"a":[1,2.5,-3e10,true,false,null],"b":"x\"y\\u0000z"}"#,
            r#""\\u0000""#,
            r#""\ud83e\udd80 \u00e9 \u0001""#,
            "1e307",
            "9.99e307",
            "-123456789e299",
            "1e-16383",
            "0.5e-16382",
            " [ ] ",
        ] {
            assert_eq!(check_json(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn json_that_some_store_refuses() {
        let cases = [
            (r#"{"a":"\u0000"}"#, InputProblem::NulEscape),
            (r#"{"a\u0000":1}"#, InputProblem::NulEscape),
            (r#""\\\u0000""#, InputProblem::NulEscape),
            (r#""\ud800""#, InputProblem::LoneSurrogate),
            (r#""\ud800\u0041""#, InputProblem::LoneSurrogate),
            (r#""\udc00""#, InputProblem::LoneSurrogate),
            ("1e308", InputProblem::NumberOutOfRange),
            ("10e307", InputProblem::NumberOutOfRange),
            ("1e400", InputProblem::NumberOutOfRange),
            ("1.7976931348623157e308", InputProblem::NumberOutOfRange),
            ("1e-16384", InputProblem::NumberOutOfRange),
            ("0.5e-16383", InputProblem::NumberOutOfRange),
            (
                "[1e99999999999999999999999]",
                InputProblem::NumberOutOfRange,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(check_json(text), Err(want), "{text}");
        }
        for not_json in ["", "{not json", "1 2", "[1,]", "\"\u{1}\""] {
            assert!(
                matches!(check_json(not_json), Err(InputProblem::NotJson(_))),
                "{not_json:?}"
            );
        }
        let deep = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check_json(&deep(128)), Ok(()));
        assert_eq!(
            check_json(&deep(129)),
            Err(InputProblem::TooDeep { max: 128 })
        );
    }

    #[test]
    fn payloads_serde_wrote_are_checked_for_nul_escapes_too() {
        use crate::envelope::{NewEvent, Payload, UserMetadata};
        let event = |payload| NewEvent {
            event_id: crate::new_id(),
            event_name: "e".into(),
            event_version: 1,
            payload,
            correlation_id: None,
            causation_id: None,
            metadata: UserMetadata::empty(),
            tags: crate::Tags::empty(),
        };
        let s = StreamId::from("s");
        let nul = serde_json::json!({ "name": "a\0b" }).to_string();
        let huge = serde_json::to_string(&f64::MAX).unwrap();
        assert!(
            check_append(&s, &[event(Payload::serialized(huge))], usize::MAX).is_err(),
            "a float the bus wrote at f64::MAX is refused too"
        );
        let refused = check_append(&s, &[event(Payload::serialized(nul))], usize::MAX);
        assert!(matches!(
            refused,
            Err(StoreError::InvalidInput(InvalidInput {
                problem: InputProblem::NulEscape,
                ..
            }))
        ));
        let escaped = serde_json::json!({ "name": "a\\u0000b" }).to_string();
        check_append(&s, &[event(Payload::serialized(escaped))], usize::MAX).unwrap();

        let mut tagged = event(Payload::from_json("1"));
        tagged
            .metadata
            .insert("k", serde_json::json!([1.5, { "x": f64::MAX }]));
        assert!(matches!(
            check_append(&s, &[tagged], usize::MAX),
            Err(StoreError::InvalidInput(InvalidInput {
                field: InputField::Metadata,
                problem: InputProblem::NumberOutOfRange,
                ..
            }))
        ));
    }

    #[test]
    fn names_and_ids() {
        assert_eq!(text_problem("", 10), Some(InputProblem::Empty));
        assert_eq!(text_problem("a\0b", 10), Some(InputProblem::ContainsNul));
        assert_eq!(
            text_problem("abcdef", 5),
            Some(InputProblem::TooLong { len: 6, max: 5 })
        );
        assert_eq!(text_problem("abcde", 5), None);
    }
}

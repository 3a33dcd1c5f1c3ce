//! The hostile inputs: appends and reads a store may refuse (with a typed error) or accept (and
//! then return exactly), but must never answer with a backend failure, a panic, a partial write
//! or a broken store.

use eventweave_core::{ExpectedVersion, NewEvent, Payload, Position, StreamId, UserMetadata, Uuid};
use serde_json::{Map, Value, json};

/// What a case allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// A typed refusal, or success that reads back exactly.
    Either,
    /// Only a typed refusal (the input breaks the store contract: duplicate ids, a version that
    /// does not hold, an event above the size limit, …).
    Refusal,
}

/// One hostile append.
pub struct Append {
    /// What it tries.
    pub name: String,
    /// The stream.
    pub stream: StreamId,
    /// The expectation.
    pub expected: ExpectedVersion,
    /// The batch.
    pub events: Vec<NewEvent>,
    /// What it allows.
    pub allowed: Allowed,
}

/// One hostile read.
pub enum Read {
    /// `read_stream(stream, from, limit)`.
    Stream(String, StreamId, u64, usize),
    /// `read_all(from, limit)`.
    All(String, Position, usize),
}

/// An event named `faults.hostile` with this payload.
pub fn event(payload: impl Into<String>) -> NewEvent {
    NewEvent {
        event_id: eventweave_core::new_id(),
        event_name: "faults.hostile".into(),
        event_version: 1,
        payload: Payload::from_json(payload.into()),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

/// Characters that do not compress: a pseudo-random walk over letters, digits and a few
/// hundred non-ASCII code points, `bytes` long at least.
pub fn incompressible(bytes: usize, seed: u64) -> String {
    let mut state = seed | 1;
    let mut text = String::with_capacity(bytes + 4);
    while text.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let c = match state % 3 {
            0 => char::from(b'a' + (state >> 8) as u8 % 26),
            1 => char::from(b'0' + (state >> 8) as u8 % 10),
            _ => char::from_u32(0x100 + (state >> 8) as u32 % 0x500).unwrap_or('x'),
        };
        text.push(c);
    }
    text
}

fn with_meta(key: &str, value: Value) -> NewEvent {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    NewEvent {
        metadata: UserMetadata::from_map(map),
        ..event("{}")
    }
}

fn named(name: &str) -> NewEvent {
    NewEvent {
        event_name: name.to_owned().into(),
        ..event("{}")
    }
}

/// Every hostile append, on fresh streams of a store that holds one event at `existing` (in
/// stream `existing_stream`, version 1) and whose size limit is `max_event_bytes`.
pub fn appends(existing: Uuid, existing_stream: &StreamId, max_event_bytes: usize) -> Vec<Append> {
    let mut cases = Vec::new();
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        StreamId::from(format!(
            "hostile-{n}-{}",
            eventweave_core::new_id().simple()
        ))
    };
    let mut add = |name: &str, stream: StreamId, events: Vec<NewEvent>, allowed: Allowed| {
        cases.push(Append {
            name: name.to_owned(),
            stream,
            expected: ExpectedVersion::Any,
            events,
            allowed,
        });
    };
    use Allowed::{Either, Refusal};

    // Stream ids.
    add(
        "empty stream id",
        StreamId::from(""),
        vec![event("{}")],
        Refusal,
    );
    for (what, id) in [
        ("NUL inside the stream id", "a\0b".to_owned()),
        ("a stream id that is one NUL", "\0".to_owned()),
        (
            "control characters in the stream id",
            "a\n\t\r\u{1b}[31mb".to_owned(),
        ),
        (
            "bidi override and zero-width in the stream id",
            "\u{202e}abc\u{200b}".to_owned(),
        ),
        (
            "astral-plane characters in the stream id",
            "😀𝔘𐍈".to_owned(),
        ),
        (
            "unnormalised combining accent in the stream id",
            "e\u{301}".to_owned(),
        ),
        (
            "SQL in the stream id",
            "'; DROP TABLE events; --".to_owned(),
        ),
        ("LIKE metacharacters in the stream id", "%_\\%".to_owned()),
        ("a stream id of spaces", "   ".to_owned()),
        (
            "noncharacters U+FFFE/U+FFFF in the stream id",
            "\u{fffe}\u{ffff}".to_owned(),
        ),
        ("a byte-order mark as stream id", "\u{feff}".to_owned()),
        ("2,000 bytes of CJK in the stream id", "漢".repeat(700)),
        ("3 KB incompressible stream id", incompressible(3 * 1024, 1)),
        (
            "10 KB incompressible stream id",
            incompressible(10 * 1024, 2),
        ),
        (
            "100 KB incompressible stream id",
            incompressible(100 * 1024, 3),
        ),
        ("1 MB stream id", "s".repeat(1 << 20)),
    ] {
        add(what, StreamId::from(id), vec![event("{}")], Either);
    }

    // Event names.
    for (what, name) in [
        ("empty event name", String::new()),
        ("NUL in the event name", "faults.\0x".to_owned()),
        ("newline in the event name", "faults.\nx".to_owned()),
        ("emoji event name", "faults.💥".to_owned()),
        (
            "3 KB incompressible event name",
            incompressible(3 * 1024, 4),
        ),
        ("100 KB event name", "n".repeat(100 * 1024)),
    ] {
        add(what, fresh(), vec![named(&name)], Either);
    }

    // Payloads.
    for (what, payload) in [
        ("payload that is not JSON", "not json".to_owned()),
        ("empty payload", String::new()),
        ("truncated JSON payload", "{\"a\":".to_owned()),
        ("JSON followed by garbage", "{} x".to_owned()),
        ("two JSON documents", "{}{}".to_owned()),
        (
            "\\u0000 in a payload string",
            r#"{"s":"a\u0000b"}"#.to_owned(),
        ),
        ("\\u0000 in a payload key", r#"{"a\u0000":1}"#.to_owned()),
        (
            "raw NUL byte in a payload string",
            "{\"s\":\"a\0b\"}".to_owned(),
        ),
        (
            "raw control character in a payload string",
            "{\"s\":\"a\u{1}b\"}".to_owned(),
        ),
        (
            "lone surrogate escape in a payload",
            r#"{"s":"\ud800"}"#.to_owned(),
        ),
        (
            "escaped surrogate pair in a payload",
            r#"{"s":"\ud83d\ude00"}"#.to_owned(),
        ),
        ("payload that is a number", "42".to_owned()),
        ("payload that is a string", "\"text\"".to_owned()),
        ("payload that is null", "null".to_owned()),
        ("payload that is an empty array", "[]".to_owned()),
        (
            "number beyond f64 in a payload",
            r#"{"n":1e400}"#.to_owned(),
        ),
        (
            "integer beyond u64 in a payload",
            r#"{"n":123456789012345678901234567890}"#.to_owned(),
        ),
        ("duplicate keys in a payload", r#"{"a":1,"a":2}"#.to_owned()),
        (
            "payload nested 10,000 deep",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        (
            "1 MB of whitespace around a payload",
            format!("{}{{}}{}", " ".repeat(1 << 19), "\n".repeat(1 << 19)),
        ),
        ("BOM before a payload", "\u{feff}{}".to_owned()),
        (
            "odd Unicode in a payload",
            json!({"s": "\u{202e}😀\u{fffe}e\u{301}"}).to_string(),
        ),
    ] {
        add(what, fresh(), vec![event(payload)], Either);
    }
    add(
        "payload above the size limit",
        fresh(),
        vec![event(format!("\"{}\"", "x".repeat(max_event_bytes + 1)))],
        Refusal,
    );

    // Metadata.
    add(
        "\\u0000 in a metadata value",
        fresh(),
        vec![with_meta("k", json!("a\u{0}b"))],
        Either,
    );
    add(
        "NUL in a metadata key",
        fresh(),
        vec![with_meta("k\0", json!(1))],
        Either,
    );
    add(
        "empty metadata key",
        fresh(),
        vec![with_meta("", json!(1))],
        Either,
    );
    add(
        "1 MB metadata value",
        fresh(),
        vec![with_meta("k", json!("m".repeat(1 << 20)))],
        Either,
    );
    add(
        "number beyond f64 in metadata",
        fresh(),
        vec![with_meta("k", json!(f64::MAX))],
        Either,
    );
    add(
        "metadata above the size limit",
        fresh(),
        vec![with_meta("k", json!("m".repeat(max_event_bytes + 1)))],
        Refusal,
    );

    // Ids, versions and batches.
    add("empty batch", fresh(), Vec::new(), Either);
    let twice = event("{}");
    add(
        "one event id twice in a batch",
        fresh(),
        vec![twice.clone(), twice],
        Refusal,
    );
    add(
        "the id of a stored event, in another stream",
        fresh(),
        vec![NewEvent {
            event_id: existing,
            ..event("{}")
        }],
        Refusal,
    );
    add(
        "nil event id",
        fresh(),
        vec![NewEvent {
            event_id: Uuid::nil(),
            ..event("{}")
        }],
        Either,
    );
    add(
        "max event id",
        fresh(),
        vec![NewEvent {
            event_id: Uuid::max(),
            ..event("{}")
        }],
        Either,
    );
    add(
        "event version 0",
        fresh(),
        vec![NewEvent {
            event_version: 0,
            ..event("{}")
        }],
        Either,
    );
    add(
        "event version u32::MAX",
        fresh(),
        vec![NewEvent {
            event_version: u32::MAX,
            ..event("{}")
        }],
        Either,
    );
    add(
        "nil correlation and causation ids",
        fresh(),
        vec![NewEvent {
            correlation_id: Some(Uuid::nil()),
            causation_id: Some(Uuid::nil()),
            ..event("{}")
        }],
        Either,
    );
    add(
        "a batch of 20,000 events",
        fresh(),
        (0..20_000).map(|_| event("{}")).collect(),
        Either,
    );
    add(
        "a batch of 200 events of 100 KB",
        fresh(),
        (0..200)
            .map(|_| event(format!("\"{}\"", "b".repeat(100 * 1024))))
            .collect(),
        Either,
    );
    let mut late_duplicate: Vec<NewEvent> = (0..1_000).map(|_| event("{}")).collect();
    late_duplicate.push(NewEvent {
        event_id: late_duplicate[0].event_id,
        ..event("{}")
    });
    add(
        "a batch of 1,001 whose last id repeats its first",
        fresh(),
        late_duplicate,
        Refusal,
    );
    let mut late_bad: Vec<NewEvent> = (0..1_000).map(|_| event("{}")).collect();
    late_bad.push(event("not json"));
    add(
        "a batch of 1,001 whose last payload is not JSON",
        fresh(),
        late_bad,
        Either,
    );

    for (what, expected) in [
        (
            "expected version u64::MAX on a new stream",
            ExpectedVersion::Exact(u64::MAX),
        ),
        (
            "expected version 2^63 on a new stream",
            ExpectedVersion::Exact(1 << 63),
        ),
        (
            "expected version 5 on a new stream",
            ExpectedVersion::Exact(5),
        ),
    ] {
        cases.push(Append {
            name: what.to_owned(),
            stream: fresh(),
            expected,
            events: vec![event("{}")],
            allowed: Refusal,
        });
    }
    cases.push(Append {
        name: "NoStream on an existing stream".to_owned(),
        stream: existing_stream.clone(),
        expected: ExpectedVersion::NoStream,
        events: vec![event("{}")],
        allowed: Refusal,
    });
    cases.push(Append {
        name: "expected version 2^63 on an existing stream".to_owned(),
        stream: existing_stream.clone(),
        expected: ExpectedVersion::Exact(1 << 63),
        events: vec![event("{}")],
        allowed: Refusal,
    });
    cases
}

/// Every hostile read.
pub fn reads() -> Vec<Read> {
    let big = incompressible(100 * 1024, 9);
    vec![
        Read::Stream(
            "read_stream of a NUL stream id".into(),
            "a\0b".into(),
            1,
            10,
        ),
        Read::Stream("read_stream of an empty stream id".into(), "".into(), 1, 10),
        Read::Stream(
            "read_stream of a 100 KB stream id".into(),
            big.into(),
            1,
            10,
        ),
        Read::Stream(
            "read_stream from version u64::MAX".into(),
            "hostile-read".into(),
            u64::MAX,
            10,
        ),
        Read::Stream(
            "read_stream from version 2^63".into(),
            "hostile-read".into(),
            1 << 63,
            10,
        ),
        Read::Stream(
            "read_stream with limit 0".into(),
            "hostile-read".into(),
            1,
            0,
        ),
        Read::Stream(
            "read_stream with limit usize::MAX".into(),
            "hostile-read".into(),
            0,
            usize::MAX,
        ),
        Read::All(
            "read_all from position u64::MAX".into(),
            Position(u64::MAX),
            10,
        ),
        Read::All("read_all from position 2^63".into(), Position(1 << 63), 10),
        Read::All("read_all with limit 0".into(), Position(1), 0),
        Read::All(
            "read_all with limit usize::MAX".into(),
            Position::ZERO,
            usize::MAX,
        ),
    ]
}

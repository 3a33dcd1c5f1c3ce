//! Rows to envelopes, and JSON text to and from JSONB without a round trip through
//! `serde_json::Value`.
//!
//! A row that cannot be read back (a NULL where a value belongs, metadata that is not a JSON
//! object, a negative schema version, a column of another type) becomes
//! [`StoreError::Decode`] naming the stream, version and event name as far as they are
//! readable; nothing here panics on stored data.
//!
//! A bad column reuses `DecodeFailure::InvalidPayload` with a message naming the column, as in
//! `eventweave-sqlite`: when this was written `DecodeFailure` was exhaustive, and a new variant
//! would have broken users' matches (it is `#[non_exhaustive]` now).

use std::borrow::Cow;
use std::cell::Cell;
use std::error::Error as StdError;
use std::sync::OnceLock;

use bytes::{BufMut, BytesMut};
use eventweave_core::{
    DecodeError, DecodeFailure, EventMeta, Payload, Position, RecordedEvent, StoreError, StreamId,
    Timestamp, UserMetadata, Uuid,
};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

type DriverError = Box<dyn StdError + Sync + Send>;

/// The JSONB binary format: a version byte, then the JSON text.
const JSONB_VERSION: u8 = 1;

/// A JSON document sent as a `jsonb` (or `json`) parameter, from text the caller already has.
#[derive(Debug)]
pub(crate) struct JsonParam<'a>(pub &'a str);

impl ToSql for JsonParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, DriverError> {
        if *ty == Type::JSONB {
            out.put_u8(JSONB_VERSION);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}

/// The text of a `jsonb` (or `json`) column, borrowed from the row.
pub(crate) struct JsonText<'a>(pub &'a str);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, DriverError> {
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((&JSONB_VERSION, rest)) => rest,
                _ => return Err("unsupported jsonb binary format version".into()),
            }
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(text)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` (or `timestamp`) column as microseconds since the Unix epoch, read straight
/// from its binary format (microseconds since 2000-01-01), without the detour through
/// `SystemTime`. `infinity` saturates at `i64::MAX`, as it did through `SystemTime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnixMicros(pub i64);

impl<'a> FromSql<'a> for UnixMicros {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, DriverError> {
        let bytes: [u8; 8] = raw
            .try_into()
            .map_err(|_| "a timestamp of other than 8 bytes")?;
        Ok(UnixMicros(
            i64::from_be_bytes(bytes).saturating_add(PG_EPOCH_UNIX_MICROS),
        ))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ || *ty == Type::TIMESTAMP
    }
}

/// Where a row's event columns start, and what the row is known to be so far (for errors).
struct Cursor<'r> {
    row: &'r Row,
    at: usize,
    stream: StreamId,
    version: u64,
    event_name: Cow<'static, str>,
    event_version: u32,
}

impl<'r> Cursor<'r> {
    fn fail(&self, column: &str, problem: impl std::fmt::Display) -> StoreError {
        StoreError::Decode(DecodeError {
            stream: self.stream.clone(),
            version: self.version,
            event_name: self.event_name.to_string(),
            event_version: self.event_version,
            failure: DecodeFailure::InvalidPayload(format!(
                "the stored row's column `{column}` {problem}"
            )),
        })
    }

    /// Column `offset` (after `at`), which must not be NULL.
    fn required<T: FromSql<'r>>(&self, offset: usize, column: &str) -> Result<T, StoreError> {
        self.checked(self.row.try_get::<_, Option<T>>(self.at + offset), column)
    }

    /// A column already read (`got`), which must not be NULL.
    fn checked<T>(
        &self,
        got: Result<Option<T>, tokio_postgres::Error>,
        column: &str,
    ) -> Result<T, StoreError> {
        match got {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(self.fail(column, "is NULL")),
            Err(e) => Err(self.fail(column, format_args!("cannot be read: {e}"))),
        }
    }

    /// Column `offset` (after `at`), which may be NULL.
    fn optional<T: FromSql<'r>>(
        &self,
        offset: usize,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        self.row
            .try_get::<_, Option<T>>(self.at + offset)
            .map_err(|e| self.fail(column, format_args!("cannot be read: {e}")))
    }
}

/// The stored names of the event types registered in this program, sorted (built once).
fn registered_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&'static str> = eventweave_core::registry::events()
            .iter()
            .map(|registration| registration.name)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    })
}

/// An event name read from a row: the registered type's own `&'static str` when one is
/// registered under it (no allocation per row: a catch-up reads the same few names over and
/// over), else an owned copy.
fn event_name(text: &str) -> Cow<'static, str> {
    match registered_name(text.as_bytes()) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(text.to_owned()),
    }
}

/// The registered name whose bytes are `bytes`, if any (no UTF-8 check needed: equal bytes
/// are the registered name's own).
fn registered_name(bytes: &[u8]) -> Option<&'static str> {
    thread_local! {
        /// The registered name found last on this thread: consecutive rows mostly repeat it.
        static LAST: Cell<&'static str> = const { Cell::new("") };
    }
    let last = LAST.with(Cell::get);
    if last.as_bytes() == bytes {
        return Some(last);
    }
    let names = registered_names();
    let found = names[names
        .binary_search_by(|name| name.as_bytes().cmp(bytes))
        .ok()?];
    LAST.with(|cell| cell.set(found));
    Some(found)
}

/// A column's value if it read as one (for naming the row in errors; checked later).
fn lenient<T: Copy, E>(column: &Result<Option<T>, E>) -> Option<T> {
    column.as_ref().ok().copied().flatten()
}

/// The position of the event whose columns start at `at` (`None` for the NULL row of an
/// empty outer join).
pub(crate) fn position(row: &Row, at: usize) -> Result<Option<u64>, StoreError> {
    match row.try_get::<_, Option<i64>>(at) {
        Ok(p) => Ok(p.map(|p| p as u64)),
        Err(e) => Err(crate::error::backend(e)),
    }
}

/// The column types [`event`] reads, in `statements::EVENT_COLUMNS` order. A row whose event
/// columns have exactly these types is decoded from the bytes of its columns
/// ([`fast_event`]); any other goes through the driver's conversions ([`checked_event`]).
const EVENT_TYPES: [Type; 12] = [
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::UUID,
    Type::TEXT,
    Type::INT4,
    Type::JSONB,
    Type::JSONB,
    Type::UUID,
    Type::UUID,
    Type::TIMESTAMPTZ,
    Type::TEXT_ARRAY,
];

/// Whether the event columns of `row` (from `at` on) have the types [`fast_event`] reads. The
/// same for every row of one statement: a reader of many rows asks once.
pub(crate) fn reads_fast(row: &Row, at: usize) -> bool {
    row.columns()
        .get(at..at + EVENT_TYPES.len())
        .is_some_and(|columns| {
            columns
                .iter()
                .zip(&EVENT_TYPES)
                .all(|(column, ty)| column.type_() == ty)
        })
}

/// A column's bytes as the server sent them, whatever its type (checked once per statement by
/// [`reads_fast`] instead of once per column and row).
struct ColumnBytes<'a>(&'a [u8]);

impl<'a> FromSql<'a> for ColumnBytes<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, DriverError> {
        Ok(ColumnBytes(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The bytes of column `index` (`Some(None)` for NULL; `None` past the row's end).
fn column_bytes(row: &Row, index: usize) -> Option<Option<&[u8]>> {
    row.try_get::<_, Option<ColumnBytes<'_>>>(index)
        .ok()
        .map(|column| column.map(|bytes| bytes.0))
}

/// A binary `int8`.
fn int8(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

/// A binary `uuid`.
fn uuid(bytes: &[u8]) -> Option<Uuid> {
    Some(Uuid::from_bytes(bytes.try_into().ok()?))
}

/// The JSON text of a binary `jsonb`.
fn jsonb_text(bytes: &[u8]) -> Option<&str> {
    match bytes.split_first() {
        Some((&JSONB_VERSION, text)) => std::str::from_utf8(text).ok(),
        _ => None,
    }
}

/// The event whose columns start at `at`, read from the columns' bytes, when `row` holds an
/// event that decodes without a problem; `None` for anything else (a NULL where a value
/// belongs, a value out of range, metadata that is not an object, a bad tag, …), which
/// [`checked_event`] then reads again to name the problem. Only for rows whose columns have
/// the types [`reads_fast`] checks.
///
/// It checks what [`checked_event`] checks, without the driver's per-column conversion (a type
/// check, and for text three type-name comparisons) and without carrying what a failure would
/// report.
fn fast_event(row: &Row, at: usize, last_stream: &mut Option<StreamId>) -> Option<RecordedEvent> {
    let required = |offset: usize| column_bytes(row, at + offset).flatten();
    let optional = |offset: usize| column_bytes(row, at + offset);
    let position = int8(required(0)?)?;
    let stream_bytes = required(1)?;
    let version = int8(required(2)?)?;
    if position < 1 || version < 1 {
        return None;
    }
    let event_id = uuid(required(3)?)?;
    let name_bytes = required(4)?;
    // A registered name's bytes are valid UTF-8: only other names are checked.
    let name = match registered_name(name_bytes) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(std::str::from_utf8(name_bytes).ok()?.to_owned()),
    };
    let event_version = u32::try_from(i32::from_be_bytes(required(5)?.try_into().ok()?)).ok()?;
    let payload = jsonb_text(required(6)?)?;
    let metadata = match optional(7)? {
        None => UserMetadata::empty(),
        Some(bytes) => match jsonb_text(bytes)? {
            "{}" => UserMetadata::empty(),
            text => UserMetadata::from_map(
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok()?,
            ),
        },
    };
    let correlation_id = match optional(8)? {
        None => None,
        Some(bytes) => Some(uuid(bytes)?),
    };
    let causation_id = match optional(9)? {
        None => None,
        Some(bytes) => Some(uuid(bytes)?),
    };
    let recorded_at = int8(required(10)?)?.saturating_add(PG_EPOCH_UNIX_MICROS);
    let tags = match optional(11)? {
        None => eventweave_core::Tags::empty(),
        // Tagged events are few; their array goes through the driver.
        Some(_) => {
            crate::dcb::decode_tags(row.try_get::<_, Option<Vec<&str>>>(at + 11).ok()?).ok()?
        }
    };
    // The same bytes as the previous row's stream are the same (valid) name.
    let stream = match last_stream {
        Some(last) if last.as_str().as_bytes() == stream_bytes => last.clone(),
        _ => {
            let stream = StreamId::from(std::str::from_utf8(stream_bytes).ok()?);
            *last_stream = Some(stream.clone());
            stream
        }
    };
    Some(RecordedEvent {
        meta: EventMeta {
            event_id,
            stream,
            version: version as u64,
            position: Position(position as u64),
            event_name: name,
            event_version,
            recorded_at: Timestamp(recorded_at),
            correlation_id,
            causation_id,
            metadata,
            tags,
        },
        payload: Payload::from_json(payload),
    })
}

/// The event whose columns (in `statements::EVENT_COLUMNS` order) start at `at`. `last_stream`
/// lets consecutive rows of one stream share one `StreamId` allocation.
pub(crate) fn event(
    row: &Row,
    at: usize,
    last_stream: &mut Option<StreamId>,
) -> Result<RecordedEvent, StoreError> {
    event_read(row, at, reads_fast(row, at), last_stream)
}

/// [`event`], told whether the row's columns have the types [`reads_fast`] checks (`fast`):
/// a reader of many rows of one statement checks once.
pub(crate) fn event_read(
    row: &Row,
    at: usize,
    fast: bool,
    last_stream: &mut Option<StreamId>,
) -> Result<RecordedEvent, StoreError> {
    if fast && let Some(event) = fast_event(row, at, last_stream) {
        return Ok(event);
    }
    checked_event(row, at, last_stream)
}

/// [`event`] through the driver's conversions, column by column: a problem becomes a
/// `StoreError::Decode` naming the row and the column.
fn checked_event(
    row: &Row,
    at: usize,
    last_stream: &mut Option<StreamId>,
) -> Result<RecordedEvent, StoreError> {
    // The identifying columns are read once: leniently first, so that any later error can
    // name them, and checked in column order below.
    let stream_column = row.try_get::<_, Option<&str>>(at + 1);
    let version_column = row.try_get::<_, Option<i64>>(at + 2);
    let name_column = row.try_get::<_, Option<&str>>(at + 4);
    let event_version_column = row.try_get::<_, Option<i32>>(at + 5);
    let stream = match (lenient(&stream_column), last_stream.as_ref()) {
        (Some(text), Some(last)) if last.as_str() == text => last.clone(),
        (Some(text), _) => {
            let stream = StreamId::from(text);
            *last_stream = Some(stream.clone());
            stream
        }
        (None, _) => StreamId::from(""),
    };
    let mut cursor = Cursor {
        row,
        at,
        stream,
        version: lenient(&version_column).map_or(0, |v: i64| v.max(0) as u64),
        event_name: lenient(&name_column).map_or(Cow::Borrowed(""), event_name),
        event_version: lenient(&event_version_column).map_or(0, |v: i32| v.max(0) as u32),
    };
    let position: i64 = cursor.required(0, "position")?;
    if position < 1 {
        return Err(cursor.fail("position", format_args!("is {position}, not a position")));
    }
    cursor.checked(stream_column, "stream")?;
    let version: i64 = cursor.checked(version_column, "version")?;
    if version < 1 {
        return Err(cursor.fail("version", format_args!("is {version}; versions start at 1")));
    }
    let event_id: Uuid = cursor.required(3, "event_id")?;
    cursor.checked(name_column, "event_name")?;
    let event_version: i32 = cursor.checked(event_version_column, "event_version")?;
    let event_version = u32::try_from(event_version).map_err(|_| {
        cursor.fail(
            "event_version",
            format_args!("is {event_version}; schema versions are not negative"),
        )
    })?;
    cursor.event_version = event_version;
    let payload: JsonText<'_> = cursor.required(6, "payload")?;
    let payload = Payload::from_json(payload.0);
    let metadata = match cursor.optional::<JsonText<'_>>(7, "metadata")? {
        // Most events carry none: no parse for the empty object.
        None | Some(JsonText("{}")) => UserMetadata::empty(),
        Some(JsonText(text)) => {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
                Ok(map) => UserMetadata::from_map(map),
                Err(_) => {
                    let shown: String = text.chars().take(40).collect();
                    return Err(cursor.fail(
                        "metadata",
                        format_args!("holds `{shown}`, which is not a JSON object"),
                    ));
                }
            }
        }
    };
    let correlation_id: Option<Uuid> = cursor.optional(8, "correlation_id")?;
    let causation_id: Option<Uuid> = cursor.optional(9, "causation_id")?;
    let recorded_at: UnixMicros = cursor.required(10, "recorded_at")?;
    let tags = crate::dcb::decode_tags(cursor.optional::<Vec<&str>>(11, "tags")?)
        .map_err(|problem| cursor.fail("tags", problem))?;
    cursor.version = version as u64;
    let Cursor {
        stream, event_name, ..
    } = cursor;
    Ok(RecordedEvent {
        meta: EventMeta {
            event_id,
            stream,
            version: version as u64,
            position: Position(position as u64),
            event_name,
            event_version,
            recorded_at: Timestamp(recorded_at.0),
            correlation_id,
            causation_id,
            metadata,
            tags,
        },
        payload,
    })
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn jsonb_parameters_carry_the_format_version_byte() {
        let mut out = BytesMut::new();
        JsonParam(r#"{"a":1}"#)
            .to_sql(&Type::JSONB, &mut out)
            .unwrap();
        assert_eq!(&out[..], b"\x01{\"a\":1}");
        let mut out = BytesMut::new();
        JsonParam("[]").to_sql(&Type::JSON, &mut out).unwrap();
        assert_eq!(&out[..], b"[]", "plain json has no version byte");
        assert!(!<JsonParam<'_> as ToSql>::accepts(&Type::TEXT));
    }

    #[test]
    fn unregistered_event_names_are_copied() {
        for _ in 0..2 {
            assert!(
                matches!(event_name("no.such.event"), Cow::Owned(name) if name == "no.such.event")
            );
        }
    }

    #[test]
    fn timestamps_are_read_as_unix_micros() {
        let at = |micros: i64| UnixMicros::from_sql(&Type::TIMESTAMPTZ, &micros.to_be_bytes());
        assert_eq!(at(0).unwrap(), UnixMicros(946_684_800_000_000));
        assert_eq!(at(-946_684_800_000_000).unwrap(), UnixMicros(0));
        // 2026-12-07 12:00:00.000001 UTC.
        let unix = 1_796_644_800_000_001;
        assert_eq!(
            at(unix - 946_684_800_000_000).unwrap(),
            UnixMicros(unix),
            "the same instant as through SystemTime"
        );
        let through_system_time = Timestamp::from(
            SystemTime::from_sql(
                &Type::TIMESTAMPTZ,
                &(unix - 946_684_800_000_000).to_be_bytes(),
            )
            .unwrap(),
        );
        assert_eq!(through_system_time.0, unix);
        assert_eq!(at(i64::MAX).unwrap(), UnixMicros(i64::MAX), "infinity");
        assert!(UnixMicros::from_sql(&Type::TIMESTAMPTZ, &[0; 4]).is_err());
        assert!(!<UnixMicros as FromSql<'_>>::accepts(&Type::INT8));
    }

    /// Rows read from their bytes (`fast_event`) come out exactly as through the driver's
    /// conversions (`checked_event`): metadata or none, correlation and causation ids or none,
    /// tags or none, non-ASCII text, and a row written by hand with an empty metadata object.
    /// Skips when `CQRS_POSTGRES_URL` is not set.
    #[tokio::test(flavor = "current_thread")]
    async fn rows_read_from_their_bytes_equal_rows_read_through_the_driver() {
        use eventweave_core::{EventStore, ExpectedVersion, NewEvent, Tag, Tags};
        let Some(url) = std::env::var("CQRS_POSTGRES_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
        else {
            eprintln!("SKIPPED: rows_read_from_their_bytes_equal_rows_read_through_the_driver");
            return;
        };
        let schema = format!("cqrs_test_decode_{}", eventweave_core::new_id().simple());
        let store = crate::PostgresStore::open(crate::PostgresConfig::new(url).schema(&schema))
            .await
            .unwrap();
        let event = |payload: &str, tagged: bool| {
            let mut metadata = UserMetadata::empty();
            if tagged {
                metadata.insert("user", "ünïcode");
            }
            NewEvent {
                event_id: eventweave_core::new_id(),
                event_name: "decode.test".into(),
                event_version: 3,
                payload: Payload::from_json(payload),
                correlation_id: tagged.then(eventweave_core::new_id),
                causation_id: (!tagged).then(eventweave_core::new_id),
                metadata,
                tags: if tagged {
                    Tags::new([Tag::parse("b:2").unwrap(), Tag::parse("a:1").unwrap()])
                } else {
                    Tags::empty()
                },
            }
        };
        store
            .append(
                &StreamId::from("décode-1"),
                ExpectedVersion::NoStream,
                vec![event(r#"{"n":1}"#, false), event(r#"{"s":"ß→✓"}"#, true)],
            )
            .await
            .unwrap();
        let conn = store.shared.pool.get().await.unwrap();
        let events = &store.shared.names.events;
        conn.client
            .batch_execute(&format!(
                "INSERT INTO {events} (stream, version, event_id, event_name, event_version,
                     payload, metadata)
                 VALUES ('décode-2', 1, gen_random_uuid(), 'not.registered', 0, '[]', '{{}}')"
            ))
            .await
            .unwrap();
        let rows = conn
            .client
            .query(
                &format!(
                    "SELECT {} FROM {events} ORDER BY position",
                    crate::statements::EVENT_COLUMNS
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        let (mut fast_last, mut checked_last) = (None, None);
        for row in &rows {
            assert!(
                reads_fast(row, 0),
                "the store's columns are read from their bytes"
            );
            let fast = fast_event(row, 0, &mut fast_last).expect("a good row reads fast");
            let checked = checked_event(row, 0, &mut checked_last).unwrap();
            assert_eq!(fast, checked);
        }
        assert!(
            !rows[1]
                .try_get::<_, Option<Vec<&str>>>(11)
                .unwrap()
                .unwrap()
                .is_empty()
        );
        assert!(!reads_fast(&rows[0], 1), "shifted columns have other types");
        conn.client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    }

    #[test]
    fn jsonb_columns_are_read_as_text_and_unknown_formats_refused() {
        let text = JsonText::from_sql(&Type::JSONB, b"\x01{\"a\": 1}").unwrap();
        assert_eq!(text.0, "{\"a\": 1}");
        assert_eq!(JsonText::from_sql(&Type::JSON, b"[1]").unwrap().0, "[1]");
        assert!(JsonText::from_sql(&Type::JSONB, b"\x02{}").is_err());
        assert!(JsonText::from_sql(&Type::JSONB, b"").is_err());
        assert!(
            JsonText::from_sql(&Type::JSONB, b"\x01\xff").is_err(),
            "not UTF-8"
        );
    }
}

//! Reads: one stream in version order, every stream in position order, the head, and turning a
//! row back into a [`RecordedEvent`].
//!
//! A row that cannot be read back (metadata that is not a JSON object, an id that is not 16
//! bytes, text that is not UTF-8, …) is a `StoreError::Decode` naming its stream, version and
//! event name, never a panic. Payloads are not parsed here: the command bus and projections
//! decode them and report bad ones with the same coordinates.
//!
//! Corrupt metadata reuses `DecodeFailure::InvalidPayload`, with a message naming the column
//! (``column `metadata`: is not a JSON object: …``). When this was written `DecodeFailure` was
//! exhaustive and a new variant would have broken users' matches; it is `#[non_exhaustive]` now,
//! so a variant of its own remains possible.
//!
//! A row with corrupt metadata stops `read_all` at that row, and the error names it: the contract
//! has no way to skip an event, and skipping silently would break "never skip". Projections
//! catching up report `QueryError::Store(StoreError::Decode(..))`; other streams' `read_stream` and
//! appends keep working; the row is repaired with SQL.
//!
//! A row that cannot even be named (no readable position, stream or version) is
//! `StoreError::Backend` instead, since a decode error must name them.

use std::borrow::Cow;
use std::sync::Arc;

use eventweave_core::{
    DecodeError, DecodeFailure, EventMeta, Payload, Position, RecordedEvent, StoreError, StreamId,
    Timestamp, UserMetadata, Uuid,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};

use crate::error::backend;

/// The columns every read selects, in the order [`decode_row`] reads them (a macro, so
/// statements are built with `concat!` at compile time).
macro_rules! columns {
    () => {
        "position, stream, version, event_name, event_id, event_version, payload, metadata, \
         correlation_id, causation_id, recorded_at, tags"
    };
}
/// Up to `limit` events of `stream` from `from_version` on.
pub(crate) fn read_stream(
    conn: &Connection,
    stream: &StreamId,
    from_version: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version LIMIT ?3"
        ))
        .map_err(backend)?;
    let mut rows = statement
        .query((stream.as_str(), to_sql_int(from_version), sql_limit(limit)))
        .map_err(backend)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        // The query compared stream names byte for byte, so the caller's name is the row's.
        events.push(decode_row(row, Some(stream))?);
    }
    Ok(events)
}

/// The event stored with id `event_id`, if any (one lookup in the unique event-id index).
pub(crate) fn read_event(
    conn: &Connection,
    event_id: Uuid,
) -> Result<Option<RecordedEvent>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE event_id = ?1"
        ))
        .map_err(backend)?;
    let mut rows = statement
        .query([&event_id.as_bytes()[..]])
        .map_err(backend)?;
    match rows.next().map_err(backend)? {
        Some(row) => decode_row(row, None).map(Some),
        None => Ok(None),
    }
}

/// Every stream's events from a position on, in position order.
pub(crate) const ALL_FROM: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2"
);

/// Up to `limit` events of every stream from position `from` on.
///
/// One statement reads one snapshot, and SQLite commits one writer at a time with positions
/// assigned inside the transaction, so a snapshot always holds a gap-free prefix of positions.
pub(crate) fn read_all(
    conn: &Connection,
    from: Position,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare_cached(ALL_FROM).map_err(backend)?;
    let mut rows = statement
        .query((to_sql_int(from.0), sql_limit(limit)))
        .map_err(backend)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        events.push(decode_row(row, None)?);
    }
    Ok(events)
}

/// The newest position stored (`Position::ZERO` when the store is empty).
pub(crate) fn head(conn: &Connection) -> Result<Position, StoreError> {
    let head: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(position), 0) FROM events")
        .and_then(|mut s| s.query_row([], |row| row.get(0)))
        .map_err(backend)?;
    Ok(Position(head.max(0) as u64))
}

/// SQLite integers are signed; versions and positions never come near `i64::MAX`.
pub(crate) fn to_sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Turns one row (selected with [`columns!`]) into an event. `stream` is the stream's name when
/// the caller already holds it.
pub(crate) fn decode_row(
    row: &Row<'_>,
    stream: Option<&StreamId>,
) -> Result<RecordedEvent, StoreError> {
    // Without position, stream and version the row cannot even be named: a back-end error.
    let position: i64 = row.get(0).map_err(backend)?;
    let stream = match stream {
        Some(stream) => stream.clone(),
        None => {
            StreamId::new(text(row, 1).map_err(|e| unreadable_coordinate(position, "stream", e))?)
        }
    };
    let version: i64 = row.get(2).map_err(backend)?;
    let event_name = text(row, 3).map(str::to_owned);
    let bad = |event_name: &str, column: &str, why: String| {
        StoreError::Decode(DecodeError {
            stream: stream.clone(),
            version: version as u64,
            event_name: event_name.to_owned(),
            event_version: row
                .get::<_, i64>(5)
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            failure: DecodeFailure::InvalidPayload(format!("column `{column}`: {why}")),
        })
    };
    let event_name = event_name.map_err(|why| bad("(unreadable)", "event_name", why))?;
    let bad = |column: &str, why: String| bad(&event_name, column, why);

    let event_id = uuid(row, 4)
        .and_then(|id| id.ok_or_else(|| "is NULL".to_owned()))
        .map_err(|why| bad("event_id", why))?;
    let event_version = row
        .get::<_, i64>(5)
        .map_err(|e| e.to_string())
        .and_then(|v| u32::try_from(v).map_err(|e| e.to_string()))
        .map_err(|why| bad("event_version", why))?;
    let payload = text(row, 6).map_err(|why| bad("payload", why))?;
    let metadata = metadata(row, 7).map_err(|why| bad("metadata", why))?;
    let correlation_id = uuid(row, 8).map_err(|why| bad("correlation_id", why))?;
    let causation_id = uuid(row, 9).map_err(|why| bad("causation_id", why))?;
    let recorded_at: i64 = row.get(10).map_err(|e| bad("recorded_at", e.to_string()))?;
    let tags = crate::dcb::decode_tags(row, 11).map_err(|why| bad("tags", why))?;
    Ok(RecordedEvent {
        meta: EventMeta {
            event_id,
            stream,
            version: version as u64,
            position: Position(position as u64),
            event_name: Cow::Owned(event_name),
            event_version,
            recorded_at: Timestamp(recorded_at),
            correlation_id,
            causation_id,
            metadata,
            tags,
        },
        payload: Payload::from_json(Arc::<str>::from(payload)),
    })
}

fn unreadable_coordinate(position: i64, column: &str, why: String) -> StoreError {
    StoreError::Backend(format!("event at position {position}: column `{column}` {why}").into())
}

/// A TEXT column as UTF-8, borrowed from the row.
fn text<'r>(row: &'r Row<'_>, column: usize) -> Result<&'r str, String> {
    match row.get_ref(column).map_err(|e| e.to_string())? {
        ValueRef::Text(bytes) => {
            std::str::from_utf8(bytes).map_err(|e| format!("is not UTF-8: {e}"))
        }
        other => Err(format!("holds {:?}, not text", other.data_type())),
    }
}

/// A nullable 16-byte BLOB column as an id.
fn uuid(row: &Row<'_>, column: usize) -> Result<Option<Uuid>, String> {
    match row.get_ref(column).map_err(|e| e.to_string())? {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(bytes) => Uuid::from_slice(bytes)
            .map(Some)
            .map_err(|_| format!("holds {} bytes, not a 16-byte id", bytes.len())),
        other => Err(format!("holds {:?}, not a 16-byte id", other.data_type())),
    }
}

/// The nullable metadata column: NULL for none, else a JSON object.
fn metadata(row: &Row<'_>, column: usize) -> Result<UserMetadata, String> {
    if let ValueRef::Null = row.get_ref(column).map_err(|e| e.to_string())? {
        return Ok(UserMetadata::empty());
    }
    let json = text(row, column)?;
    serde_json::from_str(json)
        .map(UserMetadata::from_map)
        .map_err(|e| format!("is not a JSON object: {e}"))
}

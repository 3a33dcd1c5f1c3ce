//! Dynamic consistency boundaries on SQLite: tags stored with events, reading by
//! [`EventQuery`], and the atomic, conditional append to several streams.
//!
//! **Storage** (migration 4, `schema.rs`): `events.tags` holds an event's tags as a JSON array
//! (NULL without tags), read back with every event; `event_tags (tag, position)` (a
//! `WITHOUT ROWID` table keyed by both) is the index a query reads by. Plain appends of tagged
//! events write both in `append.rs`, alone or in a group's savepoint (`group.rs`); this module
//! writes them for conditional appends and writes to several streams.
//!
//! **Why a condition cannot miss a write.** SQLite has one writer at a time: an append (plain or
//! conditional) runs in a `BEGIN IMMEDIATE` transaction, which holds the file's write lock from
//! its first statement to its commit, across processes too. A conditional append checks its
//! condition and each write's version, then inserts, inside that one transaction: no event can
//! be committed between the check and the insert. Positions are rowids assigned inside the write
//! transaction, so a reader's snapshot always holds a gap-free prefix; `read_query` reads its
//! events and the head in one read transaction (one snapshot), so the head it states as
//! `through` has nothing missing below it. Appends whose queries do not overlap still take
//! turns (the one write lock, tens of microseconds each); SQLite offers no finer lock.
//!
//! **Query evaluation.** One prepared statement per kind of item, whatever its size (the item's
//! tags and types travel as JSON arrays, read with `json_each`): an item with tags scans
//! `event_tags` for its first tag from the start position on and checks each candidate's other
//! tags (index lookups) and type; an item with types only scans the events table by position
//! from the start (no index by type: every append would pay for one). The items' positions are
//! merged in order, then their rows read by position.

use std::collections::{BTreeSet, HashMap};

use eventweave_core::{
    AppendCondition, EventQuery, NewEvent, Position, QueryItem, QueryRead, RecordedEvent,
    StoreError, StreamId, StreamWrite, Tag, Tags, Timestamp, Uuid, check_retry,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use crate::error::{backend, commit_failed};
use crate::read::{decode_row, to_sql_int};

/// The events matching an item with tags: the first tag's index range from `?2` on, each
/// candidate carrying every tag of `?3` (a JSON array) and, if `?4` names types, one of them.
const BY_TAGS: &str =
    "SELECT t.position FROM event_tags AS t JOIN events AS e ON e.position = t.position
     WHERE t.tag = ?1 AND t.position >= ?2
       AND NOT EXISTS (SELECT 1 FROM json_each(?3) AS r WHERE NOT EXISTS (
             SELECT 1 FROM event_tags AS x WHERE x.tag = r.value AND x.position = t.position))
       AND (json_array_length(?4) = 0 OR e.event_name IN (SELECT value FROM json_each(?4)))
     ORDER BY t.position LIMIT ?5";

/// The events of an item with types only: by position from `?1` on.
const BY_TYPES: &str = "SELECT position FROM events
     WHERE position >= ?1 AND event_name IN (SELECT value FROM json_each(?2))
     ORDER BY position LIMIT ?3";

/// Every event from `?1` on.
const ALL: &str = "SELECT position FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2";

const EVENT_AT: &str = concat!(
    "SELECT ",
    "position, stream, version, event_name, event_id, event_version, payload, metadata, \
     correlation_id, causation_id, recorded_at, tags",
    " FROM events WHERE position = ?1"
);

const INSERT: &str = "INSERT INTO events (event_id, stream, version, event_name, event_version, \
     payload, metadata, correlation_id, causation_id, recorded_at, tags) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The `tags` column of a row: NULL for none, else a JSON array of valid tags.
pub(crate) fn decode_tags(row: &Row<'_>, column: usize) -> Result<Tags, String> {
    let text = match row.get_ref(column).map_err(|e| e.to_string())? {
        ValueRef::Null => return Ok(Tags::empty()),
        ValueRef::Text(bytes) => {
            std::str::from_utf8(bytes).map_err(|e| format!("is not UTF-8: {e}"))?
        }
        other => return Err(format!("holds {:?}, not text", other.data_type())),
    };
    let texts: Vec<&str> =
        serde_json::from_str(text).map_err(|e| format!("is not a JSON array of strings: {e}"))?;
    let mut tags = Vec::with_capacity(texts.len());
    for text in texts {
        tags.push(Tag::parse(text).map_err(|e| format!("holds a bad tag: {e}"))?);
    }
    Ok(Tags::new(tags))
}

/// The `tags` column of an event: NULL without tags, else a JSON array of them.
pub(crate) fn tags_column(tags: &Tags) -> Option<String> {
    (!tags.is_empty()).then(|| json_strings(tags.iter().map(Tag::as_str)))
}

fn json_strings<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::Value::Array(
        texts
            .into_iter()
            .map(|t| serde_json::Value::String(t.to_owned()))
            .collect(),
    )
    .to_string()
}

/// Positions (at least `from`) of up to `limit` events matching `item`, ascending.
fn item_positions(
    conn: &Connection,
    item: &QueryItem,
    from: u64,
    limit: usize,
) -> Result<Vec<i64>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let types = json_strings(item.event_types().iter().map(|t| t.as_ref()));
    let positions = match item.required_tags().split_first() {
        Some((first, others)) => {
            let others = json_strings(others.iter().map(Tag::as_str));
            let mut statement = conn.prepare_cached(BY_TAGS).map_err(backend)?;
            statement
                .query_map(
                    (first.as_str(), to_sql_int(from), others, types, limit),
                    |row| row.get(0),
                )
                .and_then(Iterator::collect)
        }
        None => {
            let mut statement = conn.prepare_cached(BY_TYPES).map_err(backend)?;
            statement
                .query_map((to_sql_int(from), types, limit), |row| row.get(0))
                .and_then(Iterator::collect)
        }
    };
    positions.map_err(backend)
}

/// Positions (at least `from`) of up to `limit` events matching `query`, ascending.
fn query_positions(
    conn: &Connection,
    query: &EventQuery,
    from: u64,
    limit: usize,
) -> Result<Vec<i64>, StoreError> {
    let Some(items) = query.items() else {
        let mut statement = conn.prepare_cached(ALL).map_err(backend)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        return statement
            .query_map((to_sql_int(from), limit), |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(backend);
    };
    let mut found = BTreeSet::new();
    for item in items {
        found.extend(item_positions(conn, item, from, limit)?);
    }
    Ok(found.into_iter().take(limit).collect())
}

/// Reads by query in one read transaction: the events and the head come from one snapshot.
pub(crate) fn read_query(
    conn: &Connection,
    query: &EventQuery,
    from: Position,
    limit: usize,
) -> Result<QueryRead, StoreError> {
    let from = from.0.max(1);
    if limit == 0 {
        // Nothing was read: complete through just before `from`.
        return Ok(QueryRead {
            events: Vec::new(),
            through: Position(from - 1),
        });
    }
    let tx = conn.unchecked_transaction().map_err(backend)?;
    let positions = query_positions(&tx, query, from, limit)?;
    let mut events = Vec::with_capacity(positions.len());
    {
        let mut at = tx.prepare_cached(EVENT_AT).map_err(backend)?;
        for position in positions {
            let mut rows = at.query([position]).map_err(backend)?;
            if let Some(row) = rows.next().map_err(backend)? {
                events.push(decode_row(row, None)?);
            }
        }
    }
    let through = match events.last() {
        Some(e) if events.len() == limit => e.meta.position,
        _ => Position(crate::read::head(&tx)?.0.max(from - 1)),
    };
    tx.finish().map_err(backend)?;
    Ok(QueryRead { events, through })
}

/// The conditional append to several streams, in one `BEGIN IMMEDIATE` transaction.
pub(crate) fn append(
    conn: &mut Connection,
    writes: Vec<StreamWrite>,
    condition: Option<&AppendCondition>,
    now: Timestamp,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    // A retry of a committed append fails its own condition: recognise it first.
    if let Some(outcome) = replayed(&writes, stored_events(&tx, &writes)?) {
        return outcome;
    }
    let mut versions = Vec::with_capacity(writes.len());
    for write in &writes {
        let version = stream_version(&tx, &write.stream)?;
        if !write.expected.admits(version) {
            return Err(StoreError::Conflict {
                stream: write.stream.clone(),
                expected: write.expected,
                actual: version,
            });
        }
        versions.push(version);
    }
    if let Some(condition) = condition {
        let after = condition.after.0;
        if let Some(&conflicting) = query_positions(&tx, &condition.query, after + 1, 1)?.first() {
            return Err(StoreError::ConditionFailed {
                after: condition.after,
                conflicting: Position(conflicting as u64),
            });
        }
    }
    let mut recorded = Vec::new();
    {
        let mut insert = tx.prepare_cached(INSERT).map_err(backend)?;
        let mut tag = tx
            .prepare_cached(crate::append::INSERT_TAG)
            .map_err(backend)?;
        for (write, version) in writes.into_iter().zip(versions) {
            for (i, event) in write.events.into_iter().enumerate() {
                let version = version + 1 + i as u64;
                let position = insert_event(&mut insert, &write.stream, version, &event, now)?;
                for t in &event.tags {
                    tag.execute((t.as_str(), position)).map_err(backend)?;
                }
                recorded.push(event.record(
                    write.stream.clone(),
                    version,
                    Position(position as u64),
                    now,
                ));
            }
        }
    }
    tx.commit().map_err(commit_failed)?;
    Ok(recorded)
}

fn insert_event(
    insert: &mut rusqlite::CachedStatement<'_>,
    stream: &StreamId,
    version: u64,
    event: &NewEvent,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let metadata = if event.metadata.is_empty() {
        None
    } else {
        // A map of JSON values always serializes; the error is kept, not unwrapped.
        Some(
            serde_json::to_string(event.metadata.as_map())
                .map_err(|e| StoreError::Backend(eventweave_core::BackendError::from_error(e)))?,
        )
    };
    let tags = tags_column(&event.tags);
    let position = insert
        .insert((
            &event.event_id.as_bytes()[..],
            stream.as_str(),
            to_sql_int(version),
            &*event.event_name,
            event.event_version,
            event.payload.as_str(),
            metadata,
            event.correlation_id.as_ref().map(|id| &id.as_bytes()[..]),
            event.causation_id.as_ref().map(|id| &id.as_bytes()[..]),
            now.unix_micros(),
            tags,
        ))
        .map_err(backend)?;
    Ok(position)
}

fn stream_version(tx: &Transaction<'_>, stream: &StreamId) -> Result<u64, StoreError> {
    let version: Option<i64> = tx
        .prepare_cached("SELECT MAX(version) FROM events WHERE stream = ?1")
        .and_then(|mut s| s.query_row([stream.as_str()], |row| row.get(0)))
        .map_err(backend)?;
    Ok(version.map_or(0, |v| v as u64))
}

/// The stored events carrying ids of `writes`, in position order.
fn stored_events(
    tx: &Transaction<'_>,
    writes: &[StreamWrite],
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut find = tx
        .prepare_cached("SELECT position FROM events WHERE event_id = ?1")
        .map_err(backend)?;
    let mut positions = Vec::new();
    for event in writes.iter().flat_map(|w| &w.events) {
        let position: Option<i64> = find
            .query_row([&event.event_id.as_bytes()[..]], |row| row.get(0))
            .optional()
            .map_err(backend)?;
        positions.extend(position);
    }
    positions.sort_unstable();
    let mut at = tx.prepare_cached(EVENT_AT).map_err(backend)?;
    let mut stored = Vec::with_capacity(positions.len());
    for position in positions {
        let mut rows = at.query([position]).map_err(backend)?;
        if let Some(row) = rows.next().map_err(backend)? {
            stored.push(decode_row(row, None)?);
        }
    }
    Ok(stored)
}

/// The answer to an append some of whose ids are stored (`None` if none is): the stored events
/// if every id is stored as this same append (each write's events in its stream, in order, at
/// consecutive versions, after the previous write's), `IdempotencyConflict` if only the events'
/// content differs, `DuplicateEventId` otherwise.
fn replayed(
    writes: &[StreamWrite],
    stored: Vec<RecordedEvent>,
) -> Option<Result<Vec<RecordedEvent>, StoreError>> {
    let first_stored = stored.first()?.meta.event_id;
    let by_id: HashMap<Uuid, &RecordedEvent> =
        stored.iter().map(|e| (e.meta.event_id, e)).collect();
    let duplicate = |event_id: Uuid, stream: &StreamId| {
        Some(Err(StoreError::DuplicateEventId {
            event_id,
            stream: stream.clone(),
        }))
    };
    let mut previous = Position::ZERO;
    for write in writes {
        let mut run: Vec<RecordedEvent> = Vec::with_capacity(write.events.len());
        for event in &write.events {
            let Some(&s) = by_id.get(&event.event_id) else {
                let id = write
                    .events
                    .iter()
                    .map(|e| e.event_id)
                    .find(|id| by_id.contains_key(id))
                    .unwrap_or(first_stored);
                return duplicate(id, &write.stream);
            };
            let in_order = s.meta.position > previous
                && run
                    .last()
                    .is_none_or(|r| s.meta.version == r.meta.version + 1);
            if s.meta.stream != write.stream || !in_order {
                return duplicate(event.event_id, &write.stream);
            }
            previous = s.meta.position;
            run.push(s.clone());
        }
        if let Err(e) = check_retry(&write.stream, &run, &write.events) {
            return Some(Err(e));
        }
    }
    Some(Ok(stored))
}

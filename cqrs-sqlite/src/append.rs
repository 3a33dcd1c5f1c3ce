//! The append transaction: expected-version check, idempotent retries and the inserts, all in
//! one `BEGIN IMMEDIATE` transaction, so a batch is written whole or not at all.
//!
//! A batch runs one cached, prepared `INSERT` per event inside its transaction, rather than one
//! multi-row statement (DESIGN.md §4): SQLite is in-process, so there is no round trip to save, and
//! a multi-row statement would have to be prepared again for every batch size.
//!
//! A retry is recognised before a conflict is reported: a retried append carries a stale
//! expectation, so when the version does not match, the batch's ids are looked up first. When an
//! insert hits the unique event-id index, the transaction is rolled back *before* the ids are
//! looked up, so rows of the failed batch are never mistaken for stored ones. Same ids, same
//! stream, same order, consecutive positions: the stored events; anything else: `DuplicateEventId`;
//! a batch mixing stored and new ids writes nothing. The size limit is checked before the
//! transaction starts (`check_event_sizes`), so a refused batch touches nothing.

use eventweave_core::{
    BackendError, ExpectedVersion, NewEvent, Position, RecordedEvent, StoreError, StreamId,
    Timestamp, Uuid, check_retry,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{backend, commit_failed};
use crate::read::{ALL_FROM, decode_row, to_sql_int};

const INSERT: &str = "INSERT INTO events (event_id, stream, version, event_name, event_version, \
     payload, metadata, correlation_id, causation_id, recorded_at, tags) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// One row of the tag index per tag of an inserted event.
pub(crate) const INSERT_TAG: &str = "INSERT INTO event_tags (tag, position) VALUES (?1, ?2)";

/// What to answer an append.
pub(crate) type Reply = Result<Vec<RecordedEvent>, StoreError>;

/// Appends `events` to `stream` in one transaction on the write connection.
pub(crate) fn append(
    conn: &mut Connection,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    now: Timestamp,
) -> Reply {
    // IMMEDIATE takes the write lock first, so the version read below cannot go stale before
    // the inserts (a DEFERRED transaction could fail to upgrade its lock instead).
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    // An error drops `tx`, which rolls back.
    match write(&tx, stream, expected, &events, now)? {
        Step::Inserted { version, positions } => {
            // Only a failing commit can leave the outcome unknown (see `commit_failed`).
            tx.commit().map_err(commit_failed)?;
            Ok(record(stream, events, version, positions, now))
        }
        Step::Answered(answer) => answer,
        Step::IdTaken(e) => {
            // An id of the batch is stored already. The rows inserted before it still belong
            // to this transaction, so roll it back before looking the ids up.
            tx.rollback().map_err(backend)?;
            match earlier_append(conn, stream, &events)? {
                Some(outcome) => outcome,
                None => Err(backend(e)),
            }
        }
    }
}

/// One append of a group: what it asks, and where its answer goes.
pub(crate) struct Request {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// Appends each request in a savepoint of one transaction, committed once: each gets the answer
/// it would get alone, in order (a later append of a stream sees the earlier ones' rows), and
/// one that fails rolls back to its savepoint, leaving the others. If the commit fails, every
/// append that wrote (or found its events written earlier in the group) gets the commit's error.
pub(crate) fn append_group(
    conn: &mut Connection,
    group: Vec<Request>,
    now: Timestamp,
) -> Vec<Reply> {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return same_error(group.len(), backend(e)),
    };
    let mut answers = Vec::with_capacity(group.len());
    for request in group {
        answers.push(append_in_savepoint(&mut tx, request, now));
    }
    if let Err(e) = tx.commit() {
        let error = commit_failed(e);
        for answer in &mut answers {
            if answer.is_ok() {
                *answer = Err(copy_error(&error));
            }
        }
    }
    answers
}

/// One append of a group, in its own savepoint of `tx`.
fn append_in_savepoint(tx: &mut Transaction<'_>, request: Request, now: Timestamp) -> Reply {
    let Request {
        stream,
        expected,
        events,
    } = request;
    // Dropped without `commit`, a savepoint rolls back to where it began and is released.
    let mut savepoint = tx.savepoint().map_err(backend)?;
    match write(&savepoint, &stream, expected, &events, now)? {
        Step::Inserted { version, positions } => {
            savepoint.commit().map_err(backend)?;
            Ok(record(&stream, events, version, positions, now))
        }
        Step::Answered(answer) => answer,
        Step::IdTaken(e) => {
            savepoint.rollback().map_err(backend)?;
            match earlier_append(&savepoint, &stream, &events)? {
                Some(outcome) => outcome,
                None => Err(backend(e)),
            }
        }
    }
}

/// `n` answers of one error (the first gets it, the others a copy).
pub(crate) fn same_error(n: usize, error: StoreError) -> Vec<Reply> {
    let mut answers: Vec<Reply> = (1..n).map(|_| Err(copy_error(&error))).collect();
    answers.insert(0, Err(error));
    answers
}

/// The same error for another append: kind, message and code (SQLite's error value is not
/// `Clone`).
fn copy_error(error: &StoreError) -> StoreError {
    let same = |e: &BackendError| {
        let copy = BackendError::new(e.message());
        match e.code() {
            Some(code) => copy.with_code(code),
            None => copy,
        }
    };
    match error {
        StoreError::Unavailable(e) => StoreError::Unavailable(same(e)),
        StoreError::OutcomeUnknown(e) => StoreError::OutcomeUnknown(same(e)),
        StoreError::Backend(e) => StoreError::Backend(same(e)),
        other => StoreError::Backend(BackendError::new(other.to_string())),
    }
}

/// What [`write`] did inside its transaction.
enum Step {
    /// The rows are inserted, at versions from `version + 1` and these positions (not yet
    /// committed).
    Inserted { version: u64, positions: Vec<i64> },
    /// Nothing was inserted and this is the answer (a conflict, a retry's stored events, an
    /// empty batch).
    Answered(Reply),
    /// An insert met a unique index: roll the rows back, then look the ids up.
    IdTaken(rusqlite::Error),
}

/// The version check and the inserts of one append, inside an open transaction (or savepoint)
/// on `conn`. An error may leave rows inserted: the caller rolls back.
fn write(
    conn: &Connection,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
    now: Timestamp,
) -> Result<Step, StoreError> {
    let version = stream_version(conn, stream)?;
    if !expected.admits(version) {
        // A retry of a committed append comes with a stale expectation: recognise it first.
        if let Some(outcome) = earlier_append(conn, stream, events)? {
            return Ok(Step::Answered(outcome));
        }
        return Ok(Step::Answered(Err(StoreError::Conflict {
            stream: stream.clone(),
            expected,
            actual: version,
        })));
    }
    if events.is_empty() {
        return Ok(Step::Answered(Ok(Vec::new())));
    }
    let mut positions = Vec::with_capacity(events.len());
    let mut insert = conn.prepare_cached(INSERT).map_err(backend)?;
    // Tagged events also get their `tags` column and `event_tags` rows (`dcb.rs`), in the same
    // transaction or savepoint, so a group's tagged appends are written like its others.
    for (i, event) in events.iter().enumerate() {
        let metadata = if event.metadata.is_empty() {
            None
        } else {
            // A map of JSON values always serializes; the error is kept, not unwrapped.
            Some(
                serde_json::to_string(event.metadata.as_map())
                    .map_err(|e| StoreError::Backend(BackendError::from_error(e)))?,
            )
        };
        let inserted = insert.execute((
            id_bytes(&event.event_id),
            stream.as_str(),
            to_sql_int(version + 1 + i as u64),
            &*event.event_name,
            event.event_version,
            event.payload.as_str(),
            metadata,
            event.correlation_id.as_ref().map(id_bytes),
            event.causation_id.as_ref().map(id_bytes),
            now.unix_micros(),
            crate::dcb::tags_column(&event.tags),
        ));
        match inserted {
            Ok(_) => {
                let position = conn.last_insert_rowid();
                if !event.tags.is_empty() {
                    let mut tag_insert = conn.prepare_cached(INSERT_TAG).map_err(backend)?;
                    for tag in &event.tags {
                        tag_insert
                            .execute((tag.as_str(), position))
                            .map_err(backend)?;
                    }
                }
                positions.push(position);
            }
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                return Ok(Step::IdTaken(e));
            }
            Err(e) => return Err(backend(e)),
        }
    }
    Ok(Step::Inserted { version, positions })
}

/// The envelopes of inserted events.
fn record(
    stream: &StreamId,
    events: Vec<NewEvent>,
    version: u64,
    positions: Vec<i64>,
    now: Timestamp,
) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .zip(positions)
        .enumerate()
        .map(|(i, (event, position))| {
            event.record(
                stream.clone(),
                version + 1 + i as u64,
                Position(position as u64),
                now,
            )
        })
        .collect()
}

/// The stream's current version (0 when it has no events).
fn stream_version(conn: &Connection, stream: &StreamId) -> Result<u64, StoreError> {
    let version: Option<i64> = conn
        .prepare_cached("SELECT MAX(version) FROM events WHERE stream = ?1")
        .and_then(|mut s| s.query_row([stream.as_str()], |row| row.get(0)))
        .map_err(backend)?;
    Ok(version.map_or(0, |v| v as u64))
}

/// What to answer when some id of `events` may already be stored: `None` if none is; the
/// stored events if the batch is exactly an earlier append to this stream (same ids, same
/// order, same events); `IdempotencyConflict` if the ids match but the events differ;
/// otherwise `DuplicateEventId` naming the first stored id.
fn earlier_append(
    conn: &Connection,
    stream: &StreamId,
    events: &[NewEvent],
) -> Result<Option<Result<Vec<RecordedEvent>, StoreError>>, StoreError> {
    let mut find = conn
        .prepare_cached("SELECT position FROM events WHERE event_id = ?1")
        .map_err(backend)?;
    let mut first_taken = None;
    for (i, event) in events.iter().enumerate() {
        let position: Option<i64> = find
            .query_row([id_bytes(&event.event_id)], |row| row.get(0))
            .optional()
            .map_err(backend)?;
        if let Some(position) = position {
            first_taken = Some((i, event.event_id, position));
            break;
        }
    }
    let Some((index, event_id, position)) = first_taken else {
        return Ok(None);
    };
    let duplicate = Err(StoreError::DuplicateEventId {
        event_id,
        stream: stream.clone(),
    });
    if index != 0 {
        return Ok(Some(duplicate));
    }
    // An append's events hold consecutive positions: read as many from the first one on.
    let mut read = conn.prepare_cached(ALL_FROM).map_err(backend)?;
    let mut rows = read
        .query((position, events.len() as i64))
        .map_err(backend)?;
    let mut stored = Vec::with_capacity(events.len());
    while let Some(row) = rows.next().map_err(backend)? {
        stored.push(decode_row(row, None)?);
    }
    let same = stored.len() == events.len()
        && stored
            .iter()
            .zip(events)
            .all(|(s, e)| s.meta.event_id == e.event_id && s.meta.stream == *stream);
    Ok(Some(if same {
        check_retry(stream, &stored, events).map(|()| stored)
    } else {
        duplicate
    }))
}

/// Ids are stored as their 16 bytes (big-endian, as the UUID is written).
fn id_bytes(id: &Uuid) -> &[u8] {
    &id.as_bytes()[..]
}

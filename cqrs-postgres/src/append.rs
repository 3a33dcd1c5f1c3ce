//! Appends: one statement per batch, in its own implicit transaction (one round trip), with the
//! expected version checked inside the statement and by the unique (stream, version) constraint.
//!
//! When the statement inserts nothing or hits a unique constraint, the store looks at what is
//! stored to tell the cases apart: the batch's ids stored as the same events of the same stream
//! is a retry (return the stored events), ids stored otherwise is `DuplicateEventId`, and
//! otherwise the stream's version did not admit the append (`Conflict`). A failed statement
//! writes nothing: a batch mixing stored and new ids leaves no trace.
//!
//! No position is drawn before the appending transaction has its id and its appender lock: the
//! position is `CASE WHEN pg_try_advisory_xact_lock(class, low32(pg_current_xact_id())) THEN
//! nextval(…) END` (`statements.rs`). PostgreSQL evaluates a `CASE` condition before its result,
//! and the result only if the condition holds; `pg_current_xact_id()` assigns an id when there is
//! none, and the transaction-scoped lock, keyed by the store and that id, is held until the
//! transaction ends. Nothing else may write the events table: migration 4 makes older versions of
//! the crate, which draw without the lock, refuse to open the store. The gap-free proof in
//! ARCHITECTURE.md rests on this.
//!
//! With group commit (`group.rs`) several appends share one statement. It draws every row's
//! position through the same `CASE`, so the order above holds for each of them (the first row
//! takes the id and the lock, later rows find both held until the transaction ends), and the
//! proof does not depend on how many appends or streams one statement carries.
//!
//! # Choices
//!
//! - **One statement, one round trip** (an implicit transaction). Against a raw single-row insert
//!   on a table of the same shape, the earlier CTE form re-planned on every execution (60–90 µs of
//!   server time instead of about 25) and came out at 80–85 % of raw; the plain `INSERT … VALUES
//!   (CASE … nextval …)` form with generic plans measures 97–100 % of the raw insert (same-run
//!   microbenchmark, 20 interleaved rounds; BENCHMARKS.md, PostgreSQL).
//! - **The size limit is checked before the database is touched** (`check_event_sizes`).
//! - **Known versions** skip the existence probe for single-event appends at a version already seen
//!   committed (`versions.rs`); batches keep the probe, whose cost the batch shares.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use eventweave_core::telemetry::AppendTelemetry;
use eventweave_core::{
    BackendError, ExpectedVersion, NewEvent, Position, RecordedEvent, StoreError, StreamId,
    Timestamp, Uuid, check_append, check_retry,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::dcb::locks;
use crate::decode::{self, JsonParam};
use crate::error::{backend, closed_before_sending, session_ended, write_failed};
use crate::group::{Pending, insert_appends, tags_literal};
use crate::pool::Conn;
use crate::store::Shared;

/// How often an append re-runs after losing a race it can win on a second try (`Any` meeting a
/// concurrent append, a conflict whose stream then turned out to admit the expectation).
const MAX_ATTEMPTS: usize = 32;

/// Why the statement wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// The expected version did not hold (no row inserted, or a (stream, version) conflict).
    Version,
    /// An event id is already stored.
    EventId,
}

/// The serialized metadata of each event (`None` when empty).
pub(crate) struct Encoded {
    pub(crate) metadata: Vec<Option<String>>,
}

impl Shared {
    pub async fn append(
        self: &Arc<Self>,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let telemetry = AppendTelemetry::start("postgres", stream, expected, &events);
        let appended = self.append_now(stream, expected, events);
        let result = telemetry.instrument(appended).await;
        telemetry.finish(&result);
        result
    }

    /// The append itself, from the checks to the reply (`append` adds telemetry): refused input
    /// never waits; an append that finds a statement slot free runs at once, alone; one that
    /// finds every slot busy waits and goes with the next group (`group.rs`).
    async fn append_now(
        self: &Arc<Self>,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let encoded = validate(stream, &events, self.config.max_event_bytes)?;
        if events.is_empty() || !self.config.group_commit {
            return self.append_alone(stream, expected, events, &encoded).await;
        }
        self.append_grouped(stream, expected, events, encoded).await
    }

    /// One append in its own statement, with its refusals resolved: the path of every append
    /// when nothing else is in flight, and of a group's appends that need an answer of their own.
    pub(crate) async fn append_alone(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        encoded: &Encoded,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut conn = self.pool.get().await?;
        if events.is_empty() {
            let actual = stream_version(&conn, stream).await?;
            return if expected.admits(actual) {
                Ok(Vec::new())
            } else {
                Err(StoreError::Conflict {
                    stream: stream.clone(),
                    expected,
                    actual,
                })
            };
        }
        for _ in 0..MAX_ATTEMPTS {
            // A connection closed before sending is "nothing written", not "outcome unknown".
            if conn.client.is_closed() {
                return Err(closed_before_sending());
            }
            let known = self.version_known(stream, expected);
            let refusal = match insert(&conn, stream, expected, known, &events, encoded).await {
                Ok(rows) if !rows.is_empty() => {
                    drop(conn);
                    // The rows came back, so the append committed: a reply that does not read
                    // leaves the caller unsure, not the store.
                    let recorded = recorded(stream, events, &rows).map_err(|e| match e {
                        StoreError::Backend(e) => StoreError::OutcomeUnknown(e),
                        other => other,
                    })?;
                    if let Some(last) = recorded.last() {
                        self.versions.saw(stream, last.meta.version);
                    }
                    self.notifier.committed();
                    return Ok(recorded);
                }
                Ok(_) => Refusal::Version,
                Err(e) => match self.refusal(&e) {
                    Some(refusal) => refusal,
                    None => {
                        if session_ended(&e) {
                            conn.discard_on_drop();
                        }
                        return Err(write_failed(e));
                    }
                },
            };
            let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
            let stored = stored_events(&conn, &ids).await?;
            if !stored.is_empty() {
                return retried(stream, &events, stored);
            }
            match refusal {
                Refusal::Version => {
                    let actual = stream_version(&conn, stream).await?;
                    if !expected.admits(actual) {
                        return Err(StoreError::Conflict {
                            stream: stream.clone(),
                            expected,
                            actual,
                        });
                    }
                    // `Any`, or a stream that moved on to the expected version meanwhile: again.
                }
                // The conflicting id's transaction rolled back after all: again.
                Refusal::EventId => {}
            }
        }
        // Nothing was written, and the race may end: a passing condition.
        Err(StoreError::Unavailable(
            format!("append to `{stream}` kept racing with concurrent appends; gave up after {MAX_ATTEMPTS} attempts").into(),
        ))
    }

    /// Whether the version an append expects is known to exist already.
    pub(crate) fn version_known(&self, stream: &StreamId, expected: ExpectedVersion) -> bool {
        match expected {
            ExpectedVersion::Any => false,
            ExpectedVersion::NoStream => true,
            ExpectedVersion::Exact(v) => self.versions.exists(stream, v),
        }
    }

    /// Whether a failed statement is a refusal the store resolves (a unique violation), and which.
    fn refusal(&self, e: &tokio_postgres::Error) -> Option<Refusal> {
        let db = e.as_db_error()?;
        if *db.code() != SqlState::UNIQUE_VIOLATION {
            return None;
        }
        match db.constraint() {
            Some(c) if c == self.names.event_id_key => Some(Refusal::EventId),
            Some(c) if c == self.names.stream_version_key => Some(Refusal::Version),
            _ => None,
        }
    }
}

/// Refuses what breaks the store contract before the database sees anything
/// ([`check_append`]: the same checks as every store), and serializes the metadata.
pub(crate) fn validate(
    stream: &StreamId,
    events: &[NewEvent],
    max: usize,
) -> Result<Encoded, StoreError> {
    check_append(stream, events, max)?;
    let mut metadata = Vec::with_capacity(events.len());
    for e in events {
        metadata.push(if e.metadata.is_empty() {
            None
        } else {
            // A map of JSON values always serializes; the error is kept, not unwrapped.
            Some(
                serde_json::to_string(e.metadata.as_map())
                    .map_err(|err| StoreError::Backend(BackendError::from_error(err)))?,
            )
        });
    }
    Ok(Encoded { metadata })
}

/// The expected version as the statement's `$2`: -1 for "any".
pub(crate) fn expected_param(expected: ExpectedVersion) -> i64 {
    match expected {
        ExpectedVersion::Any => -1,
        ExpectedVersion::NoStream => 0,
        // No stream reaches i64::MAX events; an expectation beyond it simply conflicts.
        ExpectedVersion::Exact(v) => i64::try_from(v).unwrap_or(i64::MAX),
    }
}

/// The parameters of events, one array per column in `statements::EVENT_PARAMS` order: the one
/// place that turns events into statement parameters (a single event's are its arrays' first
/// elements, see [`EventArrays::one`]). A new column goes here and into `EVENT_PARAMS`.
pub(crate) struct EventArrays<'a> {
    ids: Vec<Uuid>,
    names: Vec<&'a str>,
    versions: Vec<i32>,
    payloads: Vec<JsonParam<'a>>,
    metadata: Vec<Option<JsonParam<'a>>>,
    correlations: Vec<Option<Uuid>>,
    causations: Vec<Option<Uuid>>,
}

impl<'a> EventArrays<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        EventArrays {
            ids: Vec::with_capacity(n),
            names: Vec::with_capacity(n),
            versions: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            correlations: Vec::with_capacity(n),
            causations: Vec::with_capacity(n),
        }
    }

    /// The arrays of `events` with their serialized metadata.
    pub(crate) fn of(events: &'a [NewEvent], encoded: &'a Encoded) -> Self {
        let mut arrays = EventArrays::with_capacity(events.len());
        arrays.extend(events, encoded);
        arrays
    }

    /// Appends `events`' columns.
    pub(crate) fn extend(&mut self, events: &'a [NewEvent], encoded: &'a Encoded) {
        for (e, metadata) in events.iter().zip(&encoded.metadata) {
            self.ids.push(e.event_id);
            self.names.push(e.event_name.as_ref());
            // `check_append` bounds schema versions by `i32::MAX`.
            self.versions.push(e.event_version as i32);
            self.payloads.push(JsonParam(e.payload.as_str()));
            self.metadata.push(metadata.as_deref().map(JsonParam));
            self.correlations.push(e.correlation_id);
            self.causations.push(e.causation_id);
        }
    }

    /// The arrays as parameters, in `EVENT_PARAMS` order.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.ids,
            &self.names,
            &self.versions,
            &self.payloads,
            &self.metadata,
            &self.correlations,
            &self.causations,
        ]
    }

    /// The first event's values as scalar parameters, in `EVENT_PARAMS` order.
    pub(crate) fn one(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.ids[0],
            &self.names[0],
            &self.versions[0],
            &self.payloads[0],
            &self.metadata[0],
            &self.correlations[0],
            &self.causations[0],
        ]
    }
}

/// Runs the append statement: the rows it inserted (position, version, recorded_at), or none
/// when the expected version does not exist. `known`: the expected version is known to exist,
/// so a single event takes the statement without the existence check. A single tagged event
/// takes the tagged single-event statements (they also write its tags and take its dcb locks);
/// several events with tags take the tagged group statement with one append (`group.rs`).
pub(crate) async fn insert(
    conn: &Conn,
    stream: &StreamId,
    expected: ExpectedVersion,
    known: bool,
    events: &[NewEvent],
    encoded: &Encoded,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let tagged = events.iter().any(|e| !e.tags.is_empty());
    if tagged && events.len() > 1 {
        let one = [Pending {
            stream,
            expected,
            events,
            encoded,
            known,
        }];
        return insert_appends(conn, &one).await;
    }
    let any = expected == ExpectedVersion::Any;
    let expected = expected_param(expected);
    let name = stream.as_str();
    let st = &conn.st;
    let arrays = EventArrays::of(events, encoded);
    let head: [&(dyn ToSql + Sync); 2] = [&name, &expected];
    if let [event] = events {
        let params = head.into_iter().chain(arrays.one());
        if tagged {
            let statement = match (any, known) {
                (true, _) => &st.append_one_tagged_any,
                (false, true) => &st.append_one_tagged_known,
                (false, false) => &st.append_one_tagged,
            };
            let tags = tags_literal(&event.tags);
            let mut keys = Vec::with_capacity(1 + 2 * event.tags.len());
            locks::event_keys(&event.event_name, &event.tags, &mut keys);
            let tail: [&(dyn ToSql + Sync); 2] = [&tags, &keys];
            let params: Vec<&(dyn ToSql + Sync)> = params.chain(tail).collect();
            return conn.client.query(statement, &params).await;
        }
        let statement = match (any, known) {
            (true, _) => &st.append_one_any,
            (false, true) => &st.append_one_known,
            (false, false) => &st.append_one,
        };
        let params: Vec<&(dyn ToSql + Sync)> = params.collect();
        return conn.client.query(statement, &params).await;
    }
    let statement = if any {
        &st.append_batch_any
    } else {
        &st.append_batch
    };
    let params: Vec<&(dyn ToSql + Sync)> = head.into_iter().chain(arrays.params()).collect();
    conn.client.query(statement, &params).await
}

/// The envelopes of a successful insert, from the rows it returned.
pub(crate) fn recorded(
    stream: &StreamId,
    events: Vec<NewEvent>,
    rows: &[Row],
) -> Result<Vec<RecordedEvent>, StoreError> {
    if rows.len() != events.len() {
        return Err(StoreError::Backend(
            format!(
                "the append to `{stream}` inserted {} rows for {} events",
                rows.len(),
                events.len()
            )
            .into(),
        ));
    }
    let mut placed = Vec::with_capacity(rows.len());
    for row in rows {
        let position: i64 = row.try_get(0).map_err(backend)?;
        let version: i64 = row.try_get(1).map_err(backend)?;
        let at: SystemTime = row.try_get(2).map_err(backend)?;
        placed.push((
            version as u64,
            Position(position as u64),
            Timestamp::from(at),
        ));
    }
    // RETURNING gives rows in insertion order; sort anyway rather than rely on it.
    placed.sort_unstable_by_key(|&(version, ..)| version);
    Ok(events
        .into_iter()
        .zip(placed)
        .map(|(event, (version, position, at))| event.record(stream.clone(), version, position, at))
        .collect())
}

/// The stream's current version (0 when it has no events).
pub(crate) async fn stream_version(conn: &Conn, stream: &StreamId) -> Result<u64, StoreError> {
    let row = conn
        .client
        .query_one(&conn.st.stream_version, &[&stream.as_str()])
        .await
        .map_err(backend)?;
    let version: i64 = row.try_get(0).map_err(backend)?;
    Ok(version as u64)
}

impl Shared {
    /// The event stored with id `event_id`, if any (one lookup in the unique event-id index).
    pub async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let conn = self.pool.get().await?;
        Ok(stored_events(&conn, &[event_id]).await?.pop())
    }
}

/// The stored events that carry any of `ids`, in position order.
async fn stored_events(conn: &Conn, ids: &[Uuid]) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = conn
        .client
        .query(&conn.st.by_ids, &[&ids])
        .await
        .map_err(backend)?;
    let mut last = None;
    rows.iter()
        .map(|row| decode::event(row, 0, &mut last))
        .collect()
}

/// The answer to a batch some of whose ids are stored: the stored events if the batch is a
/// retry of one earlier append (same ids, same order, same stream, consecutive versions, and the
/// same events compared as JSON values, since `jsonb` normalises the text),
/// `IdempotencyConflict` if only the events differ, otherwise `DuplicateEventId` naming the
/// first stored id of the batch.
fn retried(
    stream: &StreamId,
    events: &[NewEvent],
    stored: Vec<RecordedEvent>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let same = stored.len() == events.len()
        && stored
            .iter()
            .zip(events)
            .all(|(s, e)| s.meta.event_id == e.event_id && s.meta.stream == *stream)
        && stored
            .windows(2)
            .all(|w| w[1].meta.version == w[0].meta.version + 1);
    if same {
        return check_retry(stream, &stored, events).map(|()| stored);
    }
    let taken: HashSet<Uuid> = stored.iter().map(|s| s.meta.event_id).collect();
    let event_id = events
        .iter()
        .map(|e| e.event_id)
        .find(|id| taken.contains(id))
        .unwrap_or(stored[0].meta.event_id);
    Err(StoreError::DuplicateEventId {
        event_id,
        stream: stream.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventweave_core::testing::conformance::event;

    #[test]
    fn expected_versions_become_the_statement_parameter() {
        assert_eq!(expected_param(ExpectedVersion::Any), -1);
        assert_eq!(expected_param(ExpectedVersion::NoStream), 0);
        assert_eq!(expected_param(ExpectedVersion::Exact(7)), 7);
        assert_eq!(expected_param(ExpectedVersion::Exact(u64::MAX)), i64::MAX);
    }

    #[test]
    fn validation_refuses_before_the_database_sees_anything() {
        let s = StreamId::from("s");
        let e = event("1");
        assert!(matches!(
            validate(&StreamId::from(""), std::slice::from_ref(&e), 100),
            Err(StoreError::InvalidInput(_))
        ));
        assert!(matches!(
            validate(&s, &[e.clone(), e.clone()], 100),
            Err(StoreError::DuplicateEventId { event_id, .. }) if event_id == e.event_id
        ));
        let mut newer = event("1");
        newer.event_version = u32::MAX;
        assert!(matches!(
            validate(&s, &[newer], 100),
            Err(StoreError::InvalidInput(_))
        ));
        let mut tagged = event("1");
        tagged.metadata.insert("user", "ada");
        let encoded = validate(&s, &[event("2"), tagged], 100).unwrap();
        assert_eq!(
            encoded.metadata,
            [None, Some(r#"{"user":"ada"}"#.to_owned())]
        );
    }
}

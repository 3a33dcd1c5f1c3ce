//! The atomic append to several streams, with an optional condition: `append_conditional`.
//! (Plain appends of tagged events to one stream do not come here: a lone tagged event takes
//! its own statement (`append.rs`), a batch or a group the group statement (`group.rs`).)
//!
//! A lone event under a condition with items first takes a statement of its own
//! (`append_one.rs`: about a quarter less server time); the rest of this applies to it too, with
//! the function explaining what that statement cannot (a refused version).
//!
//! With a condition or without, it is one request: the call of the store's append function
//! (`statements::function`, migrations 6 and 7) in an implicit transaction. The function takes the
//! events table's `ROW EXCLUSIVE` lock (`SHARE ROW EXCLUSIVE` for a condition on every event),
//! then the lock pass (the query's keys exclusive, the events' keys shared, in ascending order),
//! then checks and inserts in a statement of its own, whose snapshot is therefore taken after
//! the locks were granted: that order is what the argument in `dcb/mod.rs` needs. A failed
//! statement rolls the whole call back.
//!
//! When nothing was written, the answer is told apart as the plain append does: the append's
//! ids stored as this same append is a retry (the stored events; the condition is not checked
//! again, since its own events fail it), ids stored otherwise `DuplicateEventId` or
//! `IdempotencyConflict`; then the statement's own explanation, a conflicting position
//! (`ConditionFailed`) or a write's version (`Conflict`); a unique violation without stored ids
//! is a race with a concurrent append to one of the streams, and the append runs again (the
//! condition and versions are checked again with it).

use std::collections::HashMap;
use std::time::SystemTime;

use eventweave_core::{
    AppendCondition, BackendError, ExpectedVersion, Position, RecordedEvent, StoreError, StreamId,
    StreamWrite, Timestamp, Uuid, check_query, check_retry, check_writes,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::append_one::One;
use super::locks;
use super::read::{encode_query, query_kind};
use crate::decode::{self, JsonParam};
use crate::error::{backend, closed_before_sending, session_ended, write_failed};
use crate::group::tags_literal;
use crate::hooks::HeldAppend;
use crate::pool::{Conn, Pooled};
use crate::store::{PostgresStore, Shared};

/// How often an append re-runs after a race with a concurrent append to one of its streams.
const MAX_ATTEMPTS: usize = 32;

/// An append's parameters, owned (the metadata serialized once).
pub(super) struct Batch {
    /// Per write: its stream and expected version (-1: any).
    pub(super) streams: Vec<String>,
    pub(super) expected: Vec<i64>,
    /// Per event: its write's stream and expected version, its place in the write.
    pub(super) stream_of: Vec<String>,
    pub(super) expected_of: Vec<i64>,
    pub(super) nth: Vec<i64>,
    pub(super) ids: Vec<Uuid>,
    pub(super) names: Vec<String>,
    pub(super) versions: Vec<i32>,
    pub(super) payloads: Vec<String>,
    pub(super) metadata: Vec<Option<String>>,
    pub(super) correlations: Vec<Option<Uuid>>,
    pub(super) causations: Vec<Option<Uuid>>,
    /// Per event: its tags as the text of a `text[]` literal (`None` without tags).
    pub(super) tags: Vec<Option<String>>,
    /// Key texts of the events' shared dcb locks.
    pub(super) shared: Vec<String>,
    /// 0 no condition, 1 items, 2 every event; the condition's position. (Its items are
    /// encoded for the function when it is called: a lone event's statement takes them as
    /// arrays, `append_one.rs`.)
    pub(super) condition: i32,
    pub(super) after: i64,
    /// Key texts of the condition's exclusive locks.
    pub(super) exclusive: Vec<String>,
}

fn expected_param(expected: ExpectedVersion) -> i64 {
    match expected {
        ExpectedVersion::Any => -1,
        ExpectedVersion::NoStream => 0,
        ExpectedVersion::Exact(v) => i64::try_from(v).unwrap_or(i64::MAX),
    }
}

impl Batch {
    pub(super) fn new(
        writes: &[StreamWrite],
        condition: Option<&AppendCondition>,
    ) -> Result<Batch, StoreError> {
        let total: usize = writes.iter().map(|w| w.events.len()).sum();
        let mut b = Batch {
            streams: Vec::with_capacity(writes.len()),
            expected: Vec::with_capacity(writes.len()),
            stream_of: Vec::with_capacity(total),
            expected_of: Vec::with_capacity(total),
            nth: Vec::with_capacity(total),
            ids: Vec::with_capacity(total),
            names: Vec::with_capacity(total),
            versions: Vec::with_capacity(total),
            payloads: Vec::with_capacity(total),
            metadata: Vec::with_capacity(total),
            correlations: Vec::with_capacity(total),
            causations: Vec::with_capacity(total),
            tags: Vec::with_capacity(total),
            shared: Vec::new(),
            condition: 0,
            after: 0,
            exclusive: Vec::new(),
        };
        for write in writes {
            let expected = expected_param(write.expected);
            b.streams.push(write.stream.as_str().to_owned());
            b.expected.push(expected);
            for (i, e) in write.events.iter().enumerate() {
                b.stream_of.push(write.stream.as_str().to_owned());
                b.expected_of.push(expected);
                b.nth.push(i as i64 + 1);
                b.ids.push(e.event_id);
                b.names.push(e.event_name.to_string());
                b.versions.push(e.event_version as i32);
                b.payloads.push(e.payload.as_str().to_owned());
                b.metadata.push(if e.metadata.is_empty() {
                    None
                } else {
                    // A map of JSON values always serializes; the error is kept, not unwrapped.
                    Some(
                        serde_json::to_string(e.metadata.as_map())
                            .map_err(|err| StoreError::Backend(BackendError::from_error(err)))?,
                    )
                });
                b.correlations.push(e.correlation_id);
                b.causations.push(e.causation_id);
                b.tags.push(tags_literal(&e.tags));
                locks::event_keys(&e.event_name, &e.tags, &mut b.shared);
            }
        }
        if let Some(condition) = condition {
            b.condition = query_kind(&condition.query);
            b.after = i64::try_from(condition.after.0).unwrap_or(i64::MAX);
            for item in condition.query.items().unwrap_or_default() {
                locks::item_keys(item, &mut b.exclusive);
            }
        }
        Ok(b)
    }

    /// Runs the call of the append function under `condition` (the one the batch was made
    /// with); borrows every parameter for the request.
    async fn execute(
        &self,
        conn: &Conn,
        statement: &tokio_postgres::Statement,
        condition: Option<&AppendCondition>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let payloads: Vec<JsonParam<'_>> = self.payloads.iter().map(|p| JsonParam(p)).collect();
        let metadata: Vec<Option<JsonParam<'_>>> = self
            .metadata
            .iter()
            .map(|m| m.as_deref().map(JsonParam))
            .collect();
        let items = condition.and_then(|c| encode_query(&c.query).1);
        let items = items.as_deref().map(JsonParam);
        let (keys, exclusive) = self.lock_params();
        let params: [&(dyn ToSql + Sync); 18] = [
            &self.streams,
            &self.expected,
            &self.stream_of,
            &self.expected_of,
            &self.nth,
            &self.ids,
            &self.names,
            &self.versions,
            &payloads,
            &metadata,
            &self.correlations,
            &self.causations,
            &self.tags,
            &keys,
            &self.condition,
            &self.after,
            &items,
            &exclusive,
        ];
        conn.client.query(statement, &params).await
    }

    /// The lock pass's parameters: every key text, and whether it is wanted exclusively.
    fn lock_params(&self) -> (Vec<&str>, Vec<bool>) {
        let texts = self
            .exclusive
            .iter()
            .chain(&self.shared)
            .map(String::as_str)
            .collect();
        let exclusive = (0..self.exclusive.len() + self.shared.len())
            .map(|i| i < self.exclusive.len())
            .collect();
        (texts, exclusive)
    }
}

/// What the function answered (or a lone event's statement, `append_one.rs`).
pub(super) struct Answer {
    /// (position, version, recorded_at) by event id.
    pub(super) inserted: HashMap<Uuid, (i64, i64, SystemTime)>,
    /// Nothing was inserted: the function explained why (the conflicting position, the
    /// versions).
    pub(super) refused: bool,
    pub(super) conflicting: Option<i64>,
    /// Each write's version, in order; empty when unknown (a lone event's statement refused
    /// by its version check, which the function then explains).
    pub(super) actual: Vec<u64>,
}

fn answer(rows: &[Row], writes: usize) -> Result<Answer, StoreError> {
    let mut out = Answer {
        inserted: HashMap::new(),
        refused: false,
        conflicting: None,
        actual: vec![0; writes],
    };
    for row in rows {
        let kind: i32 = row.try_get(0).map_err(backend)?;
        let value: Option<i64> = row.try_get(1).map_err(backend)?;
        match kind {
            0 => {
                let version: i64 = row.try_get(2).map_err(backend)?;
                let at: SystemTime = row.try_get(3).map_err(backend)?;
                let id: Uuid = row.try_get(4).map_err(backend)?;
                out.inserted.insert(id, (value.unwrap_or(0), version, at));
            }
            1 => {
                out.refused = true;
                out.conflicting = value;
            }
            _ => {
                let actual: i64 = row.try_get(2).map_err(backend)?;
                let i = value.unwrap_or(0) as usize;
                if let Some(slot) = i.checked_sub(1).and_then(|i| out.actual.get_mut(i)) {
                    *slot = actual.max(0) as u64;
                }
            }
        }
    }
    Ok(out)
}

/// Which statement runs an append.
#[derive(Clone, Copy)]
enum Via<'a> {
    /// The append function (`statements::function`) under the batch's condition: any append,
    /// and every explanation.
    Function(Option<&'a AppendCondition>),
    /// A lone event's statement (`statements::append_one`).
    One(&'a One<'a>),
}

/// The transaction a run is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Txn {
    /// An implicit transaction of its own, committed by the statement.
    Implicit,
    /// After `BEGIN`, left open (the test hook).
    Begin,
    /// Inside a transaction already open.
    Open,
}

/// How one run of the append ended.
enum Run {
    Answered(Answer),
    /// A unique violation: an id is stored, or a concurrent append took a version.
    Unique,
}

impl Shared {
    pub async fn append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_writes(&writes, self.config.max_event_bytes)?;
        if let Some(condition) = condition {
            check_query(&condition.query)?;
        }
        let batch = Batch::new(&writes, condition)?;
        // A lone event takes its own statement first; what that cannot answer, and every
        // attempt after the first, goes through the function.
        let one = One::of(&batch, condition);
        let mut conn = self.pool.get().await?;
        for attempt in 0..MAX_ATTEMPTS {
            if conn.client.is_closed() {
                return Err(closed_before_sending());
            }
            let via = match &one {
                Some(one) if attempt == 0 => Via::One(one),
                _ => Via::Function(condition),
            };
            let run = self.run(&mut conn, &batch, via, Txn::Implicit).await?;
            if let Run::Answered(answer) = &run
                && !answer.refused
            {
                drop(conn);
                let recorded = recorded(writes, &answer.inserted)?;
                for e in recorded.iter().rev() {
                    self.versions.saw(&e.meta.stream, e.meta.version);
                }
                if !recorded.is_empty() {
                    self.notifier.committed();
                }
                return Ok(recorded);
            }
            // Nothing was written: a retry of this append, or a refusal.
            if let Some(outcome) = replayed(&writes, stored_events(&conn, &batch.ids).await?) {
                return outcome;
            }
            if let Run::Answered(answer) = run {
                if let (Some(conflicting), Some(condition)) = (answer.conflicting, condition) {
                    return Err(StoreError::ConditionFailed {
                        after: condition.after,
                        conflicting: Position(conflicting as u64),
                    });
                }
                if let Some((w, &actual)) = writes
                    .iter()
                    .zip(&answer.actual)
                    .find(|(w, actual)| !w.expected.admits(**actual))
                {
                    return Err(StoreError::Conflict {
                        stream: w.stream.clone(),
                        expected: w.expected,
                        actual,
                    });
                }
                if batch.ids.is_empty() {
                    // Nothing to write, and every check holds.
                    return Ok(Vec::new());
                }
            }
            // A unique violation without stored ids: a concurrent append took a version (or an
            // id whose transaction then rolled back), or a version that did not hold when
            // checked holds now. Again, checking everything again.
        }
        Err(StoreError::Unavailable(
            format!("a conditional append kept racing with concurrent appends; gave up after {MAX_ATTEMPTS} attempts").into(),
        ))
    }

    /// Runs the append `via` the function or a lone event's statement, in `txn`: the answer,
    /// or why not.
    async fn run(
        &self,
        conn: &mut Pooled,
        batch: &Batch,
        via: Via<'_>,
        txn: Txn,
    ) -> Result<Run, StoreError> {
        let text = match via {
            Via::Function(_) => &self.dcb.call,
            Via::One(one) => one.statement(&self.dcb.one),
        };
        let statement = conn.cached(text).await.map_err(backend)?;
        if txn == Txn::Begin {
            // Until the transaction is seen to end, the connection must not go back to the pool.
            conn.discard_on_drop();
        }
        let open: &Conn = conn;
        let execute = async {
            match via {
                Via::Function(condition) => batch.execute(open, &statement, condition).await,
                Via::One(one) => one.execute(&open.client, &statement).await,
            }
        };
        let ran = if txn == Txn::Begin {
            let (begun, ran) = tokio::join!(open.client.batch_execute("BEGIN"), execute);
            begun.map_err(backend)?;
            ran
        } else {
            execute.await
        };
        match ran {
            Ok(rows) => Ok(Run::Answered(match via {
                Via::Function(_) => answer(&rows, batch.streams.len())?,
                Via::One(one) => one.answer(&rows)?,
            })),
            Err(e) => self.failed(conn, e),
        }
    }

    /// A failed statement (its transaction rolled back): a unique violation to resolve, or an
    /// error.
    fn failed(&self, conn: &mut Pooled, e: tokio_postgres::Error) -> Result<Run, StoreError> {
        if let Some(db) = e.as_db_error()
            && *db.code() == SqlState::UNIQUE_VIOLATION
            && db
                .constraint()
                .is_some_and(|c| c == self.names.event_id_key || c == self.names.stream_version_key)
        {
            return Ok(Run::Unique);
        }
        if session_ended(&e) {
            conn.discard_on_drop();
        }
        Err(write_failed(e))
    }
}

/// The recorded events, in the writes' order (which is position order).
fn recorded(
    writes: Vec<StreamWrite>,
    inserted: &HashMap<Uuid, (i64, i64, SystemTime)>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::with_capacity(inserted.len());
    for write in writes {
        for event in write.events {
            let Some(&(position, version, at)) = inserted.get(&event.event_id) else {
                // Committed, but the reply does not say where: the caller cannot know.
                return Err(StoreError::OutcomeUnknown(BackendError::new(format!(
                    "the append to `{}` committed without returning event {}",
                    write.stream, event.event_id
                ))));
            };
            out.push(event.record(
                write.stream.clone(),
                version as u64,
                Position(position as u64),
                Timestamp::from(at),
            ));
        }
    }
    out.sort_by_key(|e| e.meta.position);
    Ok(out)
}

/// The stored events carrying any of `ids`, in position order.
async fn stored_events(conn: &Conn, ids: &[Uuid]) -> Result<Vec<RecordedEvent>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
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

/// The answer to an append some of whose ids are stored (`None` if none is): the stored events
/// if every id is stored as this same append (each write's events in its stream, in order, at
/// consecutive versions, after the previous write's), `IdempotencyConflict` if only the events'
/// content differs, `DuplicateEventId` otherwise.
pub(crate) fn replayed(
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
    let total: usize = writes.iter().map(|w| w.events.len()).sum();
    let mut previous = Position::ZERO;
    for write in writes {
        let mut run = Vec::with_capacity(write.events.len());
        for event in &write.events {
            let Some(&s) = by_id.get(&event.event_id) else {
                // A new id beside stored ones: name the first stored one of this write or any.
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
                    .is_none_or(|r: &RecordedEvent| s.meta.version == r.meta.version + 1);
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
    if stored.len() != total {
        return duplicate(first_stored, &writes[0].stream);
    }
    Some(Ok(stored))
}

impl PostgresStore {
    /// Runs a conditional append inside `BEGIN` (locks, check, inserts) and returns without
    /// committing: its exclusive locks stay held. For tests of concurrent conditional appends.
    /// A condition that fails, or a version that does not match, is the error it would be.
    #[doc(hidden)]
    pub async fn __begin_append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> Result<HeldAppend, StoreError> {
        let shared = &self.shared;
        check_writes(&writes, shared.config.max_event_bytes)?;
        let batch = Batch::new(&writes, condition)?;
        let one = One::of(&batch, condition);
        let mut conn = shared.pool.get().await?;
        // The path `append_conditional` takes first; a refusal it cannot explain is explained
        // by the function, in the same transaction.
        let via = one.as_ref().map_or(Via::Function(condition), Via::One);
        let mut run = shared.run(&mut conn, &batch, via, Txn::Begin).await;
        if let Ok(Run::Answered(answer)) = &run
            && answer.refused
            && answer.conflicting.is_none()
            && answer.actual.is_empty()
        {
            run = shared
                .run(&mut conn, &batch, Via::Function(condition), Txn::Open)
                .await;
        }
        // The transaction is open whatever happened; the hook's guard ends it.
        conn.discard_on_drop();
        let answer = match run? {
            Run::Answered(answer) => answer,
            Run::Unique => {
                return Err(StoreError::Backend(
                    "the held append met a unique violation".into(),
                ));
            }
        };
        if let (Some(conflicting), Some(condition)) = (answer.conflicting, condition) {
            return Err(StoreError::ConditionFailed {
                after: condition.after,
                conflicting: Position(conflicting as u64),
            });
        }
        if answer.refused
            && let Some((w, &actual)) = writes
                .iter()
                .zip(&answer.actual)
                .find(|(w, actual)| !w.expected.admits(**actual))
        {
            return Err(StoreError::Conflict {
                stream: w.stream.clone(),
                expected: w.expected,
                actual,
            });
        }
        let recorded = recorded(writes, &answer.inserted)?;
        Ok(HeldAppend::new(conn, recorded, shared.notifier.clone()))
    }
}

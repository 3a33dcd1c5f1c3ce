//! A hand-written SQL read model for the projection tests: per stream, how many
//! `counter.added` events it had and their sum, upserted per event through [`PgTx`], plus the
//! knobs the tests need (fail once, block, record the handling process).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventweave_core::runner::{
    DurableProjection, ProjectionSink, RunnerState, RunningProjection, stored_error,
};
use eventweave_core::testing::domain::Added;
use eventweave_core::{
    Event, EventRef, EventStore, ExpectedVersion, NewEvent, Payload, Position, ProjectionError,
    ProjectionFailure, RecordedEvent, StreamId, UserMetadata,
};
use eventweave_postgres::{PgTx, PostgresStore, params};
use tokio_postgres::Client;

/// Names one read model: its projection name and its table.
pub trait Model: Send + Sync + 'static {
    /// The projection name (its checkpoint key).
    const NAME: &'static str;
    /// The table, inside the test schema.
    const TABLE: &'static str;
}

/// Test knobs shared with the projection while a runner owns it.
#[derive(Default)]
pub struct Knobs {
    /// Fail (after its upsert, which the rollback must undo) the first time the event at this
    /// position is handled; 0 = never.
    pub fail_once_at: AtomicU64,
    /// Hang (after its upsert) at the event at this position; 0 = never.
    pub hang_at: AtomicU64,
    /// Handler calls, including those whose batch rolled back.
    pub calls: AtomicU64,
    /// Stage (for a staged projection) an amount of -1,000,000,000 for the event at this
    /// position, which a `CHECK (total >= 0)` refuses; 0 = never.
    pub negative_at: AtomicU64,
}

/// Totals per stream, in table `M::TABLE`.
pub struct Totals<M> {
    upsert: String,
    read_back: String,
    record: Option<String>,
    reset: String,
    /// Count undecodable events as 0 instead of failing.
    lenient: bool,
    /// Stage the upsert ([`PgTx::stage`]) instead of awaiting it.
    staged: bool,
    /// With `staged`: after staging, the handlers of events whose position is a multiple of this
    /// read their row back (awaited) and fail unless it shows their event; 0 = never.
    read_every: u64,
    /// Sleep this long per event (to make a run take a while).
    pub delay: Duration,
    /// Print `HANDLING <position>` on stdout at every handler call, committed or not (for a
    /// parent process watching a child).
    pub announce: bool,
    pub knobs: Arc<Knobs>,
    _model: PhantomData<M>,
}

impl<M: Model> Totals<M> {
    /// The projection, writing into `schema`.
    pub fn new(schema: &str) -> Self {
        let table = format!("{}.{}", super::quote(schema), super::quote(M::TABLE));
        Totals {
            upsert: format!(
                "INSERT INTO {table} AS t (stream, events, total, last_position)
                 VALUES ($1, 1, $2, $3)
                 ON CONFLICT (stream) DO UPDATE SET events = t.events + 1,
                     total = t.total + EXCLUDED.total, last_position = EXCLUDED.last_position"
            ),
            read_back: format!("SELECT last_position FROM {table} WHERE stream = $1"),
            record: None,
            reset: format!("DELETE FROM {table}"),
            lenient: false,
            staged: false,
            read_every: 0,
            delay: Duration::ZERO,
            announce: false,
            knobs: Arc::default(),
            _model: PhantomData,
        }
    }

    /// Counts undecodable payloads as 0 instead of failing on them.
    pub fn lenient(mut self) -> Self {
        self.lenient = true;
        self
    }

    /// Stages its upserts instead of awaiting them; with `read_every` > 0, the handlers of
    /// events at multiples of it read their row back after staging (see the field).
    pub fn staged(mut self, read_every: u64) -> Self {
        self.staged = true;
        self.read_every = read_every;
        self
    }

    /// Also inserts (position, this process's id, the server's clock) into `handled` per event.
    pub fn recording(mut self, schema: &str) -> Self {
        self.record = Some(format!(
            "INSERT INTO {}.handled (position, pid) VALUES ($1, $2)",
            super::quote(schema)
        ));
        self
    }

    fn failed(
        &self,
        event: &RecordedEvent,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> ProjectionError {
        stored_error(M::NAME, event, ProjectionFailure::Handler(Arc::new(e)))
    }
}

/// Creates the table of `M` (and the `handled` table) in `schema`.
pub async fn create_tables<M: Model>(client: &Client, schema: &str) {
    let schema = super::quote(schema);
    client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.{table} (stream text PRIMARY KEY, events bigint NOT NULL,
                 total bigint NOT NULL, last_position bigint NOT NULL);
             CREATE TABLE IF NOT EXISTS {schema}.handled (position bigint NOT NULL,
                 pid bigint NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());",
            table = super::quote(M::TABLE),
        ))
        .await
        .expect("create the read-model tables");
}

/// The table of `M`: stream → (events, total).
pub async fn table<M: Model>(client: &Client, schema: &str) -> BTreeMap<String, (i64, i64)> {
    client
        .query(
            &format!(
                "SELECT stream, events, total FROM {}.{}",
                super::quote(schema),
                super::quote(M::TABLE)
            ),
            &[],
        )
        .await
        .expect("read the read model")
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect()
}

impl<M: Model> DurableProjection<PgTx> for Totals<M> {
    const NAME: &'static str = M::NAME;
    const EVENTS: &'static [&'static str] = &[Added::NAME];

    async fn handle(&mut self, tx: &PgTx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.knobs.calls.fetch_add(1, Ordering::SeqCst);
        if self.announce {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "HANDLING {}", event.meta.position);
            let _ = out.flush();
        }
        let n = match EventRef::stored(event).decode::<Added>() {
            Ok(Some(added)) => added.n,
            Ok(None) => return Ok(()),
            Err(_) if self.lenient => 0,
            Err(failure) => {
                return Err(stored_error(
                    M::NAME,
                    event,
                    ProjectionFailure::Decode(failure),
                ));
            }
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let position = event.meta.position.0 as i64;
        if self.staged {
            let negative = self.knobs.negative_at.load(Ordering::SeqCst) == event.meta.position.0;
            let n = if negative { -1_000_000_000 } else { n as i64 };
            tx.stage(
                &self.upsert,
                params![event.meta.stream.to_string(), n, position],
            );
            if self.read_every > 0 && event.meta.position.0.is_multiple_of(self.read_every) {
                let row = tx
                    .query_one(&self.read_back, &[&event.meta.stream.as_str()])
                    .await
                    .map_err(|e| self.failed(event, e))?;
                let seen: i64 = row.get(0);
                if seen != position {
                    let error = format!("read back last_position {seen}, staged {position}");
                    return Err(self.failed(event, std::io::Error::other(error)));
                }
            }
        } else {
            tx.execute(
                &self.upsert,
                &[&event.meta.stream.as_str(), &(n as i64), &position],
            )
            .await
            .map_err(|e| self.failed(event, e))?;
        }
        if let Some(record) = &self.record {
            // Through a prepared `Statement`, the other way `PgTx` takes SQL.
            let statement = tx
                .prepare(record)
                .await
                .map_err(|e| self.failed(event, e))?;
            tx.execute(&statement, &[&position, &i64::from(std::process::id())])
                .await
                .map_err(|e| self.failed(event, e))?;
        }
        let at = event.meta.position.0;
        if self
            .knobs
            .fail_once_at
            .compare_exchange(at, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Err(self.failed(event, std::io::Error::other("injected failure")));
        }
        if self.knobs.hang_at.load(Ordering::SeqCst) == at {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn reset(&mut self, tx: &PgTx) -> Result<(), ProjectionFailure> {
        tx.execute(&self.reset, &[])
            .await
            .map(drop)
            .map_err(|e| ProjectionFailure::Handler(Arc::new(e)))
    }
}

/// A `counter.added` event with this payload.
pub fn added_json(json: &str) -> NewEvent {
    NewEvent {
        event_id: eventweave_core::new_id(),
        event_name: Added::NAME.into(),
        event_version: 1,
        payload: Payload::from_json(json),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

/// What the read model must hold after `appended` (stream, n) events: stream → (events, total).
pub fn expected(appended: &[(String, u64)]) -> BTreeMap<String, (i64, i64)> {
    let mut totals = BTreeMap::new();
    for (stream, n) in appended {
        let entry = totals.entry(stream.clone()).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += *n as i64;
    }
    totals
}

/// Appends `count` `counter.added` events over `streams` streams (batches of up to 50 per
/// stream), with amounts from `seed`; returns (stream, n) per event and the head.
pub async fn append_added(
    store: &PostgresStore,
    count: usize,
    streams: usize,
    seed: u64,
) -> (Vec<(String, u64)>, Position) {
    let mut appended = Vec::with_capacity(count);
    let mut head = Position::ZERO;
    let mut i = 0;
    while i < count {
        let stream = format!("acct-{}", (i / 50) % streams);
        let size = (count - i).min(50);
        let amounts: Vec<u64> = (0..size as u64)
            .map(|k| 1 + (seed.wrapping_mul(31).wrapping_add(i as u64 + k) * 7919) % 1000)
            .collect();
        let events = amounts
            .iter()
            .map(|n| added_json(&format!(r#"{{"n":{n}}}"#)))
            .collect();
        let stored = store
            .append(
                &StreamId::from(stream.clone()),
                ExpectedVersion::Any,
                events,
            )
            .await
            .expect("append");
        head = stored.last().expect("appended").meta.position;
        appended.extend(amounts.into_iter().map(|n| (stream.clone(), n)));
        i += size;
    }
    (appended, head)
}

/// Waits (up to 10 s) until the runner reports `Live`, and returns its state then.
///
/// A runner publishes a checkpoint before it decides it is live (that takes one more read that
/// comes back empty), so `wait_for(head)` returning does not mean the state already says so.
pub async fn wait_live<K: ProjectionSink>(running: &RunningProjection<K>) -> RunnerState {
    for _ in 0..1_000 {
        let state = running.status().state;
        if matches!(state, RunnerState::Live) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.status().state
}

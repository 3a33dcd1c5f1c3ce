//! Exactly-once SQL projections: [`PgTx`], the unit of work their handlers get, and [`PgSink`],
//! which commits each batch's read-model changes together with the projection's checkpoint.
//!
//! `PgTx` runs a handler's statements in the batch's transaction; text statements are prepared once
//! per connection. `PgTx::stage` queues writes whose result the handler does not need: they are
//! sent pipelined before the checkpoint update, a statement the handler awaits flushes them first,
//! and a staged statement that fails fails the event that staged it. Awaiting each statement costs
//! one round trip per event (about 9k events/s here), staging about 40k events/s (BENCHMARKS.md,
//! read side). `PgSink` runs one transaction per batch, fenced on the checkpoint row; a batch
//! dropped mid-way closes its connection (which rolls it back).

use eventweave_core::runner::{
    ApplyError, DurableProjection, ParkedEvent, ProjectionSink, Segment, handle_caught,
    load_layout, not_parked, refuse_segment_reset, reset_caught, reset_error,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use eventweave_core::runner::stored_error;
use eventweave_core::{
    BackendError, Position, ProjectionError, ProjectionFailure, RecordedEvent, StoreError,
};
use futures_util::future::join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row, Statement};

use crate::checkpoint::{self, to_db};
use crate::pool::Pooled;
use crate::store::PostgresStore;

// Handler futures hold `&PgTx` and must be `Send`.
const _: fn() = || {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<PgTx>();
};

mod sealed {
    pub trait Sealed {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl Sealed for tokio_postgres::Statement {}
}

/// SQL a [`PgTx`] runs: text, prepared on first use on each pooled connection and then reused,
/// or a [`Statement`] from [`PgTx::prepare`].
pub trait PgStatement: sealed::Sealed + Sync {
    /// The SQL text, if this is text.
    fn text(&self) -> Option<&str>;
    /// The prepared statement, if this is one.
    fn prepared(&self) -> Option<&Statement>;
}

impl PgStatement for str {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
    fn prepared(&self) -> Option<&Statement> {
        None
    }
}

impl PgStatement for String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
    fn prepared(&self) -> Option<&Statement> {
        None
    }
}

impl PgStatement for Statement {
    fn text(&self) -> Option<&str> {
        None
    }
    fn prepared(&self) -> Option<&Statement> {
        Some(self)
    }
}

/// The unit of work of SQL projections: a pooled connection on which [`PgSink`] has begun the
/// transaction of the current batch.
///
/// Every statement runs **in the batch's transaction**, which also moves the projection's
/// checkpoint: the batch's read-model changes and its checkpoint commit together, or (on a
/// handler error, a crash, a lost lease) neither does. So a handler never sees an event twice
/// in effect, and needs no deduplication.
///
/// Statements given as text are prepared once per connection and reused (the statement cache
/// holds up to 256 texts per connection; put values in parameters, not in the text). Do not run
/// `COMMIT`, `ROLLBACK` or `BEGIN`: the sink owns the transaction (a `SAVEPOINT` is fine). Pooled
/// connections plan statements generically (`plan_cache_mode = force_generic_plan`), which suits
/// key lookups and upserts.
///
/// # Staged writes
///
/// A statement a handler awaits ([`execute`](PgTx::execute), [`query`](PgTx::query), …) costs
/// a round trip to the server per event. A write whose result the handler does not need (an
/// upsert, an insert, a delete) can be **staged** instead with [`stage`](PgTx::stage): it is
/// queued, and the sink sends the batch's staged statements pipelined (all requests first,
/// then all responses, on the one connection) before it moves the checkpoint and commits. The
/// server runs them in the order they were staged, in the batch's transaction, so they commit
/// with the checkpoint or not at all, exactly like awaited ones.
///
/// The queue is flushed (sent and awaited) before any awaited statement of `PgTx`, so a query
/// sees the writes staged before it: mixing both is correct, but each flush is a round trip,
/// so a handler that reads after every write gains little. [`client`](PgTx::client) does not
/// flush: call [`flush`](PgTx::flush) first when its statements must see staged writes.
///
/// A staged statement that fails (a constraint violation, a type mismatch) fails the event
/// whose handler staged it, whichever handler was running when the queue was flushed: the
/// batch rolls back, the events before that one are committed on their own, and the runner
/// retries, parks or stops at that event, with a
/// [`ProjectionError`] that names it and carries the server's error
/// ([`ProjectionFailure::Handler`]). A statement awaited after the failed staged one returns
/// the server's error for a failed transaction (SQLSTATE 25P02).
pub struct PgTx {
    conn: Pooled,
    /// Staged statements not sent yet, in order.
    staged: Mutex<Vec<Staged>>,
    /// Index in the batch of the event whose handler runs now.
    event: AtomicUsize,
    /// The first staged statement that failed: the index of the event that staged it, and
    /// the error.
    failed: Mutex<Option<(usize, Arc<Error>)>>,
}

/// Owned parameters of a [staged](PgTx::stage) statement; [`params!`](crate::params) builds
/// them from values.
pub type StagedParams = Vec<Box<dyn ToSql + Send + Sync>>;

/// Owned [`StagedParams`] from values of types that implement
/// [`ToSql`] and own their data (`String`, not `&str`):
/// `params![stream.to_string(), n as i64]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        <$crate::StagedParams>::from([$(
            ::std::boxed::Box::new($value)
                as ::std::boxed::Box<
                    dyn $crate::__private::ToSql + ::std::marker::Send + ::std::marker::Sync,
                >
        ),*])
    };
}

/// A statement queued by [`PgTx::stage`].
struct Staged {
    sql: StagedSql,
    params: StagedParams,
    /// Index in the batch of the event whose handler staged it.
    event: usize,
}

enum StagedSql {
    Text(Box<str>),
    Prepared(Statement),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing that can panic runs under these locks.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl PgTx {
    fn new(conn: Pooled) -> PgTx {
        PgTx {
            conn,
            staged: Mutex::default(),
            event: AtomicUsize::new(0),
            failed: Mutex::default(),
        }
    }

    /// Queues a write whose result the handler does not need, to be sent pipelined with the
    /// batch's other staged statements before the checkpoint moves (see [Staged
    /// writes](PgTx#staged-writes)). It runs in the batch's transaction, after the statements
    /// staged or awaited before it and before those issued after it. Its parameters are owned
    /// ([`params!`](crate::params)); its errors fail the event whose handler staged it.
    ///
    /// ```no_run
    /// # async fn handle(db: &eventweave_postgres::PgTx, counter: &str, n: i64) {
    /// db.stage(
    ///     "INSERT INTO counter_totals AS t (counter, events, total) VALUES ($1, 1, $2)
    ///      ON CONFLICT (counter) DO UPDATE SET events = t.events + 1, total = t.total + $2",
    ///     eventweave_postgres::params![counter.to_owned(), n],
    /// );
    /// # }
    /// ```
    pub fn stage<T>(&self, statement: &T, params: StagedParams)
    where
        T: ?Sized + PgStatement,
    {
        let sql = match (statement.prepared(), statement.text()) {
            (Some(prepared), _) => StagedSql::Prepared(prepared.clone()),
            (None, Some(text)) => StagedSql::Text(text.into()),
            (None, None) => unreachable!("a PgStatement is text or prepared"),
        };
        let event = self.event.load(Ordering::Relaxed);
        lock(&self.staged).push(Staged { sql, params, event });
    }

    /// Sends the staged statements now, pipelined, and waits for them. The sink does this
    /// before the checkpoint moves, and every awaited method of `PgTx` before its own
    /// statement; call it before using [`client`](PgTx::client) when that must see staged
    /// writes. Fails (with the server's error, shared) if a staged statement failed, now or in
    /// an earlier flush of this batch; that fails the event which staged it.
    pub async fn flush(&self) -> Result<(), Arc<Error>> {
        self.send_staged().await;
        match &*lock(&self.failed) {
            Some((_, error)) => Err(Arc::clone(error)),
            None => Ok(()),
        }
    }

    /// Sends the staged statements, pipelined, in order; records the first failure.
    async fn send_staged(&self) {
        let staged = std::mem::take(&mut *lock(&self.staged));
        if staged.is_empty() {
            return;
        }
        // Texts not prepared on this connection yet are prepared first (once each).
        let mut statements = Vec::with_capacity(staged.len());
        for s in &staged {
            let statement = match &s.sql {
                StagedSql::Prepared(prepared) => prepared.clone(),
                StagedSql::Text(text) => match self.conn.cached(text).await {
                    Ok(statement) => statement,
                    Err(error) => return self.record_failure(s.event, error),
                },
            };
            statements.push(statement);
        }
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = staged
            .iter()
            .map(|s| {
                s.params
                    .iter()
                    .map(|p| &**p as &(dyn ToSql + Sync))
                    .collect()
            })
            .collect();
        // Polled together, the requests go out back to back on the one connection; the
        // server answers them in order. After a failure it answers the rest with errors too
        // (the transaction is aborted): the first failure in staging order is the cause.
        let client = &self.conn.client;
        let results = join_all(
            statements
                .iter()
                .zip(&params)
                .map(|(statement, params)| client.execute(statement, params)),
        )
        .await;
        if let Some((s, error)) = staged
            .iter()
            .zip(results)
            .find_map(|(s, result)| result.err().map(|e| (s, e)))
        {
            self.record_failure(s.event, error);
        }
    }

    fn record_failure(&self, event: usize, error: Error) {
        lock(&self.failed).get_or_insert((event, Arc::new(error)));
    }

    /// The first staged failure of this batch, as the [`ProjectionError`] of the event that
    /// staged it: (its index in `events`, the error).
    fn staged_failure(
        &self,
        projection: &'static str,
        events: &[RecordedEvent],
    ) -> Option<(usize, ProjectionError)> {
        let (i, error) = lock(&self.failed).clone()?;
        let failure = ProjectionFailure::Handler(error);
        Some((i, stored_error(projection, &events[i], failure)))
    }

    async fn statement<T: ?Sized + PgStatement>(&self, statement: &T) -> Result<Statement, Error> {
        match (statement.prepared(), statement.text()) {
            (Some(prepared), _) => Ok(prepared.clone()),
            (None, Some(text)) => self.conn.cached(text).await,
            (None, None) => unreachable!("a PgStatement is text or prepared"),
        }
    }

    /// Prepares `query` on this connection (cached: the same text prepares once).
    pub async fn prepare(&self, query: &str) -> Result<Statement, Error> {
        self.conn.cached(query).await
    }

    /// Runs a statement; returns the number of rows it modified (as
    /// [`Client::execute`]). Like the other awaited methods, it first sends the
    /// [staged](PgTx::stage) statements, so it sees their effects.
    pub async fn execute<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error>
    where
        T: ?Sized + PgStatement,
    {
        self.send_staged().await;
        let statement = self.statement(statement).await?;
        self.conn.client.execute(&statement, params).await
    }

    /// Runs a query; returns its rows (as [`Client::query`]).
    pub async fn query<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error>
    where
        T: ?Sized + PgStatement,
    {
        self.send_staged().await;
        let statement = self.statement(statement).await?;
        self.conn.client.query(&statement, params).await
    }

    /// Runs a query that returns exactly one row (as [`Client::query_one`]).
    pub async fn query_one<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error>
    where
        T: ?Sized + PgStatement,
    {
        self.send_staged().await;
        let statement = self.statement(statement).await?;
        self.conn.client.query_one(&statement, params).await
    }

    /// Runs a query that returns at most one row (as [`Client::query_opt`]).
    pub async fn query_opt<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error>
    where
        T: ?Sized + PgStatement,
    {
        self.send_staged().await;
        let statement = self.statement(statement).await?;
        self.conn.client.query_opt(&statement, params).await
    }

    /// The connection itself, inside the batch's transaction, for what the methods above do not
    /// cover (`copy_in`, `batch_execute`, …). Its statements also commit with the checkpoint.
    /// It does not send the staged statements first: call [`flush`](PgTx::flush) before when
    /// its statements must see them.
    pub fn client(&self) -> &Client {
        &self.conn.client
    }
}

/// Runs a [`DurableProjection<PgTx>`] whose read model lives in the store's database,
/// **exactly once**: each batch runs in one transaction that also moves the projection's
/// checkpoint.
///
/// `apply` begins a transaction, locks the projection's checkpoint row (`FOR UPDATE`) and checks
/// that it is where this sink last left it; runs the handlers on [`PgTx`]; updates the checkpoint
/// to the batch's end; and commits. A handler error rolls everything back. The check is the
/// fence that keeps exactly-once when two processes briefly both believe they hold the lease
/// (one lost its connection but has not noticed yet): the second to commit finds the checkpoint
/// moved, rolls back, and reports `ApplyError::Store`, after which its runner reloads the
/// checkpoint.
///
/// When a handler fails, the batch is rolled back and the events before the failing one are
/// applied again in a transaction of their own (so the checkpoint stops right before the failing
/// event): their handlers run twice, their statements take effect once. Keep handler state that
/// is not in the database (counters, caches) free of consequences.
///
/// [`replay_parked`](ProjectionSink::replay_parked) deletes the event's parked record and runs
/// its handler again in one transaction, without touching the checkpoint (exactly once: a second
/// replay finds no record and applies nothing); [`reset`](ProjectionSink::reset) drops the
/// projection's parked records in the transaction that sets its checkpoint to zero.
///
/// An `apply` dropped before it finishes (the runner stops it when the lease is lost) closes its
/// connection instead of returning it to the pool, and the server rolls the transaction back.
///
/// A connection lost while a handler runs (the server restarted, the session was terminated,
/// the network failed) makes the handler's statement fail, but it is not the event's failure:
/// when the connection is closed, or the handler's error is a driver error of class 08 or a
/// shutdown (57P01–57P03), the sink reports `ApplyError::Store(StoreError::Unavailable(..))`.
/// The runner then retries the batch with back-off as an outage, never counting it toward
/// `max_attempts`, so a storm of lost connections parks nothing and stops nothing.
pub struct PgSink<P> {
    store: PostgresStore,
    projection: P,
    /// The segment it applies, and the name of its checkpoint (`segment.key(P::NAME)`).
    segment: Segment,
    key: String,
    /// The checkpoint as this sink last read or committed it (`None` before the first read).
    committed: Option<Position>,
}

impl<P: DurableProjection<PgTx>> PgSink<P> {
    /// A sink for `projection` in `store`'s database.
    pub fn new(store: &PostgresStore, projection: P) -> Self {
        PgSink {
            store: store.clone(),
            projection,
            segment: Segment::WHOLE,
            key: P::NAME.to_owned(),
            committed: None,
        }
    }

    /// The sink of one segment of the projection (`eventweave_core::runner::Segment`): its
    /// checkpoint is the segment's (`{name}#{k}/{n}`), and its runner applies only the
    /// segment's streams. Every segment's sink writes to the same read model, each to its own
    /// streams' rows. For [`SegmentedRunner`](eventweave_core::runner::SegmentedRunner) and
    /// [`resegment`](eventweave_core::runner::resegment).
    pub fn segment(self, segment: Segment) -> Self {
        PgSink {
            key: segment.key(P::NAME),
            segment,
            ..self
        }
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Runs `sql` (one or more statements, such as `CREATE TABLE IF NOT EXISTS …`) on a
    /// connection of the sink's pool, outside any batch: the read model's set-up before the
    /// runner starts, as `SqliteSink::unit` allows on SQLite.
    ///
    /// Like every statement of a sink it runs with the connection's own `search_path` (the
    /// role's default, usually `"$user", public`), not the store's schema: qualify table names
    /// (`bank.balances`) or set the path in the connection string
    /// (`options=-csearch_path%3Dbank`).
    pub async fn setup(&self, sql: &str) -> Result<(), StoreError> {
        let conn = connection(&self.store).await?;
        // Classified like every driver error: a lost connection is `Unavailable`, a bad
        // statement `Backend` with the server's message and SQLSTATE.
        conn.client
            .batch_execute(sql)
            .await
            .map_err(crate::error::backend)
    }

    /// The projection, taken out of the sink.
    pub fn into_projection(self) -> P {
        self.projection
    }
}

/// A connection from the store's pool, closed rather than reused if dropped before the
/// transaction ends.
async fn connection(store: &PostgresStore) -> Result<Pooled, StoreError> {
    let mut conn = store.shared.sink_pool.get().await?;
    conn.discard_on_drop();
    Ok(conn)
}

/// Begins the transaction of `projection` and checks the fence: the checkpoint must be where
/// this sink last left it (`committed`; anything goes before the sink first read it).
async fn begin(
    store: &PostgresStore,
    conn: &mut Pooled,
    projection: &str,
    committed: Option<Position>,
) -> Result<(), StoreError> {
    let found = checkpoint::begin_and_lock(conn, &store.shared.checkpoint_sql, projection).await?;
    match committed {
        Some(expected) if expected != found => {
            checkpoint::rollback(conn).await;
            Err(StoreError::Backend(
                format!(
                    "the checkpoint of projection `{projection}` is at {found} in the database, \
                     but this process last left it at {expected}: another process ran the \
                     projection meanwhile (did this one lose its lease?); nothing was applied"
                )
                .into(),
            ))
        }
        _ => Ok(()),
    }
}

impl<P: DurableProjection<PgTx>> PgSink<P> {
    /// One batch in one transaction: `Ok(Err((i, error)))` when the handler of `events[i]`
    /// failed (everything rolled back), `Err` when the database did.
    async fn transaction(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<Result<(), (usize, ProjectionError)>, StoreError> {
        let mut conn = connection(&self.store).await?;
        begin(&self.store, &mut conn, &self.key, self.committed).await?;
        let tx = PgTx::new(conn);
        for (i, event) in events.iter().enumerate() {
            tx.event.store(i, Ordering::Relaxed);
            let handled = handle_caught(&mut self.projection, &tx, event).await;
            // A staged statement that failed while this handler ran (flushed by one of its
            // awaited statements) fails the earlier event that staged it, whatever the handler
            // made of the error.
            let failed = tx.staged_failure(P::NAME, events);
            if let Some(failed) = failed.or(handled.err().map(|error| (i, error))) {
                return roll_back(tx, failed).await;
            }
        }
        tx.send_staged().await;
        if let Some(failed) = tx.staged_failure(P::NAME, events) {
            return roll_back(tx, failed).await;
        }
        let mut conn = tx.conn;
        let advance = &self.store.shared.checkpoint_sql.advance;
        checkpoint::finish(&mut conn, advance, &[&self.key, &to_db(through)]).await?;
        self.committed = Some(through);
        Ok(Ok(()))
    }
}

/// Ends a batch whose handler (or staged statement) failed: rolls back, and tells a lost
/// connection (an outage, retried with back-off and never counted against the event) from a
/// failure of the handler on its event.
async fn roll_back(
    tx: PgTx,
    (i, error): (usize, ProjectionError),
) -> Result<Result<(), (usize, ProjectionError)>, StoreError> {
    let lost = tx.conn.client.is_closed() || connection_lost(&error.failure);
    let mut conn = tx.conn;
    checkpoint::rollback(&mut conn).await;
    if lost {
        return Err(StoreError::Unavailable(
            BackendError::new(format!(
                "the connection was lost while projection `{}` handled the event at position \
                 {} ({}); nothing of its batch was committed",
                error.projection, error.position, error.failure
            ))
            .with_inner(error),
        ));
    }
    Ok(Err((i, error)))
}

/// Whether a handler's failure is the connection's: a driver error (anywhere in its source
/// chain) on a closed connection, of class 08 (connection exception), or one of the server's
/// shutdown codes (57P01 admin shutdown, as `pg_terminate_backend` sends; 57P02 crash
/// shutdown; 57P03 cannot connect now). Other errors, even transient ones such as a
/// serialization failure or a statement timeout, stay the handler's: they count toward
/// `max_attempts` like any failure of the event.
fn connection_lost(failure: &ProjectionFailure) -> bool {
    let ProjectionFailure::Handler(error) = failure else {
        return false;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
    while let Some(error) = source {
        if let Some(pg) = error.downcast_ref::<Error>() {
            let code = pg.code().map(|c| c.code());
            return pg.is_closed()
                || code.is_some_and(|c| {
                    c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
                });
        }
        source = error.source();
    }
    false
}

impl<P: DurableProjection<PgTx>> ProjectionSink for PgSink<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn events(&self) -> &'static [&'static str] {
        P::EVENTS
    }

    fn segment(&self) -> Segment {
        self.segment
    }

    async fn stored_segments(&mut self) -> Result<u32, StoreError> {
        load_layout(&self.store, P::NAME).await
    }

    async fn checkpoint(&mut self) -> Result<Position, StoreError> {
        let position =
            eventweave_core::runner::Checkpoints::load_checkpoint(&self.store, &self.key).await?;
        self.committed = Some(position);
        Ok(position)
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyError> {
        match self.transaction(events, through).await? {
            Ok(()) => Ok(()),
            Err((0, error)) => Err(ApplyError::Handler(error)),
            Err((failed, error)) => {
                // Commit what precedes the failing event, so the checkpoint stops right before
                // it: the runner then retries, parks or stops at that event without losing the
                // events of its batch that came first.
                let before = &events[..failed];
                let last = before[failed - 1].meta.position;
                match self.transaction(before, last).await? {
                    Ok(()) | Err(_) => Err(ApplyError::Handler(error)),
                }
            }
        }
    }

    async fn park(
        &mut self,
        event: &RecordedEvent,
        error: &ProjectionError,
    ) -> Result<(), StoreError> {
        let mut conn = connection(&self.store).await?;
        begin(&self.store, &mut conn, &self.key, self.committed).await?;
        let parked = ParkedEvent::new(
            &self.key,
            event,
            eventweave_core::ErrorChain(error).to_string(),
        );
        checkpoint::park_and_commit(&mut conn, &self.store.shared.checkpoint_sql, &parked).await?;
        self.committed = Some(
            self.committed
                .map_or(parked.position, |c| c.max(parked.position)),
        );
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        refuse_segment_reset(P::NAME, self.segment)?;
        let conn = connection(&self.store).await?;
        // A reset is an operator's decision: it takes the checkpoint wherever it is.
        checkpoint::begin_and_lock(&conn, &self.store.shared.checkpoint_sql, P::NAME).await?;
        let tx = PgTx::new(conn);
        let mut reset = reset_caught(&mut self.projection, &tx).await;
        tx.send_staged().await;
        if let Some((_, error)) = lock(&tx.failed).clone() {
            reset = Err(ProjectionFailure::Handler(error));
        }
        if let Err(failure) = reset {
            let mut conn = tx.conn;
            checkpoint::rollback(&mut conn).await;
            return Err(reset_error(P::NAME, failure));
        }
        let mut conn = tx.conn;
        let sql = &self.store.shared.checkpoint_sql;
        // The rebuild applies the parked events again (and parks those that still fail).
        if let Err(e) = checkpoint::unpark(&conn, sql, P::NAME, None).await {
            checkpoint::rollback(&mut conn).await;
            return Err(e.into());
        }
        checkpoint::finish(&mut conn, &sql.advance, &[&P::NAME, &to_db(Position::ZERO)]).await?;
        self.committed = Some(Position::ZERO);
        Ok(())
    }

    /// Exactly once: one transaction deletes the parked record first (its row lock makes a
    /// concurrent replay of the same event wait, then find nothing and apply nothing), runs the
    /// handler and commits; the checkpoint row is not touched.
    async fn replay_parked(&mut self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let mut conn = connection(&self.store).await?;
        conn.client
            .batch_execute(checkpoint::BEGIN)
            .await
            .map_err(crate::error::backend)?;
        let sql = &self.store.shared.checkpoint_sql;
        match checkpoint::unpark(&conn, sql, &self.key, Some(event.meta.position)).await {
            Ok(true) => {}
            Ok(false) => {
                checkpoint::rollback(&mut conn).await;
                return Err(not_parked(P::NAME, event));
            }
            Err(e) => {
                checkpoint::rollback(&mut conn).await;
                return Err(e.into());
            }
        }
        let tx = PgTx::new(conn);
        let handled = handle_caught(&mut self.projection, &tx, event).await;
        if handled.is_ok() {
            tx.send_staged().await;
        }
        let events = std::slice::from_ref(event);
        let failed = tx.staged_failure(P::NAME, events).map(|(_, e)| e);
        if let Some(error) = failed.or(handled.err()) {
            return match roll_back(tx, (0, error)).await {
                Err(lost) => Err(lost.into()),
                Ok(Err((_, error))) => Err(ApplyError::Handler(error)),
                Ok(Ok(())) => Ok(()),
            };
        }
        let mut conn = tx.conn;
        conn.client
            .batch_execute("COMMIT")
            .await
            .map_err(crate::error::write_failed)?;
        conn.reuse_on_drop();
        Ok(())
    }
}

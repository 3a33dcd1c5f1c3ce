//! Exactly-once SQL projections: [`PgTx`], the unit of work their handlers get, and [`PgSink`],
//! which commits each batch's read-model changes together with the projection's checkpoint.

use cqrs_core::runner::{
    ApplyError, DurableProjection, ParkedEvent, ProjectionSink, handle_caught, reset_caught,
    reset_error,
};
use cqrs_core::{Position, ProjectionError, RecordedEvent, StoreError};
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
pub struct PgTx {
    conn: Pooled,
}

impl PgTx {
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
    /// [`Client::execute`]).
    pub async fn execute<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error>
    where
        T: ?Sized + PgStatement,
    {
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
        let statement = self.statement(statement).await?;
        self.conn.client.query_opt(&statement, params).await
    }

    /// The connection itself, inside the batch's transaction, for what the methods above do not
    /// cover (`copy_in`, `batch_execute`, …). Its statements also commit with the checkpoint.
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
/// An `apply` dropped before it finishes (the runner stops it when the lease is lost) closes its
/// connection instead of returning it to the pool, and the server rolls the transaction back.
pub struct PgSink<P> {
    store: PostgresStore,
    projection: P,
    /// The checkpoint as this sink last read or committed it (`None` before the first read).
    committed: Option<Position>,
}

impl<P: DurableProjection<PgTx>> PgSink<P> {
    /// A sink for `projection` in `store`'s database.
    pub fn new(store: &PostgresStore, projection: P) -> Self {
        PgSink {
            store: store.clone(),
            projection,
            committed: None,
        }
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, taken out of the sink.
    pub fn into_projection(self) -> P {
        self.projection
    }
}

/// A connection from the store's pool, closed rather than reused if dropped before the
/// transaction ends.
async fn connection(store: &PostgresStore) -> Result<Pooled, StoreError> {
    let mut conn = store.shared.pool.get().await?;
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
        begin(&self.store, &mut conn, P::NAME, self.committed).await?;
        let tx = PgTx { conn };
        for (i, event) in events.iter().enumerate() {
            if let Err(error) = handle_caught(&mut self.projection, &tx, event).await {
                let mut conn = tx.conn;
                checkpoint::rollback(&mut conn).await;
                return Ok(Err((i, error)));
            }
        }
        let mut conn = tx.conn;
        let advance = &self.store.shared.checkpoint_sql.advance;
        checkpoint::finish(&mut conn, advance, &[&P::NAME, &to_db(through)]).await?;
        self.committed = Some(through);
        Ok(Ok(()))
    }
}

impl<P: DurableProjection<PgTx>> ProjectionSink for PgSink<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn events(&self) -> &'static [&'static str] {
        P::EVENTS
    }

    async fn checkpoint(&mut self) -> Result<Position, StoreError> {
        let position =
            cqrs_core::runner::Checkpoints::load_checkpoint(&self.store, P::NAME).await?;
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
        begin(&self.store, &mut conn, P::NAME, self.committed).await?;
        let parked = ParkedEvent::new(P::NAME, event, error.to_string());
        checkpoint::park_and_commit(&mut conn, &self.store.shared.checkpoint_sql, &parked).await?;
        self.committed = Some(
            self.committed
                .map_or(parked.position, |c| c.max(parked.position)),
        );
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        let conn = connection(&self.store).await?;
        // A reset is an operator's decision: it takes the checkpoint wherever it is.
        checkpoint::begin_and_lock(&conn, &self.store.shared.checkpoint_sql, P::NAME).await?;
        let tx = PgTx { conn };
        if let Err(failure) = reset_caught(&mut self.projection, &tx).await {
            let mut conn = tx.conn;
            checkpoint::rollback(&mut conn).await;
            return Err(reset_error(P::NAME, failure));
        }
        let mut conn = tx.conn;
        let advance = &self.store.shared.checkpoint_sql.advance;
        checkpoint::finish(&mut conn, advance, &[&P::NAME, &to_db(Position::ZERO)]).await?;
        self.committed = Some(Position::ZERO);
        Ok(())
    }
}

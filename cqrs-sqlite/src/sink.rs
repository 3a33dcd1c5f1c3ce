//! [`SqliteSink`]: exactly-once delivery to a projection whose read model lives in SQLite. Each
//! batch runs the handlers and moves the checkpoint in one transaction.

use eventweave_core::runner::{
    ApplyError, DurableProjection, ParkedEvent, ProjectionSink, Segment, handle_caught,
    load_layout, not_parked, refuse_segment_reset, reset_caught, reset_error,
};
use eventweave_core::{BackendError, Position, ProjectionError, RecordedEvent, StoreError};
use rusqlite::Connection;

use crate::checkpoints;
use crate::connection::open_sink;
use crate::error::{CheckpointMoved, OpenError, backend};
use crate::store::SqliteStore;
use crate::turns::{TurnGuard, WriteTurn};
use crate::tx::SqliteTx;

/// Runs a `DurableProjection<SqliteTx>` **exactly once**: for each batch the runner hands it,
/// the sink opens a write transaction (`BEGIN IMMEDIATE`) on a connection of its own to the
/// store's file, runs the handlers (their statements go through the [`SqliteTx`]), sets the
/// projection's row in the `checkpoints` table, and commits. A crash, a failing handler or a
/// cancelled batch leaves the read model and the checkpoint as they were together.
///
/// - **A handler fails on an event**: the changes of that event are rolled back (each event
///   runs under a savepoint); those of the events before it in the batch are committed with
///   the checkpoint just before it, and the runner retries or parks the failing event.
/// - **Fence**: inside the transaction the sink reads the checkpoint and writes nothing unless
///   it is where this sink left it ([`CheckpointMoved`], a storage error after which the
///   runner reads the checkpoint again). Two runners of one projection (no leases) thus never
///   apply an event twice.
/// - **Cancellation**: a batch whose future is dropped at an `.await` (the runner lost its
///   lease) rolls its transaction back at once, releasing the write lock; every operation also
///   rolls back a transaction it finds open before it starts.
/// - [`park`](ProjectionSink::park) records the event in `parked_events` and moves the
///   checkpoint in one transaction; [`reset`](ProjectionSink::reset) runs the projection's
///   reset hook (which empties its tables), drops its parked records and sets the checkpoint to
///   zero in one transaction; [`replay_parked`](ProjectionSink::replay_parked) deletes the
///   event's parked record and runs its handler again in one transaction, leaving the
///   checkpoint alone (exactly once: a second replay finds no record and applies nothing).
///
/// The read model is queried with the application's own connections and SQL: it is ordinary
/// tables in the file (`rusqlite::Connection::open(store.path())`).
///
/// **Write turn.** Each batch (and `park`, `reset`) first waits with `.await` for the write turn
/// of the file, which every writer of the file in this process shares (appends, saves, other
/// sinks, through any handle opened on the file), and holds it from `BEGIN IMMEDIATE` to
/// `COMMIT` or `ROLLBACK`, across the handlers' `.await`s. Appends of this process made
/// meanwhile wait for the turn without blocking a runtime thread, for as long as the batch runs,
/// then succeed; appends of other processes wait in SQLite's busy handler, up to their busy
/// timeout. So keep batches short if appends must not wait (`ProjectionRunner::batch_size`).
/// A handler must not append (or save a snapshot or checkpoint) through the store: that write
/// would wait for its own batch, so it fails at once with
/// [`WriteInSinkBatch`](crate::WriteInSinkBatch). Nor may a handler wait for such a write made
/// by another task (say, a command it sends over a channel): that task waits for the batch, and
/// the two wait for each other forever.
pub struct SqliteSink<P> {
    projection: P,
    tx: SqliteTx,
    /// The write turn of the store's file: each batch holds it from before `BEGIN IMMEDIATE` to
    /// its `COMMIT` or `ROLLBACK`.
    turn: WriteTurn,
    /// The checkpoint this sink last read or committed: the fence.
    expected: Position,
    /// The segment it applies, and the name of its checkpoint (`segment.key(P::NAME)`).
    segment: Segment,
    key: &'static str,
    /// Keeps a temporary store's file alive while the sink uses it. After `tx`, so the sink's
    /// connection closes first.
    store: SqliteStore,
}

impl<P: DurableProjection<SqliteTx>> SqliteSink<P> {
    /// A sink for `projection` over the file of `store`, on a connection of its own opened with
    /// the store's busy timeout and durability.
    pub fn new(store: &SqliteStore, projection: P) -> Result<Self, OpenError> {
        let path = store.path();
        let conn = open_sink(path, store.config())?;
        let expected = checkpoints::load(&conn, P::NAME).map_err(OpenError::database(path))?;
        Ok(SqliteSink {
            projection,
            tx: SqliteTx::new(conn),
            turn: store.turn().clone(),
            expected,
            segment: Segment::WHOLE,
            key: P::NAME,
            store: store.clone(),
        })
    }

    /// The sink of one segment of the projection (`eventweave_core::runner::Segment`): its
    /// checkpoint is the segment's (`{name}#{k}/{n}`), read again before the runner's first
    /// batch, and its runner applies only the segment's streams. For
    /// [`SegmentedRunner`](eventweave_core::runner::SegmentedRunner) and
    /// [`resegment`](eventweave_core::runner::resegment).
    pub fn segment(self, segment: Segment) -> Self {
        // The checkpoint name lives as long as the program (the fence's errors name it with a
        // `&'static str`); a sink per segment is made a handful of times per process.
        let key: &'static str = if segment == Segment::WHOLE {
            P::NAME
        } else {
            Box::leak(segment.key(P::NAME).into_boxed_str())
        };
        SqliteSink {
            segment,
            key,
            ..self
        }
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The sink's connection, for setting up the read model's tables before the runner starts
    /// (`CREATE TABLE IF NOT EXISTS …`). Outside a batch, statements commit on their own.
    ///
    /// These statements are synchronous and do not take the file's write turn: a write made
    /// here while another writer of the file is in a transaction (a sink batch already running)
    /// waits in SQLite's busy handler, blocking the thread, and may fail with `SQLITE_BUSY`.
    /// Set the tables up before starting runners.
    pub fn unit(&self) -> &SqliteTx {
        &self.tx
    }

    /// Runs `sql` (one or more statements, such as `CREATE TABLE IF NOT EXISTS …`) on the sink's
    /// connection, outside any batch and in the file's write turn: the read model's set-up
    /// before the runner starts. `PgSink::setup` is the same on PostgreSQL, so the set-up of a
    /// portable read model ([`Sql`](eventweave_core::sql::Sql)) is written once too.
    pub async fn setup(&self, sql: &str) -> Result<(), StoreError> {
        let _turn = self.turn.take().await?;
        let conn = self.tx.try_conn().ok_or_else(|| {
            StoreError::Backend("the sink's connection is in use by a handler".into())
        })?;
        conn.execute_batch(sql).map_err(backend)
    }

    /// Takes the projection back.
    pub fn into_projection(self) -> P {
        self.projection
    }
}

impl<P: DurableProjection<SqliteTx>> ProjectionSink for SqliteSink<P> {
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
        let conn = self.tx.try_conn().ok_or_else(busy)?;
        rollback_leftover(&conn);
        let position = checkpoints::load(&conn, self.key).map_err(backend)?;
        drop(conn);
        self.expected = position;
        Ok(position)
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyError> {
        let key = self.key;
        let turn = self.turn.take_for_batch(key).await?;
        let batch = Batch::fenced(&self.tx, turn, key, self.expected)?;
        for (i, event) in events.iter().enumerate() {
            batch.run(|conn| savepoint(conn, "SAVEPOINT cqrs_event"))?;
            match handle_caught(&mut self.projection, &self.tx, event).await {
                Ok(()) => {
                    batch.check_open(P::NAME, event)?;
                    batch.run(|conn| savepoint(conn, "RELEASE cqrs_event"))?;
                }
                Err(error) => {
                    // Keep the effects of the events before it (they are done); drop its own.
                    if i > 0 && !batch.is_closed() {
                        let kept = events[i - 1].meta.position;
                        batch.run(|conn| {
                            savepoint(conn, "ROLLBACK TO cqrs_event")?;
                            savepoint(conn, "RELEASE cqrs_event")?;
                            checkpoints::save(conn, key, kept)
                        })?;
                        batch.commit()?;
                        self.expected = kept;
                    }
                    return Err(ApplyError::Handler(error));
                }
            }
        }
        batch.run(|conn| checkpoints::save(conn, key, through))?;
        batch.commit()?;
        self.expected = through;
        Ok(())
    }

    async fn park(
        &mut self,
        event: &RecordedEvent,
        error: &ProjectionError,
    ) -> Result<(), StoreError> {
        let position = self.expected.max(event.meta.position);
        let key = self.key;
        let parked = ParkedEvent::new(key, event, eventweave_core::ErrorChain(error).to_string());
        let turn = self.turn.take_for_batch(self.key).await?;
        let batch = Batch::fenced(&self.tx, turn, self.key, self.expected).map_err(into_store)?;
        batch.run(|conn| {
            checkpoints::insert_parked(conn, &parked)?;
            checkpoints::save(conn, key, position)
        })?;
        batch.commit()?;
        self.expected = position;
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        refuse_segment_reset(P::NAME, self.segment)?;
        let turn = self.turn.take_for_batch(self.key).await?;
        let batch = Batch::begin(&self.tx, turn)?;
        reset_caught(&mut self.projection, &self.tx)
            .await
            .map_err(|failure| reset_error(P::NAME, failure))?;
        if batch.is_closed() {
            return Err(ApplyError::Store(StoreError::Backend(
                format!(
                    "the reset hook of projection `{}` ended the sink's transaction; nothing was reset",
                    P::NAME
                )
                .into(),
            )));
        }
        batch.run(|conn| {
            checkpoints::unpark(conn, P::NAME, None)?;
            checkpoints::save(conn, P::NAME, Position::ZERO)
        })?;
        batch.commit()?;
        self.expected = Position::ZERO;
        Ok(())
    }

    /// Exactly once: one transaction deletes the parked record (none: nothing is applied) and
    /// runs the handler; the checkpoint is not touched, so no fence is needed.
    async fn replay_parked(&mut self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let key = self.key;
        let turn = self.turn.take_for_batch(self.key).await?;
        let batch = Batch::begin(&self.tx, turn)?;
        let position = Some(event.meta.position);
        if !batch.run(|conn| checkpoints::unpark(conn, key, position))? {
            return Err(not_parked(P::NAME, event));
        }
        handle_caught(&mut self.projection, &self.tx, event)
            .await
            .map_err(ApplyError::Handler)?;
        batch.check_open(P::NAME, event)?;
        batch.commit()?;
        Ok(())
    }
}

/// An open write transaction on the sink's connection, holding the file's write turn; rolled
/// back when dropped uncommitted (on an error return, and when the future of `apply` is dropped
/// at an `.await`), and the turn given back after the commit or rollback.
struct Batch<'a> {
    tx: &'a SqliteTx,
    committed: bool,
    /// Dropped after `Drop::drop` has rolled back: the next writer finds the file free.
    _turn: TurnGuard,
}

impl<'a> Batch<'a> {
    /// Rolls back a transaction a cancelled batch left open, then opens one, holding `turn`.
    fn begin(tx: &'a SqliteTx, turn: TurnGuard) -> Result<Self, StoreError> {
        let conn = tx.try_conn().ok_or_else(busy)?;
        rollback_leftover(&conn);
        conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
        drop(conn);
        Ok(Batch {
            tx,
            committed: false,
            _turn: turn,
        })
    }

    /// Like [`Batch::begin`], then checks the fence: the checkpoint of `projection` must be
    /// `expected`, the one this sink last read or committed.
    fn fenced(
        tx: &'a SqliteTx,
        turn: TurnGuard,
        projection: &'static str,
        expected: Position,
    ) -> Result<Self, ApplyError> {
        let batch = Batch::begin(tx, turn)?;
        let found = batch.run(|conn| checkpoints::load(conn, projection))?;
        if found != expected {
            drop(batch); // rolls back
            return Err(ApplyError::Store(StoreError::Backend(
                BackendError::from_error(CheckpointMoved {
                    projection,
                    expected,
                    found,
                }),
            )));
        }
        Ok(batch)
    }

    /// Runs `f` on the connection (never while a handler runs).
    fn run<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.tx.try_conn().ok_or_else(busy)?;
        f(&conn).map_err(backend)
    }

    /// Whether the transaction has ended (SQLite rolls back on some errors, such as a full
    /// disk; a handler may have run `COMMIT` or `ROLLBACK`).
    fn is_closed(&self) -> bool {
        self.tx.try_conn().is_none_or(|conn| conn.is_autocommit())
    }

    /// Fails the batch if the handler of `event` ended the transaction.
    fn check_open(
        &self,
        projection: &'static str,
        event: &RecordedEvent,
    ) -> Result<(), StoreError> {
        if self.is_closed() {
            let meta = &event.meta;
            return Err(StoreError::Backend(
                format!(
                    "the handler of projection `{projection}` for event `{}` (version {} of `{}`, \
                     position {}) ended the sink's transaction (it must not run BEGIN, COMMIT or \
                     ROLLBACK); the batch is not committed",
                    meta.event_name, meta.version, meta.stream, meta.position
                )
                .into(),
            ));
        }
        Ok(())
    }

    fn commit(mut self) -> Result<(), StoreError> {
        self.run(|conn| conn.execute_batch("COMMIT"))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.committed
            && let Some(conn) = self.tx.try_conn()
        {
            rollback_leftover(&conn);
        }
    }
}

/// Rolls back a transaction left open (a failed commit, a cancelled batch whose guard could
/// not run). Errors are ignored: a connection without a transaction is what is wanted.
fn rollback_leftover(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn savepoint(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn busy() -> StoreError {
    StoreError::Backend("the sink's connection is still held by a projection handler".into())
}

fn into_store(error: ApplyError) -> StoreError {
    match error {
        ApplyError::Store(e) => e,
        other => StoreError::Backend(BackendError::from_error(other)),
    }
}

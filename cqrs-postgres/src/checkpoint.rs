//! Projection checkpoints and parked events in the store's database: the SQL, the
//! [`Checkpoints`] implementation, and the transaction steps [`PgSink`](crate::PgSink) shares
//! with it (lock the checkpoint row, park an event).

use std::time::SystemTime;

use eventweave_core::runner::{Checkpoints, ParkedEvent};
use eventweave_core::{Position, StoreError, StreamId, Timestamp, Uuid};
use tokio_postgres::Row;

use crate::config::Names;
use crate::error::{backend, write_failed};
use crate::pool::{Conn, Pooled};
use crate::store::PostgresStore;

/// Opens a projection transaction. Pipelined with the first statement, so it costs no round
/// trip of its own. A transaction left idle for a minute (a handler stuck between statements,
/// a process frozen mid-batch) is ended by the server, which releases the checkpoint row for
/// the process that takes over.
pub(crate) const BEGIN: &str = "BEGIN; SET LOCAL idle_in_transaction_session_timeout = '60s'";

/// The statements on the checkpoint and parked-event tables, rendered once per store.
#[derive(Debug)]
pub(crate) struct CheckpointSql {
    load: String,
    lock: String,
    create: String,
    save: String,
    pub advance: String,
    park: String,
    park_checkpoint: String,
    parked: String,
    pub unpark: String,
    pub unpark_all: String,
}

impl CheckpointSql {
    pub fn new(n: &Names) -> CheckpointSql {
        let (checkpoints, parked) = (&n.checkpoints, &n.parked);
        CheckpointSql {
            load: format!("SELECT position FROM {checkpoints} WHERE projection = $1::text"),
            lock: format!(
                "SELECT position FROM {checkpoints} WHERE projection = $1::text FOR UPDATE"
            ),
            create: format!(
                "INSERT INTO {checkpoints} (projection, position) VALUES ($1::text, 0)
                 ON CONFLICT (projection) DO NOTHING"
            ),
            save: format!(
                "INSERT INTO {checkpoints} (projection, position) VALUES ($1::text, $2::int8)
                 ON CONFLICT (projection)
                 DO UPDATE SET position = EXCLUDED.position, updated_at = now()"
            ),
            advance: format!(
                "UPDATE {checkpoints} SET position = $2::int8, updated_at = now()
                 WHERE projection = $1::text"
            ),
            // Parking the same event again (after a rebuild) records the newer error.
            park: format!(
                "INSERT INTO {parked}
                     (projection, position, event_id, stream, version, event_name, error, parked_at)
                 VALUES ($1::text, $2::int8, $3::uuid, $4::text, $5::int8, $6::text, $7::text,
                     $8::timestamptz)
                 ON CONFLICT (projection, position)
                 DO UPDATE SET error = EXCLUDED.error, parked_at = EXCLUDED.parked_at"
            ),
            // A park never moves a checkpoint back.
            park_checkpoint: format!(
                "INSERT INTO {checkpoints} AS c (projection, position) VALUES ($1::text, $2::int8)
                 ON CONFLICT (projection) DO UPDATE
                 SET position = greatest(c.position, EXCLUDED.position), updated_at = now()"
            ),
            parked: format!(
                "SELECT projection, position, event_id, stream, version, event_name, error,
                     parked_at
                 FROM {parked} WHERE projection = $1::text ORDER BY position"
            ),
            unpark: format!(
                "DELETE FROM {parked} WHERE projection = $1::text AND position = $2::int8"
            ),
            unpark_all: format!("DELETE FROM {parked} WHERE projection = $1::text"),
        }
    }
}

/// A position as the database stores it. Positions come from a `bigint` sequence, so they fit.
pub(crate) fn to_db(position: Position) -> i64 {
    i64::try_from(position.0).unwrap_or(i64::MAX)
}

fn from_db(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("stored {what} {value} is negative").into()))
}

fn position_of(row: &Row) -> Result<Position, StoreError> {
    let value: i64 = row.try_get(0).map_err(backend)?;
    Ok(Position(from_db("checkpoint", value)?))
}

impl PostgresStore {
    fn checkpoint_sql(&self) -> &CheckpointSql {
        &self.shared.checkpoint_sql
    }
}

/// Inside a transaction: locks the checkpoint row of `projection` (creating it at 0 if
/// missing) and returns its position. The lock is the fence of exactly-once sinks: a second
/// writer waits for the first to commit and then sees that the checkpoint moved. The `BEGIN`
/// is sent in the same round trip.
pub(crate) async fn begin_and_lock(
    conn: &Conn,
    sql: &CheckpointSql,
    projection: &str,
) -> Result<Position, StoreError> {
    let lock = conn.cached(&sql.lock).await.map_err(backend)?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&projection];
    let (begun, locked) = tokio::join!(
        conn.client.batch_execute(BEGIN),
        conn.client.query_opt(&lock, &params),
    );
    begun.map_err(backend)?;
    if let Some(row) = locked.map_err(backend)? {
        return position_of(&row);
    }
    let create = conn.cached(&sql.create).await.map_err(backend)?;
    conn.client
        .execute(&create, &[&projection])
        .await
        .map_err(backend)?;
    let row = conn
        .client
        .query_one(&lock, &[&projection])
        .await
        .map_err(backend)?;
    position_of(&row)
}

/// Removes the record of the event at `position` that `projection` parked (all of its
/// records with `None`); whether there was one. `PgSink` runs it inside the transaction that
/// applies the event again, or resets the projection.
pub(crate) async fn unpark(
    conn: &Conn,
    sql: &CheckpointSql,
    projection: &str,
    position: Option<Position>,
) -> Result<bool, StoreError> {
    let removed = match position {
        Some(position) => {
            let unpark = conn.cached(&sql.unpark).await.map_err(backend)?;
            conn.client
                .execute(&unpark, &[&projection, &to_db(position)])
                .await
        }
        None => {
            let unpark = conn.cached(&sql.unpark_all).await.map_err(backend)?;
            conn.client.execute(&unpark, &[&projection]).await
        }
    };
    Ok(removed.map_err(write_failed)? > 0)
}

/// Ends the transaction with `ROLLBACK`; on success the connection may go back to the pool.
pub(crate) async fn rollback(conn: &mut Pooled) {
    if conn.client.batch_execute("ROLLBACK").await.is_ok() {
        conn.reuse_on_drop();
    }
}

/// Ends the transaction with `statement` (the checkpoint update) and `COMMIT` in one round trip.
pub(crate) async fn finish(
    conn: &mut Pooled,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), StoreError> {
    let statement = conn.cached(statement).await.map_err(backend)?;
    let (done, committed) = tokio::join!(
        conn.client.execute(&statement, params),
        conn.client.batch_execute("COMMIT"),
    );
    // After a failed statement, COMMIT ends the aborted transaction with a rollback. Both
    // were sent: a lost connection leaves the commit's outcome unknown.
    done.map_err(write_failed)?;
    committed.map_err(write_failed)?;
    conn.reuse_on_drop();
    Ok(())
}

/// Inside a transaction: records `parked` and moves its projection's checkpoint to it (never
/// back), then commits.
pub(crate) async fn park_and_commit(
    conn: &mut Pooled,
    sql: &CheckpointSql,
    parked: &ParkedEvent,
) -> Result<(), StoreError> {
    let park = conn.cached(&sql.park).await.map_err(backend)?;
    let position = to_db(parked.position);
    let version = i64::try_from(parked.version).unwrap_or(i64::MAX);
    let parked_at = SystemTime::from(parked.parked_at);
    let inserted = conn
        .client
        .execute(
            &park,
            &[
                &parked.projection,
                &position,
                &parked.event_id,
                &parked.stream.as_str(),
                &version,
                &parked.event_name,
                &parked.error,
                &parked_at,
            ],
        )
        .await;
    if let Err(e) = inserted {
        rollback(conn).await;
        return Err(backend(e));
    }
    finish(conn, &sql.park_checkpoint, &[&parked.projection, &position]).await
}

fn parked_event(row: &Row) -> Result<ParkedEvent, StoreError> {
    let get_i64 = |i: usize| row.try_get::<_, i64>(i).map_err(backend);
    let get_text = |i: usize| row.try_get::<_, String>(i).map_err(backend);
    let event_id: Uuid = row.try_get(2).map_err(backend)?;
    let parked_at: SystemTime = row.try_get(7).map_err(backend)?;
    Ok(ParkedEvent {
        projection: get_text(0)?,
        position: Position(from_db("position", get_i64(1)?)?),
        event_id,
        stream: StreamId::from(get_text(3)?),
        version: from_db("version", get_i64(4)?)?,
        event_name: get_text(5)?,
        error: get_text(6)?,
        parked_at: Timestamp::from(parked_at),
    })
}

impl Checkpoints for PostgresStore {
    async fn load_checkpoint(&self, projection: &str) -> Result<Position, StoreError> {
        let conn = self.shared.sink_pool.get().await?;
        let load = conn
            .cached(&self.checkpoint_sql().load)
            .await
            .map_err(backend)?;
        match conn
            .client
            .query_opt(&load, &[&projection])
            .await
            .map_err(backend)?
        {
            Some(row) => position_of(&row),
            None => Ok(Position::ZERO),
        }
    }

    async fn save_checkpoint(
        &self,
        projection: &str,
        position: Position,
    ) -> Result<(), StoreError> {
        let conn = self.shared.sink_pool.get().await?;
        let save = conn
            .cached(&self.checkpoint_sql().save)
            .await
            .map_err(backend)?;
        conn.client
            .execute(&save, &[&projection, &to_db(position)])
            .await
            .map_err(write_failed)?;
        Ok(())
    }

    async fn park_event(&self, parked: ParkedEvent) -> Result<(), StoreError> {
        let mut conn = self.shared.sink_pool.get().await?;
        // Dropped mid-transaction, the connection is closed rather than reused.
        conn.discard_on_drop();
        conn.client.batch_execute(BEGIN).await.map_err(backend)?;
        park_and_commit(&mut conn, self.checkpoint_sql(), &parked).await
    }

    async fn parked_events(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        let conn = self.shared.sink_pool.get().await?;
        let list = conn
            .cached(&self.checkpoint_sql().parked)
            .await
            .map_err(backend)?;
        conn.client
            .query(&list, &[&projection])
            .await
            .map_err(backend)?
            .iter()
            .map(parked_event)
            .collect()
    }

    async fn unpark_event(
        &self,
        projection: &str,
        position: Option<Position>,
    ) -> Result<bool, StoreError> {
        let conn = self.shared.sink_pool.get().await?;
        unpark(&conn, self.checkpoint_sql(), projection, position).await
    }
}

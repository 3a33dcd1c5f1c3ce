//! Checkpoints and parked events of durable projections: the SQL shared by
//! [`SqliteStore`]'s [`Checkpoints`] implementation and by [`SqliteSink`](crate::SqliteSink),
//! which runs the same statements inside its own transactions.

use eventweave_core::runner::{Checkpoints, ParkedEvent};
use eventweave_core::{Position, StoreError, StreamId, Timestamp, Uuid};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{backend, commit_failed};
use crate::read::to_sql_int;
use crate::store::SqliteStore;

/// The checkpoint of `projection` (`Position::ZERO` when it has no row).
pub(crate) fn load(conn: &Connection, projection: &str) -> rusqlite::Result<Position> {
    let position: Option<i64> = conn
        .prepare_cached("SELECT position FROM checkpoints WHERE projection = ?1")?
        .query_row([projection], |row| row.get(0))
        .optional()?;
    Ok(Position(position.map_or(0, |p| p.max(0) as u64)))
}

/// Sets the checkpoint of `projection` to `position`.
pub(crate) fn save(
    conn: &Connection,
    projection: &str,
    position: Position,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO checkpoints (projection, position, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (projection) DO UPDATE
         SET position = excluded.position, updated_at = excluded.updated_at",
    )?
    .execute((
        projection,
        to_sql_int(position.0),
        Timestamp::now().unix_micros(),
    ))?;
    Ok(())
}

/// Records `parked` (replacing an earlier record of the same event, say after a rebuild). The
/// caller moves the checkpoint, in the same transaction.
pub(crate) fn insert_parked(conn: &Connection, parked: &ParkedEvent) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO parked_events
             (projection, position, event_id, stream, version, event_name, error, parked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (projection, position) DO UPDATE
         SET error = excluded.error, parked_at = excluded.parked_at",
    )?
    .execute((
        &parked.projection,
        to_sql_int(parked.position.0),
        parked.event_id.as_bytes().as_slice(),
        parked.stream.as_str(),
        to_sql_int(parked.version),
        &parked.event_name,
        &parked.error,
        parked.parked_at.unix_micros(),
    ))?;
    Ok(())
}

/// Removes the record of the event at `position` that `projection` parked (every record of
/// the projection with `None`); whether there was one. [`SqliteSink`](crate::SqliteSink) runs
/// it in the transaction that applies the event again, or resets the projection.
pub(crate) fn unpark(
    conn: &Connection,
    projection: &str,
    position: Option<Position>,
) -> rusqlite::Result<bool> {
    let removed = match position {
        Some(position) => conn
            .prepare_cached("DELETE FROM parked_events WHERE projection = ?1 AND position = ?2")?
            .execute((projection, to_sql_int(position.0)))?,
        None => conn
            .prepare_cached("DELETE FROM parked_events WHERE projection = ?1")?
            .execute([projection])?,
    };
    Ok(removed > 0)
}

/// The events `projection` parked, in position order.
fn parked(conn: &Connection, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT position, event_id, stream, version, event_name, error, parked_at
             FROM parked_events WHERE projection = ?1 ORDER BY position",
        )
        .map_err(backend)?;
    let mut rows = statement.query([projection]).map_err(backend)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let id: Vec<u8> = row.get(1).map_err(backend)?;
        let event_id = Uuid::from_slice(&id).map_err(|e| {
            StoreError::Backend(
                format!("parked event of projection `{projection}` has a bad event id: {e}").into(),
            )
        })?;
        let (position, version): (i64, i64) =
            (row.get(0).map_err(backend)?, row.get(3).map_err(backend)?);
        all.push(ParkedEvent {
            projection: projection.to_owned(),
            position: Position(position.max(0) as u64),
            event_id,
            stream: StreamId::from(row.get::<_, String>(2).map_err(backend)?),
            version: version.max(0) as u64,
            event_name: row.get(4).map_err(backend)?,
            error: row.get(5).map_err(backend)?,
            parked_at: Timestamp(row.get(6).map_err(backend)?),
        });
    }
    Ok(all)
}

/// Checkpoints live in the store's file (`checkpoints` and `parked_events` tables), written
/// through the store's write connection. [`SqliteSink`](crate::SqliteSink) writes the same rows
/// in the transaction of each batch.
impl Checkpoints for SqliteStore {
    async fn load_checkpoint(&self, projection: &str) -> Result<Position, StoreError> {
        self.read(|conn| load(conn, projection).map_err(backend))
    }

    async fn save_checkpoint(
        &self,
        projection: &str,
        position: Position,
    ) -> Result<(), StoreError> {
        let writer = self.writer().await?;
        save(&writer.conn, projection, position).map_err(backend)
    }

    /// Records the event and moves the checkpoint to its position (never backwards, as
    /// `MemoryStore` does), in one transaction.
    async fn park_event(&self, parked: ParkedEvent) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        insert_parked(&tx, &parked).map_err(backend)?;
        let position = load(&tx, &parked.projection)
            .map_err(backend)?
            .max(parked.position);
        save(&tx, &parked.projection, position).map_err(backend)?;
        tx.commit().map_err(commit_failed)
    }

    async fn parked_events(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        self.read(|conn| parked(conn, projection))
    }

    async fn unpark_event(
        &self,
        projection: &str,
        position: Option<Position>,
    ) -> Result<bool, StoreError> {
        let writer = self.writer().await?;
        unpark(&writer.conn, projection, position).map_err(backend)
    }
}

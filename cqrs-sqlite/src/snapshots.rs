//! Aggregate snapshots in the store's file (`snapshots` table, one row per stream): the SQL of
//! [`SqliteStore`](crate::SqliteStore)'s `load_snapshot` and `save_snapshot`.

use eventweave_core::{Snapshot, StoreError, StreamId, Timestamp};
use rusqlite::{Connection, OptionalExtension};

use crate::error::backend;
use crate::read::to_sql_int;

/// The snapshot kept for `stream`, if any.
pub(crate) fn load(conn: &Connection, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
    conn.prepare_cached(
        "SELECT version, snapshot_version, payload, taken_at FROM snapshots WHERE stream = ?1",
    )
    .map_err(backend)?
    .query_row([stream.as_str()], |row| {
        let (version, snapshot_version): (i64, i64) = (row.get(0)?, row.get(1)?);
        Ok(Snapshot {
            version: version.max(0) as u64,
            snapshot_version: u32::try_from(snapshot_version).unwrap_or(u32::MAX),
            payload: row.get(2)?,
            taken_at: Timestamp(row.get(3)?),
        })
    })
    .optional()
    .map_err(backend)
}

/// Keeps `snapshot` for `stream` unless the row holds a newer one of the same state shape (the
/// rule of [`Snapshot::replaced_by`], in the statement so concurrent writers keep it too).
pub(crate) fn save(
    conn: &Connection,
    stream: &StreamId,
    snapshot: &Snapshot,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO snapshots (stream, version, snapshot_version, payload, taken_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (stream) DO UPDATE
         SET version = excluded.version, snapshot_version = excluded.snapshot_version,
             payload = excluded.payload, taken_at = excluded.taken_at
         WHERE excluded.version >= snapshots.version
            OR excluded.snapshot_version <> snapshots.snapshot_version",
    )?
    .execute((
        stream.as_str(),
        to_sql_int(snapshot.version),
        i64::from(snapshot.snapshot_version),
        &snapshot.payload,
        snapshot.taken_at.unix_micros(),
    ))?;
    Ok(())
}

//! Aggregate snapshots in the store's database (`snapshots` table, one row per stream): the
//! statements and [`PostgresStore`](crate::PostgresStore)'s `load_snapshot` and
//! `save_snapshot`.

use std::time::SystemTime;

use eventweave_core::{Snapshot, StoreError, StreamId, Timestamp};

use crate::config::Names;
use crate::error::{backend, write_failed};
use crate::store::Shared;

/// The statements on the snapshots table, rendered once per store.
#[derive(Debug)]
pub(crate) struct SnapshotSql {
    load: String,
    save: String,
}

impl SnapshotSql {
    pub fn new(n: &Names) -> SnapshotSql {
        let snapshots = &n.snapshots;
        SnapshotSql {
            load: format!(
                "SELECT version, snapshot_version, payload, taken_at FROM {snapshots}
                 WHERE stream = $1::text"
            ),
            // `Snapshot::replaced_by` in the statement, so concurrent writers keep it too: a
            // snapshot never moves back, unless it is of another state shape.
            save: format!(
                "INSERT INTO {snapshots} AS s (stream, version, snapshot_version, payload, taken_at)
                 VALUES ($1::text, $2::int8, $3::int8, $4::text, $5::timestamptz)
                 ON CONFLICT (stream) DO UPDATE
                 SET version = EXCLUDED.version, snapshot_version = EXCLUDED.snapshot_version,
                     payload = EXCLUDED.payload, taken_at = EXCLUDED.taken_at
                 WHERE EXCLUDED.version >= s.version
                    OR EXCLUDED.snapshot_version <> s.snapshot_version"
            ),
        }
    }
}

fn out_of_range(what: &str, value: i64) -> StoreError {
    StoreError::Backend(format!("stored snapshot {what} {value} is out of range").into())
}

impl Shared {
    pub async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let conn = self.pool.get().await?;
        let load = conn
            .cached(&self.snapshot_sql.load)
            .await
            .map_err(backend)?;
        let Some(row) = conn
            .client
            .query_opt(&load, &[&stream.as_str()])
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let version: i64 = row.try_get(0).map_err(backend)?;
        let snapshot_version: i64 = row.try_get(1).map_err(backend)?;
        let taken_at: SystemTime = row.try_get(3).map_err(backend)?;
        Ok(Some(Snapshot {
            version: u64::try_from(version).map_err(|_| out_of_range("version", version))?,
            snapshot_version: u32::try_from(snapshot_version)
                .map_err(|_| out_of_range("snapshot_version", snapshot_version))?,
            payload: row.try_get(2).map_err(backend)?,
            taken_at: Timestamp::from(taken_at),
        }))
    }

    pub async fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        let save = conn
            .cached(&self.snapshot_sql.save)
            .await
            .map_err(backend)?;
        let version = i64::try_from(snapshot.version).unwrap_or(i64::MAX);
        let snapshot_version = i64::from(snapshot.snapshot_version);
        let taken_at = SystemTime::from(snapshot.taken_at);
        conn.client
            .execute(
                &save,
                &[
                    &stream.as_str(),
                    &version,
                    &snapshot_version,
                    &snapshot.payload,
                    &taken_at,
                ],
            )
            .await
            .map_err(write_failed)?;
        Ok(())
    }
}

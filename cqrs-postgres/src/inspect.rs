//! [`InspectStore`] for [`PostgresStore`]: streams with their counts, grouped along the unique
//! `(stream, version)` index, one page per call.

use eventweave_core::{InspectStore, Position, StoreError, StreamId, StreamSummary};

use crate::error::backend;
use crate::store::PostgresStore;

impl InspectStore for PostgresStore {
    async fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        let sql = format!(
            "SELECT stream, MAX(version), MAX(position) FROM {} \
             WHERE $1::text IS NULL OR stream > $1 GROUP BY stream ORDER BY stream LIMIT $2",
            self.shared.names.events
        );
        let after = after.map(StreamId::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.shared.pool.get().await?;
        let statement = conn.cached(&sql).await.map_err(backend)?;
        conn.client
            .query(&statement, &[&after, &limit])
            .await
            .map_err(backend)?
            .iter()
            .map(|row| {
                let stream: String = row.try_get(0).map_err(backend)?;
                let version: i64 = row.try_get(1).map_err(backend)?;
                let position: i64 = row.try_get(2).map_err(backend)?;
                Ok(StreamSummary {
                    stream: StreamId::from(stream),
                    events: version.max(0) as u64,
                    last_position: Position(position.max(0) as u64),
                })
            })
            .collect()
    }
}

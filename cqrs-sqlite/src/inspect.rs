//! [`InspectStore`] for [`SqliteStore`]: streams with their counts, from the `(stream, version)`
//! index (which also holds each row's position, the rowid), one page per call.

use eventweave_core::{InspectStore, Position, StoreError, StreamId, StreamSummary};

use crate::error::backend;
use crate::read::to_sql_int;
use crate::store::SqliteStore;

const LIST: &str = "SELECT stream, MAX(version), MAX(position) FROM events \
                    WHERE ?1 IS NULL OR stream > ?1 GROUP BY stream ORDER BY stream LIMIT ?2";

impl InspectStore for SqliteStore {
    async fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        let after = after.map(StreamId::as_str);
        let limit = to_sql_int(u64::try_from(limit).unwrap_or(u64::MAX));
        self.read(|conn| {
            let mut statement = conn.prepare_cached(LIST).map_err(backend)?;
            let rows = statement
                .query_map(rusqlite::params![after, limit], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (stream, version, position) = row.map_err(backend)?;
                Ok(StreamSummary {
                    stream: StreamId::from(stream),
                    events: version.max(0) as u64,
                    last_position: Position(position.max(0) as u64),
                })
            })
            .collect()
        })
    }
}

//! Reads: one stream by version, all streams by position (stopping at holes that may still
//! fill, see `holes.rs`), the head, and waiting for new events.
//!
//! `wait_for_events` registers, then looks (`EXISTS position > after`), then waits: an append
//! committed after the look either wakes it locally or NOTIFYs the LISTEN that was in place before
//! the look (the first call waits for the LISTEN to be in place).
//!
//! `read_stream` fails as a whole on a bad row (a loader must not take a short batch for the
//! stream's end); `read_all` returns the events before it, then fails when it starts at it.
//!
//! `read_all` must run on the primary: the gap-free argument reasons about the primary's
//! transaction ids, so reads from replicas are not offered.

use std::pin::pin;
use std::time::Duration;

use eventweave_core::{Position, RecordedEvent, StoreError, StreamId};
use futures_util::TryStreamExt;
use tokio_postgres::types::ToSql;

use crate::decode;
use crate::error::backend;
use crate::holes::{Snapshot, xid_from_lock};
use crate::store::Shared;

/// The longest wait for events while the notification connection is not listening.
const UNLISTENED_POLL: Duration = Duration::from_millis(100);

/// Room reserved for the events of one `read_all` at most (a larger limit grows as rows come).
const READ_CAPACITY: usize = 8192;

/// What one read lets a reader take.
#[derive(Default)]
struct AdmittedRead {
    /// The events up to the first hole that may still fill and the first row that does not
    /// decode, in position order.
    events: Vec<RecordedEvent>,
    /// Why the row right after `events` does not decode, when that is where they end.
    bad: Option<StoreError>,
    /// The read stopped at a hole that an earlier read already saw.
    stopped_at_old_hole: bool,
}

/// A `LIMIT` parameter: PostgreSQL's `bigint` caps what `usize::MAX` ("everything") means.
fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Shared {
    /// Up to `limit` events of `stream` from `from_version` on. A row that does not decode
    /// fails the whole read (a loader must not mistake a shorter batch for the stream's end).
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let from = i64::try_from(from_version.max(1)).unwrap_or(i64::MAX);
        let conn = self.pool.get().await?;
        let rows = conn
            .client
            .query(
                &conn.st.read_stream,
                &[&stream.as_str(), &from, &limit_param(limit)],
            )
            .await
            .map_err(backend)?;
        drop(conn);
        let mut last = Some(stream.clone());
        // Every row of the statement has the same column types: checked once.
        let fast = rows.first().is_some_and(|row| decode::reads_fast(row, 0));
        let events = rows
            .iter()
            .map(|row| decode::event_read(row, 0, fast, &mut last))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(newest) = events.last() {
            self.versions.saw(stream, newest.meta.version);
        }
        Ok(events)
    }

    /// Up to `limit` events from position `from` on, in position order, never past a position
    /// that a running transaction may still fill. A row that does not decode ends the batch
    /// before it; a read that starts at it fails with `StoreError::Decode`, so readers get every
    /// event up to the bad one and then a typed error.
    ///
    /// A read stopped at a hole that an earlier read already saw looks at which appenders of
    /// this store are still running; when none can hold the hole, it reads once more, and that
    /// read steps over it (see `holes.rs`).
    pub async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let from = from.0.max(1);
        let mut looked = false;
        loop {
            let read = self.read_admitted(from, limit).await?;
            if read.stopped_at_old_hole && !looked && self.look_at_appenders().await? {
                looked = true;
                continue;
            }
            return match read.bad {
                // The first admitted row does not decode: the reader gets the error.
                Some(error) if read.events.is_empty() => Err(error),
                _ => Ok(read.events),
            };
        }
    }

    /// One read: the events a reader may take (in position order, up to the first row that
    /// does not decode, whose error comes along), and whether it stopped at a hole an earlier
    /// read already saw.
    ///
    /// Rows are decoded as they arrive (`query_raw`), so PostgreSQL finds and sends the later
    /// rows of the batch while this process decodes the earlier ones, and no batch of raw rows
    /// is held; which of them a reader may take is decided once the last is in.
    async fn read_admitted(&self, from: u64, limit: usize) -> Result<AdmittedRead, StoreError> {
        let conn = self.pool.get().await?;
        let read = self.holes.begin_read();
        let params: [&(dyn ToSql + Sync); 2] = [
            &i64::try_from(from).unwrap_or(i64::MAX),
            &limit_param(limit),
        ];
        let rows = conn
            .client
            .query_raw(&conn.st.read_all, params)
            .await
            .map_err(backend)?;
        let mut rows = pin!(rows);
        let mut snapshot = None;
        // Every row's position (the holes are decided on all of them), the events of the rows
        // that decode, and the bad row with the lowest position.
        let mut positions = Vec::with_capacity(limit.min(READ_CAPACITY));
        let mut events = Vec::with_capacity(limit.min(READ_CAPACITY));
        let mut bad: Option<(u64, StoreError)> = None;
        let mut last = None;
        // Whether the rows' event columns have the types read from their bytes (the same for
        // every row of the statement: checked on the first).
        let mut fast = false;
        while let Some(row) = rows.try_next().await.map_err(backend)? {
            if snapshot.is_none() {
                // The first row is the horizon: `xmin` and `next_xid` in the first and third
                // columns, no stream.
                if row
                    .try_get::<_, Option<&str>>(1)
                    .map_err(backend)?
                    .is_some()
                {
                    return Err(StoreError::Backend(
                        "read_all: the first row is not the snapshot row".into(),
                    ));
                }
                snapshot = Some(Snapshot {
                    xmin: row.try_get::<_, i64>(0).map_err(backend)? as u64,
                    next_xid: row.try_get::<_, i64>(2).map_err(backend)? as u64,
                });
                fast = decode::reads_fast(&row, 0);
                continue;
            }
            let Some(position) = decode::position(&row, 0)? else {
                continue;
            };
            positions.push(position);
            match decode::event_read(&row, 0, fast, &mut last) {
                Ok(event) => events.push(event),
                Err(error) => {
                    if bad.as_ref().is_none_or(|(at, _)| position < *at) {
                        bad = Some((position, error));
                    }
                }
            }
        }
        drop(conn);
        let Some(snapshot) = snapshot else {
            return Ok(AdmittedRead::default());
        };
        if !positions.is_sorted() {
            positions.sort_unstable();
            events.sort_unstable_by_key(|event| event.meta.position);
        }
        let admitted = self.holes.admit(read, from, &positions, snapshot);
        // The first position a reader may not take, if any; then the first bad row before it.
        let mut end = positions.get(admitted.admitted).copied();
        let bad = match bad {
            Some((at, error)) if end.is_none_or(|end| at < end) => {
                end = Some(at);
                Some(error)
            }
            _ => None,
        };
        if let Some(end) = end {
            events.truncate(events.partition_point(|event| event.meta.position.0 < end));
        }
        Ok(AdmittedRead {
            events,
            bad,
            stopped_at_old_hole: admitted.stopped_at_old_hole,
        })
    }

    /// Reads which appenders of this store are running now and records what that decides
    /// about the holes seen so far. Returns whether a hole was decided.
    pub(crate) async fn look_at_appenders(&self) -> Result<bool, StoreError> {
        let conn = self.pool.get().await?;
        let ticket = self.holes.ticket();
        let rows = conn
            .client
            .query(&conn.st.appenders, &[])
            .await
            .map_err(backend)?;
        drop(conn);
        let running = rows
            .iter()
            .map(|row| row.try_get::<_, i64>(0).map(xid_from_lock))
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(self.holes.appenders_running(ticket, &running))
    }

    /// The newest committed position (`Position::ZERO` when the store is empty). A reader
    /// reaches it once every hole below it is filled or known to be permanent.
    pub async fn head(&self) -> Result<Position, StoreError> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_one(&conn.st.head, &[])
            .await
            .map_err(backend)?;
        Ok(Position(row.try_get::<_, i64>(0).map_err(backend)? as u64))
    }

    /// Resolves once an event after `after` may be readable: at once if one is committed (and
    /// no pending hole blocks it), else at the next local commit or notification, else after the
    /// poll interval (a tenth of it while a pending hole blocks the reader).
    pub async fn wait_for_events(&self, after: Position) {
        // Registered before looking, so a commit after the look always wakes this waiter.
        let registration = self.notifier.register();
        let poll = self.config.poll_interval;
        let listening = self.notifier.listening(poll).await;
        let nap = if self.holes.pending_at(after.0 + 1) {
            // Rows lie beyond the hole; only its resolution (a commit, or time) helps.
            self.hole_retry()
        } else {
            match self.exists_after(after).await {
                Ok(true) => return,
                Ok(false) if listening => poll,
                // No LISTEN in place (yet): nothing from other processes would wake this waiter.
                Ok(false) => poll.min(UNLISTENED_POLL),
                // The caller's next read reports the failure.
                Err(_) => poll,
            }
        };
        registration.wait(nap).await;
    }

    async fn exists_after(&self, after: Position) -> Result<bool, StoreError> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_one(
                &conn.st.exists_after,
                &[&i64::try_from(after.0).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(backend)?;
        row.try_get(0).map_err(backend)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn limits_saturate_at_bigint() {
        assert_eq!(limit_param(10), 10);
        assert_eq!(limit_param(usize::MAX), i64::MAX);
    }

    /// The snapshot columns of `read_all` are computed once, by the scan of
    /// `pg_current_snapshot()`, not again for every event row by the join above it (which costs
    /// two `xid8` to text to `int8` conversions and an `age` per row). Checked on the generic
    /// plan a pooled connection runs, when `CQRS_POSTGRES_URL` names a database.
    #[tokio::test(flavor = "current_thread")]
    async fn snapshot_columns_are_computed_once_per_read() {
        assert_snapshot_columns_computed_once(
            "snapshot_columns_are_computed_once_per_read",
            |names| crate::statements::Sql::new(names).read_all,
            "int8, int8",
            "1, 10",
        )
        .await;
    }

    /// Prepares the statement `sql` builds (parameter types `types`) under a generic plan and
    /// checks that the scan of `pg_current_snapshot()` itself outputs the computed snapshot
    /// columns, so the planner did not pull them up into the join above (once per row). Skips
    /// when `CQRS_POSTGRES_URL` is not set.
    pub(crate) async fn assert_snapshot_columns_computed_once(
        test: &str,
        sql: impl FnOnce(&crate::config::Names) -> String,
        types: &str,
        args: &str,
    ) {
        let Some(url) = std::env::var("CQRS_POSTGRES_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
        else {
            eprintln!("SKIPPED: {test}: CQRS_POSTGRES_URL is not set");
            return;
        };
        let schema = format!("cqrs_test_read_plan_{}", eventweave_core::new_id().simple());
        let store = crate::PostgresStore::open(crate::PostgresConfig::new(url).schema(&schema))
            .await
            .unwrap();
        let conn = store.shared.pool.get().await.unwrap();
        // No parallel plans on pooled sessions: `read_all` relies on its `UNION ALL` returning
        // the snapshot row first, which a parallel append would not promise.
        let parallel: String = conn
            .client
            .query_one("SHOW max_parallel_workers_per_gather", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(parallel, "0");
        let plan = conn
            .client
            .simple_query(&format!(
                "SET plan_cache_mode = force_generic_plan;
                 PREPARE read_plan({types}) AS {};
                 EXPLAIN (VERBOSE, COSTS OFF) EXECUTE read_plan({args});",
                sql(&store.shared.names)
            ))
            .await
            .unwrap();
        let lines: Vec<String> = plan
            .iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .collect();
        conn.client
            .batch_execute(&format!(
                "DEALLOCATE read_plan; RESET plan_cache_mode; DROP SCHEMA \"{schema}\" CASCADE"
            ))
            .await
            .unwrap();
        // The scan of `pg_current_snapshot()` outputs the computed columns.
        let scan = lines
            .iter()
            .position(|line| line.contains("Function Scan") && line.contains("pg_current_snapshot"))
            .unwrap_or_else(|| panic!("no scan of the snapshot in {lines:#?}"));
        let output = &lines[scan + 1];
        assert!(
            output.contains("Output:") && output.contains("pg_snapshot_xmin("),
            "the snapshot columns are computed above their scan, once per row: {lines:#?}"
        );
    }
}

//! A test hook: an append whose transaction stays open until the caller commits or rolls it
//! back. It runs the store's own append statement, so tests can hold positions drawn and
//! uncommitted (or roll them back) while readers run: the out-of-order commits that gap-free
//! reading must survive. Not part of the public API.

use eventweave_core::{ExpectedVersion, NewEvent, RecordedEvent, StoreError, StreamId};

use crate::append::{insert, recorded, stream_version, validate};
use crate::error::backend;
use crate::notify::Notifier;
use crate::pool::Pooled;
use crate::store::PostgresStore;

/// An append inside an open transaction (see [`PostgresStore::__begin_append`]). Dropping it
/// without [`commit`](HeldAppend::commit) closes its connection, which rolls it back.
#[doc(hidden)]
pub struct HeldAppend {
    conn: Pooled,
    recorded: Vec<RecordedEvent>,
    notifier: Notifier,
}

impl PostgresStore {
    /// Runs the append statement inside `BEGIN` and returns without committing: positions are
    /// drawn, nothing is visible to readers yet. For tests of reading under concurrent,
    /// out-of-order commits.
    #[doc(hidden)]
    pub async fn __begin_append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<HeldAppend, StoreError> {
        let shared = &self.shared;
        let encoded = validate(stream, &events, shared.config.max_event_bytes)?;
        let mut conn = shared.pool.get().await?;
        conn.discard_on_drop();
        conn.client.batch_execute("BEGIN").await.map_err(backend)?;
        let known = shared.version_known(stream, expected);
        let rows = insert(&conn, stream, expected, known, &events, &encoded)
            .await
            .map_err(backend)?;
        if rows.is_empty() {
            conn.client
                .batch_execute("ROLLBACK")
                .await
                .map_err(backend)?;
            conn.reuse_on_drop();
            let actual = stream_version(&conn, stream).await?;
            return Err(StoreError::Conflict {
                stream: stream.clone(),
                expected,
                actual,
            });
        }
        Ok(HeldAppend {
            recorded: recorded(stream, events, &rows)?,
            conn,
            notifier: shared.notifier.clone(),
        })
    }
}

impl HeldAppend {
    /// An append held open on `conn` (inside its transaction, discarded on drop).
    pub(crate) fn new(conn: Pooled, recorded: Vec<RecordedEvent>, notifier: Notifier) -> Self {
        HeldAppend {
            conn,
            recorded,
            notifier,
        }
    }

    /// The events as they will be recorded if the transaction commits.
    pub fn recorded(&self) -> &[RecordedEvent] {
        &self.recorded
    }

    /// Commits; the events become visible.
    pub async fn commit(mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.conn
            .client
            .batch_execute("COMMIT")
            .await
            .map_err(backend)?;
        self.conn.reuse_on_drop();
        self.notifier.committed();
        Ok(std::mem::take(&mut self.recorded))
    }

    /// Rolls back; the drawn positions stay empty forever.
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        self.conn
            .client
            .batch_execute("ROLLBACK")
            .await
            .map_err(backend)?;
        self.conn.reuse_on_drop();
        Ok(())
    }
}

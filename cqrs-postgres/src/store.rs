//! [`PostgresStore`]: opening (connect, migrate, pool) and the [`EventStore`] implementation,
//! which delegates to `append.rs` and `read.rs`.

use std::sync::Arc;
use std::time::Duration;

use eventweave_core::{
    AppendCondition, EventQuery, EventStore, ExpectedVersion, NewEvent, Position, QueryRead,
    RecordedEvent, Snapshot, StoreError, StreamId, StreamWrite, Uuid, check_snapshot,
    check_stream_id,
};

use crate::checkpoint::CheckpointSql;
use crate::config::{Names, PostgresConfig};
use crate::connect::{ConnectError, Connector};
use crate::dcb::DcbState;
use crate::error::OpenError;
use crate::group::Appends;
use crate::holes::Holes;
use crate::notify::Notifier;
use crate::pool::Pool;
use crate::schema;
use crate::snapshot::SnapshotSql;
use crate::statements::Sql;
use crate::versions::KnownVersions;

/// An event store in a PostgreSQL database, shared by any number of processes.
///
/// Cheap to clone: clones share the connection pool, the notification connection and the
/// reader's bookkeeping of holes. See the [crate documentation](crate) for an example, the
/// configuration and how reads stay gap-free.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub config: PostgresConfig,
    pub names: Names,
    pub pool: Pool,
    /// The pool of [`PgSink`](crate::PgSink) batches and checkpoints, apart from `pool` so
    /// projections cannot starve commands.
    pub sink_pool: Pool,
    pub connector: Connector,
    pub holes: Holes,
    pub versions: KnownVersions,
    /// The statement slots and the queue of group commit.
    pub appends: Appends,
    pub notifier: Notifier,
    pub checkpoint_sql: CheckpointSql,
    pub snapshot_sql: SnapshotSql,
    /// Reading by query and conditional appends (`dcb/`).
    pub dcb: DcbState,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.notifier.stop();
    }
}

impl PostgresStore {
    /// Connects to the database, creates or upgrades the store's schema (safe when several
    /// processes start at once) and returns a store with a pool of connections.
    pub async fn open(config: PostgresConfig) -> Result<PostgresStore, OpenError> {
        let names = config.names()?;
        let connector = Connector::new(&config)?;
        let mut client = connector
            .connect("")
            .await
            .map_err(ConnectError::into_open_error)?;
        schema::migrate(&mut client, &names, config.statement_timeout.is_some()).await?;
        drop(client);
        let sql = Arc::new(Sql::new(&names));
        let pool = Pool::new(
            "commands",
            connector.clone(),
            Arc::clone(&sql),
            config.pool_size,
            &config,
        );
        let sink_pool = Pool::new(
            "projections",
            connector.clone(),
            sql,
            config.sink_pool_size,
            &config,
        );
        let notifier = Notifier::new(
            connector.clone(),
            config.notify_interval,
            names.channel.clone(),
            names.channel_ident(),
        );
        Ok(PostgresStore {
            shared: Arc::new(Shared {
                checkpoint_sql: CheckpointSql::new(&names),
                snapshot_sql: SnapshotSql::new(&names),
                dcb: DcbState::new(&names),
                config,
                names,
                pool,
                sink_pool,
                connector,
                holes: Holes::default(),
                versions: KnownVersions::default(),
                appends: Appends::default(),
                notifier,
            }),
        })
    }

    /// [`PostgresStore::open`] with the default configuration for the database at `url`.
    pub async fn connect(url: &str) -> Result<PostgresStore, OpenError> {
        PostgresStore::open(PostgresConfig::new(url)).await
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &PostgresConfig {
        &self.shared.config
    }

    /// The newest schema migration this version of the crate applies.
    pub fn schema_version() -> i32 {
        schema::latest_version()
    }
}

impl Shared {
    /// How long a reader stopped at a pending hole waits before it re-reads: holes left by
    /// rolled-back transactions announce nothing.
    pub fn hole_retry(&self) -> Duration {
        (self.config.poll_interval / 10).clamp(Duration::from_millis(1), Duration::from_millis(50))
    }
}

impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Tagged events go the same way (alone or grouped); what they write beyond the untagged
        // (the `tags` column, `event_tags`, the tags' dcb locks) is chosen in `append.rs`.
        self.shared.append(stream, expected, events).await
    }

    async fn read_query(
        &self,
        query: &EventQuery,
        from: Position,
        limit: usize,
    ) -> Result<QueryRead, StoreError> {
        self.shared.read_query(query, from, limit).await
    }

    async fn append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.shared.append_conditional(writes, condition).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream_id(stream)?;
        self.shared.read_stream(stream, from_version, limit).await
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.shared.read_all(from, limit).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.shared.head().await
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.shared.read_event(event_id).await
    }

    async fn wait_for_events(&self, after: Position) {
        self.shared.wait_for_events(after).await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        check_stream_id(stream)?;
        self.shared.load_snapshot(stream).await
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError> {
        check_snapshot(stream, &snapshot)?;
        self.shared.save_snapshot(stream, &snapshot).await
    }
}

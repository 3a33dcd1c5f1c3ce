//! What a [`PostgresStore`](crate::PostgresStore) connects to and how it names its tables:
//! [`PostgresConfig`], and the quoted SQL names derived from it ([`Names`]).
//!
//! The connection string is parsed once; each setting has a getter, and `Debug` is built from the
//! parsed settings, never showing the password. `Names` quotes every SQL name once (schema, tables,
//! sequence) and derives the constraint names, the NOTIFY channel and the migration lock key from
//! stable FNV-1a hashes of the schema and table names.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eventweave_core::DEFAULT_MAX_EVENT_BYTES;
use tokio_postgres::config::Host;

use crate::conninfo::{ConfigError, ConnInfo, SslMode};
use crate::error::OpenError;

/// PostgreSQL truncates identifiers longer than this many bytes; longer names are refused so
/// two configured names can never collide after truncation.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// How a [`PostgresStore`](crate::PostgresStore) connects and where it keeps its tables.
///
/// The connection string is parsed once, when the configuration is made:
/// [`PostgresConfig::parse`] reports a malformed one at once, [`PostgresConfig::new`] when the
/// store is opened. `Debug` shows the hosts, ports, user, database, TLS mode and application
/// name, never the password.
///
/// ```
/// use std::time::Duration;
/// use eventweave_postgres::{PostgresConfig, SslMode};
///
/// let config = PostgresConfig::parse("postgres://app:s3cret@db.internal:5432/bank?sslmode=verify-full")?
///     .schema("bank_events")
///     .events_table("events")
///     .pool_size(16)
///     .max_event_bytes(1024 * 1024)
///     .poll_interval(Duration::from_millis(250))
///     .acquire_timeout(Duration::from_secs(5));
/// assert_eq!(config.schema_name(), "bank_events");
/// assert_eq!(config.get_ssl_mode(), SslMode::VerifyFull);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), eventweave_postgres::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    conn: Result<ConnInfo, ConfigError>,
    ssl_mode: SslMode,
    ssl_root_cert: Option<PathBuf>,
    pub(crate) schema: String,
    pub(crate) events_table: String,
    pub(crate) migrations_table: String,
    pub(crate) pool_size: usize,
    pub(crate) sink_pool_size: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) notify_interval: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_in_transaction_timeout: Duration,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) keepalives: TcpKeepalives,
    pub(crate) group_commit: bool,
    pub(crate) append_statements: Option<usize>,
}

/// TCP keepalive settings of the store's connections, applied on both ends: the client probes
/// the server, and the server (`tcp_keepalives_*`) probes the client, so either side drops a
/// connection whose peer vanished after about `idle + interval * retries`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpKeepalives {
    /// Idle time before the first probe (default 10 s).
    pub idle: Duration,
    /// Time between unanswered probes (default 5 s).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (default 3).
    pub retries: u32,
}

impl Default for TcpKeepalives {
    fn default() -> Self {
        TcpKeepalives {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(5),
            retries: 3,
        }
    }
}

impl TcpKeepalives {
    /// The longest time a vanished peer goes unnoticed: `idle + interval * retries`.
    pub fn bound(&self) -> Duration {
        self.idle + self.interval * self.retries
    }
}

impl PostgresConfig {
    /// A configuration for the database at `url` (`postgres://user:password@host:port/database`,
    /// or the `key=value` form libpq accepts), with the defaults: schema `cqrs`, tables `events`
    /// and `schema_migrations`, 8 pooled connections (4 more for projections), events up to
    /// [`DEFAULT_MAX_EVENT_BYTES`], a 500 ms poll interval, a 5 ms notify interval, TLS when
    /// offered (`sslmode=prefer`), a 10 s connect timeout, a 30 s acquire timeout, a 10 s
    /// `idle_in_transaction_session_timeout`, keepalives after 10 s.
    ///
    /// A malformed `url` is reported by [`PostgresStore::open`](crate::PostgresStore::open) as
    /// [`OpenError::ConnectionString`]; use [`PostgresConfig::parse`] to find out at once.
    pub fn new(url: impl AsRef<str>) -> Self {
        let conn = ConnInfo::parse(url.as_ref());
        let (ssl_mode, ssl_root_cert, connect_timeout) = match &conn {
            Ok(info) => (
                info.ssl_mode.unwrap_or_default(),
                info.ssl_root_cert.clone(),
                info.driver.get_connect_timeout().copied(),
            ),
            Err(_) => (SslMode::default(), None, None),
        };
        PostgresConfig {
            conn,
            ssl_mode,
            ssl_root_cert,
            schema: "cqrs".to_owned(),
            events_table: "events".to_owned(),
            migrations_table: "schema_migrations".to_owned(),
            pool_size: 8,
            sink_pool_size: 4,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            poll_interval: Duration::from_millis(500),
            notify_interval: Duration::from_millis(5),
            connect_timeout: connect_timeout.unwrap_or(Duration::from_secs(10)),
            acquire_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(10),
            statement_timeout: None,
            keepalives: TcpKeepalives::default(),
            group_commit: true,
            append_statements: None,
        }
    }

    /// [`PostgresConfig::new`], failing at once on a malformed connection string (an unknown
    /// key, a bad port, an unsupported `sslmode`). The error never contains the password.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let config = PostgresConfig::new(url);
        match &config.conn {
            Ok(_) => Ok(config),
            Err(e) => Err(e.clone()),
        }
    }

    /// The schema that holds the store's tables (created if missing). Any name PostgreSQL
    /// accepts as a quoted identifier (1 to 63 bytes, no NUL); it is always quoted, so it is
    /// case-sensitive.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// The table of events (default `events`), quoted like [`PostgresConfig::schema`].
    pub fn events_table(mut self, name: impl Into<String>) -> Self {
        self.events_table = name.into();
        self
    }

    /// The table that records applied schema migrations (default `schema_migrations`).
    pub fn migrations_table(mut self, name: impl Into<String>) -> Self {
        self.migrations_table = name.into();
        self
    }

    /// How many connections the pool of appends and reads opens at most (default 8; at least
    /// 1). Each connection serves one operation at a time; a store also keeps one more
    /// connection for LISTEN/NOTIFY once it appends or waits, and projections have a pool of
    /// their own ([`sink_pool_size`](PostgresConfig::sink_pool_size)).
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// How many connections the pool of [`PgSink`](crate::PgSink) batches and checkpoints
    /// opens at most (default 4; at least 1). A separate pool, so busy projections can never
    /// take the connections commands need.
    pub fn sink_pool_size(mut self, connections: usize) -> Self {
        self.sink_pool_size = connections.max(1);
        self
    }

    /// Whether appends that arrive while [`append_statements`](PostgresConfig::append_statements)
    /// appends are in flight wait and are written together, in one statement and one commit
    /// (default `true`). Each keeps its own expected-version check and its own outcome; an append
    /// that finds a statement slot free is never delayed. `false`: every append runs at once in
    /// its own statement, as many at a time as the pool has connections.
    pub fn group_commit(mut self, enabled: bool) -> Self {
        self.group_commit = enabled;
        self
    }

    /// With [`group_commit`](PostgresConfig::group_commit), how many append statements (a lone
    /// append or a group) this store runs at a time (default 2; at least 1, at most the
    /// [`pool_size`](PostgresConfig::pool_size)). While they all run, further appends wait and
    /// go together in the next free statement. Fewer makes larger groups sooner: concurrent
    /// append statements meet on the same index pages, sequence and lock keys, so on a small
    /// server two statements with large groups write several times more commands per second
    /// than eight with small ones (BENCHMARKS.md, "How many append statements"). More keeps
    /// appends moving while one statement waits on a lock held by another process.
    pub fn append_statements(mut self, statements: usize) -> Self {
        self.append_statements = Some(statements.max(1));
        self
    }

    /// The largest event (payload plus metadata, in bytes) an append accepts (default
    /// [`DEFAULT_MAX_EVENT_BYTES`]). Larger events are refused before anything is written.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// How long [`wait_for_events`](eventweave_core::EventStore::wait_for_events) waits for a
    /// notification before it lets the caller re-read anyway (default 500 ms): the safety net
    /// for a lost notification (a dropped listening connection, a writer killed between its
    /// commit and its NOTIFY). While a reader waits on a position held by an unfinished or
    /// rolled-back transaction, it re-reads ten times as often.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The shortest time between two NOTIFYs this store sends to wake readers in other
    /// processes (default 5 ms). Commits are announced after they commit, one NOTIFY for all
    /// the commits of an interval, because a NOTIFY inside each append transaction would
    /// serialise the commits of all writers. Readers in this process are woken at once, without
    /// a NOTIFY; readers elsewhere hear of a commit at most this much (plus a round trip) later.
    pub fn notify_interval(mut self, interval: Duration) -> Self {
        self.notify_interval = interval;
        self
    }

    /// How TLS is negotiated (default: the connection string's `sslmode`, else
    /// [`SslMode::Prefer`], as libpq).
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = mode;
        self
    }

    /// A PEM file of the root certificates that server certificates must chain to (the
    /// connection string's `sslrootcert`). Without it, `verify-ca` and `verify-full` trust the
    /// Mozilla root set (`webpki-roots`); with it, `require` checks the chain too, as libpq.
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// The longest time opening one connection may take: TCP connect, TLS handshake,
    /// authentication and the session settings (default: the connection string's
    /// `connect_timeout`, else 10 s). Past it the operation that needed the connection fails
    /// with [`StoreError::Unavailable`](eventweave_core::StoreError::Unavailable).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest time an operation waits for a pooled connection when all are busy (default
    /// 30 s), after which it fails with
    /// [`StoreError::Unavailable`](eventweave_core::StoreError::Unavailable) naming the pool.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// PostgreSQL's `idle_in_transaction_session_timeout` on every session of the store
    /// (default 10 s; zero turns it off): the server ends a session that stays idle inside a
    /// transaction this long, which rolls back a writer stuck or frozen inside its append
    /// transaction and releases the positions readers wait for. Projection batches set their
    /// own, longer bound (60 s) for handlers that take time.
    pub fn idle_in_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.idle_in_transaction_timeout = timeout;
        self
    }

    /// PostgreSQL's `statement_timeout` on every session of the store (default: not set, so the
    /// server's or the role's setting applies): the server cancels a statement that runs this
    /// long, and the operation fails with
    /// [`StoreError::Unavailable`](eventweave_core::StoreError::Unavailable) (SQLSTATE 57014):
    /// the statement's transaction rolled back, nothing was written, and the same request may
    /// be retried. This bounds how long an append, a read or a projection's statement can stall
    /// behind a lock that another session holds (a migration, a `LOCK TABLE`, a stuck
    /// conditional append); a group of appends cancelled together gets the same answer for each
    /// append, without splitting. Choose it above the slowest statement the application runs,
    /// including a projection handler's own SQL. Schema migrations at
    /// [`open`](crate::PostgresStore::open) run without it (they wait for each other on purpose).
    /// `Duration::ZERO` leaves it not set (PostgreSQL would read 0 as "no limit").
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// TCP keepalives of every connection of the store (default: first probe after 10 s idle,
    /// then every 5 s, dropped after 3 unanswered: 25 s). The server drops the session of a
    /// host that vanished within [`TcpKeepalives::bound`], rolling back its transaction.
    pub fn tcp_keepalives(mut self, keepalives: TcpKeepalives) -> Self {
        self.keepalives = keepalives;
        self
    }

    /// The configured schema name (unquoted).
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// The configured events table name (unquoted).
    pub fn events_table_name(&self) -> &str {
        &self.events_table
    }

    /// The configured migrations table name (unquoted).
    pub fn migrations_table_name(&self) -> &str {
        &self.migrations_table
    }

    /// The most connections the pool of appends and reads opens.
    pub fn get_pool_size(&self) -> usize {
        self.pool_size
    }

    /// See [`PostgresConfig::group_commit`].
    pub fn get_group_commit(&self) -> bool {
        self.group_commit
    }

    /// See [`PostgresConfig::append_statements`] (bounded by the pool size).
    pub fn get_append_statements(&self) -> usize {
        self.append_statements
            .unwrap_or(DEFAULT_APPEND_STATEMENTS)
            .min(self.pool_size)
    }

    /// The most connections the pool of projection batches opens.
    pub fn get_sink_pool_size(&self) -> usize {
        self.sink_pool_size
    }

    /// The largest event an append accepts, in bytes.
    pub fn get_max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// See [`PostgresConfig::poll_interval`].
    pub fn get_poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// See [`PostgresConfig::notify_interval`].
    pub fn get_notify_interval(&self) -> Duration {
        self.notify_interval
    }

    /// How TLS is negotiated.
    pub fn get_ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The configured root certificate file, if any.
    pub fn get_ssl_root_cert(&self) -> Option<&Path> {
        self.ssl_root_cert.as_deref()
    }

    /// See [`PostgresConfig::connect_timeout`].
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// See [`PostgresConfig::acquire_timeout`].
    pub fn get_acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// See [`PostgresConfig::idle_in_transaction_timeout`].
    pub fn get_idle_in_transaction_timeout(&self) -> Duration {
        self.idle_in_transaction_timeout
    }

    /// See [`PostgresConfig::statement_timeout`] (`None`: not set by the store).
    pub fn get_statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// See [`PostgresConfig::tcp_keepalives`].
    pub fn get_tcp_keepalives(&self) -> TcpKeepalives {
        self.keepalives
    }

    /// The hosts of the connection string (names, addresses or socket directories).
    pub fn get_hosts(&self) -> Vec<String> {
        let Ok(info) = &self.conn else {
            return Vec::new();
        };
        info.driver
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect()
    }

    /// The ports of the connection string.
    pub fn get_ports(&self) -> &[u16] {
        self.driver().map_or(&[], |d| d.get_ports())
    }

    /// The user of the connection string.
    pub fn get_user(&self) -> Option<&str> {
        self.driver().and_then(|d| d.get_user())
    }

    /// The database of the connection string.
    pub fn get_dbname(&self) -> Option<&str> {
        self.driver().and_then(|d| d.get_dbname())
    }

    /// The sessions' `application_name` (`eventweave-postgres` unless the connection string sets
    /// one).
    pub fn get_application_name(&self) -> &str {
        self.driver()
            .and_then(|d| d.get_application_name())
            .unwrap_or(DEFAULT_APPLICATION_NAME)
    }

    /// Opens one session configured as the store's connections are: the same TLS decision and
    /// certificate checks (`sslmode`, `sslrootcert`), connect timeout, keepalives and session
    /// settings (the idle-in-transaction timeout). For the application's own SQL beside the
    /// store, and for comparing raw SQL with the store on equal terms (the benchmarks' raw
    /// baselines connect this way). The connection is driven on a spawned tokio task, which
    /// ends when the client is dropped or the connection fails.
    ///
    /// # Errors
    /// [`OpenError::ConnectionString`] for a string that did not parse, [`OpenError::Tls`] when
    /// TLS is required and fails, [`OpenError::Connect`] when the server cannot be reached or
    /// refuses the session within the connect timeout.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, OpenError> {
        let connector = crate::connect::Connector::new(self)?;
        connector
            .connect("")
            .await
            .map_err(crate::connect::ConnectError::into_open_error)
    }

    fn driver(&self) -> Option<&tokio_postgres::Config> {
        self.conn.as_ref().ok().map(|info| &info.driver)
    }

    /// The driver's configuration with every setting of this one applied, or the parse error.
    pub(crate) fn driver_config(&self) -> Result<tokio_postgres::Config, ConfigError> {
        let mut pg = self.conn.as_ref().map_err(Clone::clone)?.driver.clone();
        if pg.get_application_name().is_none() {
            pg.application_name(DEFAULT_APPLICATION_NAME);
        }
        pg.ssl_mode(self.ssl_mode.driver());
        pg.connect_timeout(self.connect_timeout);
        pg.keepalives(true);
        pg.keepalives_idle(self.keepalives.idle);
        pg.keepalives_interval(self.keepalives.interval);
        pg.keepalives_retries(self.keepalives.retries);
        Ok(pg)
    }

    /// The statements that set up every session of the store (one round trip).
    pub(crate) fn session_sql(&self) -> String {
        let k = &self.keepalives;
        let mut sql = format!(
            "SET idle_in_transaction_session_timeout = {}; SET tcp_keepalives_idle = {}; \
             SET tcp_keepalives_interval = {}; SET tcp_keepalives_count = {}",
            self.idle_in_transaction_timeout.as_millis(),
            k.idle.as_secs().max(1),
            k.interval.as_secs().max(1),
            k.retries,
        );
        if let Some(timeout) = self.statement_timeout {
            // At least 1 ms: PostgreSQL reads 0 as "no limit".
            sql.push_str(&format!(
                "; SET statement_timeout = {}",
                timeout.as_millis().max(1)
            ));
        }
        sql
    }

    pub(crate) fn names(&self) -> Result<Names, OpenError> {
        Names::new(&self.schema, &self.events_table, &self.migrations_table)
    }
}

/// `application_name` of the store's sessions unless the connection string sets one.
const DEFAULT_APPLICATION_NAME: &str = "eventweave-postgres";

/// How many append statements a store with group commit runs at a time unless told otherwise:
/// two, so that one statement's commit overlaps the next one's work and one statement waiting
/// on a lock does not stop every append, while groups stay large (one statement per slot).
const DEFAULT_APPEND_STATEMENTS: usize = 2;

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Built from the parsed settings, never from the text: the password cannot appear.
        let mut out = f.debug_struct("PostgresConfig");
        match &self.conn {
            Ok(_) => out
                .field("hosts", &self.get_hosts())
                .field("ports", &self.get_ports())
                .field("user", &self.get_user())
                .field("dbname", &self.get_dbname())
                .field("application_name", &self.get_application_name()),
            Err(e) => out.field("connection_string", &e.message()),
        };
        out.field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("schema", &self.schema)
            .field("events_table", &self.events_table)
            .field("migrations_table", &self.migrations_table)
            .field("pool_size", &self.pool_size)
            .field("sink_pool_size", &self.sink_pool_size)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("poll_interval", &self.poll_interval)
            .field("notify_interval", &self.notify_interval)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .field("statement_timeout", &self.statement_timeout)
            .field("keepalives", &self.keepalives)
            .field("group_commit", &self.group_commit)
            .field("append_statements", &self.append_statements)
            .finish()
    }
}

/// The SQL names a store uses, quoted once here so no statement ever splices a raw name.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    /// `"schema"`.
    pub schema: String,
    /// `"schema"."events"`.
    pub events: String,
    /// `"schema"."schema_migrations"`.
    pub migrations: String,
    /// `"schema"."cqrs_…_position"`: the sequence positions are drawn from.
    pub position_sequence: String,
    /// Unquoted name of the events table's unique (stream, version) constraint: a conflict on
    /// it is a version conflict.
    pub stream_version_key: String,
    /// Unquoted name of the unique event-id constraint: a conflict on it is a retry or a reuse.
    pub event_id_key: String,
    /// The LISTEN/NOTIFY channel (unquoted; fits in an identifier).
    pub channel: String,
    /// The key of the advisory lock that serialises migrations of this schema.
    pub migration_lock: i64,
    /// `"schema"."checkpoints"` (or `"schema"."<events>_checkpoints"`): one row per durable
    /// projection, the position of the last event whose effects are committed.
    pub checkpoints: String,
    /// `"schema"."parked_events"` (or `"schema"."<events>_parked_events"`): events projections
    /// gave up on.
    pub parked: String,
    /// `"schema"."snapshots"` (or `"schema"."<events>_snapshots"`): the latest snapshot of each
    /// aggregate stream that has one.
    pub snapshots: String,
    /// `"schema"."event_tags"` (or `"schema"."<events>_event_tags"`): one row per tag of each
    /// tagged event, the index of reading by query (`dcb/`).
    pub event_tags: String,
    /// `"schema"."cqrs_…_dcb_append"`: the function that runs an atomic append to several
    /// streams, with its condition, as one statement (`dcb/statements.rs`, migrations 6 and 7).
    pub dcb_append: String,
    /// `"schema"."cqrs_…_dcb_conflict"`: the function that finds the first event matching a
    /// condition's items after a position, in a snapshot of its own (`dcb/statements.rs`,
    /// migration 8).
    pub dcb_conflict: String,
    /// The unquoted schema and events table names, from which lease keys are derived.
    lease_seed: (String, String),
}

impl Names {
    fn new(schema: &str, events: &str, migrations: &str) -> Result<Names, OpenError> {
        for (what, name) in [
            ("schema", schema),
            ("events table", events),
            ("migrations table", migrations),
        ] {
            check_identifier(what, name)?;
        }
        if events == migrations {
            return Err(OpenError::Config(format!(
                "the events table and the migrations table are both named `{events}`"
            )));
        }
        // Constraint names are identifiers too: derive short, stable ones.
        let tag = fnv1a(&[schema, events]);
        let checkpoints = side_table(events, "checkpoints", tag);
        let parked = side_table(events, "parked_events", tag);
        let snapshots = side_table(events, "snapshots", tag);
        let event_tags = side_table(events, "event_tags", tag);
        for side in [&checkpoints, &parked, &snapshots, &event_tags] {
            if side == migrations {
                return Err(OpenError::Config(format!(
                    "the migrations table is named `{migrations}`, which the store needs for its checkpoints, snapshots or tags"
                )));
            }
        }
        Ok(Names {
            schema: quote(schema),
            events: format!("{}.{}", quote(schema), quote(events)),
            migrations: format!("{}.{}", quote(schema), quote(migrations)),
            position_sequence: format!(
                "{}.{}",
                quote(schema),
                quote(&format!("cqrs_{tag:016x}_position"))
            ),
            stream_version_key: format!("cqrs_{tag:016x}_stream_version"),
            event_id_key: format!("cqrs_{tag:016x}_event_id"),
            channel: format!("cqrs_{tag:016x}"),
            migration_lock: fnv1a(&["eventweave-postgres migrations", schema]) as i64,
            checkpoints: format!("{}.{}", quote(schema), quote(&checkpoints)),
            parked: format!("{}.{}", quote(schema), quote(&parked)),
            snapshots: format!("{}.{}", quote(schema), quote(&snapshots)),
            event_tags: format!("{}.{}", quote(schema), quote(&event_tags)),
            dcb_append: format!(
                "{}.{}",
                quote(schema),
                quote(&format!("cqrs_{tag:016x}_dcb_append"))
            ),
            dcb_conflict: format!(
                "{}.{}",
                quote(schema),
                quote(&format!("cqrs_{tag:016x}_dcb_conflict"))
            ),
            lease_seed: (schema.to_owned(), events.to_owned()),
        })
    }

    /// The advisory-lock key of the lease of `projection`: derived from the schema, the events
    /// table and the projection name, stable across processes and builds.
    pub fn lease_key(&self, projection: &str) -> i64 {
        let (schema, events) = &self.lease_seed;
        fnv1a(&["eventweave-postgres lease", schema, events, projection]) as i64
    }

    /// The channel as a quoted identifier, for `LISTEN`.
    pub fn channel_ident(&self) -> String {
        quote(&self.channel)
    }
}

/// The unquoted name of a table that belongs beside the events table: `checkpoints` beside the
/// default `events`, `<events>_checkpoints` beside any other (so stores with different events
/// tables can share a schema), and a hashed name when that would not fit in an identifier.
fn side_table(events: &str, suffix: &str, tag: u64) -> String {
    let name = if events == "events" {
        suffix.to_owned()
    } else {
        format!("{events}_{suffix}")
    };
    if name.len() <= MAX_IDENTIFIER_BYTES {
        name
    } else {
        format!("cqrs_{tag:016x}_{suffix}")
    }
}

fn check_identifier(what: &str, name: &str) -> Result<(), OpenError> {
    if name.is_empty() {
        return Err(OpenError::Config(format!("the {what} name is empty")));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(OpenError::Config(format!(
            "the {what} name `{name}` is {} bytes long; PostgreSQL allows {MAX_IDENTIFIER_BYTES}",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(OpenError::Config(format!(
            "the {what} name contains a NUL character"
        )));
    }
    Ok(())
}

/// `name` as a quoted SQL identifier: wrapped in double quotes, inner double quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A stable 64-bit FNV-1a hash of some strings (each followed by a 0 byte): the same in every
/// process and every build, unlike `std`'s randomly keyed hashers.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.as_bytes().iter().chain(&[0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote("events"), "\"events\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
        let names = Names::new("my \"schema\"", "ev", "mig").unwrap();
        assert_eq!(names.events, "\"my \"\"schema\"\"\".\"ev\"");
        assert_eq!(names.schema, "\"my \"\"schema\"\"\"");
    }

    #[test]
    fn bad_identifiers_are_refused() {
        for (schema, events) in [("", "e"), ("s", ""), ("s\0", "e"), ("s", "e\0")] {
            assert!(matches!(
                Names::new(schema, events, "m"),
                Err(OpenError::Config(_))
            ));
        }
        let long = "x".repeat(64);
        assert!(Names::new(&long, "e", "m").is_err());
        assert!(Names::new(&"x".repeat(63), "e", "m").is_ok());
        assert!(Names::new("s", "same", "same").is_err());
    }

    #[test]
    fn derived_names_are_stable_and_distinct_per_schema() {
        let a = Names::new("a", "events", "m").unwrap();
        let again = Names::new("a", "events", "m").unwrap();
        let b = Names::new("b", "events", "m").unwrap();
        assert_eq!(a.channel, again.channel);
        assert_eq!(a.migration_lock, again.migration_lock);
        assert_ne!(a.channel, b.channel);
        assert_ne!(a.migration_lock, b.migration_lock);
        assert!(a.channel.len() <= MAX_IDENTIFIER_BYTES);
        assert!(a.stream_version_key.len() <= MAX_IDENTIFIER_BYTES);
        // FNV-1a of the empty input is its offset basis.
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn side_tables_follow_the_events_table() {
        let default = Names::new("s", "events", "m").unwrap();
        assert_eq!(default.checkpoints, "\"s\".\"checkpoints\"");
        assert_eq!(default.parked, "\"s\".\"parked_events\"");
        let other = Names::new("s", "ledger", "m").unwrap();
        assert_eq!(other.checkpoints, "\"s\".\"ledger_checkpoints\"");
        assert_eq!(default.snapshots, "\"s\".\"snapshots\"");
        assert_eq!(other.snapshots, "\"s\".\"ledger_snapshots\"");
        assert_eq!(other.parked, "\"s\".\"ledger_parked_events\"");
        let long = Names::new("s", &"e".repeat(60), "m").unwrap();
        assert!(
            long.checkpoints.starts_with("\"s\".\"cqrs_"),
            "{}",
            long.checkpoints
        );
        assert!(long.checkpoints.len() <= 4 + 2 + MAX_IDENTIFIER_BYTES + 2);
        assert!(Names::new("s", "events", "checkpoints").is_err());
        assert_ne!(default.lease_key("p"), other.lease_key("p"));
        assert_ne!(default.lease_key("p"), default.lease_key("q"));
        assert_eq!(
            default.lease_key("p"),
            Names::new("s", "events", "m").unwrap().lease_key("p")
        );
    }

    const SECRET: &str = "Zq7-distinctive-password";

    #[test]
    fn debug_output_hides_the_password_of_urls() {
        let config = PostgresConfig::new(format!(
            "postgres://alice:{SECRET}@db.example:6543/bank?application_name=teller&sslmode=require"
        ));
        let printed = format!("{config:?}");
        assert!(!printed.contains(SECRET), "{printed}");
        for shown in ["db.example", "6543", "alice", "bank", "teller", "Require"] {
            assert!(printed.contains(shown), "{shown} missing from {printed}");
        }
    }

    #[test]
    fn debug_output_hides_the_password_of_key_value_strings() {
        for text in [
            format!("host=db.example port=6543 user=alice password={SECRET} dbname=bank"),
            format!("host=db.example password='{SECRET}' dbname=bank sslmode=verify-full"),
            // Malformed: the error is shown instead of the settings, still without the password.
            format!("host=db.example password={SECRET} port=notaport"),
            format!("host=db.example password={SECRET} sslmode=sometimes"),
            format!("postgres://alice:{SECRET}@db.example:notaport/bank"),
        ] {
            let config = PostgresConfig::new(&text);
            let printed = format!("{config:?}");
            assert!(!printed.contains(SECRET), "{printed}");
            assert!(
                !printed.contains("db.example") || printed.contains("hosts"),
                "{printed}"
            );
        }
    }

    #[test]
    fn malformed_strings_are_typed_errors_without_the_password() {
        for (text, names) in [
            (format!("host=db password={SECRET} port=notaport"), "port"),
            (
                format!("host=db password={SECRET} sslmode=sometimes"),
                "sslmode",
            ),
            (format!("host=db password={SECRET} colour=blue"), "colour"),
            (
                format!("postgres://alice:{SECRET}@db:notaport/bank"),
                "port",
            ),
        ] {
            let error = PostgresConfig::parse(&text).err().unwrap();
            let shown = error.to_string();
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(shown.contains(names), "{shown} should name {names}");
            // `new` keeps the error for `open`.
            let config = PostgresConfig::new(&text);
            assert_eq!(config.driver_config().err(), Some(error));
        }
    }

    #[test]
    fn settings_are_given_back() {
        let config = PostgresConfig::parse(
            "host=db port=5433 user=u dbname=d sslmode=verify-ca sslrootcert=/ca.pem connect_timeout=3",
        )
        .unwrap()
        .pool_size(3)
        .sink_pool_size(2)
        .acquire_timeout(Duration::from_secs(7))
        .idle_in_transaction_timeout(Duration::from_secs(2));
        assert_eq!(config.get_hosts(), vec!["db".to_owned()]);
        assert_eq!(config.get_ports(), &[5433]);
        assert_eq!(config.get_user(), Some("u"));
        assert_eq!(config.get_dbname(), Some("d"));
        assert_eq!(config.get_ssl_mode(), SslMode::VerifyCa);
        assert_eq!(config.get_ssl_root_cert(), Some(Path::new("/ca.pem")));
        assert_eq!(config.get_connect_timeout(), Duration::from_secs(3));
        assert_eq!(config.get_acquire_timeout(), Duration::from_secs(7));
        assert_eq!(config.get_pool_size(), 3);
        assert_eq!(config.get_sink_pool_size(), 2);
        assert_eq!(config.get_application_name(), "eventweave-postgres");
        assert_eq!(
            config.get_idle_in_transaction_timeout(),
            Duration::from_secs(2)
        );
        let pg = config.driver_config().unwrap();
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert!(
            config
                .session_sql()
                .contains("idle_in_transaction_session_timeout = 2000")
        );
        assert!(!config.session_sql().contains("statement_timeout"));
        assert_eq!(config.get_statement_timeout(), None);
        let timed = config
            .clone()
            .statement_timeout(Duration::from_millis(1_500));
        assert_eq!(
            timed.get_statement_timeout(),
            Some(Duration::from_millis(1_500))
        );
        assert!(
            timed
                .session_sql()
                .ends_with("; SET statement_timeout = 1500")
        );
        let sub_ms = timed.clone().statement_timeout(Duration::from_micros(10));
        assert!(
            sub_ms
                .session_sql()
                .ends_with("; SET statement_timeout = 1")
        );
        assert_eq!(
            timed
                .statement_timeout(Duration::ZERO)
                .get_statement_timeout(),
            None
        );
        let default = PostgresConfig::new("postgres://db/x");
        assert_eq!(default.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(default.get_connect_timeout(), Duration::from_secs(10));
        assert_eq!(
            default.get_tcp_keepalives().bound(),
            Duration::from_secs(25)
        );
        // Group commit: on, two statements unless others are asked for, never more than
        // connections.
        assert!(default.get_group_commit());
        assert_eq!(default.get_append_statements(), 2);
        assert_eq!(default.clone().pool_size(1).get_append_statements(), 1);
        assert_eq!(config.get_append_statements(), 2);
        assert_eq!(
            config.clone().append_statements(3).get_append_statements(),
            3
        );
        assert_eq!(
            config.clone().append_statements(9).get_append_statements(),
            3
        );
        assert_eq!(config.append_statements(0).get_append_statements(), 1);
        assert!(!default.group_commit(false).get_group_commit());
    }
}

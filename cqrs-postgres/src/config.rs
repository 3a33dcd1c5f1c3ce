//! What a [`PostgresStore`](crate::PostgresStore) connects to and how it names its tables:
//! [`PostgresConfig`], and the quoted SQL names derived from it ([`Names`]).

use std::fmt;
use std::time::Duration;

use cqrs_core::DEFAULT_MAX_EVENT_BYTES;

use crate::error::OpenError;

/// PostgreSQL truncates identifiers longer than this many bytes; longer names are refused so
/// two configured names can never collide after truncation.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// How a [`PostgresStore`](crate::PostgresStore) connects and where it keeps its tables.
///
/// ```
/// use std::time::Duration;
/// use cqrs_postgres::PostgresConfig;
///
/// let config = PostgresConfig::new("postgres://app@db.internal:5432/bank")
///     .schema("bank_events")
///     .events_table("events")
///     .pool_size(16)
///     .max_event_bytes(1024 * 1024)
///     .poll_interval(Duration::from_millis(250));
/// assert_eq!(config.schema_name(), "bank_events");
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) events_table: String,
    pub(crate) migrations_table: String,
    pub(crate) pool_size: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) notify_interval: Duration,
}

impl PostgresConfig {
    /// A configuration for the database at `url` (`postgres://user:password@host:port/database`,
    /// or the `key=value` form libpq accepts), with the defaults: schema `cqrs`, tables `events`
    /// and `schema_migrations`, 8 pooled connections, events up to
    /// [`DEFAULT_MAX_EVENT_BYTES`], a 500 ms poll interval, a 5 ms notify interval.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: "cqrs".to_owned(),
            events_table: "events".to_owned(),
            migrations_table: "schema_migrations".to_owned(),
            pool_size: 8,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            poll_interval: Duration::from_millis(500),
            notify_interval: Duration::from_millis(5),
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

    /// How many connections the pool opens at most (default 8; at least 1). Each connection
    /// serves one operation at a time; a store also keeps one more connection for
    /// LISTEN/NOTIFY once it appends or waits.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// The largest event (payload plus metadata, in bytes) an append accepts (default
    /// [`DEFAULT_MAX_EVENT_BYTES`]). Larger events are refused before anything is written.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// How long [`wait_for_events`](cqrs_core::EventStore::wait_for_events) waits for a
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

    /// The configured schema name (unquoted).
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// The configured events table name (unquoted).
    pub fn events_table_name(&self) -> &str {
        &self.events_table
    }

    pub(crate) fn names(&self) -> Result<Names, OpenError> {
        Names::new(&self.schema, &self.events_table, &self.migrations_table)
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: print only what follows the last `@`, if any.
        let target = self.url.rsplit('@').next().unwrap_or_default();
        f.debug_struct("PostgresConfig")
            .field("target", &target)
            .field("schema", &self.schema)
            .field("events_table", &self.events_table)
            .field("migrations_table", &self.migrations_table)
            .field("pool_size", &self.pool_size)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("poll_interval", &self.poll_interval)
            .field("notify_interval", &self.notify_interval)
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
        for side in [&checkpoints, &parked, &snapshots] {
            if side == migrations {
                return Err(OpenError::Config(format!(
                    "the migrations table is named `{migrations}`, which the store needs for its checkpoints or snapshots"
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
            migration_lock: fnv1a(&["cqrs-postgres migrations", schema]) as i64,
            checkpoints: format!("{}.{}", quote(schema), quote(&checkpoints)),
            parked: format!("{}.{}", quote(schema), quote(&parked)),
            snapshots: format!("{}.{}", quote(schema), quote(&snapshots)),
            lease_seed: (schema.to_owned(), events.to_owned()),
        })
    }

    /// The advisory-lock key of the lease of `projection`: derived from the schema, the events
    /// table and the projection name, stable across processes and builds.
    pub fn lease_key(&self, projection: &str) -> i64 {
        let (schema, events) = &self.lease_seed;
        fnv1a(&["cqrs-postgres lease", schema, events, projection]) as i64
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

    #[test]
    fn debug_output_hides_the_password() {
        let config = PostgresConfig::new("postgres://user:secret@host/db");
        let printed = format!("{config:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("host/db"));
    }
}

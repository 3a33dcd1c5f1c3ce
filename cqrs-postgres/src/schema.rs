//! The store's tables, created and upgraded by numbered migrations.
//!
//! `migrate` runs in one transaction that first takes a transaction-scoped advisory lock keyed
//! by the schema name, so processes that start at once queue up: the first applies what is
//! missing and commits, the others then find nothing left to do. DDL is transactional in
//! PostgreSQL, so a migration that fails leaves nothing behind.
//!
//! The migrations are the listing: version 1 the position sequence (`AS bigint MINVALUE 1 NO CYCLE
//! CACHE 1`) and the events table with `UNIQUE (stream, version)` and `UNIQUE (event_id)`; version
//! 2 `checkpoints` and `parked_events`; version 3 `snapshots` (one row per stream, the latest
//! snapshot); version 4 the marker that keeps older crates, which draw positions without the
//! appender lock, from opening the store; version 5 the `tags` column and the `event_tags` table
//! of reading by query (and the marker that appenders take the dcb locks); version 6 the function
//! of appends to several streams with a condition (`dcb/statements.rs`); version 7 that function
//! with flat parameters (each event's stream and tags; the old signature is dropped); version 8
//! the condition check a lone conditional event's statement calls (`dcb/statements.rs`). The crate
//! docs' Schema section lists the columns.
//! Constraint and sequence names carry `<tag>`, a hash of the schema and table names, so two stores
//! in one schema never share one.
//!
//! - **No streams table; the stream is stored in every row.** A streams row updated per append (the
//!   other classic design) measured 80 % of raw in pgbench; the unique `(stream, version)` index
//!   already serialises appends to one stream. The price: a conflict detected by the constraint
//!   aborts after drawing positions and leaves a rolled-back hole, which readers step over
//!   (`holes.rs`).
//! - **`recorded_at` is the database's clock** (`now()`, the transaction start): one clock for all
//!   application servers.
//! - **`CACHE 1`** on the sequence: a per-session cache would let one session draw 5 after another
//!   drew 20, and gap-free reading needs positions handed out in increasing order across all
//!   sessions.

use tokio_postgres::Client;

use crate::config::Names;
use crate::error::OpenError;

/// One schema change. Versions start at 1 and never change once released; a new change is a
/// new migration.
struct Migration {
    version: i32,
    description: &'static str,
    sql: fn(&Names) -> String,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "events table: global position, unique (stream, version), unique event id",
        sql: events_table,
    },
    Migration {
        version: 2,
        description: "projection checkpoints and parked events",
        sql: projection_tables,
    },
    Migration {
        version: 3,
        description: "aggregate snapshots, the latest per stream",
        sql: snapshots_table,
    },
    Migration {
        version: 4,
        description: "appenders hold an advisory lock keyed by their transaction id",
        sql: appender_locks,
    },
    Migration {
        version: 5,
        description: "event tags: a column of the events table and the event_tags index table",
        sql: event_tags,
    },
    Migration {
        version: 6,
        description: "the function that appends to several streams under a condition",
        sql: dcb_append_function,
    },
    Migration {
        version: 7,
        description: "the append function takes each event's stream and tags flat",
        sql: dcb_append_function,
    },
    Migration {
        version: 8,
        description: "the condition check of a lone conditional event, in a snapshot of its own",
        sql: dcb_conflict_function,
    },
];

/// The newest migration this crate knows.
pub(crate) fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Version 1: the events table.
///
/// - `position` comes from a sequence with `CACHE 1`, so positions are handed out in strictly
///   increasing order across all sessions (a per-session cache would let one session hand out a
///   position lower than one another session already committed: see `read.rs`). Appends draw
///   it explicitly, after taking a transaction id; the column default serves hand-written rows.
/// - `(stream, version)` is unique: two appends at the same expected version cannot both commit.
/// - `event_id` is unique: the basis of idempotent retries.
/// - `metadata` is NULL when an event has none; `payload` and `metadata` are JSONB.
fn events_table(n: &Names) -> String {
    format!(
        "CREATE SEQUENCE {sequence} AS bigint MINVALUE 1 NO CYCLE CACHE 1;
        CREATE TABLE {events} (
            position bigint PRIMARY KEY DEFAULT nextval({sequence_literal}::regclass),
            stream text NOT NULL,
            version bigint NOT NULL,
            event_id uuid NOT NULL,
            event_name text NOT NULL,
            event_version integer NOT NULL,
            payload jsonb NOT NULL,
            metadata jsonb,
            correlation_id uuid,
            causation_id uuid,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT {stream_version} UNIQUE (stream, version),
            CONSTRAINT {event_id} UNIQUE (event_id)
        );
        ALTER SEQUENCE {sequence} OWNED BY {events}.position;
        COMMENT ON TABLE {events} IS
            'eventweave-postgres event store. Write only through the store: it takes a transaction id before drawing positions, which gap-free reading relies on.';",
        events = n.events,
        sequence = n.position_sequence,
        sequence_literal = crate::statements::quote_literal(&n.position_sequence),
        stream_version = crate::config::quote(&n.stream_version_key),
        event_id = crate::config::quote(&n.event_id_key),
    )
}

/// Version 2: what durable projections keep in the store's database.
///
/// - `checkpoints`: per projection, the position of the last event whose effects are
///   committed. SQL projections update it in the transaction of their read-model changes, and
///   lock the row (`FOR UPDATE`) to fence off a second process that lost its lease.
/// - `parked_events`: events a projection gave up on after its retries, one row per
///   (projection, position), with the last error.
fn projection_tables(n: &Names) -> String {
    format!(
        "CREATE TABLE {checkpoints} (
            projection text PRIMARY KEY,
            position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {parked} (
            projection text NOT NULL,
            position bigint NOT NULL,
            event_id uuid NOT NULL,
            stream text NOT NULL,
            version bigint NOT NULL,
            event_name text NOT NULL,
            error text NOT NULL,
            parked_at timestamptz NOT NULL,
            PRIMARY KEY (projection, position)
        );",
        checkpoints = n.checkpoints,
        parked = n.parked,
    )
}

/// Version 3: `snapshots`, one row per aggregate stream: the state after event `version` of
/// state shape `snapshot_version`, as JSON text stored verbatim (the database never looks
/// inside it, so `text` spares a `jsonb` parse on every save and load). The primary key is the
/// only index a load needs.
fn snapshots_table(n: &Names) -> String {
    format!(
        "CREATE TABLE {snapshots} (
            stream text PRIMARY KEY,
            version bigint NOT NULL,
            snapshot_version bigint NOT NULL,
            payload text NOT NULL,
            taken_at timestamptz NOT NULL
        );",
        snapshots = n.snapshots,
    )
}

/// Version 4 changes no table: it records that appenders now take the appender lock before
/// drawing a position (`statements::next_position`), which readers rely on to step over holes
/// without waiting for unrelated transactions. Recording it as a migration makes processes of
/// older versions (which draw without the lock) refuse to open the store once a newer one has
/// migrated it: the two must not append to one store at the same time.
fn appender_locks(n: &Names) -> String {
    format!(
        "COMMENT ON TABLE {events} IS
            'eventweave-postgres event store. Write only through the store: it takes a transaction id and an advisory lock keyed by it before drawing positions, which gap-free reading relies on.';",
        events = n.events,
    )
}

/// Version 5: tags (dynamic consistency boundaries, `dcb/`).
///
/// - `events.tags`: the event's tags, sorted, NULL when it has none (the row an untagged append
///   writes is unchanged). Read back with every event. Adding a nullable column without a
///   default rewrites nothing, so an existing table upgrades in place at once.
/// - `event_tags`: one row per (tag, position) of a tagged event, written in the statement that
///   writes the event. Its B-tree primary key answers "the events carrying tag `g` after
///   position `P`" by one range scan that reads only those events, which is what a condition
///   check asks; a GIN index on `events.tags` would read every event ever tagged `g` and filter
///   by position. No foreign key: only the store writes it, in the same statement as the event,
///   and rows are never deleted.
/// - It records, too, that appenders now take the dcb locks before drawing a position
///   (`dcb/locks.rs`): an older crate, which does not, must not append beside this one.
fn event_tags(n: &Names) -> String {
    format!(
        "ALTER TABLE {events} ADD COLUMN tags text[];
        CREATE TABLE {event_tags} (
            tag text NOT NULL,
            position bigint NOT NULL,
            PRIMARY KEY (tag, position)
        );",
        events = n.events,
        event_tags = n.event_tags,
    )
}

/// Versions 6 and 7: the function a conditional append (and an append to several streams)
/// calls, so that it is one statement in an implicit transaction instead of `BEGIN`, the table
/// lock, the lock pass, the statement and `COMMIT` (`dcb/statements.rs`, `function`). Version 7
/// changed its parameters: both versions drop version 6's signature if present and create the
/// current one (`CREATE OR REPLACE`), so a store at version 6 upgrades in place and a new store
/// runs the same text twice. Crates that know only version 6 refuse a store at 7
/// (`SchemaTooNew`), so no process calls the old signature after the upgrade.
fn dcb_append_function(n: &Names) -> String {
    crate::dcb::statements::function(n)
}

/// Version 8: the function a lone conditional event's statement calls to check its condition
/// after taking its locks (`dcb/statements.rs`, `conflict_function` and `append_one`). Crates
/// that know only version 7 refuse a store at 8 (`SchemaTooNew`); they would still append
/// correctly through the version 7 function, which is unchanged.
fn dcb_conflict_function(n: &Names) -> String {
    crate::dcb::statements::conflict_function(n)
}

/// Creates the schema and applies every migration it lacks, under the schema's advisory lock.
pub(crate) async fn migrate(
    client: &mut Client,
    names: &Names,
    without_statement_timeout: bool,
) -> Result<(), OpenError> {
    let failed = |version: i32| {
        move |e: tokio_postgres::Error| OpenError::Migration {
            version,
            source: Box::new(e),
        }
    };
    let tx = client.transaction().await.map_err(failed(0))?;
    if without_statement_timeout {
        // The store's `statement_timeout` bounds its operations, not its migrations: a second
        // process waits here for the first one's migration on purpose, and an index build may
        // take long.
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .await
            .map_err(failed(0))?;
    }
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&names.migration_lock])
        .await
        .map_err(failed(0))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {migrations} (
             version integer PRIMARY KEY,
             description text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
        schema = names.schema,
        migrations = names.migrations,
    ))
    .await
    .map_err(failed(0))?;
    let applied: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {}", names.migrations),
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed(0))?;
    if applied > latest_version() {
        return Err(OpenError::SchemaTooNew {
            found: applied,
            known: latest_version(),
        });
    }
    let record = format!(
        "INSERT INTO {} (version, description) VALUES ($1, $2)",
        names.migrations
    );
    for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
        let failed = failed(migration.version);
        tx.batch_execute(&(migration.sql)(names))
            .await
            .map_err(failed)?;
        tx.execute(&record, &[&migration.version, &migration.description])
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_one_and_increase_by_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.description);
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as i32);
    }

    #[test]
    fn migrations_use_only_quoted_names() {
        let names = crate::PostgresConfig::new("postgres://x")
            .schema("we\"ird")
            .names()
            .unwrap();
        let sql = events_table(&names);
        assert!(
            sql.contains("CREATE TABLE \"we\"\"ird\".\"events\""),
            "{sql}"
        );
        assert!(
            sql.contains("CACHE 1;"),
            "positions must not be cached per session"
        );
        let sql = projection_tables(&names);
        assert!(
            sql.contains("CREATE TABLE \"we\"\"ird\".\"checkpoints\""),
            "{sql}"
        );
        assert!(sql.contains("PRIMARY KEY (projection, position)"), "{sql}");
        let sql = snapshots_table(&names);
        assert!(
            sql.contains("CREATE TABLE \"we\"\"ird\".\"snapshots\""),
            "{sql}"
        );
    }
}

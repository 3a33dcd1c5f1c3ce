//! The schema and its versioned migrations.
//!
//! `schema_migrations` holds one row per migration applied to the file. Opening a file applies,
//! in one write transaction, every migration it lacks; a file whose newest migration is above
//! [`SCHEMA_VERSION`] was written by a newer crate and is refused, untouched.
//!
//! The migrations below are the schema's listing: version 1 the `events` table (the position is the
//! rowid) with unique indexes on `event_id` and `(stream, version)`, version 2 `checkpoints` and
//! `parked_events`, version 3 `snapshots` (one row per stream), version 4 `leases` (which process
//! runs a projection: `lease.rs`), version 5 the `tags` column and the `event_tags` index table
//! (dynamic consistency boundaries, `dcb.rs`).
//!
//! - **The stream name is stored in every row**, with no separate streams table: one index
//!   `(stream, version)` answers both the version lookup of an append (`MAX(version)`, one B-tree
//!   descent) and `read_stream`, and an append writes one row per event, nothing else.
//! - **`STRICT` tables**, ids as 16-byte blobs, payload and metadata as text exactly as written.
//! - **Opening a file already at the current schema only reads it.** Opening is synchronous and
//!   cannot await the file's write turn (`turns.rs`). `migrate` used to take `BEGIN IMMEDIATE` on
//!   every open, so opening a second handle while a sink batch of the process held the lock failed
//!   with `SQLITE_BUSY` on a `current_thread` runtime. It now reads `MAX(version)` first and
//!   returns when the file is current.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::OpenError;

/// The schema version this version of the crate writes and reads.
pub const SCHEMA_VERSION: u32 = 5;

/// One step of the schema's history. Never edit a released migration: add the next one.
struct Migration {
    version: u32,
    description: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "events table with unique event ids and unique stream versions",
        // `position` is the rowid: SQLite serialises writers, so positions are assigned in commit
        // order with no gaps. Ids are 16-byte blobs; payload and metadata are JSON text, stored
        // verbatim; `recorded_at` is microseconds since the Unix epoch.
        sql: "
        CREATE TABLE events (
            position       INTEGER PRIMARY KEY,
            event_id       BLOB    NOT NULL,
            stream         TEXT    NOT NULL,
            version        INTEGER NOT NULL,
            event_name     TEXT    NOT NULL,
            event_version  INTEGER NOT NULL,
            payload        TEXT    NOT NULL,
            metadata       TEXT,
            correlation_id BLOB,
            causation_id   BLOB,
            recorded_at    INTEGER NOT NULL
        ) STRICT;
        CREATE UNIQUE INDEX events_event_id ON events (event_id);
        CREATE UNIQUE INDEX events_stream_version ON events (stream, version);
    ",
    },
    Migration {
        version: 2,
        description: "checkpoints and parked events of durable projections",
        // One checkpoint row per projection: the position of the last event whose effects are
        // committed. SQL projections commit their read-model changes and this row in one
        // transaction. `parked_events` keeps the events a projection gave up on, for an
        // operator; `event_id` is a 16-byte blob, times are microseconds since the Unix epoch.
        sql: "
        CREATE TABLE checkpoints (
            projection TEXT    PRIMARY KEY,
            position   INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE parked_events (
            projection TEXT    NOT NULL,
            position   INTEGER NOT NULL,
            event_id   BLOB    NOT NULL,
            stream     TEXT    NOT NULL,
            version    INTEGER NOT NULL,
            event_name TEXT    NOT NULL,
            error      TEXT    NOT NULL,
            parked_at  INTEGER NOT NULL,
            PRIMARY KEY (projection, position)
        ) STRICT;
    ",
    },
    Migration {
        version: 3,
        description: "aggregate snapshots, the latest per stream",
        // One row per stream: the state (JSON text, stored verbatim) after event `version`, of
        // the aggregate's state shape `snapshot_version`; `taken_at` is microseconds since the
        // Unix epoch. The primary key is the only index a load needs.
        sql: "
        CREATE TABLE snapshots (
            stream           TEXT    PRIMARY KEY,
            version          INTEGER NOT NULL,
            snapshot_version INTEGER NOT NULL,
            payload          TEXT    NOT NULL,
            taken_at         INTEGER NOT NULL
        ) STRICT;
    ",
    },
    Migration {
        version: 4,
        description: "leases of durable projections across processes",
        // One row per projection while a process holds its lease: the holder and when the
        // lease ends unless renewed (microseconds since the Unix epoch). `SqliteLeases` writes
        // it; an expired row is free to take.
        sql: "
        CREATE TABLE leases (
            projection TEXT    PRIMARY KEY,
            owner      TEXT    NOT NULL,
            expires_at INTEGER NOT NULL
        ) STRICT;
    ",
    },
    Migration {
        version: 5,
        description: "event tags: a column of the events table and the event_tags index",
        // `tags` holds the event's tags as a JSON array of strings, sorted, NULL without tags
        // (adding a nullable column rewrites nothing). `event_tags` has one row per tag of a
        // tagged event: its key `(tag, position)` answers "the events tagged `g` from position
        // `p` on" with one range of the index (`dcb.rs`).
        sql: "
        ALTER TABLE events ADD COLUMN tags TEXT;
        CREATE TABLE event_tags (
            tag      TEXT    NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (tag, position)
        ) STRICT, WITHOUT ROWID;
    ",
    },
];

const _: () = assert!(MIGRATIONS[MIGRATIONS.len() - 1].version == SCHEMA_VERSION);

/// Brings the file's schema up to [`SCHEMA_VERSION`]; returns the version the file had.
///
/// A file already at [`SCHEMA_VERSION`] is only read (no write lock): opening another handle
/// then never waits for a writer of the file, such as a sink batch of this process, which
/// synchronous code could only wait for in SQLite's busy handler, blocking its thread.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<u32, OpenError> {
    if current_version(conn) == Some(SCHEMA_VERSION) {
        return Ok(SCHEMA_VERSION);
    }
    let failed = || OpenError::database(path);
    // IMMEDIATE: two processes opening a new file at once migrate one after the other.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed())?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version     INTEGER PRIMARY KEY,
            description TEXT    NOT NULL,
            applied_at  INTEGER NOT NULL
        ) STRICT",
    )
    .map_err(failed())?;
    let found: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(failed())?;
    let found = u32::try_from(found).unwrap_or(u32::MAX);
    if found > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.execute_batch(migration.sql).map_err(failed())?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
            (
                migration.version,
                migration.description,
                eventweave_core::Timestamp::now().unix_micros(),
            ),
        )
        .map_err(failed())?;
    }
    tx.commit().map_err(failed())?;
    Ok(found)
}

/// The file's schema version, read without a write lock; `None` when it cannot be read (a new
/// or foreign file: [`migrate`] then looks again under the write lock and reports errors).
fn current_version(conn: &Connection) -> Option<u32> {
    let version: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |row| {
            row.get(0)
        })
        .ok()?;
    u32::try_from(version?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.description);
        }
    }

    #[test]
    fn migrating_twice_applies_each_migration_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        assert_eq!(migrate(&mut conn, path).unwrap(), 0);
        assert_eq!(migrate(&mut conn, path).unwrap(), SCHEMA_VERSION);
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_file_of_version_1_is_migrated_and_keeps_its_events() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        // A file written by the crate when version 1 was the newest.
        conn.execute_batch(
            "CREATE TABLE schema_migrations (
                version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL
            ) STRICT",
        )
        .unwrap();
        conn.execute_batch(MIGRATIONS[0].sql).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations VALUES (1, ?1, 0)",
            [MIGRATIONS[0].description],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (event_id, stream, version, event_name, event_version, payload, recorded_at)
             VALUES (x'00000000000000000000000000000001', 's', 1, 'e', 1, '{}', 0)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, path).unwrap(), 1);
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count("events"), 1);
        assert_eq!(count("checkpoints"), 0);
        assert_eq!(count("parked_events"), 0);
        assert_eq!(count("snapshots"), 0);
        assert_eq!(count("leases"), 0);
        assert_eq!(count("schema_migrations"), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        migrate(&mut conn, path).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?1, 'from the future', 0)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
        match migrate(&mut conn, path) {
            Err(OpenError::SchemaTooNew {
                found, supported, ..
            }) => assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
            other => panic!("a newer schema must be refused, got {other:?}"),
        }
    }
}

//! Why a store could not be opened, and how SQLite errors of running operations become
//! [`StoreError`]s.
//!
//! The only step whose outcome is uncertain is an I/O error at `COMMIT` (`commit_failed`): it is
//! `OutcomeUnknown`; every other failure happened before anything was written.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

use eventweave_core::StoreError;

/// A store file could not be opened or prepared.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// SQLite failed: the file cannot be created or read, is not a SQLite database, holds an
    /// unrelated `events` table, or stayed locked by another process beyond the busy timeout.
    Database {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer version of this crate: its schema version is above the
    /// newest this version knows, so it is left untouched.
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The schema version recorded in the file.
        found: u32,
        /// The newest schema version this version of the crate knows.
        supported: u32,
    },
    /// SQLite would not switch the file to WAL journaling (e.g. an in-memory database, or a
    /// file system without shared memory). The store relies on WAL so readers never block the
    /// writer.
    WalUnavailable {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        journal_mode: String,
    },
}

impl OpenError {
    pub(crate) fn database(path: &std::path::Path) -> impl FnOnce(rusqlite::Error) -> Self + '_ {
        move |source| OpenError::Database {
            path: path.to_owned(),
            source,
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Database { path, source } => {
                write!(f, "cannot open event store `{}`: {source}", path.display())
            }
            OpenError::SchemaTooNew {
                path,
                found,
                supported,
            } => write!(
                f,
                "event store `{}` has schema version {found}, newer than the newest this version of eventweave-sqlite supports ({supported}); upgrade eventweave-sqlite to open it",
                path.display()
            ),
            OpenError::WalUnavailable { path, journal_mode } => write!(
                f,
                "event store `{}` cannot use WAL journaling (SQLite kept journal mode `{journal_mode}`)",
                path.display()
            ),
        }
    }
}

impl StdError for OpenError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            OpenError::Database { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A SQLite failure of an operation that has not committed anything (a read, or a write that
/// failed before its commit), classified:
///
/// - [`StoreError::Unavailable`] (nothing was written, retrying may succeed): `SQLITE_BUSY` and
///   `SQLITE_LOCKED` (another connection or process held the lock beyond the busy timeout),
///   `SQLITE_FULL` (the disk is full: space freed elsewhere lets it pass, as PostgreSQL's
///   `disk_full` in class 53), `SQLITE_IOERR` (the operating system failed a read or write:
///   often a passing condition of the device or a network file system), `SQLITE_NOMEM`,
///   `SQLITE_INTERRUPT`, `SQLITE_SCHEMA` (the schema changed under a statement), `SQLITE_PROTOCOL`
///   (a lock race of WAL recovery) and `SQLITE_CANTOPEN` (a reader could not be opened, e.g.
///   out of file descriptors).
/// - [`StoreError::Backend`] (permanent): `SQLITE_CORRUPT` and `SQLITE_NOTADB` (the file is
///   damaged or not a database: restore it), `SQLITE_READONLY` and `SQLITE_PERM` (the file, its
///   directory or the file system became read-only: an operator must change that, retrying will
///   not), constraints, type mismatches, misuse and every error that is not SQLite's (a column
///   that does not convert).
///
/// `Display` shows SQLite's message and its extended result code name (`SQLITE_BUSY_SNAPSHOT`).
pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    classify(e, false)
}

/// A SQLite failure of the `COMMIT` of a write: as [`backend`], except that an I/O error leaves
/// the outcome unknown ([`StoreError::OutcomeUnknown`]): SQLite may have written the commit
/// record to the WAL before the failing `fsync`, and a later recovery of the file then keeps
/// the transaction. Busy, full and the other classes mean the commit did not happen.
pub(crate) fn commit_failed(e: rusqlite::Error) -> StoreError {
    classify(e, true)
}

fn classify(e: rusqlite::Error, committing: bool) -> StoreError {
    use rusqlite::ErrorCode as C;
    let Some(code) = e.sqlite_error_code() else {
        return StoreError::Backend(eventweave_core::BackendError::from_error(e));
    };
    let extended = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => failure.extended_code,
        _ => 0,
    };
    let error = eventweave_core::BackendError::from_error(e).with_code(code_name(extended));
    match code {
        C::SystemIoFailure if committing => StoreError::OutcomeUnknown(error),
        C::DatabaseBusy
        | C::DatabaseLocked
        | C::DiskFull
        | C::SystemIoFailure
        | C::OutOfMemory
        | C::OperationInterrupted
        | C::SchemaChanged
        | C::FileLockingProtocolFailed
        | C::CannotOpen => StoreError::Unavailable(error),
        _ => StoreError::Backend(error),
    }
}

/// SQLite's name of an extended result code (`SQLITE_IOERR_FSYNC`); the primary code's name
/// with the number for extended codes not listed here.
fn code_name(extended: i32) -> String {
    use rusqlite::ffi;
    const EXTENDED: &[(i32, &str)] = &[
        (ffi::SQLITE_BUSY_RECOVERY, "SQLITE_BUSY_RECOVERY"),
        (ffi::SQLITE_BUSY_SNAPSHOT, "SQLITE_BUSY_SNAPSHOT"),
        (ffi::SQLITE_BUSY_TIMEOUT, "SQLITE_BUSY_TIMEOUT"),
        (ffi::SQLITE_LOCKED_SHAREDCACHE, "SQLITE_LOCKED_SHAREDCACHE"),
        (ffi::SQLITE_IOERR_READ, "SQLITE_IOERR_READ"),
        (ffi::SQLITE_IOERR_SHORT_READ, "SQLITE_IOERR_SHORT_READ"),
        (ffi::SQLITE_IOERR_WRITE, "SQLITE_IOERR_WRITE"),
        (ffi::SQLITE_IOERR_FSYNC, "SQLITE_IOERR_FSYNC"),
        (ffi::SQLITE_IOERR_TRUNCATE, "SQLITE_IOERR_TRUNCATE"),
        (ffi::SQLITE_IOERR_LOCK, "SQLITE_IOERR_LOCK"),
        (ffi::SQLITE_IOERR_SHMMAP, "SQLITE_IOERR_SHMMAP"),
        (ffi::SQLITE_READONLY_RECOVERY, "SQLITE_READONLY_RECOVERY"),
        (ffi::SQLITE_READONLY_CANTLOCK, "SQLITE_READONLY_CANTLOCK"),
        (ffi::SQLITE_READONLY_DBMOVED, "SQLITE_READONLY_DBMOVED"),
        (ffi::SQLITE_READONLY_DIRECTORY, "SQLITE_READONLY_DIRECTORY"),
        (ffi::SQLITE_CORRUPT_INDEX, "SQLITE_CORRUPT_INDEX"),
        (ffi::SQLITE_CONSTRAINT_UNIQUE, "SQLITE_CONSTRAINT_UNIQUE"),
        (
            ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
            "SQLITE_CONSTRAINT_PRIMARYKEY",
        ),
        (ffi::SQLITE_CONSTRAINT_CHECK, "SQLITE_CONSTRAINT_CHECK"),
        (ffi::SQLITE_CONSTRAINT_NOTNULL, "SQLITE_CONSTRAINT_NOTNULL"),
        (ffi::SQLITE_CANTOPEN_ISDIR, "SQLITE_CANTOPEN_ISDIR"),
    ];
    const PRIMARY: &[(i32, &str)] = &[
        (ffi::SQLITE_ERROR, "SQLITE_ERROR"),
        (ffi::SQLITE_INTERNAL, "SQLITE_INTERNAL"),
        (ffi::SQLITE_PERM, "SQLITE_PERM"),
        (ffi::SQLITE_ABORT, "SQLITE_ABORT"),
        (ffi::SQLITE_BUSY, "SQLITE_BUSY"),
        (ffi::SQLITE_LOCKED, "SQLITE_LOCKED"),
        (ffi::SQLITE_NOMEM, "SQLITE_NOMEM"),
        (ffi::SQLITE_READONLY, "SQLITE_READONLY"),
        (ffi::SQLITE_INTERRUPT, "SQLITE_INTERRUPT"),
        (ffi::SQLITE_IOERR, "SQLITE_IOERR"),
        (ffi::SQLITE_CORRUPT, "SQLITE_CORRUPT"),
        (ffi::SQLITE_FULL, "SQLITE_FULL"),
        (ffi::SQLITE_CANTOPEN, "SQLITE_CANTOPEN"),
        (ffi::SQLITE_PROTOCOL, "SQLITE_PROTOCOL"),
        (ffi::SQLITE_SCHEMA, "SQLITE_SCHEMA"),
        (ffi::SQLITE_TOOBIG, "SQLITE_TOOBIG"),
        (ffi::SQLITE_CONSTRAINT, "SQLITE_CONSTRAINT"),
        (ffi::SQLITE_MISMATCH, "SQLITE_MISMATCH"),
        (ffi::SQLITE_MISUSE, "SQLITE_MISUSE"),
        (ffi::SQLITE_RANGE, "SQLITE_RANGE"),
        (ffi::SQLITE_NOTADB, "SQLITE_NOTADB"),
    ];
    let find = |table: &[(i32, &'static str)], code| {
        table.iter().find(|&&(c, _)| c == code).map(|&(_, n)| n)
    };
    if let Some(name) = find(EXTENDED, extended) {
        return name.to_owned();
    }
    match find(PRIMARY, extended & 0xff) {
        Some(name) if extended > 0xff => format!("{name} (extended code {extended})"),
        Some(name) => name.to_owned(),
        None => format!("SQLite result code {extended}"),
    }
}

/// A [`SqliteSink`](crate::SqliteSink) refused to write because its projection's checkpoint is
/// not where this sink left it: another process (or another sink in this one) moved it. Nothing
/// was written. Returned inside `StoreError::Backend`; the runner then reads the checkpoint
/// again and goes on from there, so no event is applied twice. Seeing it means two runners feed
/// one projection: give them leases so one works at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointMoved {
    /// The projection.
    pub projection: &'static str,
    /// The checkpoint this sink last read or committed.
    pub expected: eventweave_core::Position,
    /// The checkpoint found in the database.
    pub found: eventweave_core::Position,
}

impl fmt::Display for CheckpointMoved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the checkpoint of projection `{}` is at {}, but this sink left it at {}: another runner \
             moved it (run one runner per projection, with leases); nothing was written",
            self.projection, self.found, self.expected
        )
    }
}

impl StdError for CheckpointMoved {}

/// A write through the store (an append, a snapshot, checkpoint or parked-event save) was
/// started by the task that runs a batch of the [`SqliteSink`](crate::SqliteSink) of
/// `projection` on the same file, typically from inside one of its handlers. Writers of one file
/// take turns, and the batch holds the turn until it commits, so the write would wait for its
/// own batch forever; it fails at once instead, having written nothing. Returned inside
/// `StoreError::Backend`. A handler writes its read model through its `SqliteTx`; commands
/// caused by events belong in a process manager.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteInSinkBatch {
    /// The projection whose batch holds the write turn.
    pub projection: &'static str,
}

impl fmt::Display for WriteInSinkBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a write through the store was started inside a batch of the SqliteSink of projection \
             `{}` on the same file; it would wait for that batch forever (write the read model \
             through the SqliteTx instead); nothing was written",
            self.projection
        )
    }
}

impl StdError for WriteInSinkBatch {}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn failure(extended: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(extended), Some("said SQLite".into()))
    }

    #[test]
    fn sqlite_errors_say_what_a_caller_may_do() {
        let unavailable = [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_BUSY_SNAPSHOT,
            ffi::SQLITE_LOCKED,
        ]
        .into_iter()
        .chain([ffi::SQLITE_FULL, ffi::SQLITE_IOERR_READ, ffi::SQLITE_NOMEM]);
        for code in unavailable {
            assert!(
                matches!(backend(failure(code)), StoreError::Unavailable(_)),
                "{code}"
            );
        }
        for code in [
            ffi::SQLITE_CORRUPT,
            ffi::SQLITE_NOTADB,
            ffi::SQLITE_READONLY,
            ffi::SQLITE_READONLY_DBMOVED,
            ffi::SQLITE_CONSTRAINT_CHECK,
            ffi::SQLITE_ERROR,
        ] {
            assert!(
                matches!(backend(failure(code)), StoreError::Backend(_)),
                "{code}"
            );
        }
        let fsync = commit_failed(failure(ffi::SQLITE_IOERR_FSYNC));
        assert!(matches!(fsync, StoreError::OutcomeUnknown(_)), "{fsync}");
        let busy = commit_failed(failure(ffi::SQLITE_BUSY));
        assert!(matches!(busy, StoreError::Unavailable(_)), "{busy}");
        assert_eq!(
            busy.to_string(),
            "event store unavailable, nothing was written: said SQLite (code SQLITE_BUSY)"
        );
        let odd = backend(failure(ffi::SQLITE_IOERR | (99 << 8)));
        assert!(
            odd.to_string()
                .ends_with("(code SQLITE_IOERR (extended code 25354))"),
            "{odd}"
        );
        let conversion =
            rusqlite::Error::InvalidColumnType(0, "x".into(), rusqlite::types::Type::Null);
        assert!(matches!(backend(conversion), StoreError::Backend(_)));
    }
}

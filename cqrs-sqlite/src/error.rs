//! Why a store could not be opened, and how SQLite errors of running operations become
//! [`StoreError`]s.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

use cqrs_core::StoreError;

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
                "event store `{}` has schema version {found}, newer than the newest this version of cqrs-sqlite supports ({supported}); upgrade cqrs-sqlite to open it",
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

/// A SQLite failure of a running operation: `StoreError::Backend`, keeping SQLite's error as
/// the source.
pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(cqrs_core::BackendError::from_error(e))
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
    pub expected: cqrs_core::Position,
    /// The checkpoint found in the database.
    pub found: cqrs_core::Position,
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

//! Why a store could not be opened ([`OpenError`]), and how driver errors become
//! [`StoreError`]s.

use std::error::Error as StdError;
use std::fmt;

use cqrs_core::{BoxError, StoreError};

/// Why [`PostgresStore::open`](crate::PostgresStore::open) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration is unusable (an empty or over-long identifier, an unparsable URL).
    Config(String),
    /// The database could not be reached or refused the connection.
    Connect(BoxError),
    /// Creating or migrating the schema failed; the migration's transaction was rolled back.
    Migration {
        /// The migration that failed (0: the bookkeeping before the first one).
        version: i32,
        /// The database's error.
        source: BoxError,
    },
    /// The schema was migrated by a newer version of this crate; this one does not know how to
    /// use it and refuses to guess.
    SchemaTooNew {
        /// The newest migration recorded in the database.
        found: i32,
        /// The newest migration this crate knows.
        known: i32,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Config(message) => {
                write!(f, "invalid PostgreSQL store configuration: {message}")
            }
            OpenError::Connect(e) => write!(f, "cannot connect to PostgreSQL: {e}"),
            OpenError::Migration { version, source } => {
                write!(f, "schema migration {version} failed: {source}")
            }
            OpenError::SchemaTooNew { found, known } => write!(
                f,
                "the database schema is at migration {found}, but this version of cqrs-postgres knows migrations up to {known} only; upgrade cqrs-postgres"
            ),
        }
    }
}

impl StdError for OpenError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            OpenError::Connect(e) | OpenError::Migration { source: e, .. } => Some(&**e),
            _ => None,
        }
    }
}

/// A driver error as the store contract's back-end failure.
pub(crate) fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

//! Why a store could not be opened ([`OpenError`]), and how driver errors become
//! [`StoreError`]s.

use std::error::Error as StdError;
use std::fmt;

use cqrs_core::{BackendError, BoxError, StoreError};

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

/// A driver error of an operation that writes nothing (a read, a lookup), classified: lost or
/// refused connections and passing server conditions are [`StoreError::Unavailable`], the rest
/// [`StoreError::Backend`].
pub(crate) fn backend(e: tokio_postgres::Error) -> StoreError {
    classify(e, false)
}

/// A driver error of an append: as [`backend`], except that a connection lost without a reply
/// from the server leaves the outcome unknown ([`StoreError::OutcomeUnknown`]).
pub(crate) fn append_failed(e: tokio_postgres::Error) -> StoreError {
    classify(e, true)
}

fn classify(e: tokio_postgres::Error, wrote: bool) -> StoreError {
    let Some(db) = e.as_db_error() else {
        // No reply from the server: the connection is gone (or never came up).
        let error = BackendError::new(describe(&e)).with_inner(e);
        return if wrote {
            StoreError::OutcomeUnknown(error)
        } else {
            StoreError::Unavailable(error)
        };
    };
    let code = db.code().code().to_owned();
    let mut message = format!("{}: {}", db.severity(), db.message());
    if let Some(detail) = db.detail() {
        message.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = db.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    // The server answered with an error, so the statement (one implicit transaction) failed
    // as a whole: nothing was written, whatever the class.
    let transient = transient_sqlstate(&code);
    let error = BackendError::new(message).with_code(code).with_inner(e);
    if transient {
        StoreError::Unavailable(error)
    } else {
        StoreError::Backend(error)
    }
}

/// SQLSTATEs after which the same request may succeed later: connection exceptions (08),
/// transaction rollbacks such as serialization failures and deadlocks (40), insufficient
/// resources (53), operator intervention such as a shutdown or a cancelled statement (57),
/// and system errors (58).
fn transient_sqlstate(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58"))
}

/// The driver's message with its cause: `tokio_postgres::Error` displays only its kind
/// (`error communicating with the server`), the cause says which.
fn describe(e: &tokio_postgres::Error) -> String {
    match StdError::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

//! [`SqlError`]: what a statement of the portable [`Sql`](crate::sql::Sql) unit of work reports.

use std::error::Error as StdError;
use std::fmt;

use super::BoxError;

/// Why a statement run through [`Sql`](crate::sql::Sql) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqlErrorKind {
    /// The database refused the statement: a syntax error, an unknown table or column, a
    /// failed transaction.
    Refused,
    /// The statement broke a constraint (unique, check, not null, foreign key).
    Constraint,
    /// A value did not fit: a parameter for a column type it cannot be written to, a column
    /// read as a Rust type it cannot become, an integer out of range, a wrong number of
    /// parameters.
    Conversion,
    /// The connection failed or was lost.
    Unavailable,
}

impl fmt::Display for SqlErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SqlErrorKind::Refused => "the database refused the statement",
            SqlErrorKind::Constraint => "a constraint was violated",
            SqlErrorKind::Conversion => "a value did not fit",
            SqlErrorKind::Unavailable => "the database is unavailable",
        })
    }
}

/// A failed statement of the portable [`Sql`](crate::sql::Sql) unit of work: its
/// [`kind`](SqlError::kind), a message, and the database driver's own error
/// ([`driver`](SqlError::driver)) where there is one.
///
/// Return it from a durable projection's handler (`Result<(), SqlError>`): the sink rolls the
/// event's changes back and the runner retries, parks or stops as configured.
#[derive(Debug)]
pub struct SqlError {
    kind: SqlErrorKind,
    message: String,
    driver: Option<BoxError>,
}

impl SqlError {
    /// An error of `kind` described by `message`.
    pub fn new(kind: SqlErrorKind, message: impl Into<String>) -> SqlError {
        SqlError {
            kind,
            message: message.into(),
            driver: None,
        }
    }

    /// The same error, keeping the driver's own `error` for [`driver`](SqlError::driver).
    pub fn with_driver(mut self, error: impl Into<BoxError>) -> SqlError {
        self.driver = Some(error.into());
        self
    }

    /// A value that did not fit (see [`SqlErrorKind::Conversion`]).
    pub fn conversion(message: impl Into<String>) -> SqlError {
        SqlError::new(SqlErrorKind::Conversion, message)
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> SqlErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The database driver's own error (`rusqlite::Error`, `tokio_postgres::Error`), for
    /// `downcast_ref`, when the failure came from the driver.
    pub fn driver(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.driver.as_deref()
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// The driver's error is already the message, so it is not also the `source()` (an error chain
/// would print it twice); [`SqlError::driver`] gives it back for downcasting.
impl StdError for SqlError {}

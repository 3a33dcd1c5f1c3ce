//! Why a store could not be opened ([`OpenError`]), and how driver errors become
//! [`StoreError`]s.

use std::error::Error as StdError;
use std::fmt;

use eventweave_core::sql::{SqlError, SqlErrorKind};
use eventweave_core::{BackendError, BoxError, StoreError};

use crate::conninfo::ConfigError;

/// Why [`PostgresStore::open`](crate::PostgresStore::open) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration is unusable (an empty or over-long identifier, conflicting names).
    Config(String),
    /// The connection string is malformed (an unknown key, a bad value, an unsupported
    /// `sslmode`); the message never contains the password.
    ConnectionString(ConfigError),
    /// The database could not be reached, refused the connection, or did not answer within the
    /// connect timeout.
    Connect(BoxError),
    /// TLS could not be set up or was refused: a server that does not offer TLS where the
    /// `sslmode` requires it, a certificate that does not chain to the trusted roots
    /// (`verify-ca`, `verify-full`) or does not name the host (`verify-full`), an unreadable
    /// root certificate file.
    Tls(BoxError),
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
            OpenError::ConnectionString(e) => write!(f, "{e}"),
            OpenError::Connect(e) => write!(f, "cannot connect to PostgreSQL: {e}"),
            OpenError::Tls(e) => write!(f, "cannot connect to PostgreSQL over TLS: {e}"),
            OpenError::Migration { version, source } => {
                write!(f, "schema migration {version} failed: {source}")
            }
            OpenError::SchemaTooNew { found, known } => write!(
                f,
                "the database schema is at migration {found}, but this version of eventweave-postgres knows migrations up to {known} only; upgrade eventweave-postgres"
            ),
        }
    }
}

impl StdError for OpenError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            OpenError::Connect(e) | OpenError::Tls(e) | OpenError::Migration { source: e, .. } => {
                Some(&**e)
            }
            OpenError::ConnectionString(e) => Some(e),
            _ => None,
        }
    }
}

/// A driver error of an operation that wrote nothing: a read, a lookup, or a statement inside
/// a transaction that has not been committed (the server rolls it back when the connection
/// ends). Classified:
///
/// - [`StoreError::Unavailable`]: the connection was lost or could not be opened (no reply,
///   an I/O error, a timeout), or the server refused for a passing reason: SQLSTATE classes
///   08 (connection), 40 (serialization failure, deadlock), 53 (insufficient resources: too
///   many connections, disk full, out of memory), 57 (operator intervention: shutdown,
///   termination, cancelled statement, starting up) and 58 (system I/O error), and the codes
///   55P03 (`lock_not_available`) and 25006 (`read_only_sql_transaction`: a primary demoted to
///   a standby, which a failover replaces).
/// - [`StoreError::Backend`]: every other SQLSTATE (syntax, permissions, constraints, missing
///   tables, …) and driver errors that are not about the connection (a value that does not
///   convert): retrying the same request will not change them.
///
/// `Display` shows the server's severity, message, detail and hint, and the SQLSTATE.
pub(crate) fn backend(e: tokio_postgres::Error) -> StoreError {
    classify(e, false)
}

/// A driver error of a write that was sent as its own transaction, or of a `COMMIT`: as
/// [`backend`], except where the write may have been applied without the client hearing of it:
///
/// - the connection was lost after the request was sent (no reply): the server may have
///   committed it before the connection ended;
/// - the server ended the session (severity `FATAL` or `PANIC`: a terminated backend, a
///   shutdown, a crash of another backend): it may come after the commit was recorded (a
///   termination between `COMMIT` and the reply, or during a synchronous-replication wait,
///   where PostgreSQL itself says the transaction "has already committed locally").
///
/// Both are [`StoreError::OutcomeUnknown`]: retry only with the same ids. An `ERROR` reply
/// means the statement's transaction failed whole (nothing was written).
pub(crate) fn write_failed(e: tokio_postgres::Error) -> StoreError {
    classify(e, true)
}

/// A write refused before it was sent, because the connection is already closed: nothing was
/// written, whatever kind of write it was.
pub(crate) fn closed_before_sending() -> StoreError {
    StoreError::Unavailable(BackendError::new(
        "the connection was closed before the request was sent",
    ))
}

fn classify(e: tokio_postgres::Error, wrote: bool) -> StoreError {
    let Some(db) = e.as_db_error() else {
        if !connection_lost(&e) {
            // A parameter or column that does not convert: the request is wrong, not the link.
            return StoreError::Backend(BackendError::new(describe(&e)).with_inner(e));
        }
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
    let session_ended = matches!(db.severity(), "FATAL" | "PANIC");
    let transient = transient_sqlstate(&code);
    let error = BackendError::new(message).with_code(code).with_inner(e);
    if wrote && session_ended {
        StoreError::OutcomeUnknown(error)
    } else if transient {
        StoreError::Unavailable(error)
    } else {
        StoreError::Backend(error)
    }
}

/// Whether the error ended the connection's session (lost, or `FATAL`/`PANIC` from the
/// server): the connection must not go back to the pool, where the next operation would take
/// it before its driver task has noticed it closed.
pub(crate) fn session_ended(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => matches!(db.severity(), "FATAL" | "PANIC"),
        None => connection_lost(e),
    }
}

/// Whether a driver error without a server reply is about the connection: closed, an I/O error
/// (reading, writing, connecting, or a reply that does not parse), or a connect timeout.
/// Conversion errors (`error serializing parameter 0`, `error deserializing column 1`) and
/// wrong row or column counts are not.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || StdError::source(e).is_some_and(|cause| cause.is::<std::io::Error>())
        || e.to_string() == "timeout waiting for server"
}

/// SQLSTATEs after which the same request may succeed later (see [`backend`]).
fn transient_sqlstate(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58"))
        || matches!(code, "55P03" | "25006")
}

/// The driver's message with its cause: `tokio_postgres::Error` displays only its kind
/// (`error communicating with the server`), the cause says which.
fn describe(e: &tokio_postgres::Error) -> String {
    match StdError::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A driver error as the portable [`Sql`](eventweave_core::sql::Sql) unit reports it: the
/// server's message (with its detail and hint) or the driver's, classified by SQLSTATE class
/// (23: a constraint; a transient class or a lost session: unavailable; a write in a read-only
/// transaction: refused) or, without a server
/// reply, by whether the connection was lost (otherwise a value did not convert).
pub(crate) fn sql_error(e: tokio_postgres::Error) -> SqlError {
    let (kind, message) = match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let kind = if code.starts_with("23") {
                SqlErrorKind::Constraint
            } else if code == "25006" {
                // A write in a read-only transaction (a `PgReader`): the statement is wrong
                // there, whatever the store's own writes make of a hot standby.
                SqlErrorKind::Refused
            } else if transient_sqlstate(code) || matches!(db.severity(), "FATAL" | "PANIC") {
                SqlErrorKind::Unavailable
            } else {
                SqlErrorKind::Refused
            };
            let mut message = format!("{} (SQLSTATE {code})", db.message());
            if let Some(detail) = db.detail() {
                message.push_str(&format!("; detail: {detail}"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!("; hint: {hint}"));
            }
            (kind, message)
        }
        None if connection_lost(&e) => (SqlErrorKind::Unavailable, describe(&e)),
        None => (SqlErrorKind::Conversion, describe(&e)),
    };
    SqlError::new(kind, message).with_driver(e)
}

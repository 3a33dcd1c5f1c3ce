//! The portable [`Sql`] unit of work on SQLite: [`SqliteTx`] (a sink's batch) and
//! [`SqliteReader`] (the application's reads). Parameters are bound by name (`$1`, `$2`, …),
//! so a number may appear several times and in any order, as on PostgreSQL.

use std::future::Future;
use std::sync::Arc;

use eventweave_core::sql::{Sql, SqlDialect, SqlError, SqlErrorKind, SqlParams, SqlRow, SqlValue};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};

use crate::{SqliteStore, SqliteTx};

/// A driver error as the portable unit reports it.
fn sql_error(e: rusqlite::Error) -> SqlError {
    use rusqlite::Error as E;
    let kind = match &e {
        E::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::ConstraintViolation => SqlErrorKind::Constraint,
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull => SqlErrorKind::Unavailable,
            _ => SqlErrorKind::Refused,
        },
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::ToSqlConversionFailure(..)
        | E::InvalidParameterCount(..)
        | E::InvalidParameterName(..) => SqlErrorKind::Conversion,
        _ => SqlErrorKind::Refused,
    };
    SqlError::new(kind, e.to_string()).with_driver(e)
}

/// The value as SQLite stores it (a boolean as 0 or 1); `None` for a kind of value this crate
/// does not know (`SqlValue` may grow).
fn value_ref(value: &SqlValue) -> Option<ValueRef<'_>> {
    Some(match value {
        SqlValue::Null => ValueRef::Null,
        SqlValue::Bool(b) => ValueRef::Integer(i64::from(*b)),
        SqlValue::Int(n) => ValueRef::Integer(*n),
        SqlValue::Real(x) => ValueRef::Real(*x),
        SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
        SqlValue::Blob(b) => ValueRef::Blob(b),
        _ => return None,
    })
}

/// Binds `values` to `$1`, `$2`, … of `statement`.
fn bind(statement: &mut rusqlite::Statement<'_>, values: &[SqlValue]) -> Result<(), SqlError> {
    let expected = statement.parameter_count();
    if expected != values.len() {
        return Err(SqlError::conversion(format!(
            "the statement has {expected} parameters and {} values were given",
            values.len()
        )));
    }
    for (i, value) in values.iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = statement
            .parameter_index(&name)
            .map_err(sql_error)?
            .ok_or_else(|| {
                SqlError::conversion(format!(
                    "the statement has no parameter {name}: write parameters as $1, $2, … \
                     (the portable dialect), not `?` or `:name`"
                ))
            })?;
        let value = value_ref(value).ok_or_else(|| {
            SqlError::conversion(format!(
                "a {} value cannot be written to SQLite",
                value.kind()
            ))
        })?;
        statement
            .raw_bind_parameter(index, ToSqlOutput::Borrowed(value))
            .map_err(sql_error)?;
    }
    Ok(())
}

fn column(value: ValueRef<'_>) -> Result<SqlValue, SqlError> {
    Ok(match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(n) => SqlValue::Int(n),
        ValueRef::Real(x) => SqlValue::Real(x),
        ValueRef::Text(bytes) => SqlValue::Text(
            std::str::from_utf8(bytes)
                .map_err(|e| SqlError::conversion(format!("a text column is not UTF-8: {e}")))?
                .to_owned(),
        ),
        ValueRef::Blob(bytes) => SqlValue::Blob(bytes.to_vec()),
    })
}

fn execute(conn: &Connection, sql: &str, values: &[SqlValue]) -> Result<u64, SqlError> {
    let mut statement = conn.prepare_cached(sql).map_err(sql_error)?;
    bind(&mut statement, values)?;
    let changed = statement.raw_execute().map_err(sql_error)?;
    Ok(changed as u64)
}

fn query(conn: &Connection, sql: &str, values: &[SqlValue]) -> Result<Vec<SqlRow>, SqlError> {
    let mut statement = conn.prepare_cached(sql).map_err(sql_error)?;
    bind(&mut statement, values)?;
    let columns: Arc<[String]> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows = statement.raw_query();
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let values = (0..columns.len())
            .map(|i| column(row.get_ref(i).map_err(sql_error)?))
            .collect::<Result<Vec<_>, _>>()?;
        found.push(SqlRow::new(Arc::clone(&columns), values));
    }
    Ok(found)
}

/// `impl Sql` for a type that lends a connection through `$lend` (a method taking a closure
/// over `&Connection`): the two units differ only in where the connection comes from.
macro_rules! sql_on_connection {
    ($ty:ty, $lend:ident) => {
        impl Sql for $ty {
            fn dialect(&self) -> SqlDialect {
                SqlDialect::Sqlite
            }

            fn execute<P: SqlParams>(
                &self,
                sql: &str,
                params: P,
            ) -> impl Future<Output = Result<u64, SqlError>> + Send {
                // Converted before the future: it holds owned values, not the caller's `P`.
                let values = params.to_values();
                async move { self.$lend(|conn| execute(conn, sql, &values?)) }
            }

            fn query<P: SqlParams>(
                &self,
                sql: &str,
                params: P,
            ) -> impl Future<Output = Result<Vec<SqlRow>, SqlError>> + Send {
                let values = params.to_values();
                async move { self.$lend(|conn| query(conn, sql, &values?)) }
            }
        }
    };
}

// Statements in the sink's transaction, on its connection (prepared once, cached). They run on
// the calling thread when awaited, like every statement of a `SqliteTx`.
sql_on_connection!(SqliteTx, with);

/// Reads a SQL read model in a [`SqliteStore`]'s file from the application, through the
/// portable [`Sql`] API, so the same queries run on PostgreSQL (`PostgresStore::reader`).
///
/// It borrows the store's read connections, which are `query_only`: a write is refused with
/// [`SqlErrorKind::Refused`] (the handlers of the projection's sink write the read model). In
/// WAL mode a read never waits for writers and sees the last committed batch. Statements run
/// on the calling thread when awaited. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteReader {
    store: SqliteStore,
}

impl SqliteStore {
    /// A reader of the SQL read models in this store's file (see [`SqliteReader`]).
    pub fn reader(&self) -> SqliteReader {
        SqliteReader {
            store: self.clone(),
        }
    }
}

impl SqliteReader {
    fn run<T>(&self, f: impl FnOnce(&Connection) -> Result<T, SqlError>) -> Result<T, SqlError> {
        self.store
            .read(|conn| Ok(f(conn)))
            .map_err(|e| SqlError::new(SqlErrorKind::Unavailable, e.to_string()).with_driver(e))?
    }
}

sql_on_connection!(SqliteReader, run);

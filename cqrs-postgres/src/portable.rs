//! The portable [`Sql`] unit of work on PostgreSQL: [`PgTx`] (a sink's batch) and
//! [`PgReader`] (the application's reads), with the conversions between [`SqlValue`]s and the
//! types the server expects.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use eventweave_core::Uuid;
use eventweave_core::sql::{Sql, SqlDialect, SqlError, SqlErrorKind, SqlParams, SqlRow, SqlValue};
use futures_util::future::join_all;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Error, Row};

use crate::PostgresStore;
use crate::error::sql_error;
use crate::sink::PgTx;

/// A value that cannot be written as, or read from, the PostgreSQL type at hand.
#[derive(Debug)]
struct Unportable(String);

impl fmt::Display for Unportable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Unportable {}

type BoxedError = Box<dyn StdError + Sync + Send>;

/// A parameter, written as whatever type the server inferred for it.
#[derive(Debug)]
struct Param(SqlValue);

fn range<T: TryFrom<i64>>(n: i64, ty: &Type) -> Result<T, BoxedError> {
    T::try_from(n).map_err(|_| Unportable(format!("{n} is out of range for {ty}")).into())
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxedError> {
        match (&self.0, ty) {
            (SqlValue::Null, _) => Ok(IsNull::Yes),
            (SqlValue::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (SqlValue::Int(n), &Type::BOOL) if matches!(n, 0 | 1) => (*n == 1).to_sql(ty, out),
            (SqlValue::Int(n), &Type::INT2) => range::<i16>(*n, ty)?.to_sql(ty, out),
            (SqlValue::Int(n), &Type::INT4) => range::<i32>(*n, ty)?.to_sql(ty, out),
            (SqlValue::Int(n), &Type::INT8) => n.to_sql(ty, out),
            (SqlValue::Int(n), &Type::FLOAT8) => (*n as f64).to_sql(ty, out),
            (SqlValue::Int(n), &Type::FLOAT4) => (*n as f32).to_sql(ty, out),
            (SqlValue::Real(x), &Type::FLOAT8) => x.to_sql(ty, out),
            (SqlValue::Real(x), &Type::FLOAT4) => (*x as f32).to_sql(ty, out),
            (SqlValue::Text(s), &Type::UUID) => Uuid::parse_str(s)
                .map_err(|e| Unportable(format!("{s:?} is not a UUID: {e}")))?
                .to_sql(ty, out),
            (SqlValue::Text(s), &Type::JSONB) => {
                // JSONB's binary form: a version byte, then the text.
                out.put_u8(1);
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (SqlValue::Text(s), &Type::JSON) => {
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (SqlValue::Text(s), _) if <&str as ToSql>::accepts(ty) => s.as_str().to_sql(ty, out),
            (SqlValue::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            (value, _) => Err(Unportable(format!(
                "a value of type {} ({value}) cannot be written where PostgreSQL expects {ty}: \
                 cast the parameter in the statement (`CAST($1 AS BIGINT)`) or bind another type",
                value.kind()
            ))
            .into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Every type: `to_sql` says which value does not fit which type, in words.
        true
    }

    to_sql_checked!();
}

/// A column, read as the [`SqlValue`] its type maps to.
struct Column(SqlValue);

impl<'a> FromSql<'a> for Column {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Column, BoxedError> {
        let value = match *ty {
            Type::BOOL => SqlValue::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => SqlValue::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => SqlValue::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => SqlValue::Int(i64::from_sql(ty, raw)?),
            Type::OID => SqlValue::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => SqlValue::Real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => SqlValue::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => SqlValue::Blob(raw.to_vec()),
            Type::UUID => SqlValue::Text(Uuid::from_sql(ty, raw)?.hyphenated().to_string()),
            Type::JSON => SqlValue::Text(std::str::from_utf8(raw)?.to_owned()),
            Type::JSONB => match raw.split_first() {
                Some((1, text)) => SqlValue::Text(std::str::from_utf8(text)?.to_owned()),
                _ => return Err(Unportable("unsupported JSONB version".into()).into()),
            },
            _ if <&str as FromSql>::accepts(ty) => SqlValue::Text(String::from_sql(ty, raw)?),
            _ => {
                return Err(Unportable(format!(
                    "a {ty} column has no portable value: cast it in the query \
                     (`CAST(sum(n) AS BIGINT)`, `CAST(at AS TEXT)`)"
                ))
                .into());
            }
        };
        Ok(Column(value))
    }

    fn from_sql_null(_: &Type) -> Result<Column, BoxedError> {
        Ok(Column(SqlValue::Null))
    }

    fn accepts(_: &Type) -> bool {
        // Every type: `from_sql` says which cannot be read, in words.
        true
    }
}

fn params(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn convert<P: SqlParams>(params: &P) -> Result<Vec<Param>, SqlError> {
    Ok(params.to_values()?.into_iter().map(Param).collect())
}

fn rows(rows: Vec<Row>) -> Result<Vec<SqlRow>, SqlError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    rows.iter()
        .map(|row| {
            let values = (0..columns.len())
                .map(|i| row.try_get::<_, Column>(i).map(|c| c.0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            Ok(SqlRow::new(Arc::clone(&columns), values))
        })
        .collect()
}

/// Statements in the sink's transaction, through [`PgTx::execute`] and [`PgTx::query`]: prepared
/// once per connection, after the statements [staged](PgTx::stage) before them.
impl Sql for PgTx {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::Postgres
    }

    fn execute<P: SqlParams>(
        &self,
        sql: &str,
        params: P,
    ) -> impl Future<Output = Result<u64, SqlError>> + Send {
        // Converted before the future: it holds owned values, not the caller's `P`.
        let values = convert(&params);
        async move {
            let values = values?;
            PgTx::execute(self, sql, &self::params(&values))
                .await
                .map_err(sql_error)
        }
    }

    fn query<P: SqlParams>(
        &self,
        sql: &str,
        params: P,
    ) -> impl Future<Output = Result<Vec<SqlRow>, SqlError>> + Send {
        let values = convert(&params);
        async move {
            let values = values?;
            let found = PgTx::query(self, sql, &self::params(&values))
                .await
                .map_err(sql_error)?;
            rows(found)
        }
    }
}

/// Reads a SQL read model of a [`PostgresStore`]'s database from the application, through the
/// portable [`Sql`] API, so the queries a projection's tests run on SQLite
/// (`SqliteStore::reader`) run unchanged on PostgreSQL.
///
/// Each statement takes a connection of the store's pool and runs in a transaction of its own,
/// `READ ONLY`: a write is refused, as SQLite's reader refuses it (the handlers of the
/// projection's sink write the read model). Begin, statement and commit are pipelined: one
/// round trip. Cheap to clone.
#[derive(Clone)]
pub struct PgReader {
    store: PostgresStore,
}

impl fmt::Debug for PgReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgReader").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A reader of the SQL read models in this store's database (see [`PgReader`]).
    pub fn reader(&self) -> PgReader {
        PgReader {
            store: self.clone(),
        }
    }
}

impl PgReader {
    async fn run(&self, sql: &str, values: &[Param]) -> Result<Vec<Row>, SqlError> {
        let mut conn =
            self.store.shared.pool.get().await.map_err(|e| {
                SqlError::new(SqlErrorKind::Unavailable, e.to_string()).with_driver(e)
            })?;
        let statement = conn.cached(sql).await.map_err(sql_error)?;
        // Dropped before the commit (a cancelled caller), the connection may be inside the
        // transaction: it is closed rather than reused.
        conn.discard_on_drop();
        let client = &conn.client;
        let params = params(values);
        type Step<'a> = Pin<Box<dyn Future<Output = Result<Vec<Row>, Error>> + Send + 'a>>;
        let begin: Step<'_> = Box::pin(async {
            client
                .batch_execute("START TRANSACTION READ ONLY")
                .await
                .map(|()| Vec::new())
        });
        let query: Step<'_> = Box::pin(client.query(&statement, &params));
        let commit: Step<'_> =
            Box::pin(async { client.batch_execute("COMMIT").await.map(|()| Vec::new()) });
        // Polled in order, the three requests leave back to back on the one connection. After
        // a failed query the server answers `COMMIT` with a rollback, so the connection ends
        // idle either way.
        let mut results = join_all([begin, query, commit]).await.into_iter();
        let (begun, found, committed) = (
            results.next().expect("three results"),
            results.next().expect("three results"),
            results.next().expect("three results"),
        );
        begun.map_err(sql_error)?;
        let found = found.map_err(sql_error)?;
        committed.map_err(sql_error)?;
        conn.reuse_on_drop();
        Ok(found)
    }
}

impl Sql for PgReader {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::Postgres
    }

    fn execute<P: SqlParams>(
        &self,
        sql: &str,
        params: P,
    ) -> impl Future<Output = Result<u64, SqlError>> + Send {
        let values = convert(&params);
        async move { Ok(self.run(sql, &values?).await?.len() as u64) }
    }

    fn query<P: SqlParams>(
        &self,
        sql: &str,
        params: P,
    ) -> impl Future<Output = Result<Vec<SqlRow>, SqlError>> + Send {
        let values = convert(&params);
        async move { rows(self.run(sql, &values?).await?) }
    }
}

//! [`Sql`]: one unit of work for SQL read models that run on SQLite and on PostgreSQL.
//!
//! A durable projection whose handlers take `db: &SqliteTx` runs only under a `SqliteSink`, one
//! taking `db: &PgTx` only under a `PgSink`: the two drivers have different APIs. A handler that
//! takes `db: &impl Sql` instead is written once and runs under either sink, in the sink's
//! transaction (exactly once, with the checkpoint), which is what a read model tested on SQLite
//! and deployed on PostgreSQL needs. `#[projection]` then implements
//! `DurableProjection<U>` for every `U: Sql`; `eventweave_sqlite::SqliteTx` and
//! `eventweave_postgres::PgTx` are such units, and so are the stores' autocommit handles
//! (`SqliteStore::sql`, `PostgresStore::sql`) that the application reads the read model with.
//!
//! ```
//! use eventweave_core::prelude::*;
//! use eventweave_core::sql::{Sql, SqlError};
//! # #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, Event)]
//! # #[event(name = "deposited")]
//! # struct Deposited { account: u64, amount: u64 }
//!
//! /// One row per account, on either database.
//! pub const CREATE: &str =
//!     "CREATE TABLE IF NOT EXISTS totals (account BIGINT PRIMARY KEY, total BIGINT NOT NULL)";
//!
//! struct Totals;
//!
//! #[projection(name = "sql_doc_totals")]
//! impl Totals {
//!     async fn on_deposited(&mut self, e: &Deposited, db: &impl Sql) -> Result<(), SqlError> {
//!         db.execute(
//!             "INSERT INTO totals (account, total) VALUES ($1, $2)
//!              ON CONFLICT (account) DO UPDATE SET total = totals.total + excluded.total",
//!             (e.account, e.amount),
//!         )
//!         .await?;
//!         Ok(())
//!     }
//! }
//!
//! /// A query written once too: `db` is the sink's transaction or a store's `sql()` handle.
//! pub async fn total(db: &impl Sql, account: u64) -> Result<Option<u64>, SqlError> {
//!     match db.query_opt("SELECT total FROM totals WHERE account = $1", (account,)).await? {
//!         Some(row) => Ok(Some(row.get(0)?)),
//!         None => Ok(None),
//!     }
//! }
//! ```
//!
//! # The portable dialect
//!
//! - Parameters are written `$1`, `$2`, … on both databases (the same number may appear
//!   several times) and given as a tuple, an array, a `Vec` or `()`: `(account, amount)`.
//! - Values are [`SqlValue`]s: null, boolean, 64-bit integer, double, text, bytes. Rust values
//!   convert through [`ToSqlValue`] (integers beyond `i64` are refused, not wrapped) and back
//!   through [`FromSqlValue`]. On PostgreSQL a value is written as the type the server expects
//!   for that parameter: an integer fits `SMALLINT`, `INTEGER`, `BIGINT` or a float column, a
//!   text fits `TEXT`, `VARCHAR`, `UUID` or `JSONB`, a boolean `BOOLEAN`; on SQLite a boolean is
//!   stored as 0 or 1 and read back as a boolean.
//! - Columns read back as the same values. PostgreSQL's `NUMERIC` (what `sum()` of a `BIGINT`
//!   column returns), dates and times are not read: cast them in the query
//!   (`CAST(sum(total) AS BIGINT)`, `CAST(at AS TEXT)`), which both databases accept.
//! - SQL that both accept: `BIGINT`, `DOUBLE PRECISION`, `TEXT`, `BOOLEAN` columns,
//!   `INSERT … ON CONFLICT (…) DO UPDATE SET … = excluded.…`, `CASE`, `coalesce`, `CAST`.
//!   Where the two must differ (a `STRICT` table, `GREATEST` against `max`), branch on
//!   [`Sql::dialect`].
//! - Statements run inside the sink's transaction: do not run `BEGIN`, `COMMIT` or
//!   `ROLLBACK`.
//!
//! # Why a generic unit, not an object
//!
//! Handlers take `db: &impl Sql` and the derive makes the projection `DurableProjection<U>` for
//! every `U: Sql`, so `SqliteSink<P>` and `PgSink<P>` accept it unchanged (their unit is fixed, so
//! inference never has to choose). A `dyn Sql` unit would have needed the sinks generic over two
//! units (their `ProjectionSink` impls would overlap for unit-less projections) and a boxed future
//! per statement. `$n` parameters work on both without rewriting the SQL text (SQLite binds them by
//! name, so numbers may repeat and come in any order). Application reads go through the stores'
//! readers, read-only on both (SQLite's `query_only` connections, PostgreSQL's pipelined `READ
//! ONLY` transactions), so a write that works in tests cannot fail only in production.

use std::future::Future;

mod row;
mod value;

pub use crate::error::{SqlError, SqlErrorKind};
pub use row::SqlRow;
pub use value::{FromSqlValue, SqlParams, SqlValue, ToSqlValue};

/// Which database a [`Sql`] unit talks to, for the rare statement that must differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlDialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A unit of work that runs SQL statements in the portable dialect (see the [module
/// docs](self)): the transaction of a SQL sink's batch, or a store's autocommit handle.
///
/// Implemented by the durable stores' crates; a durable projection's handler takes
/// `db: &impl Sql` to run under any of their sinks.
pub trait Sql: Sync {
    /// The database behind it.
    fn dialect(&self) -> SqlDialect;

    /// Runs one statement; returns the number of rows it changed.
    fn execute<P: SqlParams>(
        &self,
        sql: &str,
        params: P,
    ) -> impl Future<Output = Result<u64, SqlError>> + Send;

    /// Runs a query; returns every row.
    fn query<P: SqlParams>(
        &self,
        sql: &str,
        params: P,
    ) -> impl Future<Output = Result<Vec<SqlRow>, SqlError>> + Send;

    /// Runs a query; returns its first row, or `None` when it returned none.
    fn query_opt<P: SqlParams>(
        &self,
        sql: &str,
        params: P,
    ) -> impl Future<Output = Result<Option<SqlRow>, SqlError>> + Send {
        let rows = self.query(sql, params);
        async move { Ok(rows.await?.into_iter().next()) }
    }
}

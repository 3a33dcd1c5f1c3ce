//! The balances read model: one row per account in the SQL table `balances`, kept by the
//! durable projection [`BalancesTable`] **exactly once**.
//!
//! Why a table and not memory: an in-memory projection is rebuilt from the first event at every
//! start, which grows with the store. A durable projection keeps its rows and a checkpoint in a
//! database, so a restart only reads the events after the checkpoint. The runner
//! (`eventweave_core::runner::ProjectionRunner`) feeds it through a `eventweave_sqlite::SqliteSink`, which
//! runs the handlers of each batch and moves the checkpoint **in one SQLite transaction**: a
//! crash, a failing handler or a cancelled batch leaves the rows and the checkpoint as they were
//! together, so no event is ever counted twice or missed, across restarts too.
//!
//! The table lives in the store's database (on SQLite, the same file as the events, `bank.db`),
//! next to the store's own tables; the store never touches it.
//!
//! **One read model, two databases.** The handlers take `db: &impl Sql`, the portable unit of
//! work (`eventweave_core::sql`), and write SQL both SQLite and PostgreSQL accept: the same
//! `BalancesTable` runs under a `SqliteSink` (the bank's binary, its tests) and under a
//! `PgSink` (`tests/balances.rs` runs it on PostgreSQL too, against the same events, and
//! compares the tables).
//!
//! Durable read models are queried from their database: the queries here ([`balance`],
//! [`accounts`], [`total`]) take any `impl Sql` too, in practice the store's reader
//! (`SqliteStore::reader`, `PostgresStore::reader`), after
//! `RunningProjection::wait_for(position, timeout)`, which gives read-your-writes (it returns
//! once the checkpoint has reached the position of the caller's last command).

use eventweave_core::prelude::*;
use eventweave_core::sql::{Sql, SqlError};

use crate::account::*;

/// One account as the balances read model sees it.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct AccountSummary {
    /// The account.
    pub account: AccountId,
    /// Its owner.
    pub owner: String,
    /// Balance in cents.
    pub balance: u64,
    /// Whether it is still open.
    pub open: bool,
}

/// The read model's table, in SQL both databases accept. `CREATE … IF NOT EXISTS`: run at every
/// start, before the runner (`SqliteSink::setup`, `PgSink::setup`).
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS balances (
    account BIGINT  PRIMARY KEY,
    owner   TEXT    NOT NULL,
    balance BIGINT  NOT NULL CHECK (balance >= 0),
    open    BOOLEAN NOT NULL
)";

/// The durable balances projection: its handlers write the `balances` table through the sink's
/// transaction (`db: &impl Sql`), so their rows commit together with the checkpoint, on
/// whichever database the sink runs.
///
/// It holds no state of its own: everything is in the table. Its checkpoint is stored under the
/// name `balances`, which must therefore never change.
#[derive(Clone, Copy, Debug, Default)]
pub struct BalancesTable;

/// Adds `delta` (negative: takes, never below zero, as the aggregate guarantees) to the balance
/// of the event's account. Events of unknown accounts change nothing, as in memory. Amounts
/// beyond `i64::MAX` are refused (the handler fails and the runner stops at the event) rather
/// than wrapped.
async fn add(
    db: &impl Sql,
    account: Option<AccountId>,
    amount: u64,
    sign: i64,
) -> Result<(), SqlError> {
    if let Some(account) = account {
        let amount = i64::try_from(amount)
            .map_err(|_| SqlError::conversion(format!("{amount} cents do not fit a BIGINT")))?;
        db.execute(
            "UPDATE balances
             SET balance = CASE WHEN balance + $2 < 0 THEN 0 ELSE balance + $2 END
             WHERE account = $1",
            (account.0, sign * amount),
        )
        .await?;
    }
    Ok(())
}

#[projection(name = "balances")]
impl BalancesTable {
    async fn on_opened(
        &mut self,
        e: &AccountOpened,
        meta: &EventMeta,
        db: &impl Sql,
    ) -> Result<(), SqlError> {
        if let Ok(account) = meta.aggregate_id(e) {
            // An upsert: opening starts the row afresh, whatever a row of that id held.
            db.execute(
                "INSERT INTO balances (account, owner, balance, open) VALUES ($1, $2, 0, TRUE)
                 ON CONFLICT (account)
                 DO UPDATE SET owner = excluded.owner, balance = 0, open = TRUE",
                (account.0, &e.owner),
            )
            .await?;
        }
        Ok(())
    }

    async fn on_deposited(
        &mut self,
        e: &MoneyDeposited,
        meta: &EventMeta,
        db: &impl Sql,
    ) -> Result<(), SqlError> {
        add(db, meta.aggregate_id(e).ok(), e.amount, 1).await
    }

    async fn on_withdrawn(
        &mut self,
        e: &MoneyWithdrawn,
        meta: &EventMeta,
        db: &impl Sql,
    ) -> Result<(), SqlError> {
        add(db, meta.aggregate_id(e).ok(), e.amount, -1).await
    }

    async fn on_closed(
        &mut self,
        e: &AccountClosed,
        meta: &EventMeta,
        db: &impl Sql,
    ) -> Result<(), SqlError> {
        if let Ok(account) = meta.aggregate_id(e) {
            db.execute(
                "UPDATE balances SET open = FALSE WHERE account = $1",
                (account.0,),
            )
            .await?;
        }
        Ok(())
    }

    async fn on_sent(
        &mut self,
        e: &TransferSent,
        meta: &EventMeta,
        db: &impl Sql,
    ) -> Result<(), SqlError> {
        add(db, meta.aggregate_id(e).ok(), e.amount, -1).await
    }

    async fn on_received(
        &mut self,
        e: &TransferReceived,
        meta: &EventMeta,
        db: &impl Sql,
    ) -> Result<(), SqlError> {
        add(db, meta.aggregate_id(e).ok(), e.amount, 1).await
    }

    async fn on_refunded(
        &mut self,
        e: &TransferRefunded,
        meta: &EventMeta,
        db: &impl Sql,
    ) -> Result<(), SqlError> {
        add(db, meta.aggregate_id(e).ok(), e.amount, 1).await
    }

    /// Before a rebuild: the runner replays every event into an empty table (in the same
    /// transaction that sets the checkpoint back to zero).
    #[reset]
    async fn reset(&mut self, db: &impl Sql) -> Result<(), SqlError> {
        db.execute("DELETE FROM balances", ()).await?;
        Ok(())
    }
}

/// The balance of `account` (`None` if it was never opened).
pub async fn balance(db: &impl Sql, account: AccountId) -> Result<Option<u64>, SqlError> {
    let row = db
        .query_opt(
            "SELECT balance FROM balances WHERE account = $1",
            (account.0,),
        )
        .await?;
    row.map(|row| row.get(0)).transpose()
}

/// Every account, ordered by id.
pub async fn accounts(db: &impl Sql) -> Result<Vec<AccountSummary>, SqlError> {
    db.query(
        "SELECT account, owner, balance, open FROM balances ORDER BY account",
        (),
    )
    .await?
    .iter()
    .map(|row| {
        Ok(AccountSummary {
            account: AccountId(row.get(0)?),
            owner: row.get(1)?,
            balance: row.get(2)?,
            open: row.get(3)?,
        })
    })
    .collect()
}

/// The sum of all balances (money is neither created nor lost by transfers). `sum` of a
/// `BIGINT` is `NUMERIC` on PostgreSQL, so it is cast back.
pub async fn total(db: &impl Sql) -> Result<u64, SqlError> {
    let row = db
        .query_opt(
            "SELECT CAST(coalesce(sum(balance), 0) AS BIGINT) FROM balances",
            (),
        )
        .await?;
    row.map_or(Ok(0), |row| row.get(0))
}

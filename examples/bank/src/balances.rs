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
//! The table lives in the same SQLite file as the events (`bank.db`), next to the store's own
//! tables; the store never touches it.
//!
//! Durable read models are queried from their database: the bank reads the table with plain SQL
//! on a connection of its own ([`connect`], then [`balance`], [`accounts`], [`total`]) after
//! `RunningProjection::wait_for(position, timeout)`, which gives read-your-writes (it returns
//! once the checkpoint has reached the position of the caller's last command).

use std::error::Error;

use eventweave_core::prelude::*;
use eventweave_sqlite::rusqlite::{self, Connection, OptionalExtension};
use eventweave_sqlite::{SqliteSink, SqliteStore, SqliteTx};

use crate::account::*;

/// One account as the balances read model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// The read model's table. `CREATE … IF NOT EXISTS`: run at every start, before the runner.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS balances (
    account INTEGER PRIMARY KEY,
    owner   TEXT    NOT NULL,
    balance INTEGER NOT NULL CHECK (balance >= 0),
    open    INTEGER NOT NULL
) STRICT";

/// The durable balances projection: its handlers write the `balances` table through the sink's
/// transaction (`db: &SqliteTx`), so their rows commit together with the checkpoint.
///
/// It holds no state of its own: everything is in the table. Its checkpoint is stored under the
/// name `balances`, which must therefore never change.
#[derive(Clone, Copy, Debug, Default)]
pub struct BalancesTable;

/// SQLite integers are signed: amounts beyond `i64::MAX` are refused (the handler fails and the
/// runner stops at the event) rather than wrapped.
fn int(n: u64) -> Result<i64, rusqlite::Error> {
    i64::try_from(n).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Adds `delta` (negative: takes, never below zero, as the aggregate guarantees) to the balance
/// of the event's account. Events of unknown accounts change nothing, as in memory.
fn add(db: &SqliteTx, account: Option<AccountId>, delta: i64) -> Result<(), rusqlite::Error> {
    if let Some(account) = account {
        db.execute(
            "UPDATE balances SET balance = max(balance + ?2, 0) WHERE account = ?1",
            (int(account.0)?, delta),
        )?;
    }
    Ok(())
}

#[projection(name = "balances")]
impl BalancesTable {
    fn on_opened(
        &mut self,
        e: &AccountOpened,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        if let Ok(account) = meta.aggregate_id(e) {
            // An upsert: opening starts the row afresh, whatever a row of that id held.
            db.execute(
                "INSERT INTO balances (account, owner, balance, open) VALUES (?1, ?2, 0, 1)
                 ON CONFLICT (account) DO UPDATE SET owner = excluded.owner, balance = 0, open = 1",
                (int(account.0)?, e.owner.as_str()),
            )?;
        }
        Ok(())
    }

    fn on_deposited(
        &mut self,
        e: &MoneyDeposited,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        add(db, meta.aggregate_id(e).ok(), int(e.amount)?)
    }

    fn on_withdrawn(
        &mut self,
        e: &MoneyWithdrawn,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        add(db, meta.aggregate_id(e).ok(), -int(e.amount)?)
    }

    fn on_closed(
        &mut self,
        e: &AccountClosed,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        if let Ok(account) = meta.aggregate_id(e) {
            db.execute(
                "UPDATE balances SET open = 0 WHERE account = ?1",
                [int(account.0)?],
            )?;
        }
        Ok(())
    }

    fn on_sent(
        &mut self,
        e: &TransferSent,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        add(db, meta.aggregate_id(e).ok(), -int(e.amount)?)
    }

    fn on_received(
        &mut self,
        e: &TransferReceived,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        add(db, meta.aggregate_id(e).ok(), int(e.amount)?)
    }

    fn on_refunded(
        &mut self,
        e: &TransferRefunded,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        add(db, meta.aggregate_id(e).ok(), int(e.amount)?)
    }

    /// Before a rebuild: the runner replays every event into an empty table (in the same
    /// transaction that sets the checkpoint back to zero).
    #[reset]
    fn reset(&mut self, db: &SqliteTx) -> Result<(), rusqlite::Error> {
        db.execute("DELETE FROM balances", [])?;
        Ok(())
    }
}

/// The sink that runs [`BalancesTable`] on the file of `store`, with the `balances` table
/// created (through the sink's own connection, before any batch runs). Run it with
/// `ProjectionRunner::new(events, sink).spawn()`.
pub fn sink(
    store: &SqliteStore,
) -> Result<SqliteSink<BalancesTable>, Box<dyn Error + Send + Sync>> {
    let sink = SqliteSink::new(store, BalancesTable)?;
    sink.unit().execute(CREATE_TABLE, [])?;
    Ok(sink)
}

/// An application connection for reading the read model of `store`'s file (WAL: reads never
/// wait for the runner's writes, and see its last committed batch).
pub fn connect(store: &SqliteStore) -> rusqlite::Result<Connection> {
    Connection::open(store.path())
}

fn unsigned(column: usize, value: i64) -> rusqlite::Result<u64> {
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, value))
}

/// The balance of `account` (`None` if it was never opened).
pub fn balance(conn: &Connection, account: AccountId) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT balance FROM balances WHERE account = ?1")?
        .query_row([int(account.0)?], |row| unsigned(0, row.get(0)?))
        .optional()
}

/// Every account, ordered by id.
pub fn accounts(conn: &Connection) -> rusqlite::Result<Vec<AccountSummary>> {
    conn.prepare_cached("SELECT account, owner, balance, open FROM balances ORDER BY account")?
        .query_map([], |row| {
            Ok(AccountSummary {
                account: AccountId(unsigned(0, row.get(0)?)?),
                owner: row.get(1)?,
                balance: unsigned(2, row.get(2)?)?,
                open: row.get(3)?,
            })
        })?
        .collect()
}

/// The sum of all balances (money is neither created nor lost by transfers).
pub fn total(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT coalesce(sum(balance), 0) FROM balances")?
        .query_row([], |row| unsigned(0, row.get(0)?))
}

//! The load's domain: vaults that are opened once and then take deposits, plus the read models
//! the checks compare with a replay (in memory, in SQLite, in PostgreSQL).
//!
//! Every read model keeps, per stream, the number of events and the sum of the deposits, so a
//! model equals a replay exactly when both maps are equal (an event applied twice or skipped
//! changes a count).
//!
//! Commands: `Open`, `Deposit`, and `DepositSplit` (one event per part; the scenarios send three).
//! Models: `MemoryTotals` (in memory), `SqliteTotals` (through `SqliteSink`), `PgTotals` (through
//! `PgSink`, with staged writes).

use std::collections::BTreeMap;

use eventweave_core::StreamId;
use eventweave_core::prelude::*;
use eventweave_postgres::{PgTx, params};
use eventweave_sqlite::{SqliteTx, rusqlite};
use serde::{Deserialize, Serialize};

/// Identifies a vault; its stream is `vault-<id>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VaultId(pub u64);

impl std::fmt::Display for VaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl VaultId {
    /// The vault's stream.
    pub fn stream(self) -> StreamId {
        StreamId::from(format!("vault-{}", self.0))
    }
}

/// A vault was opened.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "faults.opened")]
pub struct Opened;

/// Money came in.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "faults.deposited")]
pub struct Deposited {
    /// Amount in cents.
    pub amount: u64,
}

/// Opens a vault (a creation command: refused on an existing stream).
#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(aggregate = Vault)]
pub struct Open {
    /// The vault.
    #[id]
    pub vault: VaultId,
}

/// Puts money in an open vault.
#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(aggregate = Vault)]
pub struct Deposit {
    /// The vault.
    #[id]
    pub vault: VaultId,
    /// Amount in cents, positive.
    pub amount: u64,
}

/// Puts several deposits in an open vault in one append (one event per part): a batch that must
/// be stored whole or not at all.
#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(aggregate = Vault)]
pub struct DepositSplit {
    /// The vault.
    #[id]
    pub vault: VaultId,
    /// The amounts, each positive.
    pub parts: Vec<u64>,
}

/// Why a vault refuses a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// Amounts must be positive.
    ZeroAmount,
}

impl std::fmt::Display for VaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultError::ZeroAmount => f.write_str("the amount must be positive"),
        }
    }
}

impl std::error::Error for VaultError {}

/// A vault: only its balance, which no rule reads; the handlers exist to produce events.
#[derive(Default, Debug)]
pub struct Vault {
    balance: u64,
}

#[aggregate(id = VaultId, name = "vault")]
impl Vault {
    #[handle]
    fn open(_: &Open) -> Opened {
        Opened
    }

    #[handle]
    fn deposit(&self, cmd: &Deposit) -> Result<Deposited, VaultError> {
        if cmd.amount == 0 {
            return Err(VaultError::ZeroAmount);
        }
        Ok(Deposited { amount: cmd.amount })
    }

    #[handle]
    fn deposit_split(&self, cmd: &DepositSplit) -> Result<Vec<Deposited>, VaultError> {
        if cmd.parts.contains(&0) {
            return Err(VaultError::ZeroAmount);
        }
        Ok(cmd
            .parts
            .iter()
            .map(|&amount| Deposited { amount })
            .collect())
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {}

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

/// Per stream: (events, sum of deposits). What every read model holds and a replay computes.
pub type Totals = BTreeMap<String, (u64, u64)>;

/// Adds one event to `totals` (what each read model does per event).
pub fn fold(totals: &mut Totals, stream: &str, deposit: u64) {
    let entry = totals.entry(stream.to_owned()).or_default();
    entry.0 += 1;
    entry.1 += deposit;
}

/// The in-memory read model: [`Totals`] kept inline with the command bus.
#[derive(Default, Debug)]
pub struct MemoryTotals {
    totals: Totals,
}

/// Every stream's (events, deposits) as the in-memory model holds them.
#[derive(Query, Debug)]
#[query(response = Totals)]
pub struct AllTotals;

#[projection(name = "faults-memory-totals")]
impl MemoryTotals {
    fn on_opened(&mut self, _: &Opened, meta: &EventMeta) {
        fold(&mut self.totals, meta.stream.as_str(), 0);
    }

    fn on_deposited(&mut self, e: &Deposited, meta: &EventMeta) {
        fold(&mut self.totals, meta.stream.as_str(), e.amount);
    }

    #[query]
    fn all(&self, _: &AllTotals) -> Totals {
        self.totals.clone()
    }
}

/// The SQLite read model's table, in the store's file.
pub const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS fault_totals (
    stream TEXT PRIMARY KEY, events INTEGER NOT NULL, total INTEGER NOT NULL) STRICT";

const SQLITE_UPSERT: &str = "INSERT INTO fault_totals (stream, events, total) VALUES (?1, 1, ?2)
    ON CONFLICT (stream) DO UPDATE SET events = events + 1, total = total + excluded.total";

/// The durable read model on SQLite, exactly once through `SqliteSink`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SqliteTotals;

fn sql_amount(amount: u64) -> Result<i64, rusqlite::Error> {
    i64::try_from(amount).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

#[projection(name = "faults-sqlite-totals")]
impl SqliteTotals {
    fn on_opened(
        &mut self,
        _: &Opened,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        db.execute(SQLITE_UPSERT, (meta.stream.as_str(), 0i64))?;
        Ok(())
    }

    fn on_deposited(
        &mut self,
        e: &Deposited,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        db.execute(SQLITE_UPSERT, (meta.stream.as_str(), sql_amount(e.amount)?))?;
        Ok(())
    }
}

/// Reads the SQLite read model of the file at `path`.
pub fn sqlite_totals(path: &std::path::Path) -> rusqlite::Result<Totals> {
    let conn = rusqlite::Connection::open(path)?;
    let mut statement = conn.prepare("SELECT stream, events, total FROM fault_totals")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    rows.map(|row| row.map(|(stream, events, total)| (stream, (events as u64, total as u64))))
        .collect()
}

/// The durable read model on PostgreSQL, exactly once through `PgSink`: its statements are
/// rendered for one schema. Writes are staged (pipelined), the form the documentation
/// recommends for throughput.
#[derive(Clone, Debug)]
pub struct PgTotals {
    upsert: String,
}

impl PgTotals {
    /// The projection writing `"<schema>".fault_totals`.
    pub fn new(schema: &str) -> Self {
        PgTotals {
            upsert: format!(
                "INSERT INTO {}.fault_totals AS t (stream, events, total) VALUES ($1, 1, $2)
                 ON CONFLICT (stream) DO UPDATE SET events = t.events + 1, total = t.total + $2",
                quote(schema)
            ),
        }
    }

    /// The statement creating its table.
    pub fn create_table(schema: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {}.fault_totals (stream text PRIMARY KEY,
                 events bigint NOT NULL, total bigint NOT NULL)",
            quote(schema)
        )
    }

    /// The statement reading it back.
    pub fn select(schema: &str) -> String {
        format!(
            "SELECT stream, events, total FROM {}.fault_totals",
            quote(schema)
        )
    }
}

#[projection(name = "faults-pg-totals")]
impl PgTotals {
    async fn on_opened(
        &mut self,
        _: &Opened,
        meta: &EventMeta,
        db: &PgTx,
    ) -> Result<(), tokio_postgres::Error> {
        db.stage(&self.upsert, params![meta.stream.to_string(), 0i64]);
        Ok(())
    }

    async fn on_deposited(
        &mut self,
        e: &Deposited,
        meta: &EventMeta,
        db: &PgTx,
    ) -> Result<(), tokio_postgres::Error> {
        db.stage(
            &self.upsert,
            params![meta.stream.to_string(), e.amount as i64],
        );
        Ok(())
    }
}

/// `name` as a quoted SQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

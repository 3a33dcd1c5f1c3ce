//! The bank domain of the macro tests: events, commands, an aggregate with every handler form,
//! a projection with metadata and a fallible handler, queries.

use std::collections::HashMap;
use std::fmt;

use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Events

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.opened")]
pub struct AccountOpened {
    pub owner: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited")]
pub struct MoneyDeposited {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.withdrawn", version = 2)]
#[upcast(from = 1, with = withdrawn_v1_to_v2)]
pub struct MoneyWithdrawn {
    pub amount: u64,
    pub fee: u64,
}

/// Version 1 charged no fee.
fn withdrawn_v1_to_v2(mut v1: serde_json::Value) -> serde_json::Value {
    v1["fee"] = 0.into();
    v1
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.closed")]
pub struct AccountClosed;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.noted")]
pub enum Note {
    Text(String),
    Flag,
}

// ---------------------------------------------------------------------------------------------
// Commands

#[derive(Command, Clone, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct OpenAccount {
    #[id]
    pub account: u64,
    pub owner: String,
}

#[derive(Command, Debug, Deserialize)]
#[command(aggregate = Account, name = "deposit")]
pub struct Deposit {
    pub amount: u64,
    #[id]
    pub account: u64,
}

#[derive(Command, Clone, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct Withdraw {
    #[id]
    pub account: u64,
    pub amount: u64,
}

#[derive(Command, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct Close {
    #[id]
    pub account: u64,
}

/// Not `Deserialize`: cannot be dispatched by name.
#[derive(Command, Debug)]
#[command(aggregate = Account)]
pub struct Ping {
    #[id]
    pub account: u64,
}

#[derive(Command, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct Annotate {
    #[id]
    pub account: u64,
    pub text: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The aggregate

#[derive(Debug, PartialEq)]
pub enum BankError {
    ZeroAmount,
    Insufficient { balance: u64 },
}

impl fmt::Display for BankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankError::ZeroAmount => f.write_str("amount must not be zero"),
            BankError::Insufficient { balance } => write!(f, "insufficient funds: {balance}"),
        }
    }
}

impl std::error::Error for BankError {}

/// A service: the fee of each withdrawal.
pub struct FeePolicy {
    pub fee: u64,
}

#[derive(Default, Debug)]
pub struct Account {
    pub owner: String,
    pub balance: u64,
    pub closed: bool,
    pub notes: Vec<Note>,
}

#[aggregate(id = u64)]
impl Account {
    /// Creation, by value, sync, cannot fail.
    #[handle]
    fn open(cmd: OpenAccount) -> AccountOpened {
        AccountOpened { owner: cmd.owner }
    }

    /// Update, by reference, sync, fallible.
    #[handle]
    fn deposit(&self, cmd: &Deposit) -> Result<MoneyDeposited, BankError> {
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(MoneyDeposited { amount: cmd.amount })
    }

    /// Update, by value, async, with a service, returning the event enum in a `Vec`.
    #[handle]
    async fn withdraw(
        &self,
        cmd: Withdraw,
        fees: &FeePolicy,
    ) -> Result<Vec<AccountEvent>, BankError> {
        tokio::task::yield_now().await;
        let total = cmd.amount + fees.fee;
        if total > self.balance {
            return Err(BankError::Insufficient {
                balance: self.balance,
            });
        }
        Ok(vec![
            MoneyWithdrawn {
                amount: cmd.amount,
                fee: fees.fee,
            }
            .into(),
        ])
    }

    /// A tuple with an `Option` inside.
    #[handle]
    fn close(&self, _: &Close) -> (Option<MoneyWithdrawn>, AccountClosed) {
        let payout = (self.balance > 0).then_some(MoneyWithdrawn {
            amount: self.balance,
            fee: 0,
        });
        (payout, AccountClosed)
    }

    /// Nothing happens: `()` is written out (and clippy's `unused_unit` stays quiet).
    #[handle]
    fn ping(&self, _: &Ping) -> () {}

    /// An `Option` of one event.
    #[handle]
    fn annotate(&self, cmd: &Annotate) -> Option<Note> {
        cmd.text.clone().map(Note::Text)
    }

    #[apply]
    fn opened(&mut self, e: &AccountOpened) {
        self.owner.clone_from(&e.owner);
    }

    #[apply]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn withdrawn(&mut self, e: &MoneyWithdrawn) {
        self.balance -= e.amount + e.fee;
    }

    #[apply]
    fn closed(&mut self, _: &AccountClosed) {
        self.closed = true;
    }

    #[apply]
    fn noted(&mut self, note: &Note) {
        self.notes.push(note.clone());
    }

    /// An ordinary method, kept as written.
    pub fn is_rich(&self) -> bool {
        self.balance >= 1000
    }
}

// ---------------------------------------------------------------------------------------------
// The read side

#[derive(Query)]
#[query(response = Option<u64>)]
pub struct GetBalance {
    pub account: u64,
}

#[derive(Query)]
#[query(response = Vec<(String, String)>)]
pub struct Owners;

#[derive(Debug, PartialEq)]
pub struct Overdrawn {
    pub stream: String,
}

impl fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` would be overdrawn", self.stream)
    }
}

impl std::error::Error for Overdrawn {}

#[derive(Default)]
pub struct Balances {
    by_stream: HashMap<String, u64>,
    owners: Vec<(String, String)>,
}

#[projection(name = "balances")]
impl Balances {
    fn on_opened(&mut self, e: &AccountOpened, meta: &EventMeta) {
        self.owners.push((meta.stream.to_string(), e.owner.clone()));
        self.by_stream.insert(meta.stream.to_string(), 0);
    }

    fn on_deposited(&mut self, e: &MoneyDeposited, meta: &eventweave_core::EventMeta) {
        *self.by_stream.entry(meta.stream.to_string()).or_default() += e.amount;
    }

    fn on_withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta) -> Result<(), Overdrawn> {
        let stream = meta.stream.to_string();
        let balance = self.by_stream.entry(stream.clone()).or_default();
        *balance = balance
            .checked_sub(e.amount + e.fee)
            .ok_or(Overdrawn { stream })?;
        Ok(())
    }

    #[query]
    fn balance(&self, q: &GetBalance) -> Option<u64> {
        self.by_stream
            .get(&format!("account-{}", q.account))
            .copied()
    }

    #[query]
    fn owners(&self, _: &Owners) -> Vec<(String, String)> {
        let mut owners = self.owners.clone();
        owners.sort();
        owners
    }

    /// Not a handler: `&self` without `#[query]`.
    pub fn total(&self) -> u64 {
        self.by_stream.values().sum()
    }
}

/// Counts closed accounts; not `Default`, so not discoverable.
pub struct ClosedCount {
    closed: u64,
}

#[derive(Query)]
#[query(response = u64)]
pub struct HowManyClosed;

#[projection(discover = false)]
impl ClosedCount {
    fn on_closed(&mut self, _: &AccountClosed) {
        self.closed += 1;
    }

    #[query]
    fn count(&self, _: &HowManyClosed) -> u64 {
        self.closed
    }
}

/// An application with the bank's service and projections.
pub async fn app() -> Cqrs<MemoryStore> {
    Cqrs::builder(MemoryStore::new())
        .service(FeePolicy { fee: 1 })
        .projection(Balances::default())
        .projection(ClosedCount { closed: 0 })
        .build()
        .await
        .expect("the wiring is consistent")
}

//! The bank domain of the example (`examples/bank/src/account.rs`), written for the peer
//! (`cqrs-es` 0.4) with the same business rules for the commands the workloads send, so both
//! frameworks run the same workload. Only the benchmark uses it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope, Query};
use serde::{Deserialize, Serialize};

/// The peer's command enum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EsCommand {
    /// Opens the account.
    Open { owner: String },
    /// Puts money in.
    Deposit { amount: u64 },
    /// Takes money out.
    Withdraw { amount: u64 },
    /// Closes an empty account.
    Close,
}

/// The peer's event enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EsEvent {
    /// `account.opened`.
    Opened { owner: String },
    /// `account.deposited`.
    Deposited { amount: u64 },
    /// `account.withdrawn`.
    Withdrawn { amount: u64 },
    /// `account.closed`.
    Closed,
}

impl DomainEvent for EsEvent {
    fn event_type(&self) -> String {
        match self {
            EsEvent::Opened { .. } => "account.opened",
            EsEvent::Deposited { .. } => "account.deposited",
            EsEvent::Withdrawn { .. } => "account.withdrawn",
            EsEvent::Closed => "account.closed",
        }
        .to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The same rejections as `bank::BankError` for these commands.
#[derive(Debug, PartialEq)]
pub enum EsError {
    /// Amounts must be positive.
    ZeroAmount,
    /// The balance does not cover the amount.
    InsufficientFunds,
    /// Above the bank's single-withdrawal limit.
    OverLimit,
    /// The account is closed.
    Closed,
    /// Only an empty account can be closed.
    NotEmpty,
    /// Opening an account that exists.
    AlreadyOpen,
    /// A command on an account that was never opened.
    NotOpen,
}

impl fmt::Display for EsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for EsError {}

/// The bank's policy, injected into the withdrawal handler (as `bank::Limits`).
#[derive(Debug, Clone)]
pub struct EsLimits {
    /// Largest single withdrawal, in cents.
    pub max_withdrawal: u64,
}

/// The peer's account aggregate.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EsAccount {
    opened: bool,
    closed: bool,
    balance: u64,
}

impl EsAccount {
    fn check_open_and_positive(&self, amount: u64) -> Result<(), EsError> {
        if !self.opened {
            return Err(EsError::NotOpen);
        }
        if self.closed {
            return Err(EsError::Closed);
        }
        if amount == 0 {
            return Err(EsError::ZeroAmount);
        }
        Ok(())
    }
}

#[async_trait]
impl Aggregate for EsAccount {
    type Command = EsCommand;
    type Event = EsEvent;
    type Error = EsError;
    type Services = EsLimits;

    fn aggregate_type() -> String {
        "account".to_owned()
    }

    async fn handle(&self, command: EsCommand, limits: &EsLimits) -> Result<Vec<EsEvent>, EsError> {
        match command {
            EsCommand::Open { owner } => {
                if self.opened {
                    return Err(EsError::AlreadyOpen);
                }
                Ok(vec![EsEvent::Opened { owner }])
            }
            EsCommand::Deposit { amount } => {
                self.check_open_and_positive(amount)?;
                Ok(vec![EsEvent::Deposited { amount }])
            }
            EsCommand::Withdraw { amount } => {
                if amount > limits.max_withdrawal {
                    return Err(EsError::OverLimit);
                }
                self.check_open_and_positive(amount)?;
                if amount > self.balance {
                    return Err(EsError::InsufficientFunds);
                }
                Ok(vec![EsEvent::Withdrawn { amount }])
            }
            EsCommand::Close => {
                if !self.opened {
                    return Err(EsError::NotOpen);
                }
                if self.closed {
                    return Err(EsError::Closed);
                }
                if self.balance > 0 {
                    return Err(EsError::NotEmpty);
                }
                Ok(vec![EsEvent::Closed])
            }
        }
    }

    fn apply(&mut self, event: EsEvent) {
        match event {
            EsEvent::Opened { .. } => self.opened = true,
            EsEvent::Deposited { amount } => self.balance += amount,
            EsEvent::Withdrawn { amount } => self.balance = self.balance.saturating_sub(amount),
            EsEvent::Closed => self.closed = true,
        }
    }
}

/// The peer's balances projection: the same read model as `bank::Balances`, keyed by the
/// aggregate id. `Query::dispatch` takes `&self` and the framework owns its queries, so the map
/// is shared through an `Arc`: keep a clone to read the balances.
#[derive(Clone, Default)]
pub struct EsBalances {
    by_account: Arc<Mutex<HashMap<String, u64>>>,
}

impl EsBalances {
    /// The balance of one account.
    pub fn balance(&self, account: &str) -> Option<u64> {
        self.by_account.lock().ok()?.get(account).copied()
    }
}

#[async_trait]
impl Query<EsAccount> for EsBalances {
    async fn dispatch(&self, aggregate_id: &str, events: &[EventEnvelope<EsAccount>]) {
        let mut balances = self.by_account.lock().expect("not poisoned");
        for envelope in events {
            match &envelope.payload {
                EsEvent::Opened { .. } => {
                    balances.insert(aggregate_id.to_owned(), 0);
                }
                EsEvent::Deposited { amount } => {
                    *balances.entry(aggregate_id.to_owned()).or_default() += amount;
                }
                EsEvent::Withdrawn { amount } => {
                    let balance = balances.entry(aggregate_id.to_owned()).or_default();
                    *balance = balance.saturating_sub(*amount);
                }
                EsEvent::Closed => {}
            }
        }
    }
}

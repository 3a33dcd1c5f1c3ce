//! The `Account` aggregate: its events, commands, errors and rules.

use std::fmt;

use eventweave_core::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Identifies an account.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct AccountId(pub u64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The tag text of an account id (`account:42`): every account event carries it, so a
/// decision reads accounts by tag (`transfer_decision.rs`).
impl eventweave_core::TagValue for AccountId {
    fn tag_text(&self) -> String {
        self.0.to_string()
    }
}

/// Reads what `Display` writes: how `EventMeta::aggregate_id` gets an account's id back from
/// its stream name.
impl std::str::FromStr for AccountId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(AccountId)
    }
}

/// Identifies one transfer across the two accounts it touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct TransferId(pub u64);

// ---- events ----------------------------------------------------------------------------------

/// An account was opened.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[event(name = "account.opened")]
pub struct AccountOpened {
    /// Who owns it.
    pub owner: String,
}

/// Money came in.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[event(name = "account.deposited")]
pub struct MoneyDeposited {
    /// Amount in cents.
    pub amount: u64,
}

/// Money went out.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[event(name = "account.withdrawn")]
pub struct MoneyWithdrawn {
    /// Amount in cents.
    pub amount: u64,
}

/// The account was closed; it accepts nothing more.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[event(name = "account.closed")]
pub struct AccountClosed;

/// Money left this account towards another one (first half of a transfer).
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[event(name = "transfer.sent")]
pub struct TransferSent {
    /// The transfer.
    pub transfer: TransferId,
    /// The receiving account.
    pub to: AccountId,
    /// Amount in cents.
    pub amount: u64,
}

/// Money arrived from another account (second half of a transfer).
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[event(name = "transfer.received")]
pub struct TransferReceived {
    /// The transfer.
    pub transfer: TransferId,
    /// The sending account.
    pub from: AccountId,
    /// Amount in cents.
    pub amount: u64,
}

/// A transfer that could not be delivered came back.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[event(name = "transfer.refunded")]
pub struct TransferRefunded {
    /// The transfer.
    pub transfer: TransferId,
    /// Amount in cents.
    pub amount: u64,
}

// ---- commands --------------------------------------------------------------------------------

/// Opens a new account.
#[derive(Command, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[command(aggregate = Account)]
pub struct OpenAccount {
    /// The new account.
    #[id]
    pub account: AccountId,
    /// Its owner.
    pub owner: String,
}

/// Puts money in.
#[derive(Command, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[command(aggregate = Account)]
pub struct Deposit {
    /// The account.
    #[id]
    pub account: AccountId,
    /// Amount in cents.
    pub amount: u64,
}

/// Takes money out, within the bank's limits.
#[derive(Command, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[command(aggregate = Account)]
pub struct Withdraw {
    /// The account.
    #[id]
    pub account: AccountId,
    /// Amount in cents.
    pub amount: u64,
}

/// Closes an empty account.
#[derive(Command, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[command(aggregate = Account)]
pub struct CloseAccount {
    /// The account.
    #[id]
    pub account: AccountId,
}

/// Debits the sending account of a transfer.
#[derive(Command, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[command(aggregate = Account)]
pub struct SendTransfer {
    /// The sending account.
    #[id]
    pub account: AccountId,
    /// The transfer.
    pub transfer: TransferId,
    /// The receiving account.
    pub to: AccountId,
    /// Amount in cents.
    pub amount: u64,
}

/// Credits the receiving account of a transfer.
#[derive(Command, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[command(aggregate = Account)]
pub struct ReceiveTransfer {
    /// The receiving account.
    #[id]
    pub account: AccountId,
    /// The transfer.
    pub transfer: TransferId,
    /// The sending account.
    pub from: AccountId,
    /// Amount in cents.
    pub amount: u64,
}

/// Gives the sender back the money of a transfer that could not be delivered.
#[derive(Command, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[command(aggregate = Account)]
pub struct RefundTransfer {
    /// The sending account.
    #[id]
    pub account: AccountId,
    /// The transfer.
    pub transfer: TransferId,
    /// Amount in cents.
    pub amount: u64,
}

// ---- rules -----------------------------------------------------------------------------------

/// Why the bank refuses a command. Handler errors implement `std::error::Error`; `thiserror`
/// writes the `Display` and `Error` impls from the messages below. `Serialize` lets the HTTP
/// service put the error's data into its `rejected` problems (`{"kind": "insufficient_funds",
/// "balance": …}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BankError {
    /// Amounts must be positive.
    #[error("the amount must be positive")]
    ZeroAmount,
    /// The balance does not cover the amount.
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds {
        /// Current balance.
        balance: u64,
        /// What was asked.
        requested: u64,
    },
    /// Above the bank's single-withdrawal limit.
    #[error("above the withdrawal limit of {limit}")]
    OverLimit {
        /// The limit.
        limit: u64,
    },
    /// The account is closed.
    #[error("the account is closed")]
    Closed,
    /// Only an empty account can be closed.
    #[error("the account still holds {balance} and cannot be closed")]
    NotEmpty {
        /// Current balance.
        balance: u64,
    },
    /// A transfer to the same account.
    #[error("cannot transfer to the same account")]
    SameAccount,
    /// No account was opened under this id (a decision reads accounts that may not exist).
    #[error("account {0} does not exist")]
    NoSuchAccount(AccountId),
}

/// The bank's policy, injected into the withdrawal handler.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest single withdrawal, in cents.
    pub max_withdrawal: u64,
}

/// A bank account.
#[derive(Default, Debug)]
pub struct Account {
    opened: bool,
    closed: bool,
    balance: u64,
}

impl Account {
    /// The current balance in cents.
    pub fn balance(&self) -> u64 {
        self.balance
    }

    /// Whether the account was opened and is not closed.
    pub fn is_open(&self) -> bool {
        self.opened && !self.closed
    }

    /// Whether the account was opened (and maybe closed since).
    pub fn exists(&self) -> bool {
        self.opened
    }

    /// Whether the account was closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn check_open_and_positive(&self, amount: u64) -> Result<(), BankError> {
        if self.closed {
            return Err(BankError::Closed);
        }
        if amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(())
    }

    fn check_covered(&self, amount: u64) -> Result<(), BankError> {
        self.check_open_and_positive(amount)?;
        if amount > self.balance {
            return Err(BankError::InsufficientFunds {
                balance: self.balance,
                requested: amount,
            });
        }
        Ok(())
    }
}

// `tag`: every event carries `account:<id>`, so decisions read an account by tag (the
// one-step transfer in `transfer_decision.rs`).
#[aggregate(id = AccountId, name = "account", tag = "account")]
impl Account {
    #[handle]
    fn open(cmd: OpenAccount) -> AccountOpened {
        AccountOpened { owner: cmd.owner }
    }

    #[handle]
    fn deposit(&self, cmd: &Deposit) -> Result<MoneyDeposited, BankError> {
        self.check_open_and_positive(cmd.amount)?;
        Ok(MoneyDeposited { amount: cmd.amount })
    }

    #[handle]
    async fn withdraw(&self, cmd: &Withdraw, limits: &Limits) -> Result<MoneyWithdrawn, BankError> {
        if cmd.amount > limits.max_withdrawal {
            return Err(BankError::OverLimit {
                limit: limits.max_withdrawal,
            });
        }
        self.check_covered(cmd.amount)?;
        Ok(MoneyWithdrawn { amount: cmd.amount })
    }

    #[handle]
    fn close(&self, _: &CloseAccount) -> Result<AccountClosed, BankError> {
        if self.closed {
            return Err(BankError::Closed);
        }
        if self.balance > 0 {
            return Err(BankError::NotEmpty {
                balance: self.balance,
            });
        }
        Ok(AccountClosed)
    }

    #[handle]
    fn send_transfer(&self, cmd: &SendTransfer) -> Result<TransferSent, BankError> {
        if cmd.to == cmd.account {
            return Err(BankError::SameAccount);
        }
        self.check_covered(cmd.amount)?;
        Ok(TransferSent {
            transfer: cmd.transfer,
            to: cmd.to,
            amount: cmd.amount,
        })
    }

    #[handle]
    fn receive_transfer(&self, cmd: &ReceiveTransfer) -> Result<TransferReceived, BankError> {
        self.check_open_and_positive(cmd.amount)?;
        Ok(TransferReceived {
            transfer: cmd.transfer,
            from: cmd.from,
            amount: cmd.amount,
        })
    }

    #[handle]
    fn refund_transfer(&self, cmd: &RefundTransfer) -> TransferRefunded {
        // A refund is owed even to a closed account: the money left it.
        TransferRefunded {
            transfer: cmd.transfer,
            amount: cmd.amount,
        }
    }

    #[apply]
    fn opened(&mut self, _: &AccountOpened) {
        self.opened = true;
    }

    #[apply]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn withdrawn(&mut self, e: &MoneyWithdrawn) {
        self.balance = self.balance.saturating_sub(e.amount);
    }

    #[apply]
    fn closed(&mut self, _: &AccountClosed) {
        self.closed = true;
    }

    #[apply]
    fn sent(&mut self, e: &TransferSent) {
        self.balance = self.balance.saturating_sub(e.amount);
    }

    #[apply]
    fn received(&mut self, e: &TransferReceived) {
        self.balance += e.amount;
    }

    #[apply]
    fn refunded(&mut self, e: &TransferRefunded) {
        self.balance += e.amount;
    }
}

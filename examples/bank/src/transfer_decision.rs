//! The transfer as **one decision over two accounts**, beside the process manager
//! (`transfer_process.rs`) and the orchestrated version (`transfer.rs`).
//!
//! The decision reads both accounts by their `account` tag (every account event carries it:
//! `#[aggregate(tag = "account")]`), checks the rules on both, and writes the debit into the
//! sender's stream and the credit into the receiver's in one atomic append, under the
//! condition that neither account changed since it read them. There is no intermediate state
//! (money sent but not yet received), no compensation, and no refund path: either both halves
//! are recorded or neither. The accounts stay aggregates: their own commands (deposit,
//! withdraw) check their stream version as before, and a decision's write moves that version
//! on, so a command decided on an older state is decided again.
//!
//! When to choose which:
//! - **One decision** when the rule is "atomically, on the current state of both accounts",
//!   both accounts are in the same store, and a transfer may wait for a retry when either
//!   account is busy (the condition fails if either account is written meanwhile, so a
//!   transfer involving a very busy account retries more).
//! - **The process manager** when the two sides may live in different stores or services,
//!   when each step must be visible on its own (money in flight, a refund path the business
//!   wants recorded), or when a side may take long to answer (a step can wait for a human or a
//!   partner system; a decision cannot wait inside its condition).

use eventweave_core::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::account::{Account, AccountId, BankError, MoneyDeposited, MoneyWithdrawn};

/// Moves `amount` from `from` to `to` in one atomic decision.
#[derive(Command, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[command(decision = Transfers)]
pub struct TransferFunds {
    /// The sending account (read by its `account` tag).
    #[tag(key = "account")]
    pub from: AccountId,
    /// The receiving account.
    #[tag(key = "account")]
    pub to: AccountId,
    /// Amount in cents.
    pub amount: u64,
}

/// The decisions that span accounts.
pub struct Transfers;

#[decision(name = "transfers")]
impl Transfers {
    /// Both accounts are states of the decision, each filled from its own field of the
    /// command; both events go into the accounts' own streams.
    // The return type is written out (not aliased): the macro reads the emitted event types
    // from it to check that the decision's states read them back.
    #[allow(clippy::type_complexity)]
    #[handle]
    fn transfer(
        cmd: &TransferFunds,
        #[tags(account = from)] from: &Account,
        #[tags(account = to)] to: &Account,
    ) -> Result<
        (
            InAggregate<Account, MoneyWithdrawn>,
            InAggregate<Account, MoneyDeposited>,
        ),
        BankError,
    > {
        if cmd.from == cmd.to {
            return Err(BankError::SameAccount);
        }
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        for (id, account) in [(cmd.from, from), (cmd.to, to)] {
            if !account.exists() {
                return Err(BankError::NoSuchAccount(id));
            }
        }
        if from.is_closed() || to.is_closed() {
            return Err(BankError::Closed);
        }
        if from.balance() < cmd.amount {
            return Err(BankError::InsufficientFunds {
                balance: from.balance(),
                requested: cmd.amount,
            });
        }
        Ok((
            InAggregate::new(cmd.from, MoneyWithdrawn { amount: cmd.amount }),
            InAggregate::new(cmd.to, MoneyDeposited { amount: cmd.amount }),
        ))
    }
}

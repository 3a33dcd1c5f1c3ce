//! The same balances read model kept in memory, answering typed queries (`app.query`).
//!
//! The example binary does not use it: its balances live in the SQL table of
//! [`crate::balances`]. It stays for two reasons: the benchmarks (`cqrs-bench`) attach it to
//! measure the command path with an in-process projection, and it shows the in-memory form of a
//! read model beside the durable one: state in a `HashMap`, `#[query]` methods, rebuilt from the
//! first event at every start. Its name differs from the durable projection's (`balances`),
//! since projection names are unique in a program.

use std::collections::HashMap;

use eventweave_core::prelude::*;

use crate::account::*;
use crate::balances::AccountSummary;

/// Balances of every account, in memory.
#[derive(Default, Debug)]
pub struct Balances {
    by_account: HashMap<AccountId, AccountSummary>,
}

/// The balance of one account (`None` if it does not exist).
#[derive(Query, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[query(response = Option<u64>)]
pub struct GetBalance {
    /// The account.
    pub account: AccountId,
}

/// Every account, ordered by id.
#[derive(Query, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[query(response = Vec<AccountSummary>)]
pub struct ListAccounts;

/// The sum of all balances (money is neither created nor lost by transfers).
#[derive(Query, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[query(response = u64)]
pub struct TotalHoldings;

#[projection(name = "balances-in-memory")]
impl Balances {
    fn on_opened(&mut self, e: &AccountOpened, meta: &EventMeta) {
        // The account's id, typed, from the event's stream (`account-7`).
        if let Ok(account) = meta.aggregate_id(e) {
            self.by_account.insert(
                account,
                AccountSummary {
                    account,
                    owner: e.owner.clone(),
                    balance: 0,
                    open: true,
                },
            );
        }
    }

    fn on_deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta) {
        self.change(meta.aggregate_id(e).ok(), |line| line.balance += e.amount);
    }

    fn on_withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta) {
        self.change(meta.aggregate_id(e).ok(), |line| {
            line.balance = line.balance.saturating_sub(e.amount)
        });
    }

    fn on_closed(&mut self, e: &AccountClosed, meta: &EventMeta) {
        self.change(meta.aggregate_id(e).ok(), |line| line.open = false);
    }

    fn on_sent(&mut self, e: &TransferSent, meta: &EventMeta) {
        self.change(meta.aggregate_id(e).ok(), |line| {
            line.balance = line.balance.saturating_sub(e.amount)
        });
    }

    fn on_received(&mut self, e: &TransferReceived, meta: &EventMeta) {
        self.change(meta.aggregate_id(e).ok(), |line| line.balance += e.amount);
    }

    fn on_refunded(&mut self, e: &TransferRefunded, meta: &EventMeta) {
        self.change(meta.aggregate_id(e).ok(), |line| line.balance += e.amount);
    }

    #[query]
    fn balance(&self, q: &GetBalance) -> Option<u64> {
        self.by_account.get(&q.account).map(|line| line.balance)
    }

    #[query]
    fn list(&self, _: &ListAccounts) -> Vec<AccountSummary> {
        let mut all: Vec<_> = self.by_account.values().cloned().collect();
        all.sort_by_key(|line| line.account);
        all
    }

    #[query]
    fn total(&self, _: &TotalHoldings) -> u64 {
        self.by_account.values().map(|line| line.balance).sum()
    }
}

impl Balances {
    /// Changes the account's line; events of accounts without one (or outside account
    /// streams) change nothing.
    fn change(&mut self, account: Option<AccountId>, f: impl FnOnce(&mut AccountSummary)) {
        if let Some(line) = account.and_then(|a| self.by_account.get_mut(&a)) {
            f(line);
        }
    }
}

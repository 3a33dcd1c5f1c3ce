//! The balances read model: one line per account, answering balance and listing queries.

use std::collections::HashMap;

use cqrs_core::prelude::*;

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

/// Balances of every account.
#[derive(Default, Debug)]
pub struct Balances {
    by_account: HashMap<AccountId, AccountSummary>,
}

/// The balance of one account (`None` if it does not exist).
#[derive(Query, Debug)]
#[query(response = Option<u64>)]
pub struct GetBalance {
    /// The account.
    pub account: AccountId,
}

/// Every account, ordered by id.
#[derive(Query, Debug)]
#[query(response = Vec<AccountSummary>)]
pub struct ListAccounts;

/// The sum of all balances (money is neither created nor lost by transfers).
#[derive(Query, Debug)]
#[query(response = u64)]
pub struct TotalHoldings;

fn account_of(meta: &EventMeta) -> Option<AccountId> {
    meta.stream
        .as_str()
        .strip_prefix("account-")?
        .parse()
        .ok()
        .map(AccountId)
}

#[projection(name = "balances")]
impl Balances {
    fn on_opened(&mut self, e: &AccountOpened, meta: &EventMeta) {
        if let Some(account) = account_of(meta) {
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
        self.change(meta, |line| line.balance += e.amount);
    }

    fn on_withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta) {
        self.change(meta, |line| {
            line.balance = line.balance.saturating_sub(e.amount)
        });
    }

    fn on_closed(&mut self, _: &AccountClosed, meta: &EventMeta) {
        self.change(meta, |line| line.open = false);
    }

    fn on_sent(&mut self, e: &TransferSent, meta: &EventMeta) {
        self.change(meta, |line| {
            line.balance = line.balance.saturating_sub(e.amount)
        });
    }

    fn on_received(&mut self, e: &TransferReceived, meta: &EventMeta) {
        self.change(meta, |line| line.balance += e.amount);
    }

    fn on_refunded(&mut self, e: &TransferRefunded, meta: &EventMeta) {
        self.change(meta, |line| line.balance += e.amount);
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
    fn change(&mut self, meta: &EventMeta, f: impl FnOnce(&mut AccountSummary)) {
        if let Some(line) = account_of(meta).and_then(|a| self.by_account.get_mut(&a)) {
            f(line);
        }
    }
}

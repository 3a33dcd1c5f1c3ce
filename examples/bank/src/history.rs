//! The account-history read model: a statement line per event, per account.

use std::collections::HashMap;

use eventweave_core::prelude::*;

use crate::account::*;

/// One line of an account statement.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct StatementLine {
    /// The event's version in the account's stream.
    pub version: u64,
    /// What happened, in words.
    pub text: String,
    /// Balance after it, in cents.
    pub balance: u64,
}

/// Statements of every account.
#[derive(Default, Debug)]
pub struct AccountHistory {
    lines: HashMap<String, Vec<StatementLine>>,
}

/// The statement of one account, oldest first.
#[derive(Query, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[query(response = Vec<StatementLine>)]
pub struct GetStatement {
    /// The account.
    pub account: AccountId,
}

#[projection(name = "account-history")]
impl AccountHistory {
    fn on_opened(&mut self, e: &AccountOpened, meta: &EventMeta) {
        self.line(meta, 0, format!("opened for {}", e.owner));
    }

    fn on_deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta) {
        self.line(meta, e.amount as i128, format!("deposit of {}", e.amount));
    }

    fn on_withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta) {
        self.line(
            meta,
            -(e.amount as i128),
            format!("withdrawal of {}", e.amount),
        );
    }

    fn on_closed(&mut self, _: &AccountClosed, meta: &EventMeta) {
        self.line(meta, 0, "closed".to_owned());
    }

    fn on_sent(&mut self, e: &TransferSent, meta: &EventMeta) {
        let text = format!(
            "transfer #{} of {} to account {}",
            e.transfer.0, e.amount, e.to
        );
        self.line(meta, -(e.amount as i128), text);
    }

    fn on_received(&mut self, e: &TransferReceived, meta: &EventMeta) {
        let text = format!(
            "transfer #{} of {} from account {}",
            e.transfer.0, e.amount, e.from
        );
        self.line(meta, e.amount as i128, text);
    }

    fn on_refunded(&mut self, e: &TransferRefunded, meta: &EventMeta) {
        let text = format!("refund of transfer #{} ({})", e.transfer.0, e.amount);
        self.line(meta, e.amount as i128, text);
    }

    #[query]
    fn statement(&self, q: &GetStatement) -> Vec<StatementLine> {
        let stream = format!("account-{}", q.account);
        self.lines.get(&stream).cloned().unwrap_or_default()
    }
}

impl AccountHistory {
    fn line(&mut self, meta: &EventMeta, delta: i128, text: String) {
        let lines = self.lines.entry(meta.stream.to_string()).or_default();
        let before = lines.last().map_or(0, |l| l.balance) as i128;
        let balance = (before + delta).max(0) as u64;
        lines.push(StatementLine {
            version: meta.version,
            text,
            balance,
        });
    }
}

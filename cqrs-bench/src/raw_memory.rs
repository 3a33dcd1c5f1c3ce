//! The hand-written baseline of the in-memory rows: the work the framework promises per command,
//! written directly with no framework, on the same sizes. Find the account's state, decide
//! (open: the account must not exist; deposit: it must be open and the amount positive),
//! JSON-encode the event, wrap it in an envelope (UUIDv7 id, timestamp, stream, version, global
//! position, name, version of the schema), append it to a log, apply it to the state and update
//! one projection (balances per account). One thread, one command after the other, as ours.
//!
//! What it leaves out is what the framework adds on top: typed command dispatch, the
//! expected-version check against the store, idempotency of event ids, the store's input
//! contract, the read side's ordering and the cache's eviction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bank::{AccountOpened, MoneyDeposited};
use eventweave_core::{Uuid, new_id};

use crate::memory::{Run, Sizes};

/// One account's state and its stream.
struct Account {
    stream: Arc<str>,
    version: u64,
    open: bool,
    balance: u64,
}

/// One stored event.
#[allow(dead_code)] // Written and kept, as a store keeps them; never read back here.
struct Record {
    event_id: Uuid,
    stream: Arc<str>,
    version: u64,
    position: u64,
    recorded_at: SystemTime,
    name: &'static str,
    schema_version: u32,
    payload: String,
}

#[derive(Default)]
struct Raw {
    accounts: HashMap<u64, Account>,
    log: Vec<Record>,
    /// The projection: balance per account.
    balances: HashMap<u64, u64>,
}

impl Raw {
    fn record(&mut self, stream: Arc<str>, version: u64, name: &'static str, payload: String) {
        let position = self.log.len() as u64 + 1;
        self.log.push(Record {
            event_id: new_id(),
            stream,
            version,
            position,
            recorded_at: SystemTime::now(),
            name,
            schema_version: 1,
            payload,
        });
    }

    fn open(&mut self, id: u64, owner: &str) {
        assert!(!self.accounts.contains_key(&id), "already open");
        let event = AccountOpened {
            owner: owner.to_owned(),
        };
        let payload = serde_json::to_string(&event).expect("encode");
        let stream: Arc<str> = Arc::from(format!("account-{id}"));
        self.record(Arc::clone(&stream), 1, "account.opened", payload);
        self.accounts.insert(
            id,
            Account {
                stream,
                version: 1,
                open: true,
                balance: 0,
            },
        );
        self.balances.insert(id, 0);
    }

    fn deposit(&mut self, id: u64, amount: u64) {
        let account = self.accounts.get_mut(&id).expect("open");
        assert!(account.open && amount > 0, "refused");
        let event = MoneyDeposited { amount };
        let payload = serde_json::to_string(&event).expect("encode");
        let stream = Arc::clone(&account.stream);
        let version = account.version + 1;
        account.version = version;
        account.balance += event.amount;
        self.record(stream, version, "account.deposited", payload);
        *self.balances.get_mut(&id).expect("projected") += event.amount;
    }
}

/// (a) by hand: `sizes.accounts` accounts, each opened then deposited into.
pub fn many_accounts(sizes: Sizes) -> Run {
    let mut raw = Raw::default();
    let deposits = sizes.commands_per_account - 1;
    let started = Instant::now();
    for id in 0..sizes.accounts {
        raw.open(id, "");
        for _ in 0..deposits {
            raw.deposit(id, 1);
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(raw.balances[&(sizes.accounts - 1)], deposits);
    assert_eq!(
        raw.log.len() as u64,
        sizes.accounts * sizes.commands_per_account
    );
    Run {
        commands: sizes.accounts * sizes.commands_per_account,
        elapsed,
    }
}

/// (b) by hand: one account opened, then `sizes.long_stream` deposits (only those timed).
pub fn long_stream(sizes: Sizes) -> Run {
    let mut raw = Raw::default();
    raw.open(1, "");
    let started = Instant::now();
    for _ in 0..sizes.long_stream {
        raw.deposit(1, 1);
    }
    let elapsed = started.elapsed();
    assert_eq!(raw.balances[&1], sizes.long_stream);
    assert_eq!(raw.accounts[&1].balance, sizes.long_stream);
    Run {
        commands: sizes.long_stream,
        elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_does_the_work_and_checks_it() {
        let run = many_accounts(Sizes::QUICK);
        assert_eq!(run.commands, 100);
        assert_eq!(long_stream(Sizes::QUICK).commands, 50);
    }
}

//! The balances every account should have, computed from the stored events alone (not through
//! the projection's code), to check the SQL table against.

use std::collections::BTreeMap;

use bank::*;
use eventweave_core::{Event, EventStore, Position};
use serde::de::DeserializeOwned;

fn decode<E: DeserializeOwned>(payload: &str) -> E {
    serde_json::from_str(payload).expect("stored bank events decode")
}

/// Folds every stored event of `store` into one summary per account, ordered by id.
pub async fn balances_from_events<S: EventStore>(store: &S) -> Vec<AccountSummary> {
    let mut accounts = BTreeMap::<u64, AccountSummary>::new();
    for event in store.read_all(Position(1), usize::MAX).await.unwrap() {
        let Some(id) = event.meta.stream.as_str().strip_prefix("account-") else {
            continue;
        };
        let id: u64 = id.parse().unwrap();
        let payload = event.payload.as_str();
        let name = &*event.meta.event_name;
        if name == AccountOpened::NAME {
            let opened: AccountOpened = decode(payload);
            accounts.insert(
                id,
                AccountSummary {
                    account: AccountId(id),
                    owner: opened.owner,
                    balance: 0,
                    open: true,
                },
            );
            continue;
        }
        let line = accounts.get_mut(&id).expect("events follow the opening");
        let delta: i128 = if name == MoneyDeposited::NAME {
            decode::<MoneyDeposited>(payload).amount.into()
        } else if name == MoneyWithdrawn::NAME {
            -i128::from(decode::<MoneyWithdrawn>(payload).amount)
        } else if name == TransferSent::NAME {
            -i128::from(decode::<TransferSent>(payload).amount)
        } else if name == TransferReceived::NAME {
            decode::<TransferReceived>(payload).amount.into()
        } else if name == TransferRefunded::NAME {
            decode::<TransferRefunded>(payload).amount.into()
        } else if name == AccountClosed::NAME {
            line.open = false;
            0
        } else {
            panic!("unexpected event {name}")
        };
        line.balance = u64::try_from(i128::from(line.balance) + delta).expect("no overdraft");
    }
    accounts.into_values().collect()
}

//! The bank the transfer tests start from: an application over a fresh in-memory store whose
//! accounts 1 (holding 100) and 3 (closed) exist, with an optional account 2, so that a
//! transfer from 1 to 2 is credited and one from 1 to 3 is refused and refunded.

use bank::*;
use eventweave_core::{Cqrs, MemoryStore};

/// The withdrawal limit of every transfer test's bank: higher than any amount they move.
pub const MAX_WITHDRAWAL: u64 = 1_000;

/// Opens the accounts of `owners` (id, owner), deposits 100 into account 1 and closes
/// account 3. `owners` must name accounts 1 and 3.
pub async fn transfer_bank(owners: &[(u64, &str)]) -> (MemoryStore, Cqrs<MemoryStore>) {
    let store = MemoryStore::new();
    let app = Cqrs::builder(store.clone())
        .service(Limits {
            max_withdrawal: MAX_WITHDRAWAL,
        })
        .build()
        .await
        .unwrap();
    for &(account, owner) in owners {
        app.execute(OpenAccount {
            account: AccountId(account),
            owner: owner.into(),
        })
        .await
        .unwrap();
    }
    app.execute(Deposit {
        account: AccountId(1),
        amount: 100,
    })
    .await
    .unwrap();
    app.execute(CloseAccount {
        account: AccountId(3),
    })
    .await
    .unwrap();
    (store, app)
}

//! The transfer as one decision over two accounts, on `MemoryStore`: both halves or neither,
//! the accounts' own commands see the decision's events, concurrent transfers out of one
//! account never overdraw it, and the rules as fixtures.

use std::sync::Arc;

use bank::*;
use eventweave_core::fixture::DecisionFixture;
use eventweave_core::{CommandError, Cqrs, EventStore, InAggregate, MemoryStore};

async fn bank_with(balances: &[(u64, u64)]) -> Cqrs<MemoryStore> {
    let app = Cqrs::builder(MemoryStore::new())
        .service(Limits {
            max_withdrawal: 1_000_000,
        })
        .max_retries(100)
        .build()
        .await
        .unwrap();
    for &(id, amount) in balances {
        let account = AccountId(id);
        app.execute(OpenAccount {
            account,
            owner: format!("owner {id}"),
        })
        .await
        .unwrap();
        if amount > 0 {
            app.execute(Deposit { account, amount }).await.unwrap();
        }
    }
    app
}

fn transfer(from: u64, to: u64, amount: u64) -> TransferFunds {
    TransferFunds {
        from: AccountId(from),
        to: AccountId(to),
        amount,
    }
}

#[tokio::test]
async fn both_halves_land_in_the_accounts_streams_at_once() {
    let app = bank_with(&[(1, 100), (2, 0)]).await;
    let outcome = app.execute(transfer(1, 2, 30)).await.unwrap();
    let streams: Vec<&str> = outcome
        .events
        .iter()
        .map(|e| e.meta.stream.as_str())
        .collect();
    assert_eq!(streams, ["account-1", "account-2"]);
    assert_eq!(
        outcome.events[1].meta.position.0,
        outcome.events[0].meta.position.0 + 1,
        "one append: consecutive positions"
    );
    // The aggregates' own loads and commands see the decision's events.
    let (from, version) = app.load::<Account>(&AccountId(1)).await.unwrap();
    assert_eq!((from.balance(), version), (70, 3));
    assert_eq!(
        app.load::<Account>(&AccountId(2))
            .await
            .unwrap()
            .0
            .balance(),
        30
    );
    app.execute(Withdraw {
        account: AccountId(2),
        amount: 30,
    })
    .await
    .expect("the credited money can be withdrawn (the cached state was stale, and reloaded)");
}

#[tokio::test]
async fn a_refused_transfer_writes_nothing() {
    let app = bank_with(&[(1, 10), (2, 0)]).await;
    let head = app.store().head().await.unwrap();
    let refused = app.execute(transfer(1, 2, 11)).await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(BankError::InsufficientFunds {
            balance: 10,
            requested: 11
        }))
    ));
    let unknown = app.execute(transfer(1, 9, 5)).await;
    assert!(matches!(
        unknown,
        Err(CommandError::Rejected(BankError::NoSuchAccount(AccountId(
            9
        ))))
    ));
    assert_eq!(app.store().head().await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_never_overdraw() {
    let app = bank_with(&[(1, 100), (2, 0), (3, 0)]).await;
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (app, start) = (app.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                app.execute(transfer(1, 2 + i % 2, 10)).await
            })
        })
        .collect();
    let mut moved = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => moved += 10,
            Err(CommandError::Rejected(BankError::InsufficientFunds { .. })) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(moved, 100, "exactly the balance moved");
    let balance = |id| {
        let app = app.clone();
        async move {
            app.load::<Account>(&AccountId(id))
                .await
                .unwrap()
                .0
                .balance()
        }
    };
    assert_eq!(balance(1).await, 0);
    assert_eq!(balance(2).await + balance(3).await, 100);
}

#[test]
fn the_rules_as_fixtures() {
    let opened =
        |id| InAggregate::<Account, _>::new(AccountId(id), AccountOpened { owner: "o".into() });
    let deposited =
        |id, amount| InAggregate::<Account, _>::new(AccountId(id), MoneyDeposited { amount });
    DecisionFixture::<Transfers>::new()
        .given((opened(1), opened(2), deposited(1, 50)))
        .when(transfer(1, 2, 50))
        .expect_events((
            InAggregate::<Account, _>::new(AccountId(1), MoneyWithdrawn { amount: 50 }),
            InAggregate::<Account, _>::new(AccountId(2), MoneyDeposited { amount: 50 }),
        ));
    DecisionFixture::<Transfers>::new()
        .given((opened(1), opened(2), deposited(2, 50)))
        .when(transfer(1, 2, 1))
        .expect_error(BankError::InsufficientFunds {
            balance: 0,
            requested: 1,
        });
    DecisionFixture::<Transfers>::new()
        .given(opened(1))
        .when(transfer(1, 1, 1))
        .expect_error(BankError::SameAccount);
}

//! The bank's rules, with the given/when/then fixtures, and a transfer end to end.

use bank::*;
use eventweave_core::fixture::{AggregateFixture, ProjectionFixture};
use eventweave_core::{CommandError, Cqrs, MemoryStore};

fn opened() -> AccountOpened {
    AccountOpened {
        owner: "Ada".into(),
    }
}

#[tokio::test]
async fn withdrawals_respect_balance_and_limit() {
    let limits = Limits {
        max_withdrawal: 100,
    };
    AggregateFixture::<Account>::new()
        .given((opened(), MoneyDeposited { amount: 50 }))
        .service(limits.clone())
        .when(Withdraw {
            account: AccountId(1),
            amount: 80,
        })
        .await
        .expect_error(BankError::InsufficientFunds {
            balance: 50,
            requested: 80,
        });
    AggregateFixture::<Account>::new()
        .given((opened(), MoneyDeposited { amount: 500 }))
        .service(limits.clone())
        .when(Withdraw {
            account: AccountId(1),
            amount: 101,
        })
        .await
        .expect_error(BankError::OverLimit { limit: 100 });
    let then = AggregateFixture::<Account>::new()
        .given((opened(), MoneyDeposited { amount: 500 }))
        .service(limits)
        .when(Withdraw {
            account: AccountId(1),
            amount: 100,
        })
        .await
        .expect_events(MoneyWithdrawn { amount: 100 });
    assert_eq!(then.state().balance(), 400);
}

#[tokio::test]
async fn only_empty_open_accounts_close() {
    AggregateFixture::<Account>::new()
        .given((opened(), MoneyDeposited { amount: 1 }))
        .when(CloseAccount {
            account: AccountId(1),
        })
        .await
        .expect_error(BankError::NotEmpty { balance: 1 });
    AggregateFixture::<Account>::new()
        .given((opened(), AccountClosed))
        .when(Deposit {
            account: AccountId(1),
            amount: 5,
        })
        .await
        .expect_error(BankError::Closed);
    AggregateFixture::<Account>::new()
        .given(opened())
        .when(CloseAccount {
            account: AccountId(1),
        })
        .await
        .expect_events(AccountClosed);
}

#[tokio::test]
async fn accounts_are_opened_once() {
    AggregateFixture::<Account>::new()
        .when(OpenAccount {
            account: AccountId(1),
            owner: "Ada".into(),
        })
        .await
        .expect_events(opened());
    AggregateFixture::<Account>::new()
        .given(opened())
        .when(OpenAccount {
            account: AccountId(1),
            owner: "Eve".into(),
        })
        .await
        .expect_failure(|e| matches!(e, CommandError::AlreadyExists { .. }));
}

#[test]
fn balances_follow_every_kind_of_movement() {
    let transfer = TransferId(9);
    ProjectionFixture::new(Balances::default())
        .given("account-1", opened())
        .given(
            "account-2",
            AccountOpened {
                owner: "Bob".into(),
            },
        )
        .given("account-1", MoneyDeposited { amount: 100 })
        .given("account-1", MoneyWithdrawn { amount: 30 })
        .given(
            "account-1",
            TransferSent {
                transfer,
                to: AccountId(2),
                amount: 20,
            },
        )
        .given(
            "account-2",
            TransferReceived {
                transfer,
                from: AccountId(1),
                amount: 20,
            },
        )
        .expect_query(
            GetBalance {
                account: AccountId(1),
            },
            Some(50),
        )
        .expect_query(
            GetBalance {
                account: AccountId(2),
            },
            Some(20),
        )
        .expect_query(
            GetBalance {
                account: AccountId(3),
            },
            None,
        )
        .expect_query(TotalHoldings, 70);
}

#[tokio::test]
async fn a_refused_transfer_is_refunded_and_traceable_through_its_ids() {
    let app = Cqrs::builder(MemoryStore::new())
        .projection(Balances::default())
        .projection(AccountHistory::default())
        .service(Limits {
            max_withdrawal: 1_000,
        })
        .build()
        .await
        .unwrap();
    for (account, owner) in [(AccountId(1), "Ada"), (AccountId(2), "Bob")] {
        app.execute(OpenAccount {
            account,
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
        account: AccountId(2),
    })
    .await
    .unwrap();

    let outcome = transfer(&app, TransferId(1), AccountId(1), AccountId(2), 60)
        .await
        .unwrap();
    let TransferOutcome::Refunded {
        sent,
        reason,
        refund,
    } = &outcome
    else {
        panic!("a closed account must refuse the transfer: {outcome:?}");
    };
    assert!(matches!(reason, CommandError::Rejected(BankError::Closed)));
    // One business transaction: the refund carries the debit's correlation id and names the
    // debit event as the cause of its command.
    let debit = &sent.events[0].meta;
    let credit_back = &refund.events[0].meta;
    assert_eq!(credit_back.correlation_id, debit.correlation_id);
    assert_eq!(
        credit_back
            .metadata
            .get(eventweave_core::CAUSED_BY_EVENT)
            .and_then(|v| v.as_str()),
        Some(debit.event_id.to_string().as_str())
    );
    let balance = app
        .query_after(
            outcome.position(),
            GetBalance {
                account: AccountId(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(balance, Some(100));
    let statement = app
        .query(GetStatement {
            account: AccountId(1),
        })
        .await
        .unwrap();
    let texts: Vec<_> = statement.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "opened for Ada",
            "deposit of 100",
            "transfer #1 of 60 to account 2",
            "refund of transfer #1 (60)"
        ]
    );
}

//! The durable balances projection in process: its SQL table equals the balances computed from
//! the stored events and those of the in-memory `Balances`, after commands, a restart of the
//! runner (no double counting) and a rebuild (the `#[reset]` empties the table first).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bank::*;
use eventweave_core::runner::{Checkpoints, ProjectionRunner};
use eventweave_core::{Cqrs, EventStore};
use eventweave_sqlite::SqliteStore;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_table_counts_every_event_once_across_restarts_and_rebuilds() {
    let store = SqliteStore::temporary().unwrap();
    let app = Cqrs::builder(store.clone())
        .projection(Balances::default())
        .service(Limits {
            max_withdrawal: 1_000,
        })
        .build()
        .await
        .unwrap();
    let running = ProjectionRunner::new(store.clone(), balances::sink(&store).unwrap()).spawn();
    for (account, owner) in [
        (AccountId(1), "Ada"),
        (AccountId(2), "Bob"),
        (AccountId(3), "Cy"),
    ] {
        app.execute(OpenAccount {
            account,
            owner: owner.into(),
        })
        .await
        .unwrap();
    }
    for amount in [100, 250, 40] {
        app.execute(Deposit {
            account: AccountId(1),
            amount,
        })
        .await
        .unwrap();
    }
    app.execute(Withdraw {
        account: AccountId(1),
        amount: 90,
    })
    .await
    .unwrap();
    app.execute(CloseAccount {
        account: AccountId(3),
    })
    .await
    .unwrap();
    transfer(&app, TransferId(1), AccountId(1), AccountId(2), 60)
        .await
        .unwrap();
    let refunded = transfer(&app, TransferId(2), AccountId(1), AccountId(3), 10)
        .await
        .unwrap();
    assert!(matches!(refunded, TransferOutcome::Refunded { .. }));

    // Read-your-writes: the table holds the transfer once the checkpoint reaches it.
    running.wait_for(refunded.position(), WAIT).await.unwrap();
    let conn = balances::connect(&store).unwrap();
    let expected = common::balances_from_events(&store).await;
    assert_eq!(balances::accounts(&conn).unwrap(), expected);
    assert_eq!(
        balances::balance(&conn, AccountId(1)).unwrap(),
        Some(100 + 250 + 40 - 90 - 60)
    );
    assert_eq!(balances::balance(&conn, AccountId(9)).unwrap(), None);
    // The in-memory projection, another implementation of the same read model, agrees.
    assert_eq!(app.query(ListAccounts).await.unwrap(), expected);
    assert_eq!(
        balances::total(&conn).unwrap(),
        app.query(TotalHoldings).await.unwrap()
    );

    // A restart resumes from the checkpoint: nothing is applied twice.
    running.stop().await;
    let running = ProjectionRunner::new(store.clone(), balances::sink(&store).unwrap()).spawn();
    let last = app
        .execute(Deposit {
            account: AccountId(2),
            amount: 5,
        })
        .await
        .unwrap();
    running.wait_for(last.position(), WAIT).await.unwrap();
    let expected = common::balances_from_events(&store).await;
    assert_eq!(balances::accounts(&conn).unwrap(), expected);

    // A rebuild empties the table (`#[reset]`) and replays every event, reporting progress.
    let reports = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&reports);
    let reached = running
        .rebuild(Some(Arc::new(
            move |_: &eventweave_core::runner::Progress| {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        )))
        .await
        .unwrap();
    assert_eq!(reached, store.head().await.unwrap());
    assert!(reports.load(Ordering::SeqCst) >= 1);
    assert_eq!(balances::accounts(&conn).unwrap(), expected);
    running.stop().await;
    assert_eq!(
        store.load_checkpoint("balances").await.unwrap(),
        store.head().await.unwrap()
    );
}

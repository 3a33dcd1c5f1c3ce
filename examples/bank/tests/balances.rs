//! The durable balances projection in process, on SQLite and on PostgreSQL: one projection type
//! (`BalancesTable`, handlers over `db: &impl Sql`) under a `SqliteSink` and under a `PgSink`.
//! On each, its SQL table equals the balances computed from the stored events and those of the
//! in-memory `Balances`, after commands, a restart of the runner (no double counting) and a
//! rebuild (the `#[reset]` empties the table first); the queries run through each store's
//! reader.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bank::*;
use eventweave_core::runner::{Checkpoints, ProjectionRunner, ProjectionSink};
use eventweave_core::sql::{Sql, SqlErrorKind};
use eventweave_core::{Cqrs, EventStore};
use eventweave_postgres::{PgSink, PostgresConfig, PostgresStore};
use eventweave_sqlite::{SqliteSink, SqliteStore};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn on_sqlite_the_table_counts_every_event_once_across_restarts_and_rebuilds() {
    let store = SqliteStore::temporary().unwrap();
    let sink = || SqliteSink::new(&store, BalancesTable).unwrap();
    sink().setup(balances::CREATE_TABLE).await.unwrap();
    scenario(store.clone(), sink, &store.reader()).await;
}

#[tokio::test]
async fn on_postgres_the_same_projection_keeps_the_same_table() {
    let Ok(url) = std::env::var("CQRS_POSTGRES_URL") else {
        eprintln!("skipped: CQRS_POSTGRES_URL is not set");
        return;
    };
    // A schema of its own, which the sink's statements also use (`search_path`).
    let schema = format!(
        "bank_balances_{:x}",
        eventweave_core::new_id().as_u128() as u32
    );
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-csearch_path%3D{schema}");
    let config = PostgresConfig::parse(&url).unwrap().schema(&schema);
    let store = PostgresStore::open(config).await.unwrap();
    let sink = || PgSink::new(&store, BalancesTable);
    sink().setup(balances::CREATE_TABLE).await.unwrap();
    scenario(store.clone(), sink, &store.reader()).await;
    // The reader reads only: the read model is written by its projection.
    let refused = store
        .reader()
        .execute("DELETE FROM balances", ())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), SqlErrorKind::Refused, "{refused}");
    sink()
        .setup(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

async fn scenario<S, K>(store: S, sink: impl Fn() -> K, reader: &impl Sql)
where
    S: EventStore + Checkpoints + Clone,
    K: ProjectionSink,
{
    let app = Cqrs::builder(store.clone())
        .projection(Balances::default())
        .service(Limits {
            max_withdrawal: 1_000,
        })
        .build()
        .await
        .unwrap();
    let running = ProjectionRunner::new(store.clone(), sink()).spawn();
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
    let expected = common::balances_from_events(&store).await;
    assert_eq!(balances::accounts(reader).await.unwrap(), expected);
    assert!(!expected[2].open, "account 3 is closed");
    assert_eq!(
        balances::balance(reader, AccountId(1)).await.unwrap(),
        Some(100 + 250 + 40 - 90 - 60)
    );
    assert_eq!(balances::balance(reader, AccountId(9)).await.unwrap(), None);
    // The in-memory projection, another implementation of the same read model, agrees.
    assert_eq!(app.query(ListAccounts).await.unwrap(), expected);
    assert_eq!(
        balances::total(reader).await.unwrap(),
        app.query(TotalHoldings).await.unwrap()
    );

    // A restart resumes from the checkpoint: nothing is applied twice.
    running.stop().await;
    let running = ProjectionRunner::new(store.clone(), sink()).spawn();
    let last = app
        .execute(Deposit {
            account: AccountId(2),
            amount: 5,
        })
        .await
        .unwrap();
    running.wait_for(last.position(), WAIT).await.unwrap();
    let expected = common::balances_from_events(&store).await;
    assert_eq!(balances::accounts(reader).await.unwrap(), expected);

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
    assert_eq!(balances::accounts(reader).await.unwrap(), expected);
    running.stop().await;
    assert_eq!(
        store.load_checkpoint("balances").await.unwrap(),
        store.head().await.unwrap()
    );
}

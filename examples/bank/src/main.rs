//! Runs the bank and prints a transcript: commands (`>`), recorded events (`+`), rejections
//! (`!`) and query answers (`?`).
//!
//! `cargo run -p bank`

use std::error::Error;
use std::fmt::Debug;

use bank::*;
use cqrs_core::{CommandError, CommandOutcome, Cqrs, MemoryStore, Router};

type App = Cqrs<MemoryStore>;

fn show_events(outcome: &CommandOutcome) {
    for event in &outcome.events {
        let meta = &event.meta;
        println!(
            "    + {:<18} {:<40} [{} v{}, position {}]",
            meta.event_name,
            event.payload.as_str(),
            meta.stream,
            meta.version,
            meta.position
        );
    }
}

fn show<E: std::fmt::Display>(
    result: Result<CommandOutcome, CommandError<E>>,
) -> Option<CommandOutcome> {
    match result {
        Ok(outcome) => {
            show_events(&outcome);
            Some(outcome)
        }
        Err(e) => {
            println!("    ! {e}");
            None
        }
    }
}

async fn run<C>(app: &App, cmd: C) -> Option<CommandOutcome>
where
    C: cqrs_core::Command + Debug,
    C::Aggregate: cqrs_core::Handles<C>,
{
    println!("> {cmd:?}");
    show(app.execute(cmd).await)
}

/// Asks with read-your-writes (everything recorded so far is applied first).
async fn ask<Q>(app: &App, query: Q) -> Result<Q::Response, cqrs_core::QueryError>
where
    Q: cqrs_core::RoutedQuery + Debug,
    Q::Response: Debug,
{
    print!("? {query:?} -> ");
    let answer = app.query_after(app.position(), query).await?;
    println!("{answer:?}");
    Ok(answer)
}

/// Like `ask`, for queries answering with rows the caller prints.
async fn ask_rows<Q, T>(app: &App, query: Q) -> Result<Vec<T>, cqrs_core::QueryError>
where
    Q: cqrs_core::RoutedQuery<Response = Vec<T>> + Debug,
{
    print!("? {query:?} -> ");
    let rows = app.query_after(app.position(), query).await?;
    println!("{} rows", rows.len());
    Ok(rows)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let app: App = Cqrs::builder(MemoryStore::new())
        .projection(Balances::default())
        .projection(AccountHistory::default())
        .service(Limits {
            max_withdrawal: 50_000,
        })
        .build()
        .await?;
    let (ada, bob, cy) = (AccountId(1), AccountId(2), AccountId(3));

    println!("== Accounts ==");
    run(
        &app,
        OpenAccount {
            account: ada,
            owner: "Ada".into(),
        },
    )
    .await;
    run(
        &app,
        OpenAccount {
            account: bob,
            owner: "Bob".into(),
        },
    )
    .await;
    run(
        &app,
        OpenAccount {
            account: cy,
            owner: "Cy".into(),
        },
    )
    .await;
    run(
        &app,
        Deposit {
            account: ada,
            amount: 10_000,
        },
    )
    .await;
    run(
        &app,
        Withdraw {
            account: ada,
            amount: 2_500,
        },
    )
    .await;

    println!("\n== Rejections (nothing is recorded) ==");
    run(
        &app,
        Withdraw {
            account: ada,
            amount: 60_000,
        },
    )
    .await;
    run(
        &app,
        Withdraw {
            account: bob,
            amount: 1,
        },
    )
    .await;
    run(
        &app,
        Deposit {
            account: ada,
            amount: 0,
        },
    )
    .await;
    run(
        &app,
        OpenAccount {
            account: ada,
            owner: "Mallory".into(),
        },
    )
    .await;
    run(
        &app,
        Deposit {
            account: AccountId(99),
            amount: 5,
        },
    )
    .await;
    run(&app, CloseAccount { account: ada }).await;
    run(&app, CloseAccount { account: cy }).await;
    run(
        &app,
        Deposit {
            account: cy,
            amount: 5,
        },
    )
    .await;

    println!("\n== Transfers ==");
    for (id, from, to, amount) in [
        (1, ada, bob, 3_000),
        (2, ada, cy, 1_000),
        (3, bob, ada, 9_999),
    ] {
        println!("> transfer #{id}: {amount} from account {from} to account {to}");
        match transfer(&app, TransferId(id), from, to, amount).await {
            Ok(TransferOutcome::Completed { sent, received }) => {
                show_events(&sent);
                show_events(&received);
            }
            Ok(TransferOutcome::Refunded {
                sent,
                reason,
                refund,
            }) => {
                show_events(&sent);
                println!("    ! receiver refused: {reason}");
                show_events(&refund);
            }
            Err(e) => println!("    ! {e}"),
        }
    }

    println!("\n== Untyped dispatch (name + JSON, as from HTTP) ==");
    let router = Router::new(app.clone()).aggregate::<Account>()?;
    for (name, body) in [
        ("Deposit", r#"{"account": 2, "amount": 700}"#),
        ("Deposit", r#"{"account": 2, "amount": "#),
        ("Teleport", r#"{"account": 2}"#),
    ] {
        println!("> dispatch {name} {body}");
        match router.dispatch(name, body).await {
            Ok(outcome) => show_events(&outcome),
            Err(e) => println!("    ! {e}"),
        }
    }

    println!("\n== Queries (read-your-writes) ==");
    ask(&app, GetBalance { account: ada }).await?;
    ask(
        &app,
        GetBalance {
            account: AccountId(99),
        },
    )
    .await?;
    for line in ask_rows(&app, ListAccounts).await? {
        println!(
            "    {:>3}  {:<6} {:>8}  {}",
            line.account.0,
            line.owner,
            line.balance,
            if line.open { "open" } else { "closed" }
        );
    }
    for line in ask_rows(&app, GetStatement { account: ada }).await? {
        println!(
            "    v{:<3} {:<45} balance {}",
            line.version, line.text, line.balance
        );
    }
    let total = ask(&app, TotalHoldings).await?;
    assert_eq!(
        total,
        10_000 - 2_500 + 700,
        "transfers create or destroy no money"
    );
    Ok(())
}

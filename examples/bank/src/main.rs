//! Runs the bank and prints a transcript: commands (`>`), recorded events (`+`), rejections
//! (`!`) and query answers (`?`).
//!
//! `cargo run -p bank` keeps the bank in the SQLite file `bank.db` in the current directory
//! (another path with `BANK_DB=path`): a second run starts from the first run's events, rebuilt
//! into the aggregates and projections. `cargo run -p bank -- --memory` (or `BANK_STORE=memory`)
//! runs on a `MemoryStore` that forgets everything at exit.

use std::error::Error;
use std::fmt::Debug;
use std::path::PathBuf;

use bank::*;
use cqrs_core::{
    BuildError, CommandError, CommandOutcome, Cqrs, Event, EventStore, MemoryStore, Position,
    Router,
};
use cqrs_sqlite::SqliteStore;

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

async fn send<S: EventStore, C>(app: &Cqrs<S>, cmd: C) -> Option<CommandOutcome>
where
    C: cqrs_core::Command + Debug,
    C::Aggregate: cqrs_core::Handles<C>,
{
    println!("> {cmd:?}");
    show(app.execute(cmd).await)
}

/// Asks with read-your-writes (everything recorded so far is applied first).
async fn ask<S: EventStore, Q>(
    app: &Cqrs<S>,
    query: Q,
) -> Result<Q::Response, cqrs_core::QueryError>
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
async fn ask_rows<S: EventStore, Q, T>(
    app: &Cqrs<S>,
    query: Q,
) -> Result<Vec<T>, cqrs_core::QueryError>
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
    let in_memory = std::env::args().skip(1).any(|a| a == "--memory")
        || std::env::var("BANK_STORE").is_ok_and(|s| s == "memory");
    if in_memory {
        println!("Store: in memory (forgotten at exit)\n");
        run(build(MemoryStore::new()).await?).await
    } else {
        let path =
            std::env::var_os("BANK_DB").map_or_else(|| PathBuf::from("bank.db"), PathBuf::from);
        println!(
            "Store: SQLite file {} (run again to continue from its events)\n",
            path.display()
        );
        run(build(SqliteStore::open(&path)?).await?).await
    }
}

/// The application over `store`: its projections catch up with the stored events here.
async fn build<S: EventStore>(store: S) -> Result<Cqrs<S>, BuildError> {
    Cqrs::builder(store)
        .projection(Balances::default())
        .projection(AccountHistory::default())
        .service(Limits {
            max_withdrawal: 50_000,
        })
        .build()
        .await
}

/// Money that entered (deposits) minus money that left (withdrawals) through the events
/// recorded after `start`: transfers only move money between accounts.
async fn net_inflow<S: EventStore>(app: &Cqrs<S>, start: Position) -> Result<i128, Box<dyn Error>> {
    let mut inflow = 0i128;
    for event in app.store().read_all(start.next(), usize::MAX).await? {
        let payload = event.payload.as_str();
        if event.meta.event_name == MoneyDeposited::NAME {
            inflow += i128::from(serde_json::from_str::<MoneyDeposited>(payload)?.amount);
        } else if event.meta.event_name == MoneyWithdrawn::NAME {
            inflow -= i128::from(serde_json::from_str::<MoneyWithdrawn>(payload)?.amount);
        }
    }
    Ok(inflow)
}

async fn run<S: EventStore>(app: Cqrs<S>) -> Result<(), Box<dyn Error>> {
    let app = &app;
    // Positions are gap-free from 1, so the head is the number of stored events.
    let start = app.store().head().await?;
    let holdings_before = app.query(TotalHoldings).await?;
    println!("== Stored events ==");
    if start == Position::ZERO {
        println!("none: a new bank");
    } else {
        println!(
            "{} events found; the projections replayed them at start-up. Balances rebuilt:",
            start.0
        );
        for line in app.query(ListAccounts).await? {
            println!(
                "    {:>3}  {:<6} {:>8}  {}",
                line.account.0,
                line.owner,
                line.balance,
                if line.open { "open" } else { "closed" }
            );
        }
        println!("    total holdings: {holdings_before}");
    }
    println!();

    let (ada, bob, cy) = (AccountId(1), AccountId(2), AccountId(3));

    println!("== Accounts ==");
    send(
        app,
        OpenAccount {
            account: ada,
            owner: "Ada".into(),
        },
    )
    .await;
    send(
        app,
        OpenAccount {
            account: bob,
            owner: "Bob".into(),
        },
    )
    .await;
    send(
        app,
        OpenAccount {
            account: cy,
            owner: "Cy".into(),
        },
    )
    .await;
    send(
        app,
        Deposit {
            account: ada,
            amount: 10_000,
        },
    )
    .await;
    send(
        app,
        Withdraw {
            account: ada,
            amount: 2_500,
        },
    )
    .await;

    send(app, CloseAccount { account: cy }).await;

    println!("\n== Rejections (nothing is recorded) ==");
    send(
        app,
        Withdraw {
            account: ada,
            amount: 60_000,
        },
    )
    .await;
    send(
        app,
        // Under the limit but above anything Bob holds, however often the example runs.
        Withdraw {
            account: bob,
            amount: 49_999,
        },
    )
    .await;
    send(
        app,
        Deposit {
            account: ada,
            amount: 0,
        },
    )
    .await;
    send(
        app,
        OpenAccount {
            account: ada,
            owner: "Mallory".into(),
        },
    )
    .await;
    send(
        app,
        Deposit {
            account: AccountId(99),
            amount: 5,
        },
    )
    .await;
    send(app, CloseAccount { account: ada }).await;
    send(
        app,
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
        // Transfer ids stay unique across runs on one file.
        let id = TransferId(start.0 + id);
        println!(
            "> transfer #{}: {amount} from account {from} to account {to}",
            id.0
        );
        match transfer(app, id, from, to, amount).await {
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
    ask(app, GetBalance { account: ada }).await?;
    ask(
        app,
        GetBalance {
            account: AccountId(99),
        },
    )
    .await?;
    for line in ask_rows(app, ListAccounts).await? {
        println!(
            "    {:>3}  {:<6} {:>8}  {}",
            line.account.0,
            line.owner,
            line.balance,
            if line.open { "open" } else { "closed" }
        );
    }
    for line in ask_rows(app, GetStatement { account: ada }).await? {
        println!(
            "    v{:<3} {:<45} balance {}",
            line.version, line.text, line.balance
        );
    }
    let total = ask(app, TotalHoldings).await?;
    let inflow = net_inflow(app, start).await?;
    println!(
        "\nMoney check: {holdings_before} held before this run {} {} net deposits of this run = {total}",
        if inflow < 0 { "-" } else { "+" },
        inflow.unsigned_abs()
    );
    assert_eq!(
        i128::from(total),
        i128::from(holdings_before) + inflow,
        "transfers create or destroy no money"
    );
    Ok(())
}

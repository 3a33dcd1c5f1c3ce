//! Runs the bank and prints a transcript: commands (`>`), recorded events (`+`), rejections
//! (`!`) and query answers (`?`).
//!
//! `cargo run -p bank` keeps the bank in the SQLite file `bank.db` in the current directory
//! (another path with `BANK_DB=path`): a second run starts from the first run's events.
//!
//! Start-up shows the two kinds of read model at work:
//! - the projection listing (`eventweave_core::runner::list_projections`): every `#[projection]` in
//!   the program, found through its registration, with its kind, stored checkpoint and lag;
//! - the in-memory account history is rebuilt from the first event (`Cqrs::builder`), with a
//!   progress bar on stderr when there are more than 1,000 events, and always a one-line
//!   summary;
//! - the durable balances projection (`bank::balances`) resumes from its checkpoint in the
//!   file: its SQL table already holds every older event, exactly once, so it only reads what
//!   was appended since. Balances are SQL reads of that table, after
//!   `RunningProjection::wait_for` (read-your-writes).
//!
//! Transfers run through the transfer process manager (`bank::transfer_process`, in a
//! `ProjectionRunner` from its checkpoint in the store): the transcript sends the debit, waits
//! until the process manager has handled every event its commands caused, and prints the
//! credit, or the rejection and the refund, that it issued.
//!
//! `cargo run -p bank -- --seed 50000` first appends that many deposits (to account 1000,
//! batched) so the history rebuild and the balances catch-up are long enough to see the bars.
//!
//! `cargo run -p bank -- --memory` (or `BANK_STORE=memory`) runs on a `MemoryStore` that forgets
//! everything at exit. The balances projection is the same durable one, writing its table (and
//! checkpoint) in a temporary SQLite file deleted at exit: one read model and one query path in
//! both modes, rather than a second, in-memory balances projection for this mode only. (The
//! runner reads events from any store; the sink keeps its checkpoint next to its table.)

use std::error::Error;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bank::seed::{SEED_ACCOUNT, seed_deposits};
use bank::*;
use eventweave_cli::{Admin, ProgressBar};
use eventweave_core::process::{ProcessManager, ProcessManagerSink, instance_stream};
use eventweave_core::runner::{Checkpoints, ProjectionRunner, RunningProjection, list_projections};
use eventweave_core::{
    BuildError, CommandError, CommandOutcome, Cqrs, Event, EventStore, MemoryStore, Position,
    QueryError, RecordedEvent, Router, Uuid,
};
use eventweave_postgres::{PgSink, PostgresStore};
use eventweave_sqlite::{SqliteLeases, SqliteReader, SqliteSink, SqliteStore};

/// Any error of the example, reported by `main`.
type Failure = Box<dyn Error + Send + Sync>;

/// How long a read waits for the balances projection to reach the application's position.
const WAIT: Duration = Duration::from_secs(120);

/// Catch-ups of more events than this draw a progress bar.
const BAR_ABOVE: u64 = 1_000;

fn show_events(outcome: &CommandOutcome) {
    show_recorded(&outcome.events);
}

fn show_recorded(events: &[RecordedEvent]) {
    for event in events {
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
    C: eventweave_core::Command + Debug,
    C::Aggregate: eventweave_core::Handles<C>,
{
    println!("> {cmd:?}");
    show(app.execute(cmd).await)
}

/// A typed query to an in-memory projection, with read-your-writes (everything recorded so far
/// is applied first), for queries answering with rows the caller prints.
async fn ask_rows<S: EventStore, Q, T>(app: &Cqrs<S>, query: Q) -> Result<Vec<T>, QueryError>
where
    Q: eventweave_core::RoutedQuery<Response = Vec<T>> + Debug,
{
    print!("? {query:?} -> ");
    let rows = app.query_after(app.position(), query).await?;
    println!("{} rows", rows.len());
    Ok(rows)
}

/// Prints a SQL read of the balances table like a query answer.
fn answer<T: Debug>(what: &str, answer: T) -> T {
    println!("? {what} -> {answer:?}");
    answer
}

fn print_accounts(accounts: &[AccountSummary]) {
    for line in accounts {
        println!(
            "    {:>3}  {:<6} {:>8}  {}",
            line.account.0,
            line.owner,
            line.balance,
            if line.open { "open" } else { "closed" }
        );
    }
}

/// Command line: `--memory`, `--seed N`, `--metrics ADDR` (see `bank::metrics`).
struct Args {
    in_memory: bool,
    seed: u64,
    metrics: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        in_memory: std::env::var("BANK_STORE").is_ok_and(|s| s == "memory"),
        seed: 0,
        metrics: None,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "--memory" => args.in_memory = true,
            "--metrics" => args.metrics = Some(words.next().ok_or("--metrics needs host:port")?),
            "--seed" => {
                let n = words.next().ok_or("--seed needs a number of deposits")?;
                args.seed = n
                    .replace(['_', ','], "")
                    .parse()
                    .map_err(|e| format!("--seed {n}: {e}"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (expected --memory, --seed N or --metrics ADDR)"
                ));
            }
        }
    }
    Ok(args)
}

/// `bank admin …`: the operator CLI (`eventweave-cli`) with the bank's catalog, and the
/// balances projection mounted for `rebuild` and `replay-parked` on SQLite (its table lives in
/// the store's file) and on PostgreSQL (its table in the database the connection string's
/// `search_path` names, set up by the application that runs the projection).
async fn admin(words: impl Iterator<Item = std::ffi::OsString>) -> std::process::ExitCode {
    Admin::new(bank::catalog())
        .durable("balances", |store: &SqliteStore| {
            let sink = SqliteSink::new(store, BalancesTable).map_err(Box::new)?;
            // Synchronous set-up on the sink's connection (the runner has not started).
            sink.unit()
                .execute(balances::CREATE_TABLE, [])
                .map_err(Box::new)?;
            Ok(ProjectionRunner::new(store.clone(), sink))
        })
        .durable("balances", |store: &PostgresStore| {
            Ok(ProjectionRunner::new(
                store.clone(),
                PgSink::new(store, BalancesTable),
            ))
        })
        .main_from(words)
        .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<std::process::ExitCode, Failure> {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|word| word == "admin")
    {
        // `bank admin streams`: clap sees `admin streams`, `admin` standing for the program.
        return Ok(admin(std::env::args_os().skip(1)).await);
    }
    // `serve [--port N] [--memory]`: the bank as an HTTP service (`bank::serve`).
    if std::env::args().nth(1).as_deref() == Some("serve") {
        bank::serve::main(std::env::args().skip(2)).await?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let args = args()?;
    let metrics = bank::metrics::serve(args.metrics.as_deref())?;
    if args.in_memory {
        println!(
            "Store: in memory (forgotten at exit); balances table in a temporary SQLite file\n"
        );
        let tables = SqliteStore::temporary()?;
        run(MemoryStore::new(), &tables, args.seed).await?;
    } else {
        let path =
            std::env::var_os("BANK_DB").map_or_else(|| PathBuf::from("bank.db"), PathBuf::from);
        println!(
            "Store: SQLite file {} (run again to continue from its events)\n",
            path.display()
        );
        let store = SqliteStore::open(&path)?;
        run(store.clone(), &store, args.seed).await?;
    }
    metrics.linger();
    Ok(std::process::ExitCode::SUCCESS)
}

/// The application over `store` with the in-memory account history, which catches up with the
/// stored events here, reporting to `bar`.
async fn build<S: EventStore>(store: S, bar: Arc<ProgressBar>) -> Result<Cqrs<S>, BuildError> {
    Cqrs::builder(store)
        .projection(AccountHistory::default())
        .service(Limits {
            max_withdrawal: 50_000,
        })
        .on_progress(move |progress| bar.report(progress))
        .build()
        .await
}

/// The application, the balances read model it writes through its events, and the transfer
/// process manager.
struct Bank<S> {
    app: Cqrs<S>,
    /// The runner of the durable balances projection.
    balances: RunningProjection<SqliteSink<BalancesTable>>,
    /// The application's reader of the balances table.
    reader: SqliteReader,
    /// The runner of the transfer process manager.
    transfers: RunningProjection<ProcessManagerSink<TransferProcess, S>>,
}

impl<S: EventStore + Checkpoints> Bank<S> {
    /// The balances table, once it holds every event this application has recorded or seen
    /// (read-your-writes: waits until the projection's checkpoint reaches `app.position()`).
    async fn balances(&self) -> Result<&SqliteReader, QueryError> {
        self.balances.wait_for(self.app.position(), WAIT).await?;
        Ok(&self.reader)
    }

    /// Waits until the transfer process manager has handled every stored event, those that its
    /// own commands recorded included: it runs an event's commands before its checkpoint moves
    /// past the event, so once the head stays put after a wait, nothing is left to do.
    async fn transfers_settled(&self) -> Result<(), Failure> {
        loop {
            let head = self.app.store().head().await?;
            self.transfers.wait_for(head, WAIT).await?;
            if self.app.store().head().await? == head {
                return Ok(());
            }
        }
    }

    /// The account events of one business transaction recorded after `after`.
    async fn transaction(
        &self,
        correlation: Uuid,
        after: Position,
    ) -> Result<Vec<RecordedEvent>, Failure> {
        let events = self.app.store().read_all(after.next(), usize::MAX).await?;
        Ok(events
            .into_iter()
            .filter(|e| e.meta.correlation_id == Some(correlation))
            .filter(|e| e.meta.stream.as_str().starts_with("account-"))
            .collect())
    }

    /// Why the process manager's commands of one transfer were rejected, from the records in
    /// its instance stream.
    async fn rejections(&self, correlation: Uuid) -> Result<Vec<String>, Failure> {
        let stream = instance_stream(TransferProcess::NAME, correlation);
        let records = self.app.store().read_stream(&stream, 1, usize::MAX).await?;
        Ok(records
            .iter()
            .filter(|r| r.meta.event_name == "$pm.rejected")
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(r.payload.as_str())
                    .ok()
                    .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "rejected".to_owned())
            })
            .collect())
    }
}

/// Starts the transfer process manager from its checkpoint in `store`. A store whose events
/// predate the process manager (transfers then ran as direct command sequences, already
/// complete) has no checkpoint for it: it starts at the head instead of issuing the credits of
/// those transfers a second time.
async fn transfers<S: EventStore + Checkpoints>(
    app: &Cqrs<S>,
) -> Result<RunningProjection<ProcessManagerSink<TransferProcess, S>>, Failure> {
    let store = app.store().clone();
    if store.load_checkpoint(TransferProcess::NAME).await? == Position::ZERO {
        let head = store.head().await?;
        if head > Position::ZERO {
            store.save_checkpoint(TransferProcess::NAME, head).await?;
        }
    }
    Ok(ProjectionRunner::new(store, transfer_process(app)?).spawn())
}

/// Events of `store` (events) and the balances table in the file of `tables`: the same store in
/// file mode, a temporary one with `--memory`.
async fn run<S: EventStore + Checkpoints>(
    store: S,
    tables: &SqliteStore,
    seed: u64,
) -> Result<(), Failure> {
    if seed > 0 {
        let started = Instant::now();
        let head = seed_deposits(&store, seed).await?;
        println!(
            "Seeded {seed} deposits of 1 into account {SEED_ACCOUNT} in {:.2} s (store head: {})\n",
            started.elapsed().as_secs_f64(),
            head.0
        );
    }

    // Discovery: every `#[projection]` of the program registers itself; durable ones have a
    // checkpoint in the store, in-memory ones start from zero at every run.
    println!(
        "== Projections (in memory: replayed from the first event where attached; durable: resume at their checkpoint) =="
    );
    for p in list_projections(&store).await? {
        let kind = p.kind.to_string();
        println!(
            "    {:<20} {:<9}  checkpoint {:>6}  lag {:>6}  ({})",
            p.name, kind, p.checkpoint.0, p.lag, p.type_name
        );
    }
    println!();

    let history = Arc::new(ProgressBar::new("account-history (in memory)", BAR_ABOVE));
    let app = build(store.clone(), Arc::clone(&history)).await?;
    println!("{}", history.summary());

    let bar = Arc::new(ProgressBar::new("balances (SQL table)", BAR_ABOVE));
    let report = Arc::clone(&bar);
    let sink = SqliteSink::new(tables, BalancesTable)?;
    sink.setup(balances::CREATE_TABLE).await?;
    // A lease in the table's file: `bank admin rebuild balances` refuses while this runs, and
    // `bank admin projections` shows it running.
    let running = ProjectionRunner::new(store.clone(), sink)
        .leases(SqliteLeases::new(tables), Duration::from_millis(500))
        .on_progress(move |progress| report.report(progress))
        .spawn();
    let bank = Bank {
        transfers: transfers(&app).await?,
        app,
        balances: running,
        reader: tables.reader(),
    };
    bank.balances().await?;
    println!("{}\n", bar.summary());

    let result = transcript(&bank).await;
    // Between batches; everything read so far is committed with its checkpoint anyway.
    bank.balances.stop().await;
    bank.transfers.stop().await;
    result
}

/// Money that entered (deposits) minus money that left (withdrawals) through the events
/// recorded after `start`: transfers only move money between accounts.
async fn net_inflow<S: EventStore>(app: &Cqrs<S>, start: Position) -> Result<i128, Failure> {
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

async fn transcript<S: EventStore + Checkpoints>(bank: &Bank<S>) -> Result<(), Failure> {
    // Positions are gap-free from 1, so the head is the number of stored events.
    let start = bank.app.store().head().await?;
    let holdings_before = balances::total(bank.balances().await?).await?;
    println!("== Stored events ==");
    if start == Position::ZERO {
        println!("none: a new bank");
    } else {
        println!(
            "{} events found; the history replayed them, the balances table holds them \
             (checkpoint {}). Balances:",
            start.0,
            bank.balances.checkpoint().0
        );
        print_accounts(&balances::accounts(bank.balances().await?).await?);
        println!("    total holdings: {holdings_before}");
    }
    println!();

    let (ada, bob, cy) = (AccountId(1), AccountId(2), AccountId(3));

    println!("== Accounts ==");
    send(
        &bank.app,
        OpenAccount {
            account: ada,
            owner: "Ada".into(),
        },
    )
    .await;
    send(
        &bank.app,
        OpenAccount {
            account: bob,
            owner: "Bob".into(),
        },
    )
    .await;
    send(
        &bank.app,
        OpenAccount {
            account: cy,
            owner: "Cy".into(),
        },
    )
    .await;
    send(
        &bank.app,
        Deposit {
            account: ada,
            amount: 10_000,
        },
    )
    .await;
    send(
        &bank.app,
        Withdraw {
            account: ada,
            amount: 2_500,
        },
    )
    .await;

    send(&bank.app, CloseAccount { account: cy }).await;

    println!("\n== Rejections (nothing is recorded) ==");
    send(
        &bank.app,
        Withdraw {
            account: ada,
            amount: 60_000,
        },
    )
    .await;
    send(
        &bank.app,
        // Under the limit but above anything Bob holds, however often the example runs.
        Withdraw {
            account: bob,
            amount: 49_999,
        },
    )
    .await;
    send(
        &bank.app,
        Deposit {
            account: ada,
            amount: 0,
        },
    )
    .await;
    send(
        &bank.app,
        OpenAccount {
            account: ada,
            owner: "Mallory".into(),
        },
    )
    .await;
    send(
        &bank.app,
        Deposit {
            account: AccountId(99),
            amount: 5,
        },
    )
    .await;
    send(&bank.app, CloseAccount { account: ada }).await;
    send(
        &bank.app,
        Deposit {
            account: cy,
            amount: 5,
        },
    )
    .await;

    println!("\n== Transfers (the debit here; the transfer process manager issues the rest) ==");
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
        let Some(sent) = show(start_transfer(&bank.app, id, from, to, amount).await) else {
            continue;
        };
        bank.transfers_settled().await?;
        for reason in bank.rejections(sent.correlation_id).await? {
            println!("    ! receiver refused: {reason}");
        }
        let issued = bank
            .transaction(sent.correlation_id, sent.position())
            .await?;
        show_recorded(&issued);
    }

    println!("\n== Untyped dispatch (name + JSON, as from HTTP) ==");
    let router = Router::new(bank.app.clone()).aggregate::<Account>()?;
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
    let db = bank.balances().await?;
    answer(
        &format!("balance of account {ada}"),
        balances::balance(db, ada).await?,
    );
    answer(
        "balance of account 99",
        balances::balance(db, AccountId(99)).await?,
    );
    let accounts = balances::accounts(db).await?;
    println!("? accounts -> {} rows", accounts.len());
    print_accounts(&accounts);
    for line in ask_rows(&bank.app, GetStatement { account: ada }).await? {
        println!(
            "    v{:<3} {:<45} balance {}",
            line.version, line.text, line.balance
        );
    }
    let total = answer("total holdings", balances::total(db).await?);
    let inflow = net_inflow(&bank.app, start).await?;
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

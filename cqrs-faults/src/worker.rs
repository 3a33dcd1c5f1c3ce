//! Worker processes: the suite re-executes its own binary (`std::env::current_exe`) as writers,
//! for contention between processes and for `SIGKILL`.
//!
//! A worker runs `cqrs-faults worker <target> <vaults> <commands> <seed> <parts>` and prints one
//! line per fact ([`crate::ledger::line`]): `try` before a command's first attempt, then `ack`,
//! `refused`, `unknown` or `lost`; at the end a `retries` line and `done`. The parent applies the
//! lines to its ledger, so a command a killed worker had sent but not seen answered is uncertain.
//!
//! `follow` reads a worker's lines (and kills it with `SIGKILL` after a given number of
//! acknowledgements); `Workers` kills the leftovers when dropped.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use eventweave_core::{Cqrs, EventStore};
use eventweave_postgres::PostgresStore;
use eventweave_sqlite::SqliteStore;

use crate::client::{self, Attempt};
use crate::domain::{Deposit, DepositSplit, VaultId};
use crate::harness::Rng;
use crate::ledger::{self, Entry, Ledger};

/// The store a worker writes to.
#[derive(Clone, Debug)]
pub enum Target {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL schema.
    Postgres {
        /// The server.
        url: String,
        /// The schema.
        schema: String,
    },
}

impl Target {
    fn args(&self) -> Vec<String> {
        match self {
            Target::Sqlite(path) => vec!["sqlite".into(), path.display().to_string()],
            Target::Postgres { url, schema } => vec!["pg".into(), url.clone(), schema.clone()],
        }
    }
}

/// What a worker does.
#[derive(Clone, Debug)]
pub struct Job {
    /// Where it writes.
    pub target: Target,
    /// Vaults `0..vaults` (opened by the parent).
    pub vaults: u64,
    /// Commands to run before exiting.
    pub commands: u64,
    /// Its random seed.
    pub seed: u64,
    /// Deposits per command (1: `Deposit`, more: one `DepositSplit` batch).
    pub parts: u64,
}

/// Starts a worker process running `job`, its stdout piped to the parent.
pub fn spawn(job: &Job) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut args = vec!["worker".to_owned()];
    args.extend(job.target.args());
    args.extend([
        job.vaults.to_string(),
        job.commands.to_string(),
        job.seed.to_string(),
        job.parts.to_string(),
    ]);
    Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start a worker process: {e}"))
}

/// Reads a worker's lines into `ledger` until it exits, or until `kill_after` commands were
/// acknowledged: then sends it `SIGKILL` and reads what was still in the pipe. Returns whether it
/// finished by itself with `done`.
pub fn follow(mut child: Child, ledger: &Arc<Ledger>, kill_after: Option<u64>) -> bool {
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return false;
    };
    let mut lines = BufReader::new(stdout).lines();
    let mut acks = 0;
    let mut done = false;
    let mut killed = false;
    while let Some(Ok(text)) = lines.next() {
        ledger.apply_line(&text);
        ledger.apply_retries_line(&text);
        done |= text == "done";
        if text.starts_with("ack ") {
            acks += 1;
            if kill_after == Some(acks) {
                // `Child::kill` is SIGKILL on Unix: no destructor, no flush, mid-append.
                let _ = child.kill();
                killed = true;
                break;
            }
        }
    }
    if killed {
        // Lines the worker wrote before it died are still in the pipe: they count.
        for text in lines.map_while(Result::ok) {
            ledger.apply_line(&text);
        }
    }
    let status = child.wait();
    done && !killed && status.is_ok_and(|s| s.success())
}

/// Kills the worker processes it holds when dropped (a panicking parent leaves none behind).
#[derive(Default)]
pub struct Workers(pub Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The worker's `main`: `args` after `worker`.
pub fn main(args: &[String]) -> Result<(), String> {
    let (target, rest) = match args {
        [kind, path, rest @ ..] if kind == "sqlite" => (Target::Sqlite(path.into()), rest),
        [kind, url, schema, rest @ ..] if kind == "pg" => (
            Target::Postgres {
                url: url.clone(),
                schema: schema.clone(),
            },
            rest,
        ),
        _ => return Err(format!("worker: bad arguments {args:?}")),
    };
    let numbers: Vec<u64> = rest.iter().filter_map(|n| n.parse().ok()).collect();
    let [vaults, commands, seed, parts] = numbers[..] else {
        return Err(format!("worker: bad numbers {rest:?}"));
    };
    let job = Job {
        target,
        vaults,
        commands,
        seed,
        parts,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("worker runtime: {e}"))?;
    runtime.block_on(async {
        match &job.target {
            Target::Sqlite(path) => {
                let store =
                    SqliteStore::open(path).map_err(|e| format!("worker: open {path:?}: {e}"))?;
                write(store, &job).await
            }
            Target::Postgres { url, schema } => {
                let config = eventweave_postgres::PostgresConfig::new(url.as_str())
                    .schema(schema.as_str())
                    .pool_size(2);
                let store = PostgresStore::open(config)
                    .await
                    .map_err(|e| format!("worker: open schema {schema}: {e}"))?;
                write(store, &job).await
            }
        }
    })
}

async fn write<S: EventStore>(store: S, job: &Job) -> Result<(), String> {
    let app = Cqrs::builder(store)
        .max_retries(50)
        .build()
        .await
        .map_err(|e| format!("worker: build: {e}"))?;
    let ledger = Ledger::new();
    let mut rng = Rng::new(job.seed);
    let print = |kind: &str, id, entry: &Entry, message: Option<&str>| {
        let mut out = std::io::stdout().lock();
        // A failed write means the parent is gone; the next command's write fails too.
        let _ = writeln!(out, "{}", ledger::line(kind, id, entry, message));
    };
    for _ in 0..job.commands {
        let vault = VaultId(rng.below(job.vaults));
        let stream = vault.stream().to_string();
        if job.parts <= 1 {
            let amount = 1 + rng.below(1_000);
            let cmd = Deposit { vault, amount };
            let entry = Entry::one(stream, amount);
            client::run(&app, &ledger, cmd, entry, Attempt::default(), print).await;
        } else {
            let parts: Vec<u64> = (0..job.parts).map(|_| 1 + rng.below(1_000)).collect();
            let entry = Entry {
                stream,
                amount: parts.iter().sum(),
                events: job.parts,
            };
            let cmd = DepositSplit { vault, parts };
            client::run(&app, &ledger, cmd, entry, Attempt::default(), print).await;
        }
    }
    let r = ledger.retries();
    println!(
        "retries {} {} {} {} {}",
        r.unavailable, r.outcome_unknown, r.conflict, r.dropped, r.reruns
    );
    println!("done");
    Ok(())
}

//! The fault-injection suite of the `cqrs` framework.
//!
//! It puts load on every store through `Cqrs::execute` (vaults taking deposits, with command
//! ids, retried the way the error API allows), injects faults — PostgreSQL restarts and
//! terminated sessions under concurrent writers, a kill storm on a `PgSink`, worker processes
//! contending on PostgreSQL and SQLite, `SIGKILL` of a SQLite writer mid-batch, callers
//! dropping `execute` futures, a foreign transaction holding an xid, hostile inputs on every
//! store — and holds the result to a client-side [`ledger`]: acknowledged commands stored
//! exactly once, versions contiguous, positions strictly increasing, read models equal to a
//! replay ([`checks`]).
//!
//! `cargo run -p cqrs-faults --release -- full` runs the recorded campaign (RELIABILITY.md);
//! `-- short` runs the quick one that `cargo test` runs (`tests/short.rs`). PostgreSQL
//! scenarios run on a throwaway cluster the suite starts itself (`cqrs-test-cluster`), never on
//! a shared server; without PostgreSQL binaries they are reported as skipped.
//!
//! `main.rs` parses `full | short [--only a,b] | worker …`; this library runs the scenarios in
//! order on a multi-thread runtime and prints a table.
//!
//! # Choices
//!
//! - **Its own throwaway cluster, never the shared server.** Restarts and terminations would break
//!   other tests' sessions. The cluster runs with `fsync = off` (the faults are process crashes,
//!   not power loss, and the machine is shared), and is stopped and deleted when the run ends, also
//!   on a panic (its `Drop`); worker processes are killed by the `Drop` of [`worker::Workers`].
//! - **Command ids from the client, event ids derived from them**: the ledger finds a command's
//!   events by causation id, which makes "stored exactly once" checkable without reading payloads,
//!   and makes retries after an unknown outcome safe.
//! - **A dropped future is dropped after a number of polls, not a time** ([`client`]): a timer
//!   drops it only when the store happens to be slower than the timeout; counting polls drops it at
//!   every suspension point (before the append is sent, after, while reading the reply).
//! - **The short mode runs the binary** (`CARGO_BIN_EXE_cqrs-faults`, `tests/short.rs`), because
//!   the multi-process scenarios re-execute `current_exe`, which inside a test would be the test
//!   harness.

pub mod checks;
pub mod client;
pub mod domain;
pub mod harness;
pub mod hostile;
pub mod ledger;
pub mod pg;
pub mod scenarios;
pub mod summary;
pub mod worker;

pub use harness::{Mode, Report};

use scenarios::pg_server::{Fault, server_faults};

/// Every scenario's name, in the order a run takes them.
pub const SCENARIOS: &[&str] = &[
    "hostile-inputs",
    "sqlite-processes",
    "sqlite-sigkill",
    "dropped-futures",
    "pg-processes",
    "pg-sigkill",
    "pg-restart",
    "pg-terminate",
    "pg-sink-storm",
    "pg-stray-transaction",
];

/// Runs the scenarios of `mode` (those named in `only`, or all) and returns their reports.
pub fn run(mode: Mode, only: &[String]) -> Vec<Report> {
    let sizes = mode.sizes();
    harness::set_deadline(sizes.deadline);
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let needs_pg = SCENARIOS.iter().any(|s| {
        wanted(s) && (s.starts_with("pg-") || *s == "hostile-inputs" || *s == "dropped-futures")
    });
    let pg = if needs_pg {
        Some(pg::Pg::start())
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut reports = Vec::new();
    runtime.block_on(async {
        let pg_ok = pg.as_ref().and_then(|p| p.as_ref().ok());
        let no_pg = || match &pg {
            Some(Err(why)) => why.clone(),
            _ => "not requested".to_owned(),
        };
        for &name in SCENARIOS.iter().filter(|s| wanted(s)) {
            println!("== {name}");
            let started = std::time::Instant::now();
            let mut batch = match (name, pg_ok) {
                ("hostile-inputs", pg) => hostile::hostile_inputs(pg).await,
                ("sqlite-processes", _) => {
                    vec![scenarios::processes::sqlite_contention(&sizes).await]
                }
                ("sqlite-sigkill", _) => vec![scenarios::sigkill::sqlite_sigkill(&sizes).await],
                ("dropped-futures", pg) => scenarios::dropped::dropped_futures(pg, &sizes).await,
                (_, None) => vec![Report::skipped(name, "postgres", no_pg())],
                ("pg-processes", Some(pg)) => {
                    vec![scenarios::processes::pg_contention(pg, &sizes).await]
                }
                ("pg-sigkill", Some(pg)) => vec![scenarios::sigkill::pg_sigkill(pg, &sizes).await],
                ("pg-restart", Some(pg)) => vec![server_faults(pg, &sizes, Fault::Restart).await],
                ("pg-terminate", Some(pg)) => {
                    vec![server_faults(pg, &sizes, Fault::TerminateWriters).await]
                }
                ("pg-sink-storm", Some(pg)) => {
                    vec![server_faults(pg, &sizes, Fault::SinkStorm).await]
                }
                ("pg-stray-transaction", Some(pg)) => {
                    vec![scenarios::stray::stray_transaction(pg, &sizes).await]
                }
                _ => Vec::new(),
            };
            for report in &mut batch {
                if report.elapsed.is_zero() {
                    report.elapsed = started.elapsed();
                }
                summary::print_one(report);
            }
            reports.extend(batch);
        }
    });
    // The cluster stops (and its directory goes) here, after every client is gone.
    drop(runtime);
    drop(pg);
    reports
}

//! Runs our own rows of the benchmark suite and prints a table.
//!
//! `cargo run -p cqrs-bench --release` (full sizes, 7 rounds, median)
//! `cargo run -p cqrs-bench --release -- --quick` (tiny sizes, 1 round)
//! `cargo run -p cqrs-bench --release -- --read-side` (only the read-side rows: catch-up,
//! exactly-once SQL projections, live lag; add `--medium` for a tenth of the events and 3 s
//! of lag; `--catch-up` instead: only the catch-up rows from PostgreSQL, with `--medium` too)
//!
//! `cargo run -p cqrs-bench --release -- --postgres` (only the PostgreSQL store rows;
//! `--memory`: only the in-memory rows)
//!
//! `cargo run -p cqrs-bench --release -- --curve` (group commit: 1 to 128 clients on PostgreSQL,
//! then on SQLite, with and without grouping, beside raw insert transactions; issue 14;
//! `--sqlite-only` skips PostgreSQL)
//!
//! `cargo run -p cqrs-bench --release -- --http` (64 keep-alive HTTP clients against the bank's
//! service beside the same deposits in process, in memory and on PostgreSQL; issue 13)
//!
//! `cargo run -p cqrs-bench --release -- --dcb` (conditional appends beside unconditional ones,
//! tagged beside untagged, decisions racing for seats: issue 15)
//! `cargo run -p cqrs-bench --release -- --dcb-memory` (conditional appends and racing decisions
//! on `MemoryStore`, issue 15)
//! `cargo run -p cqrs-bench --release -- --contention` (64 clients on one account, in memory
//! and on PostgreSQL, and a stalling projection beside a fast one, each beside the behaviour
//! before; issue 14 part 3)
//!
//! `cargo run -p cqrs-bench --release -- --segments` (the awaited-`PgSink` workload in 4
//! segments beside 1 segment, rounds alternating; issue 14 part 2)
//!
//! `cargo run -p cqrs-bench --release -- --stray` (live lag with rolled-back holes, without and
//! with a stray transaction held open on the server: 60 s each; `--medium` 3 s)
//!
//! The whole suite, with the peer (`cqrs-es`, a dev-dependency) beside ours:
//! `cargo bench -p cqrs-bench --bench suite` (see `benches/suite.rs`).

use cqrs_bench::{Mode, memory, print_table, read_side};

/// What `--help` prints: every flag `main` reads (kept beside [`FLAGS`]).
const USAGE: &str = "\
usage: cqrs-bench [MODE] [--quick | --medium]

Without a mode: the whole suite of our rows (in memory, PostgreSQL if CQRS_POSTGRES_URL is set,
SQLite, read side). The peer's rows: cargo bench -p cqrs-bench --bench suite.

modes (one at a time):
  --memory        the in-memory rows beside the hand-written loop
  --postgres      the PostgreSQL store rows (batch append beside a raw multi-row insert)
  --read-side     the read-side rows (catch-up, exactly-once SQL projections, live lag)
  --catch-up      only the catch-up rows from PostgreSQL beside a raw streamed SELECT
  --curve         group commit: 1 to 128 clients, PostgreSQL then SQLite, beside raw
                  (--sqlite-only skips PostgreSQL; CQRS_CURVE_CLIENTS=1,8,64 and
                  CQRS_CURVE_ROUNDS=9 choose the points and the rounds;
                  CQRS_CURVE_APPEND_STATEMENTS=n sets the grouped store's
                  append statements; CQRS_CURVE_SYSTEMS=grouped,alone,raw
                  chooses the systems)
  --segments      the awaited PgSink workload in 4 segments beside 1
  --contention    64 clients on one account, a stalling projection beside a fast one
  --dcb           conditional appends beside unconditional ones, racing seats (PostgreSQL, SQLite)
  --dcb-memory    the same decisions on MemoryStore
  --http          64 keep-alive HTTP clients against the bank beside in-process deposits
  --stray         live lag with and without a stray transaction on the server (60 s each)

sizes:
  --quick         tiny sizes, one round (a smoke test, figures mean little)
  --medium        read side, catch-up and stray: a tenth of the events, 3 s of lag

PostgreSQL rows need CQRS_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test).
";

/// Every flag `main` understands; anything else is refused rather than silently running the
/// whole suite.
const FLAGS: &[&str] = &[
    "--memory",
    "--postgres",
    "--read-side",
    "--catch-up",
    "--curve",
    "--sqlite-only",
    "--segments",
    "--contention",
    "--dcb",
    "--dcb-memory",
    "--http",
    "--stray",
    "--quick",
    "--medium",
];

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return;
    }
    if let Some(unknown) = args.iter().find(|a| !FLAGS.contains(&a.as_str())) {
        eprintln!("cqrs-bench: unknown argument `{unknown}`\n\n{USAGE}");
        std::process::exit(2);
    }
    let ticks = cqrs_bench::cpu::MachineTicks::now();
    run(&args).await;
    // On a shared virtual machine the hypervisor's steal moves every figure: say how much.
    if let Some(steal) = ticks.and_then(cqrs_bench::cpu::MachineTicks::steal_since) {
        println!(
            "\nCPU time stolen by the hypervisor during this run: {:.1}% of the machine's",
            steal * 100.0
        );
    }
}

/// Runs what the (checked) arguments ask for.
async fn run(args: &[String]) {
    let flag = |name: &str| args.iter().any(|a| a == name);
    let mode = if flag("--quick") {
        Mode::Quick
    } else {
        Mode::Full
    };
    if flag("--stray") {
        let duration = match (mode, flag("--medium")) {
            (Mode::Quick, _) => std::time::Duration::from_secs(1),
            (Mode::Full, true) => std::time::Duration::from_secs(3),
            (Mode::Full, false) => std::time::Duration::from_secs(60),
        };
        let rows = cqrs_bench::stray::run(duration).await;
        println!("stray-transaction rows: one run each, baseline first\n");
        print_table(&rows);
        return;
    }
    if flag("--dcb") {
        // Its own 2-worker runtime, on a thread of its own: racing writers must interleave
        // (SQLite runs inline, so on this current-thread runtime they would take turns).
        let rows = on_two_workers("the dcb workloads", move || cqrs_bench::dcb::run(mode));
        print!(
            "dcb rows ({mode:?} mode): median of {} round(s)\n\n",
            mode.rounds()
        );
        print_table(&rows);
        return;
    }
    if flag("--http") {
        // Its own 2-worker runtime, on a thread of its own (this one is current-thread).
        let rows = std::thread::spawn(move || cqrs_bench::http::run(mode))
            .join()
            .expect("the HTTP workload");
        print!(
            "HTTP rows ({mode:?} mode): median of {} round(s)\n\n",
            mode.rounds()
        );
        print_table(&rows);
        return;
    }
    if flag("--dcb-memory") {
        let rows = std::thread::spawn(move || cqrs_bench::dcb_memory::run(mode))
            .join()
            .expect("the dcb workload");
        print!(
            "dynamic consistency boundary rows ({mode:?} mode): median of {} round(s)\n\n",
            mode.rounds()
        );
        print_table(&rows);
        return;
    }
    if flag("--curve") {
        let clients = cqrs_bench::curve::clients(mode);
        if !flag("--sqlite-only")
            && let Some(curve) = cqrs_bench::curve::run(mode).await
        {
            print!("group-commit curve on PostgreSQL ({mode:?} mode)\n\n");
            print!("{}", cqrs_bench::curve::format(&curve, &clients));
        }
        // Its own 2-worker runtime, on a thread of its own: SQLite appends queue for the write
        // turn only when another worker holds it.
        let curve = on_two_workers("the SQLite curve", move || {
            cqrs_bench::curve::run_sqlite(mode)
        });
        print!("\ngroup-commit curve on SQLite ({mode:?} mode, 2 worker threads)\n\n");
        print!("{}", cqrs_bench::curve::format(&curve, &clients));
        return;
    }
    if flag("--contention") {
        // Its own 2-worker runtime, on a thread of its own (this one is current-thread).
        let rows = std::thread::spawn(move || cqrs_bench::contention::run(mode))
            .join()
            .expect("the contention workloads");
        print!("contention rows ({mode:?} mode): median of the rounds, before beside after\n\n");
        print_table(&rows);
        return;
    }
    if flag("--segments") {
        // Its own 2-worker runtime, on a thread of its own (this one is current-thread): the
        // segments' tasks decode and send on both cores, as a server's runtime would.
        let rows = on_two_workers("the segment workloads", move || {
            cqrs_bench::segments::run(mode)
        });
        match rows {
            Some(rows) => {
                print!(
                    "segmented projection rows ({mode:?} mode): median of alternating rounds\n\n"
                );
                print_table(&rows);
            }
            None => println!("segmented projection rows skipped: CQRS_POSTGRES_URL is not set"),
        }
        return;
    }
    if flag("--memory") {
        let rows = memory::run(mode).await;
        print!(
            "in-memory rows ({mode:?} mode): median of {} round(s)\n\n",
            mode.rounds()
        );
        print_table(&rows);
        return;
    }
    if flag("--catch-up") {
        let rows = read_side::catch_up_only(mode, flag("--medium")).await;
        println!("{}\n", read_side::ROUNDS);
        print_table(&rows);
        return;
    }
    if flag("--postgres") {
        let rows = cqrs_bench::postgres::run(mode).await;
        print!(
            "PostgreSQL rows ({mode:?} mode): median of {} round(s)\n\n",
            mode.rounds()
        );
        print_table(&rows);
        return;
    }
    let read_side_only = flag("--read-side");
    let mut rows = Vec::new();
    if !read_side_only {
        rows.extend(memory::run(mode).await);
        rows.extend(cqrs_bench::postgres::run(mode).await);
        rows.extend(cqrs_bench::sqlite::run(mode).await);
    }
    rows.extend(read_side::run(mode, flag("--medium")).await);
    if !read_side_only {
        print!(
            "cqrs benchmarks ({mode:?} mode): median of {} round(s); ",
            mode.rounds()
        );
    }
    println!("{}\n", read_side::ROUNDS);
    print_table(&rows);
}

/// Runs the future `work` makes on a 2-worker runtime of its own, on a thread of its own, and returns its output
/// (`main`'s runtime is current-thread; `what` names the work if it panics). Workloads whose
/// tasks must interleave or use both cores run here.
fn on_two_workers<T: Send + 'static, F: std::future::Future<Output = T>>(
    what: &'static str,
    work: impl FnOnce() -> F + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work())
    })
    .join()
    .unwrap_or_else(|_| panic!("{what} panicked"))
}

//! Runs our own rows of the benchmark suite and prints a table.
//!
//! `cargo run -p cqrs-bench --release` (full sizes, 7 rounds, median)
//! `cargo run -p cqrs-bench --release -- --quick` (tiny sizes, 1 round)
//!
//! The whole suite, with the peer (`cqrs-es`, a dev-dependency) beside ours:
//! `cargo bench -p cqrs-bench --bench suite` (see `benches/suite.rs`).

use cqrs_bench::{Mode, memory, print_table};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = if std::env::args().any(|a| a == "--quick") {
        Mode::Quick
    } else {
        Mode::Full
    };
    let mut rows = Vec::new();
    rows.extend(memory::run(mode).await);
    rows.extend(cqrs_bench::postgres::run(mode).await);
    rows.extend(cqrs_bench::sqlite::run(mode).await);
    println!(
        "cqrs benchmarks ({mode:?} mode): median of {} round(s)\n",
        mode.rounds()
    );
    print_table(&rows);
}

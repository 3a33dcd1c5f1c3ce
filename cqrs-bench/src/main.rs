//! Runs the benchmark suite and prints a table.
//!
//! `cargo run -p cqrs-bench --release` (full sizes, 7 rounds, median)
//! `cargo run -p cqrs-bench --release -- --quick` (tiny sizes, 1 round)

use cqrs_bench::{Sizes, long_stream, many_accounts, median};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (sizes, rounds) = if quick {
        (Sizes::QUICK, 1)
    } else {
        (Sizes::FULL, 7)
    };

    let mut many = Vec::new();
    let mut long = Vec::new();
    let mut first = Vec::new();
    let mut last = Vec::new();
    for _ in 0..rounds {
        many.push(many_accounts(sizes).await.rate());
        let (run, f, l) = long_stream(sizes).await;
        long.push(run.rate());
        first.push(f);
        last.push(l);
    }

    println!("in-memory store, public `execute` path, balances projection attached");
    println!("median of {rounds} round(s); rates in commands per second\n");
    println!("| workload | commands/s |");
    println!("|---|---:|");
    println!(
        "| (a) {} accounts x {} commands, sequential | {:.0} |",
        sizes.accounts,
        sizes.commands_per_account,
        median(&mut many)
    );
    println!(
        "| (b) 1 account x {} deposits | {:.0} |",
        sizes.long_stream,
        median(&mut long)
    );
    println!(
        "| (b) first tenth of the stream | {:.0} |",
        median(&mut first)
    );
    println!(
        "| (b) last tenth of the stream | {:.0} |",
        median(&mut last)
    );
}

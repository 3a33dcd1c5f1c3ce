//! The whole benchmark suite, side by side with the peer (`cqrs-es`) where the peer runs:
//!
//! `cargo bench -p cqrs-bench --bench suite` (full sizes, 7 rounds, median)
//! `cargo bench -p cqrs-bench --bench suite -- --quick` (tiny sizes, 1 round)
//! `cargo bench -p cqrs-bench --bench suite -- --read-side` (only the read-side rows; add
//! `--medium` for a tenth of the events and 3 s of lag)
//!
//! The peer is a dev-dependency of this crate, hence a bench target; `cargo run -p cqrs-bench
//! --release` prints our own rows only.
//!
//! The table goes to stderr: the peer's `MemStore` prints two lines to stdout on every command
//! (its own `println!`s), so send stdout to `/dev/null` to keep that cost as small as it gets.

// The peer's domain has every command of the bank; the workloads send only some of them (the
// rest are exercised by `tests/quick.rs`).
#[allow(dead_code)]
mod peer;

use cqrs_bench::{Mode, format_table, memory, postgres, read_side, sqlite};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = if std::env::args().any(|a| a == "--quick") {
        Mode::Quick
    } else {
        Mode::Full
    };
    let flag = |name: &str| std::env::args().any(|a| a == name);
    let mut rows = Vec::new();
    if !flag("--read-side") {
        rows.extend(memory::run_against(mode, &peer::memory::EsMemory).await);
        rows.extend(postgres::run_against(mode, &peer::postgres::EsPostgres).await);
        rows.extend(sqlite::run(mode).await);
    }
    let medium = flag("--medium");
    rows.extend(read_side::run_against(mode, medium, &peer::read_side::EsReplay).await);
    eprintln!(
        "cqrs benchmarks side by side with cqrs-es ({mode:?} mode): median of {} round(s), \
         the two systems alternating; {}\n",
        mode.rounds(),
        read_side::ROUNDS
    );
    eprint!("{}", format_table(&rows));
}

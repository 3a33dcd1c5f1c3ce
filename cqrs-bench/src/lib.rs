//! Benchmark workloads, shared by the `cqrs-bench` binary (our rows, full sizes, printed
//! table), the `suite` bench target (the same rows with the peer, `cqrs-es`, beside ours:
//! `cargo bench -p cqrs-bench --bench suite`) and the quick-mode tests that keep them compiling
//! and correct inside `cargo test` (`tests/quick.rs` runs the peer too).
//!
//! Every workload checks its result, so a fast but wrong run cannot report a number. Each
//! family of workloads lives in its own module and returns [`Row`]s for the table.
//!
//! The modules cover the memory, SQLite and PostgreSQL stores, each beside a raw baseline where one
//! exists; the peer's workloads are in `benches/peer/` (`cqrs-es` and `postgres-es` are
//! dev-dependencies only). `compile-time/run.py` compares the build time of a 50-command macro
//! domain with the same domain written by hand. Figures: BENCHMARKS.md.

pub mod contention;
pub mod cpu;
pub mod curve;
pub mod dcb;
pub mod dcb_memory;
pub mod http;
pub mod memory;
pub mod postgres;
pub mod raw_catch_up;
pub mod raw_memory;
pub mod read_side;
pub mod segments;
pub mod sqlite;
pub mod stray;
pub mod table;

pub use table::{Row, format_table, median, print_table};

/// Full sizes (the issues' targets) or tiny ones (for `cargo test`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The sizes the issues set; several rounds, median.
    Full,
    /// Tiny sizes, one round, no timing claims.
    Quick,
}

impl Mode {
    /// How many rounds a workload runs (the median is reported).
    pub fn rounds(self) -> usize {
        match self {
            Mode::Full => 7,
            Mode::Quick => 1,
        }
    }
}

//! The bank domain of the example: accounts (open, deposit, withdraw, close), transfers between
//! two accounts, a durable balances read model in SQL and an in-memory account-history
//! projection.
//!
//! Everything here is plain Rust plus the framework's attributes; `main.rs` runs it and prints
//! a transcript. The benchmarks reuse this domain (with the in-memory [`Balances`]).
//!
//! Two kinds of read model, side by side:
//! - [`balances`]: a **durable** projection ([`BalancesTable`]) whose handlers write a SQL table
//!   in the store's SQLite file, exactly once, from a stored checkpoint; it is queried with SQL.
//! - [`history`]: an **in-memory** projection ([`AccountHistory`]) attached to the application
//!   and rebuilt from the first event at every start; it answers typed queries.

pub mod account;
pub mod balances;
pub mod balances_in_memory;
pub mod history;
pub mod metrics;
pub mod seed;
pub mod serve;
pub mod transfer;
pub mod transfer_decision;
pub mod transfer_process;

/// The bank's [event catalog](eventweave_core::catalog): what its modules declare. The
/// committed copies under `docs/` (`bank-catalog.mmd`, `.json`, `.schema.json`) are checked
/// against it by `tests/catalog.rs`.
pub fn catalog() -> eventweave_core::catalog::Catalog {
    eventweave_core::catalog::Catalog::registered_in(module_path!())
}

pub use account::*;
pub use balances::{AccountSummary, BalancesTable};
pub use balances_in_memory::*;
pub use history::*;
pub use transfer::*;
pub use transfer_decision::*;
pub use transfer_process::*;

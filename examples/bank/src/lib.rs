//! The bank domain of the example: accounts (open, deposit, withdraw, close), transfers between
//! two accounts, a balances projection and an account-history projection.
//!
//! Everything here is plain Rust plus the framework's attributes; `main.rs` runs it and prints
//! a transcript. The benchmarks reuse this domain.

pub mod account;
pub mod balances;
pub mod history;
pub mod transfer;

pub use account::*;
pub use balances::*;
pub use history::*;
pub use transfer::*;

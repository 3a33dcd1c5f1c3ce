//! The peer: `cqrs-es` 0.4 (`CqrsFramework`) running the bank domain of the example with the
//! same business rules, for the side-by-side rows of the suite. A dev-dependency only: shared
//! by the bench target (`benches/suite.rs`) and the quick test (`tests/quick.rs`).

pub mod bank;
pub mod memory;
pub mod postgres;
pub mod read_side;

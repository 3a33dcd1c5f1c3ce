//! Runtime tests live in this crate's `[[test]]` targets; this library is empty.
//!
//! They run on the hand-written test domain (`eventweave_core::testing::domain`): `runtime.rs`
//! (command bus, read side, dispatch), `runner.rs` and `runner_outages.rs` (the projection runner;
//! outages on tokio's paused clock), `read_side.rs` (a pending hole and the bounded buffer, with
//! the `HoleStore` and `FlakyStore` wrappers of `common/`), `fixtures.rs`, `idempotency.rs`,
//! `snapshots.rs`, `segments.rs` (segmented projections: the stream hash, splits and merges),
//! `contention.rs` (commands on one aggregate id take turns; a slow projection
//! holds up neither the others, nor queries, nor commands), and `memory_store.rs` (the store and
//! checkpoint conformance suites on `MemoryStore`).

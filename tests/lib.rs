//! Workspace-level tests live in this crate's `[[test]]` targets; this library is empty.
//!
//! The targets are the trybuild UI suite (`ui.rs`, `ui/`) and the macro integration tests
//! (`macros.rs`). The crate builds `eventweave-core` without the `testing` feature, so the UI
//! snapshots do not list test-only types.

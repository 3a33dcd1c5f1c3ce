//! `PostgresStore` keeps the whole store contract: the shared conformance suite, each case on
//! its own schema (so the cases run in parallel). Skipped, saying so, without
//! `CQRS_POSTGRES_URL`.
//!
//! For this suite `store_conformance_tests!` gained an optional `skip` closure (and
//! `testing::report_skip`), so each case says it was skipped when no database is configured, and
//! the suite's one exact payload comparison compares JSON values like the rest (JSONB normalises
//! formatting). Both changes are backwards compatible.

mod common;

eventweave_core::store_conformance_tests! {
    fresh: || common::open_fresh(None),
    limited: |max: usize| common::open_fresh(Some(max)),
    skip: common::skip_reason,
}

eventweave_core::checkpoint_conformance_tests! {
    fresh: || common::open_fresh(None),
    skip: common::skip_reason,
}

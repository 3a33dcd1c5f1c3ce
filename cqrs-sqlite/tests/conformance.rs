//! `SqliteStore` keeps the whole store contract: the shared conformance suite, each case on a
//! store in a temporary file of its own.

use cqrs_sqlite::{SqliteConfig, SqliteStore};

cqrs_core::store_conformance_tests! {
    fresh: || async { SqliteStore::temporary().expect("a temporary store opens") },
    limited: |max: usize| async move {
        SqliteStore::temporary_with(SqliteConfig::new().max_event_bytes(max))
            .expect("a temporary store opens")
    },
}

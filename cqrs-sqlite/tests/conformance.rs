//! `SqliteStore` keeps the whole store contract: the shared conformance suite, each case on a
//! store in a temporary file of its own.

use eventweave_sqlite::{SqliteConfig, SqliteStore};

eventweave_core::store_conformance_tests! {
    fresh: || async { SqliteStore::temporary().expect("a temporary store opens") },
    limited: |max: usize| async move {
        SqliteStore::temporary_with(SqliteConfig::new().max_event_bytes(max))
            .expect("a temporary store opens")
    },
}

/// The same contract through `DynStore`, as an application that picks its store at run time
/// uses it.
mod through_dyn_store {
    use eventweave_core::DynStore;
    use eventweave_sqlite::{SqliteConfig, SqliteStore};

    eventweave_core::store_conformance_tests! {
        fresh: || async {
            DynStore::new(SqliteStore::temporary().expect("a temporary store opens"))
        },
        limited: |max: usize| async move {
            DynStore::new(
                SqliteStore::temporary_with(SqliteConfig::new().max_event_bytes(max))
                    .expect("a temporary store opens"),
            )
        },
    }
}

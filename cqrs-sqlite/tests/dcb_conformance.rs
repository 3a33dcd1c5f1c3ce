//! `SqliteStore` keeps the dynamic-consistency-boundary contract: the shared cases of
//! `eventweave_core::testing::dcb` (reading by query, append conditions, atomic appends to several
//! streams, retries, the racing seats, bad input), each on a store in a temporary file of its own.

use eventweave_sqlite::SqliteStore;

eventweave_core::dcb_conformance_tests! {
    fresh: || async { SqliteStore::temporary().expect("a temporary store opens") },
}

/// The same cases through `DynStore`, as an application that picks its store at run time.
mod through_dyn_store {
    use eventweave_sqlite::SqliteStore;

    eventweave_core::dcb_conformance_tests! {
        fresh: || async {
            eventweave_core::DynStore::new(SqliteStore::temporary().expect("a temporary store opens"))
        },
    }
}

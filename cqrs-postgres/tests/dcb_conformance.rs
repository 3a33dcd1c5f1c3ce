//! `PostgresStore` keeps the dynamic-consistency-boundary contract: the shared cases of
//! `eventweave_core::testing::dcb` (reading by query, append conditions, atomic appends to several
//! streams, retries, the racing seats, bad input), each on its own schema. Skipped, saying so,
//! without `CQRS_POSTGRES_URL`.

mod common;

eventweave_core::dcb_conformance_tests! {
    fresh: || common::open_fresh(None),
    skip: common::skip_reason,
}

/// The same cases through `DynStore`, as an application that picks its store at run time.
mod through_dyn_store {
    use super::common;

    eventweave_core::dcb_conformance_tests! {
        fresh: || async { eventweave_core::DynStore::new(common::open_fresh(None).await) },
        skip: common::skip_reason,
    }
}

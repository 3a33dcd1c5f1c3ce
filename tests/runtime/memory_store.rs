//! `MemoryStore` keeps the whole store contract: the shared conformance suite, run on it.

use eventweave_core::{EventStore, ExpectedVersion, MemoryStore, StreamId};

eventweave_core::store_conformance_tests! {
    fresh: || async { MemoryStore::new() },
    limited: |max: usize| async move { MemoryStore::with_max_event_bytes(max) },
}

eventweave_core::checkpoint_conformance_tests! {
    fresh: || async { MemoryStore::new() },
}

/// Dynamic consistency boundaries: reading by query, conditions, several streams at once.
mod dcb {
    use eventweave_core::MemoryStore;

    eventweave_core::dcb_conformance_tests! {
        fresh: || async { MemoryStore::new() },
    }
}

#[tokio::test]
async fn clones_share_the_same_events() {
    let store = MemoryStore::new();
    let clone = store.clone();
    let event = eventweave_core::testing::conformance::event("1");
    clone
        .append(&StreamId::from("s"), ExpectedVersion::NoStream, vec![event])
        .await
        .unwrap();
    assert_eq!(store.len(), 1);
    assert!(!store.is_empty());
}

/// The store contract holds through `DynStore` (a store chosen at run time).
mod through_dyn_store {
    use eventweave_core::{DynStore, MemoryStore};

    eventweave_core::store_conformance_tests! {
        fresh: || async { DynStore::new(MemoryStore::new()) },
        limited: |max: usize| async move { DynStore::new(MemoryStore::with_max_event_bytes(max)) },
    }

    eventweave_core::checkpoint_conformance_tests! {
        fresh: || async { DynStore::new(MemoryStore::new()) },
    }

    eventweave_core::dcb_conformance_tests! {
        fresh: || async { DynStore::new(MemoryStore::new()) },
    }

    #[test]
    fn the_store_inside_is_reachable_and_named() {
        let store = DynStore::new(MemoryStore::new());
        assert!(store.downcast_ref::<MemoryStore>().is_some());
        assert!(format!("{store:?}").contains("MemoryStore"), "{store:?}");
    }
}

#[tokio::test]
async fn lists_streams_for_operators() {
    eventweave_core::testing::inspect::list_streams_cases(&MemoryStore::new()).await;
}

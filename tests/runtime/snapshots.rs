//! Aggregate snapshots on `MemoryStore`: the snapshot conformance cases, and the property that a
//! load from snapshots equals a full replay for random command sequences.

use eventweave_core::MemoryStore;
use eventweave_core::testing::snapshots::{Step, load_equals_replay};
use proptest::prelude::*;

eventweave_core::snapshot_conformance_tests! {
    fresh: || async { MemoryStore::new() },
}

/// A random step: mostly additions of 0 to 4 events, some resets and cold loads.
pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::collection::vec(0u32..100, 0..5).prop_map(Step::Add),
        1 => Just(Step::Reset),
        1 => Just(Step::Cold),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_load_from_snapshots_equals_a_full_replay(steps in prop::collection::vec(step(), 0..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(load_equals_replay(MemoryStore::new(), 1, &steps));
    }
}

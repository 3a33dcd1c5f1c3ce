//! Aggregate snapshots in `SqliteStore`: the snapshot conformance cases, snapshots surviving a
//! reopen of the file, and the property that a load from snapshots equals a full replay for
//! random command sequences.

use eventweave_core::testing::snapshots::{OpenTally, Step, Tally, load_equals_replay};
use eventweave_core::{Aggregate, Cqrs, EventStore, new_id};
use eventweave_sqlite::SqliteStore;
use proptest::prelude::*;

eventweave_core::snapshot_conformance_tests! {
    fresh: || async { SqliteStore::temporary().unwrap() },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::collection::vec(0u32..100, 0..5).prop_map(Step::Add),
        1 => Just(Step::Reset),
        1 => Just(Step::Cold),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_load_from_snapshots_equals_a_full_replay(steps in prop::collection::vec(step(), 0..30)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(load_equals_replay(SqliteStore::temporary().unwrap(), 1, &steps));
    }
}

#[tokio::test]
async fn snapshots_survive_reopening_the_file() {
    let dir =
        std::env::temp_dir().join(format!("eventweave-sqlite-snapshots-{}", new_id().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    {
        let app = Cqrs::builder(SqliteStore::open(&path).unwrap())
            .build()
            .await
            .unwrap();
        app.execute(OpenTally { id: 9 }).await.unwrap();
        for _ in 0..3 {
            app.execute(eventweave_core::testing::snapshots::AddToTally {
                id: 9,
                amounts: vec![1],
            })
            .await
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    let kept = store
        .load_snapshot(&Tally::stream_id(&9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((kept.version, kept.snapshot_version), (3, 2));
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `SqliteStore` keeps checkpoints and parked events of durable projections: the shared
//! checkpoint conformance cases, plus surviving a reopen of the file.

use eventweave_core::runner::{Checkpoints, ParkedEvent};
use eventweave_core::{Position, new_id};
use eventweave_sqlite::SqliteStore;

eventweave_core::checkpoint_conformance_tests! {
    fresh: || async { SqliteStore::temporary().unwrap() },
}

#[tokio::test]
async fn checkpoints_and_parked_events_survive_reopening_the_file() {
    let dir = std::env::temp_dir().join(format!(
        "eventweave-sqlite-checkpoints-{}",
        new_id().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let expected = {
        let store = SqliteStore::open(&path).unwrap();
        let stored = eventweave_core::testing::checkpoints::events(&store, "s", 3).await;
        store.save_checkpoint("kept", Position(2)).await.unwrap();
        let parked = ParkedEvent::new("kept", &stored[2], "bad payload".into());
        store.park_event(parked.clone()).await.unwrap();
        parked
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.load_checkpoint("kept").await.unwrap(), Position(3));
    assert_eq!(store.parked_events("kept").await.unwrap(), vec![expected]);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

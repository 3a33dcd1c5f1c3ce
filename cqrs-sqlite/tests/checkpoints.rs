//! `SqliteStore` keeps checkpoints and parked events of durable projections: the cases any
//! store's `Checkpoints` must pass (written against the trait, so they can move to the shared
//! conformance suite), plus surviving a reopen of the file.

use cqrs_core::runner::{Checkpoints, ParkedEvent};
use cqrs_core::{
    EventStore, ExpectedVersion, NewEvent, Payload, Position, RecordedEvent, StreamId,
    UserMetadata, new_id,
};
use cqrs_sqlite::SqliteStore;

/// Appends `n` events to `stream` and returns them.
async fn events<S: EventStore>(store: &S, stream: &str, n: usize) -> Vec<RecordedEvent> {
    let batch = (0..n)
        .map(|i| NewEvent {
            event_id: new_id(),
            event_name: "checkpoint.test".into(),
            event_version: 1,
            payload: Payload::from_json(format!(r#"{{"i":{i}}}"#)),
            correlation_id: None,
            causation_id: None,
            metadata: UserMetadata::empty(),
        })
        .collect();
    store
        .append(&StreamId::from(stream), ExpectedVersion::Any, batch)
        .await
        .unwrap()
}

async fn unknown_projection_is_at_zero<S: Checkpoints>(store: &S) {
    assert_eq!(
        store.load_checkpoint("nobody").await.unwrap(),
        Position::ZERO
    );
    assert!(store.parked_events("nobody").await.unwrap().is_empty());
}

async fn save_load_and_overwrite<S: Checkpoints>(store: &S) {
    store.save_checkpoint("a", Position(7)).await.unwrap();
    assert_eq!(store.load_checkpoint("a").await.unwrap(), Position(7));
    store.save_checkpoint("a", Position(42)).await.unwrap();
    assert_eq!(store.load_checkpoint("a").await.unwrap(), Position(42));
    // Saving may move back (a rebuild sets it to zero).
    store.save_checkpoint("a", Position::ZERO).await.unwrap();
    assert_eq!(store.load_checkpoint("a").await.unwrap(), Position::ZERO);
    // Projections are independent.
    store.save_checkpoint("b", Position(3)).await.unwrap();
    store.save_checkpoint("a", Position(9)).await.unwrap();
    assert_eq!(store.load_checkpoint("b").await.unwrap(), Position(3));
    assert_eq!(store.load_checkpoint("a").await.unwrap(), Position(9));
}

async fn park_moves_the_checkpoint_and_lists_in_position_order<S: Checkpoints + EventStore>(
    store: &S,
) {
    let stored = events(store, "parking", 5).await;
    store
        .save_checkpoint("p", stored[0].meta.position)
        .await
        .unwrap();
    // Parked out of order: listed in position order.
    for (i, error) in [(3, "later"), (1, "earlier")] {
        store
            .park_event(ParkedEvent::new("p", &stored[i], error.to_owned()))
            .await
            .unwrap();
    }
    // The checkpoint moved to the parked event and never moves back by parking.
    assert_eq!(
        store.load_checkpoint("p").await.unwrap(),
        stored[3].meta.position
    );
    let parked = store.parked_events("p").await.unwrap();
    let summary: Vec<_> = parked
        .iter()
        .map(|p| (p.position, p.event_id, p.version, p.error.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                stored[1].meta.position,
                stored[1].meta.event_id,
                2,
                "earlier"
            ),
            (stored[3].meta.position, stored[3].meta.event_id, 4, "later"),
        ]
    );
    let first = &parked[0];
    assert_eq!(
        (
            first.projection.as_str(),
            first.stream.as_str(),
            first.event_name.as_str()
        ),
        ("p", "parking", "checkpoint.test")
    );
    assert!(first.parked_at.unix_micros() > 0);
    // Other projections see none of it.
    assert!(store.parked_events("q").await.unwrap().is_empty());
    assert_eq!(store.load_checkpoint("q").await.unwrap(), Position::ZERO);
    // Parking sets a checkpoint for a projection that had none.
    store
        .park_event(ParkedEvent::new("fresh", &stored[2], "x".into()))
        .await
        .unwrap();
    assert_eq!(
        store.load_checkpoint("fresh").await.unwrap(),
        stored[2].meta.position
    );
}

#[tokio::test]
async fn unknown_projection() {
    unknown_projection_is_at_zero(&SqliteStore::temporary().unwrap()).await;
}

#[tokio::test]
async fn save_load_overwrite() {
    save_load_and_overwrite(&SqliteStore::temporary().unwrap()).await;
}

#[tokio::test]
async fn park() {
    park_moves_the_checkpoint_and_lists_in_position_order(&SqliteStore::temporary().unwrap()).await;
}

/// The same cases on `MemoryStore`, the reference implementation: the cases themselves are right.
///
/// Ignored for now: `MemoryStore::parked_events` lists events in the order they were parked, not
/// in position order as `Checkpoints::parked_events` promises (its fix belongs in cqrs-core).
#[tokio::test]
#[ignore = "MemoryStore::parked_events is not sorted by position yet"]
async fn the_same_cases_pass_on_the_memory_store() {
    let store = cqrs_core::MemoryStore::new();
    unknown_projection_is_at_zero(&store).await;
    save_load_and_overwrite(&store).await;
    park_moves_the_checkpoint_and_lists_in_position_order(&store).await;
}

#[tokio::test]
async fn checkpoints_and_parked_events_survive_reopening_the_file() {
    let dir = std::env::temp_dir().join(format!("cqrs-sqlite-checkpoints-{}", new_id().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let expected = {
        let store = SqliteStore::open(&path).unwrap();
        let stored = events(&store, "s", 3).await;
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

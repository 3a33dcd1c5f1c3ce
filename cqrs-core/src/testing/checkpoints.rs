//! The cases every store's [`Checkpoints`] must pass, run by
//! [`checkpoint_conformance_tests!`](crate::checkpoint_conformance_tests).

use std::future::Future;

use crate::store::{Checkpoints, ParkedEvent};
use crate::{
    EventStore, ExpectedVersion, NewEvent, Payload, Position, RecordedEvent, StreamId,
    UserMetadata, new_id,
};

/// Appends `n` events to `stream` and returns them.
pub async fn events<S: EventStore>(store: &S, stream: &str, n: usize) -> Vec<RecordedEvent> {
    let batch = (0..n)
        .map(|i| NewEvent {
            event_id: new_id(),
            event_name: "checkpoint.test".into(),
            event_version: 1,
            payload: Payload::from_json(format!(r#"{{"i":{i}}}"#)),
            correlation_id: None,
            causation_id: None,
            metadata: UserMetadata::empty(),
            tags: crate::Tags::empty(),
        })
        .collect();
    store
        .append(&StreamId::from(stream), ExpectedVersion::Any, batch)
        .await
        .unwrap()
}

/// A projection that never saved anything is at `Position::ZERO` with nothing parked.
pub async fn unknown_projection_is_at_zero<S, F, Fut>(make: &F)
where
    S: Checkpoints,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = &make().await;
    assert_eq!(
        store.load_checkpoint("nobody").await.unwrap(),
        Position::ZERO
    );
    assert!(store.parked_events("nobody").await.unwrap().is_empty());
}

/// Saving overwrites (also backwards, as a rebuild does), per projection.
pub async fn save_load_and_overwrite<S, F, Fut>(make: &F)
where
    S: Checkpoints,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = &make().await;
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

/// Parking records the event, moves the checkpoint to it (never back), and lists parked events
/// in position order.
pub async fn park_moves_the_checkpoint_and_lists_in_position_order<S, F, Fut>(make: &F)
where
    S: Checkpoints + EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = &make().await;
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

/// Unparking removes one record (or all of a projection's), says whether there was one, and
/// never moves the checkpoint.
pub async fn unpark_removes_records_and_keeps_the_checkpoint<S, F, Fut>(make: &F)
where
    S: Checkpoints + EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = &make().await;
    let stored = events(store, "unparking", 4).await;
    for i in [0, 1, 2] {
        store
            .park_event(ParkedEvent::new("u", &stored[i], format!("e{i}")))
            .await
            .unwrap();
    }
    store
        .park_event(ParkedEvent::new("other", &stored[1], "o".into()))
        .await
        .unwrap();
    store
        .save_checkpoint("u", stored[3].meta.position)
        .await
        .unwrap();
    let position = |i: usize| stored[i].meta.position;
    let listed = |projection: &'static str| async move {
        let parked = store.parked_events(projection).await.unwrap();
        parked.iter().map(|p| p.position).collect::<Vec<_>>()
    };

    assert!(store.unpark_event("u", Some(position(1))).await.unwrap());
    assert_eq!(listed("u").await, [position(0), position(2)]);
    // Already gone: says so, changes nothing.
    assert!(!store.unpark_event("u", Some(position(1))).await.unwrap());
    assert!(
        !store
            .unpark_event("nobody", Some(position(0)))
            .await
            .unwrap()
    );
    assert_eq!(listed("u").await, [position(0), position(2)]);
    // The checkpoint stays where it was, and other projections keep their records.
    assert_eq!(store.load_checkpoint("u").await.unwrap(), position(3));
    assert_eq!(listed("other").await, [position(1)]);
    // `None`: every record of the projection.
    assert!(store.unpark_event("u", None).await.unwrap());
    assert!(listed("u").await.is_empty());
    assert!(!store.unpark_event("u", None).await.unwrap());
    assert_eq!(store.load_checkpoint("u").await.unwrap(), position(3));
    assert_eq!(listed("other").await, [position(1)]);
}

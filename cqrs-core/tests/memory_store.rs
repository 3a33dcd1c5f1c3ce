//! The store contract, checked on `MemoryStore`.

use std::time::Duration;

use cqrs_core::{
    EventStore, ExpectedVersion, MemoryStore, NewEvent, Payload, Position, StoreError, StreamId,
    UserMetadata, new_id,
};

fn event(json: &str) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: "thing.happened".into(),
        event_version: 1,
        payload: Payload::from_json(json),
        correlation_id: Some(new_id()),
        causation_id: Some(new_id()),
        metadata: UserMetadata::empty(),
    }
}

#[tokio::test]
async fn expected_versions_are_enforced_and_conflicts_write_nothing() {
    let store = MemoryStore::new();
    let s = StreamId::from("s-1");
    store
        .append(&s, ExpectedVersion::NoStream, vec![event("1")])
        .await
        .unwrap();
    let err = store
        .append(&s, ExpectedVersion::NoStream, vec![event("2")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { actual: 1, .. }),
        "{err}"
    );
    let err = store
        .append(&s, ExpectedVersion::Exact(0), vec![event("2")])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict {
            expected: ExpectedVersion::Exact(0),
            actual: 1,
            ..
        }
    ));
    let ok = store
        .append(&s, ExpectedVersion::Exact(1), vec![event("2"), event("3")])
        .await
        .unwrap();
    assert_eq!(
        ok.iter().map(|e| e.meta.version).collect::<Vec<_>>(),
        vec![2, 3]
    );
    store
        .append(&s, ExpectedVersion::Any, vec![event("4")])
        .await
        .unwrap();
    assert_eq!(store.len(), 4);
}

#[tokio::test]
async fn re_appending_the_same_event_ids_is_idempotent() {
    let store = MemoryStore::new();
    let s = StreamId::from("s-1");
    let batch = vec![event("1"), event("2")];
    let first = store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    let again = store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(store.len(), 2);
    // The same ids on another stream are not a retry.
    let err = store
        .append(&"s-2".into(), ExpectedVersion::Any, batch.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateEventId { .. }), "{err}");
    // A batch that mixes a stored id with new ones writes nothing.
    let mixed = vec![event("3"), batch[1].clone()];
    assert!(store.append(&s, ExpectedVersion::Any, mixed).await.is_err());
    // A batch with an id twice writes nothing.
    let twice = event("5");
    assert!(
        store
            .append(&s, ExpectedVersion::Any, vec![twice.clone(), twice])
            .await
            .is_err()
    );
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn reads_return_events_in_order_from_any_position() {
    let store = MemoryStore::new();
    for i in 0..10 {
        let s = StreamId::from(format!("s-{}", i % 3));
        store
            .append(&s, ExpectedVersion::Any, vec![event(&i.to_string())])
            .await
            .unwrap();
    }
    let all = store.read_all(Position::ZERO, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.meta.position.0).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let tail = store.read_all(Position(8), 100).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(),
        vec!["7", "8", "9"]
    );
    let page = store.read_all(Position(2), 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.meta.position.0).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let s0 = store.read_stream(&"s-0".into(), 2, 10).await.unwrap();
    assert_eq!(
        s0.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(),
        vec!["3", "6", "9"]
    );
    assert!(
        store
            .read_stream(&"nope".into(), 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.head().await.unwrap(), Position(10));
}

#[tokio::test]
async fn payloads_and_metadata_round_trip_verbatim() {
    let store = MemoryStore::new();
    let s = StreamId::from("weird \"stream\"; DROP TABLE events; -- ü🦀");
    let mut e = event(r#"{"text":"quote \" semicolon ; unicode ü🦀"}"#);
    e.metadata.insert("user", "ada");
    let written = e.clone();
    let recorded = store
        .append(&s, ExpectedVersion::NoStream, vec![e])
        .await
        .unwrap();
    let read = store.read_stream(&s, 1, 1).await.unwrap();
    assert_eq!(read, recorded);
    let meta = &read[0].meta;
    assert_eq!(meta.stream, s);
    assert_eq!(meta.event_id, written.event_id);
    assert_eq!(meta.correlation_id, written.correlation_id);
    assert_eq!(meta.causation_id, written.causation_id);
    assert_eq!(meta.metadata, written.metadata);
    assert_eq!(read[0].payload, written.payload);
}

#[tokio::test]
async fn empty_stream_names_are_refused() {
    let store = MemoryStore::new();
    let err = store
        .append(&"".into(), ExpectedVersion::Any, vec![event("1")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidAppend { .. }));
    assert!(store.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_catches_up_then_follows_live_without_gap_or_duplicate() {
    let store = MemoryStore::new();
    for i in 0..1000 {
        store
            .append(
                &"a".into(),
                ExpectedVersion::Any,
                vec![event(&i.to_string())],
            )
            .await
            .unwrap();
    }
    let mut sub = store.subscribe(Position(500));
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 1000..2000 {
                store
                    .append(
                        &"b".into(),
                        ExpectedVersion::Any,
                        vec![event(&i.to_string())],
                    )
                    .await
                    .unwrap();
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    for expected in 500..=2000u64 {
        let e = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.meta.position, Position(expected));
        assert_eq!(e.payload.as_str(), (expected - 1).to_string());
    }
    writer.await.unwrap();
    assert!(sub.try_next().await.unwrap().is_none());
}

//! `EventMeta::aggregate_id`: the typed id of the aggregate whose stream recorded an event.

use eventweave_core::prelude::*;
use eventweave_core::{EventStore, Position, RecordedEvent, StreamId};

use super::upsert::{AddCopy, Book, Catalogued, CopyAdded};

fn meta_in(stream: &str) -> EventMeta {
    let recorded: RecordedEvent = eventweave_core::NewEvent {
        event_id: eventweave_core::new_id(),
        event_name: "test-upsert.copy_added".into(),
        event_version: 1,
        payload: eventweave_core::Payload::from_json(r#"{"copy":1}"#),
        correlation_id: None,
        causation_id: None,
        metadata: eventweave_core::UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
    .record(
        StreamId::from(stream),
        1,
        Position(1),
        eventweave_core::Timestamp::now(),
    );
    recorded.meta
}

#[tokio::test]
async fn the_id_of_a_recorded_event_comes_back_typed() {
    let app = Cqrs::builder(MemoryStore::new()).build().await.unwrap();
    app.execute(AddCopy {
        isbn: 9_780_441,
        title: "Dune".into(),
    })
    .await
    .unwrap();
    let events = app.store().read_all(Position(1), 10).await.unwrap();
    let catalogued = Catalogued {
        title: "Dune".into(),
    };
    let id: u64 = events[0].meta.aggregate_id(&catalogued).unwrap();
    assert_eq!(id, 9_780_441);
}

#[test]
fn streams_that_are_not_the_aggregates_are_typed_errors() {
    let event = CopyAdded { copy: 1 };
    assert_eq!(meta_in("test-upsert-book-42").aggregate_id(&event), Ok(42));
    for stream in [
        "member-42",               // another aggregate's stream
        "test-upsert-book",        // no id
        "test-upsert-book-",       // an empty id
        "test-upsert-book-x",      // an id that does not parse
        "test-upsert-bookshelf-1", // a category that only starts like the aggregate's
        "test-upsert-book-007",    // parses, but prints as `7`: not this stream's id
    ] {
        let error = meta_in(stream).aggregate_id::<Book, _>(&event).unwrap_err();
        assert_eq!(error.stream.as_str(), stream);
        assert_eq!(error.aggregate, "test-upsert-book");
        assert!(error.to_string().contains(stream), "{error}");
    }
}

/// The last id text that printed back is remembered per thread; a text that only parses to
/// the same id (`007`, `+7`) is still refused after it, and in between other streams.
#[test]
fn a_remembered_id_lets_no_other_text_through() {
    let event = CopyAdded { copy: 1 };
    for _ in 0..2 {
        assert_eq!(meta_in("test-upsert-book-7").aggregate_id(&event), Ok(7));
        assert_eq!(meta_in("test-upsert-book-7").aggregate_id(&event), Ok(7));
        for stream in ["test-upsert-book-007", "test-upsert-book-+7"] {
            let error = meta_in(stream).aggregate_id::<Book, _>(&event).unwrap_err();
            assert_eq!(error.stream.as_str(), stream);
        }
    }
    assert_eq!(meta_in("test-upsert-book-70").aggregate_id(&event), Ok(70));
    let error = meta_in("test-upsert-book-070")
        .aggregate_id::<Book, _>(&event)
        .unwrap_err();
    assert_eq!(error.stream.as_str(), "test-upsert-book-070");
}

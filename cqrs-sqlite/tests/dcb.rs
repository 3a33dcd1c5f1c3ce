//! Dynamic consistency boundaries on a SQLite file beyond the shared cases: a file of schema
//! version 4 upgrades in place (its events read back without tags, tagged appends work after);
//! a stored tags column that is not a JSON array of tags is a typed decode error; two handles of
//! one file (as two processes would) see each other's events in their conditions.

use eventweave_core::testing::dcb::{tag, tagged_event as event};
use eventweave_core::{
    AppendCondition, EventQuery, EventStore, ExpectedVersion, Position, QueryItem, StoreError,
    StreamId, StreamWrite, Tags,
};
use eventweave_sqlite::SqliteStore;
use eventweave_sqlite::rusqlite::Connection;

#[tokio::test]
async fn a_file_of_version_4_upgrades_in_place_and_bad_stored_tags_are_decode_errors() {
    let store = SqliteStore::temporary().unwrap();
    let path = store.path().to_owned();
    let old = store
        .append(
            &StreamId::from("old"),
            ExpectedVersion::NoStream,
            vec![event("noted", &[])],
        )
        .await
        .unwrap();
    // Back to what version 4 wrote: no tags column, no tags table.
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE events DROP COLUMN tags; DROP TABLE event_tags;
             DELETE FROM schema_migrations WHERE version = 5;",
        )
        .unwrap();
    }
    let reopened = SqliteStore::open(&path).expect("version 4 upgrades");
    let read = reopened.read_all(Position::ZERO, 10).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].meta.event_id, old[0].meta.event_id);
    assert!(read[0].meta.tags.is_empty());
    let t = tag("k:v");
    reopened
        .append(
            &StreamId::from("new"),
            ExpectedVersion::NoStream,
            vec![event("noted", &[&t])],
        )
        .await
        .unwrap();
    let by_tag = reopened
        .read_query(
            &EventQuery::from_items([QueryItem::tags([t.clone()])]),
            Position(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_tag.events.len(), 1);
    assert_eq!(by_tag.events[0].meta.tags, Tags::new([t]));

    let conn = Connection::open(&path).unwrap();
    for bad in [r#"["no key"]"#, "not json", "[1]"] {
        conn.execute("UPDATE events SET tags = ?1 WHERE stream = 'old'", [bad])
            .unwrap();
        match reopened.read_stream(&StreamId::from("old"), 1, 10).await {
            Err(StoreError::Decode(e)) => {
                assert_eq!((e.stream.as_str(), e.version), ("old", 1));
                assert!(e.to_string().contains("tags"), "{e}");
            }
            other => panic!("{bad}: want a decode error naming the tags, got {other:?}"),
        }
    }
    drop((store, reopened));
}

#[tokio::test]
async fn two_handles_of_one_file_see_each_others_events_in_their_conditions() {
    let first = SqliteStore::temporary().unwrap();
    let second = SqliteStore::open(first.path()).unwrap();
    let seat = tag("course:c1");
    let query = EventQuery::from_items([QueryItem::types(["booked"]).with_tag(seat.clone())]);
    let read = first.read_query(&query, Position(1), 10).await.unwrap();
    let condition = AppendCondition::new(query.clone(), read.through);
    let booking = |stream: &str| {
        vec![StreamWrite::new(
            StreamId::from(stream),
            ExpectedVersion::Any,
            vec![event("booked", &[&seat])],
        )]
    };
    let taken = second
        .append_conditional(booking("a"), Some(&condition))
        .await
        .expect("the first booking");
    match first
        .append_conditional(booking("b"), Some(&condition))
        .await
    {
        Err(StoreError::ConditionFailed { conflicting, .. }) => {
            assert_eq!(conflicting, taken[0].meta.position)
        }
        other => panic!("the other handle's booking must fail the condition: {other:?}"),
    }
    let read = first.read_query(&query, Position(1), 10).await.unwrap();
    assert_eq!(read.events.len(), 1);
    assert_eq!(read.through, taken[0].meta.position);
}

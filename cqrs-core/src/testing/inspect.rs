//! The cases every [`InspectStore`] must pass, run by each store's tests on an empty store.

use crate::testing::conformance::event;
use crate::{ExpectedVersion, InspectStore, StreamId};

/// Appends to three streams (two events to `inspect-b` in two appends) and checks the listing:
/// counts, last positions, order, pages through `after` and `limit`, the empty end.
///
/// # Panics
/// When the store lists anything else.
pub async fn list_streams_cases<S: InspectStore>(store: &S) {
    for (stream, n) in [
        ("inspect-b", 2),
        ("inspect-a", 1),
        ("inspect-c", 3),
        ("inspect-b", 1),
    ] {
        let events = (0..n).map(|i| event(&format!("{{\"i\": {i}}}"))).collect();
        store
            .append(&StreamId::from(stream), ExpectedVersion::Any, events)
            .await
            .expect("append");
    }
    let all = store.list_streams(None, 100).await.expect("list");
    let summary: Vec<_> = all
        .iter()
        .map(|s| (s.stream.as_str(), s.events, s.last_position.0))
        .collect();
    assert_eq!(
        summary,
        [
            ("inspect-a", 1, 3),
            ("inspect-b", 3, 7),
            ("inspect-c", 3, 6)
        ],
        "streams, event counts and last positions"
    );
    let page = store
        .list_streams(Some(&all[0].stream), 1)
        .await
        .expect("page");
    assert_eq!(page, [all[1].clone()], "the page after the first stream");
    assert_eq!(store.list_streams(None, 2).await.expect("limit").len(), 2);
    assert!(
        store
            .list_streams(Some(&all[2].stream), 10)
            .await
            .expect("end")
            .is_empty(),
        "nothing after the last stream"
    );
}

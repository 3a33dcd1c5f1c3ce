//! Conformance cases of dynamic consistency boundaries: reading by [`EventQuery`], append
//! conditions and atomic appends to several streams. Run them all with
//! [`dcb_conformance_tests!`](crate::dcb_conformance_tests).
//!
//! Every case makes its own event names and tag values (a fresh id in each), so a store reused
//! across cases (one schema) cannot mix their events: a query here only ever matches events of
//! its own case.

use std::future::Future;
use std::sync::Arc;

use crate::testing::conformance::stream;
use crate::{
    AppendCondition, EventQuery, EventStore, ExpectedVersion, InputField, InputProblem,
    InvalidInput, InvalidQuery, Mismatch, NewEvent, Payload, Position, QueryItem, QueryProblem,
    RecordedEvent, StoreError, StreamWrite, Tag, TagProblem, Tags, UserMetadata, new_id,
};

/// Names and tags unique to one case.
struct Case(String);

impl Case {
    fn new() -> Self {
        Case(new_id().simple().to_string()[..12].to_owned())
    }

    /// The event type `name` of this case.
    fn name(&self, name: &str) -> String {
        format!("dcb.{name}.{}", self.0)
    }

    /// The tag `key:value-<case>`.
    fn tag(&self, key: &str, value: &str) -> Tag {
        Tag::new(key, &format!("{value}-{}", self.0)).expect("a valid tag")
    }

    /// A new event of type `name` with `tags`.
    fn event<'t>(&self, name: &str, tags: impl IntoIterator<Item = &'t Tag>) -> NewEvent {
        NewEvent {
            event_id: new_id(),
            event_name: self.name(name).into(),
            event_version: 1,
            payload: Payload::from_json(format!(r#"{{"n":"{}"}}"#, new_id())),
            correlation_id: None,
            causation_id: None,
            metadata: UserMetadata::empty(),
            tags: Tags::new(tags.into_iter().cloned()),
        }
    }

    /// An item of the case's types `names` (and `tags`).
    fn item<'t>(&self, names: &[&str], tags: impl IntoIterator<Item = &'t Tag>) -> QueryItem {
        QueryItem::types(names.iter().map(|n| self.name(n))).with_tags(tags.into_iter().cloned())
    }
}

/// A new event of type `name` carrying `tags`, with `{}` as payload: for a store's own dcb tests
/// beyond these cases (its interleavings, its schema upgrades), which name types and tags
/// themselves.
pub fn tagged_event(name: &str, tags: &[&Tag]) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: name.to_owned().into(),
        event_version: 1,
        payload: Payload::from_json("{}"),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: Tags::new(tags.iter().map(|t| (*t).clone())),
    }
}

/// The tag `text` (`key:value`). Panics if it is not one: for tests, which name valid tags.
pub fn tag(text: &str) -> Tag {
    Tag::parse(text).expect("a valid tag")
}

fn one(stream: &crate::StreamId, events: Vec<NewEvent>) -> Vec<StreamWrite> {
    vec![StreamWrite::new(
        stream.clone(),
        ExpectedVersion::Any,
        events,
    )]
}

fn positions(events: &[RecordedEvent]) -> Vec<Position> {
    events.iter().map(|e| e.meta.position).collect()
}

#[track_caller]
fn assert_condition_failed<T: std::fmt::Debug>(
    got: Result<T, StoreError>,
    after: Position,
    conflicting: Position,
    what: &str,
) {
    match got {
        Err(StoreError::ConditionFailed {
            after: a,
            conflicting: c,
        }) if a == after && c == conflicting => {}
        other => {
            panic!("{what}: want ConditionFailed after {after} at {conflicting}, got {other:?}")
        }
    }
}

/// Reads by query: types OR'd within an item, tags AND'd, items OR'd, from a position, with
/// a limit; tags come back from every read; the read states how far it is complete.
pub async fn query_reads_select_by_types_and_tags<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let case = Case::new();
    let (c1, c2, s1) = (
        case.tag("course", "c1"),
        case.tag("course", "c2"),
        case.tag("student", "s1"),
    );
    let s = stream("dcb-read");
    let written = vec![
        case.event("a", [&c1]),
        case.event("b", [&s1, &c1]),
        case.event("a", [&c2, &s1]),
        case.event("c", []),
        case.event("b", [&c2]),
    ];
    let recorded = store
        .append(&s, ExpectedVersion::NoStream, written.clone())
        .await
        .expect("a plain append of tagged events");
    let p = positions(&recorded);
    for (r, w) in recorded.iter().zip(&written) {
        assert_eq!(
            r.meta.tags, w.tags,
            "append returns the tags as sorted sets"
        );
    }
    let by_stream = store.read_stream(&s, 1, 10).await.unwrap();
    let by_position = store.read_all(p[0], 5).await.unwrap();
    for read in [&by_stream, &by_position] {
        let tags: Vec<&Tags> = read.iter().map(|e| &e.meta.tags).collect();
        let want: Vec<&Tags> = written.iter().map(|e| &e.tags).collect();
        assert_eq!(
            tags, want,
            "read_stream and read_all return every event's tags"
        );
    }

    let read = |query: EventQuery, from: Position, limit: usize| {
        let store = store.clone();
        async move {
            store
                .read_query(&query, from, limit)
                .await
                .expect("read_query")
        }
    };
    let q = |items: Vec<QueryItem>| EventQuery::from_items(items);
    let cases: Vec<(EventQuery, Vec<Position>, &str)> = vec![
        (q(vec![case.item(&["a"], [])]), vec![p[0], p[2]], "one type"),
        (
            q(vec![case.item(&["a", "b"], [])]),
            vec![p[0], p[1], p[2], p[4]],
            "types are OR'd",
        ),
        (
            q(vec![QueryItem::tags([c1.clone()])]),
            vec![p[0], p[1]],
            "one tag, any type",
        ),
        (
            q(vec![QueryItem::tags([c1.clone(), s1.clone()])]),
            vec![p[1]],
            "tags are AND'd",
        ),
        (
            q(vec![case.item(&["a"], [&s1])]),
            vec![p[2]],
            "type and tag",
        ),
        (
            q(vec![case.item(&["a"], [&c1]), case.item(&["b"], [&c2])]),
            vec![p[0], p[4]],
            "items are OR'd",
        ),
        (
            q(vec![
                case.item(&["a", "b"], [&s1]),
                QueryItem::tags([s1.clone()]),
            ]),
            vec![p[1], p[2]],
            "overlapping items return each event once",
        ),
        (
            q(vec![QueryItem::tags([case.tag("course", "none")])]),
            vec![],
            "a tag no event carries",
        ),
    ];
    for (query, want, what) in cases {
        let got = read(query, Position(1), 100).await;
        assert_eq!(positions(&got.events), want, "{what}");
        assert!(
            got.through >= p[4],
            "{what}: a complete read is complete through the head"
        );
    }

    let types = q(vec![case.item(&["a", "b"], [])]);
    let from = read(types.clone(), p[1], 100).await;
    assert_eq!(
        positions(&from.events),
        vec![p[1], p[2], p[4]],
        "from a position"
    );
    let limited = read(types.clone(), Position(1), 2).await;
    assert_eq!(positions(&limited.events), vec![p[0], p[1]], "limit");
    assert_eq!(
        limited.through, p[1],
        "a read cut by its limit is complete through its last event"
    );
    let rest = read(types, limited.through.next(), 2).await;
    assert_eq!(
        positions(&rest.events),
        vec![p[2], p[4]],
        "read on after `through`"
    );
    let got = &read(q(vec![QueryItem::tags([c1.clone(), s1])]), Position(1), 10).await;
    assert_eq!(got.events.len(), 1);
    assert_eq!(got.events[0].meta.event_id, written[1].event_id);
    assert_eq!(got.events[0].meta.stream, s);
    assert_eq!(
        got.events[0].meta.tags, written[1].tags,
        "read_query returns the tags"
    );
}

/// A condition refuses the append when an event matching its query exists after its position,
/// writing nothing; events that do not match, or that are not after it, do not count.
pub async fn conditions_refuse_only_matching_events_after_the_position<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let case = Case::new();
    let (c1, c2) = (case.tag("course", "c1"), case.tag("course", "c2"));
    let s = stream("dcb-condition");
    let query = EventQuery::from_items([case.item(&["booked"], [&c1])]);
    let condition = |after| Some(AppendCondition::new(query.clone(), after));

    let first = store
        .append_conditional(
            one(&s, vec![case.event("booked", [&c1])]),
            condition(Position::ZERO).as_ref(),
        )
        .await
        .expect("nothing matches yet: accepted");
    let p1 = first[0].meta.position;
    let read = store.read_query(&query, Position(1), 100).await.unwrap();
    assert_eq!(positions(&read.events), vec![p1]);
    assert!(read.through >= p1);

    assert_condition_failed(
        store
            .append_conditional(
                one(&s, vec![case.event("booked", [&c1])]),
                condition(Position::ZERO).as_ref(),
            )
            .await,
        Position::ZERO,
        p1,
        "a matching event after 0",
    );
    // Non-matching events after the read: another tag, another type, no tag.
    store
        .append(
            &s,
            ExpectedVersion::Any,
            vec![
                case.event("booked", [&c2]),
                case.event("cancelled", [&c1]),
                case.event("booked", []),
            ],
        )
        .await
        .unwrap();
    let accepted = store
        .append_conditional(
            one(&s, vec![case.event("booked", [&c1])]),
            condition(read.through).as_ref(),
        )
        .await
        .expect("only non-matching events after the position: accepted");
    let p2 = accepted[0].meta.position;
    assert_eq!(store.read_stream(&s, 1, 100).await.unwrap().len(), 5);

    let head = store.head().await.unwrap();
    assert_condition_failed(
        store
            .append_conditional(
                one(&s, vec![case.event("booked", [&c1])]),
                condition(read.through).as_ref(),
            )
            .await,
        read.through,
        p2,
        "the matching event written after the read",
    );
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a refused append writes nothing"
    );
    assert_eq!(store.read_stream(&s, 1, 100).await.unwrap().len(), 5);

    store
        .append_conditional(
            one(&s, vec![case.event("booked", [&c1])]),
            condition(p2).as_ref(),
        )
        .await
        .expect("matching events at or before the position do not count");

    // Everything: any event after the position fails it.
    let all = AppendCondition::new(EventQuery::all(), store.head().await.unwrap());
    store
        .append_conditional(one(&s, vec![case.event("other", [])]), Some(&all))
        .await
        .expect("nothing after the head");
    match store
        .append_conditional(one(&s, vec![case.event("other", [])]), Some(&all))
        .await
    {
        Err(StoreError::ConditionFailed { after, .. }) => assert_eq!(after, all.after),
        other => panic!("EventQuery::all after an older head: want ConditionFailed, got {other:?}"),
    }
    // A condition alone, with nothing to write.
    assert_condition_failed(
        store
            .append_conditional(Vec::new(), condition(read.through).as_ref())
            .await,
        read.through,
        p2,
        "a condition with no writes is still checked",
    );
    let head = store.head().await.unwrap();
    let nothing = store
        .append_conditional(Vec::new(), condition(head).as_ref())
        .await
        .expect("a condition that holds, nothing to write");
    assert!(nothing.is_empty());
}

/// Conditions of every shape on a lone event (one event to one stream: the common decision,
/// which a store may run on a path of its own), with types and tags holding quotes, commas,
/// backslashes, braces and spaces, at every kind of expected version: an item by one tag, by
/// two tags and two types, two items with tags, types alone, types alone beside a tag. Each is
/// accepted while only non-matching events follow its position, and refused, naming the
/// matching event, once one does; a stale or taken version is a `Conflict` either way round.
pub async fn conditions_of_every_shape_guard_a_lone_event<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let case = Case::new();
    let odd = r#"a "q",\b {x} y"#;
    let (t1, t2, t3) = (
        case.tag("one", odd),
        case.tag("two", odd),
        case.tag("three", "plain"),
    );
    let (ty_a, ty_b) = (r#"ty"pe,a\{}"#, "type b");
    let shapes = [
        (
            "one tag, any type",
            EventQuery::from_items([QueryItem::tags([t1.clone()])]),
            case.event(ty_b, [&t1]),
            vec![case.event(ty_b, [&t2])],
        ),
        (
            "two tags and two types",
            EventQuery::from_items([case.item(&[ty_a, ty_b], [&t1, &t2])]),
            case.event(ty_a, [&t1, &t2, &t3]),
            vec![case.event(ty_a, [&t1]), case.event("other", [&t1, &t2])],
        ),
        (
            "two items with tags",
            EventQuery::from_items([case.item(&[ty_a], [&t1]), QueryItem::tags([t3.clone()])]),
            case.event("other", [&t3]),
            vec![case.event(ty_b, [&t1]), case.event("other", [&t2])],
        ),
        (
            "types alone",
            EventQuery::from_items([case.item(&[ty_a, ty_b], [])]),
            case.event(ty_b, []),
            vec![case.event("other", [&t1])],
        ),
        (
            "types alone and a tag",
            EventQuery::from_items([case.item(&[ty_a], []), QueryItem::tags([t2.clone()])]),
            case.event("other", [&t2]),
            vec![case.event(ty_b, [&t1])],
        ),
    ];
    let others = stream("dcb-shapes-others");
    for (i, (shape, query, matching, non_matching)) in shapes.into_iter().enumerate() {
        let s = stream(&format!("dcb-shape-{i}"));
        let after = store.head().await.unwrap();
        let condition = AppendCondition::new(query, after);
        let decide = |expected| {
            let write = StreamWrite::new(s.clone(), expected, vec![case.event("decided", [])]);
            store.append_conditional(vec![write], Some(&condition))
        };
        store
            .append(&others, ExpectedVersion::Any, non_matching)
            .await
            .unwrap();
        decide(ExpectedVersion::NoStream)
            .await
            .unwrap_or_else(|e| panic!("{shape}: only non-matching events follow: {e:?}"));
        decide(ExpectedVersion::Exact(1))
            .await
            .unwrap_or_else(|e| panic!("{shape}: at version 1: {e:?}"));
        for (expected, what) in [
            (ExpectedVersion::Exact(1), "a stale version"),
            (ExpectedVersion::NoStream, "a stream that exists"),
        ] {
            match decide(expected).await {
                Err(StoreError::Conflict { actual: 2, .. }) => {}
                other => panic!("{shape}, {what}: want Conflict at 2, got {other:?}"),
            }
        }
        let written = store
            .append(&others, ExpectedVersion::Any, vec![matching])
            .await
            .unwrap()[0]
            .meta
            .position;
        for expected in [ExpectedVersion::Any, ExpectedVersion::Exact(2)] {
            assert_condition_failed(decide(expected).await, after, written, shape);
        }
        assert_eq!(
            store.read_stream(&s, 1, 10).await.unwrap().len(),
            2,
            "{shape}: the refused decisions wrote nothing"
        );
    }
}

/// One append writes several streams atomically, each with its own expected version; a stale
/// version anywhere writes nothing anywhere.
pub async fn conditional_appends_write_several_streams_atomically<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let case = Case::new();
    let (a, b) = (stream("dcb-account-a"), stream("dcb-account-b"));
    let ta = case.tag("account", "a");
    let tb = case.tag("account", "b");
    let recorded = store
        .append_conditional(
            vec![
                StreamWrite::new(
                    a.clone(),
                    ExpectedVersion::NoStream,
                    vec![case.event("opened", [&ta]), case.event("debited", [&ta])],
                ),
                StreamWrite::new(
                    b.clone(),
                    ExpectedVersion::NoStream,
                    vec![case.event("credited", [&tb])],
                ),
            ],
            None,
        )
        .await
        .expect("two new streams");
    let streams: Vec<_> = recorded
        .iter()
        .map(|e| (e.meta.stream.clone(), e.meta.version))
        .collect();
    assert_eq!(
        streams,
        vec![(a.clone(), 1), (a.clone(), 2), (b.clone(), 1)]
    );
    let p = positions(&recorded);
    assert!(
        p[0] < p[1] && p[1] < p[2],
        "positions follow the writes' order: {p:?}"
    );
    assert_eq!(
        positions(&store.read_stream(&b, 1, 10).await.unwrap()),
        vec![p[2]]
    );

    let head = store.head().await.unwrap();
    let stale = store
        .append_conditional(
            vec![
                StreamWrite::new(
                    a.clone(),
                    ExpectedVersion::Exact(2),
                    vec![case.event("debited", [&ta])],
                ),
                StreamWrite::new(
                    b.clone(),
                    ExpectedVersion::Exact(7),
                    vec![case.event("credited", [&tb])],
                ),
            ],
            None,
        )
        .await;
    match stale {
        Err(StoreError::Conflict {
            stream,
            expected: ExpectedVersion::Exact(7),
            actual: 1,
        }) if stream == b => {}
        other => panic!("want a conflict on the second stream, got {other:?}"),
    }
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "nothing of a refused append is written"
    );
    assert_eq!(
        store.read_stream(&a, 1, 10).await.unwrap().len(),
        2,
        "nor in the first stream"
    );

    let both = store
        .append_conditional(
            vec![
                StreamWrite::new(
                    a.clone(),
                    ExpectedVersion::Exact(2),
                    vec![case.event("debited", [&ta])],
                ),
                StreamWrite::new(
                    b.clone(),
                    ExpectedVersion::Any,
                    vec![case.event("credited", [&tb])],
                ),
                StreamWrite::new(stream("dcb-untouched"), ExpectedVersion::NoStream, vec![]),
            ],
            None,
        )
        .await
        .expect("versions that match");
    assert_eq!(
        both.iter().map(|e| e.meta.version).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let refused = store
        .append_conditional(
            vec![
                StreamWrite::new(b.clone(), ExpectedVersion::NoStream, vec![]),
                StreamWrite::new(
                    a.clone(),
                    ExpectedVersion::Any,
                    vec![case.event("debited", [])],
                ),
            ],
            None,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { ref stream, .. }) if *stream == b),
        "a write without events still checks its version: {refused:?}"
    );

    // The aggregates' own reads see what the decision wrote.
    let query = EventQuery::from_items([QueryItem::tags([ta]), QueryItem::tags([tb])]);
    let read = store.read_query(&query, Position(1), 100).await.unwrap();
    assert_eq!(read.events.len(), 5);
}

/// An append sent again with the same ids returns the first outcome and writes nothing, even
/// though its condition no longer holds; the same ids with other content are refused.
pub async fn conditional_append_retries_are_idempotent<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let case = Case::new();
    let t = case.tag("username", "ada");
    let (a, b) = (stream("dcb-retry-a"), stream("dcb-retry-b"));
    let query = EventQuery::from_items([case.item(&["claimed"], [&t])]);
    let condition = AppendCondition::new(query, Position::ZERO);
    let writes = vec![
        StreamWrite::new(
            a.clone(),
            ExpectedVersion::NoStream,
            vec![case.event("claimed", [&t])],
        ),
        StreamWrite::new(
            b.clone(),
            ExpectedVersion::NoStream,
            vec![case.event("noted", []), case.event("noted", [])],
        ),
    ];
    let first = store
        .append_conditional(writes.clone(), Some(&condition))
        .await
        .expect("first append");
    let head = store.head().await.unwrap();
    let again = store
        .append_conditional(writes.clone(), Some(&condition))
        .await
        .expect("the same append sent again is a retry, not a failed condition");
    assert_eq!(
        positions(&again),
        positions(&first),
        "the retry returns the first outcome"
    );
    assert_eq!(store.head().await.unwrap(), head, "and writes nothing");

    let mut other = writes.clone();
    other[1].events[1].payload = Payload::from_json(r#"{"n":"changed"}"#);
    match store.append_conditional(other, Some(&condition)).await {
        Err(StoreError::IdempotencyConflict {
            mismatch:
                Mismatch::EventField {
                    index: 1,
                    field: InputField::Payload,
                },
            ..
        }) => {}
        got => panic!("same ids, another payload: want IdempotencyConflict, got {got:?}"),
    }
    let mut retagged = writes.clone();
    retagged[0].events[0].tags = Tags::new([case.tag("username", "bob")]);
    match store.append_conditional(retagged, Some(&condition)).await {
        Err(StoreError::IdempotencyConflict {
            mismatch:
                Mismatch::EventField {
                    field: InputField::Tags,
                    ..
                },
            ..
        }) => {}
        got => panic!("same ids, other tags: want IdempotencyConflict, got {got:?}"),
    }
    let mut mixed = writes.clone();
    mixed[1].events.push(case.event("noted", []));
    assert!(
        matches!(
            store.append_conditional(mixed, Some(&condition)).await,
            Err(StoreError::DuplicateEventId { .. })
        ),
        "stored ids with a new one"
    );
    let moved = vec![StreamWrite::new(
        b.clone(),
        ExpectedVersion::Any,
        writes[0].events.clone(),
    )];
    assert!(
        matches!(
            store.append_conditional(moved, None).await,
            Err(StoreError::DuplicateEventId { .. })
        ),
        "stored ids sent to another stream"
    );
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "none of the refusals wrote anything"
    );
}

/// Sixteen writers race for the last three seats of a course, each reading the course's
/// bookings, deciding, and appending under the condition of its read (retrying when it fails):
/// exactly three get a seat.
pub async fn racing_writers_take_exactly_the_last_seats<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    const CAPACITY: usize = 10;
    let store = make().await;
    let case = Arc::new(Case::new());
    let course = case.tag("course", "c1");
    let query = EventQuery::from_items([case.item(&["booked"], [&course])]);
    let taken: Vec<NewEvent> = (0..CAPACITY - 3)
        .map(|_| case.event("booked", [&course]))
        .collect();
    store
        .append(&stream("dcb-seats-earlier"), ExpectedVersion::Any, taken)
        .await
        .unwrap();
    // Every writer reads before any appends (on its first attempt), so all sixteen decide on
    // the same seven bookings: only the conditions keep them from booking sixteen seats.
    let all_read = Arc::new(tokio::sync::Barrier::new(16));
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (store, case, query, course) =
                (store.clone(), case.clone(), query.clone(), course.clone());
            let all_read = all_read.clone();
            tokio::spawn(async move {
                let student = case.tag("student", &w.to_string());
                let s = stream(&format!("dcb-student-{w}"));
                let mut first = true;
                loop {
                    let read = store.read_query(&query, Position(1), 1000).await.unwrap();
                    if std::mem::take(&mut first) {
                        all_read.wait().await;
                    }
                    if read.events.len() >= CAPACITY {
                        return false;
                    }
                    let booking = case.event("booked", [&course, &student]);
                    let condition = AppendCondition::new(query.clone(), read.through);
                    match store
                        .append_conditional(one(&s, vec![booking]), Some(&condition))
                        .await
                    {
                        Ok(_) => return true,
                        Err(StoreError::ConditionFailed { .. }) => tokio::task::yield_now().await,
                        Err(other) => panic!("writer {w}: {other}"),
                    }
                }
            })
        })
        .collect();
    let mut booked = 0;
    for w in writers {
        booked += usize::from(w.await.expect("writer"));
    }
    assert_eq!(booked, 3, "exactly the last three seats are taken");
    let read = store.read_query(&query, Position(1), 1000).await.unwrap();
    assert_eq!(
        read.events.len(),
        CAPACITY,
        "the course is full, not over-booked"
    );
}

/// Bad tags, too many tags, and queries without items, with empty items or beyond the limits
/// are typed errors, and nothing is written.
pub async fn bad_tags_and_queries_are_typed_errors<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let case = Case::new();
    assert_eq!(Tag::parse("no key").unwrap_err().problem, TagProblem::NoKey);
    assert_eq!(
        Tag::new("a b", "x").unwrap_err().problem,
        TagProblem::BadKeyChar(' ')
    );
    assert_eq!(
        Tag::new("k", "a\0").unwrap_err().problem,
        TagProblem::ContainsNul
    );

    let s = stream("dcb-bad");
    let many: Vec<Tag> = (0..=crate::MAX_EVENT_TAGS)
        .map(|i| case.tag("t", &i.to_string()))
        .collect();
    let too_many = case.event("e", &many);
    let want_too_many = |got: Result<Vec<RecordedEvent>, StoreError>, what: &str| match got {
        Err(StoreError::InvalidInput(InvalidInput {
            field: InputField::Tags,
            problem: InputProblem::TooMany { count: 33, max: 32 },
            ..
        })) => {}
        other => panic!("{what}: want InvalidInput on the tags, got {other:?}"),
    };
    want_too_many(
        store
            .append(&s, ExpectedVersion::Any, vec![too_many.clone()])
            .await,
        "append",
    );
    want_too_many(
        store
            .append_conditional(one(&s, vec![too_many]), None)
            .await,
        "append_conditional",
    );
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![case.event("e", &many[..crate::MAX_EVENT_TAGS])],
        )
        .await
        .expect("exactly the limit of tags");

    let item = || QueryItem::tags([case.tag("k", "v")]);
    let types = |n: usize| QueryItem::types((0..n).map(|i| format!("t{i}")));
    let cases: Vec<(EventQuery, Option<usize>, QueryProblem)> = vec![
        (EventQuery::from_items([]), None, QueryProblem::NoItems),
        (
            EventQuery::from_items([item(), QueryItem::new()]),
            Some(1),
            QueryProblem::EmptyItem,
        ),
        (
            EventQuery::from_items((0..33).map(|i| QueryItem::types([format!("t{i}")]))),
            None,
            QueryProblem::TooManyItems { count: 33, max: 32 },
        ),
        (
            EventQuery::from_items([QueryItem::tags(many.clone())]),
            Some(0),
            QueryProblem::TooManyTags { count: 33, max: 32 },
        ),
        (
            EventQuery::from_items([types(65)]),
            Some(0),
            QueryProblem::TooManyTypes { count: 65, max: 64 },
        ),
        (
            EventQuery::from_items([QueryItem::types([""])]),
            Some(0),
            QueryProblem::EventType(InputProblem::Empty),
        ),
        (
            EventQuery::from_items([QueryItem::types(["a\0b"])]),
            Some(0),
            QueryProblem::EventType(InputProblem::ContainsNul),
        ),
    ];
    let head = store.head().await.unwrap();
    for (query, item, problem) in cases {
        let want = |got: Result<(), StoreError>, what: &str| match got {
            Err(StoreError::InvalidQuery(InvalidQuery {
                item: i,
                problem: p,
                ..
            })) if i == item && p == problem => {}
            other => panic!("{what}: want InvalidQuery {item:?} {problem:?}, got {other:?}"),
        };
        want(
            store.read_query(&query, Position(1), 10).await.map(drop),
            "read_query",
        );
        let condition = AppendCondition::new(query, Position::ZERO);
        let got = store
            .append_conditional(one(&s, vec![case.event("e", [])]), Some(&condition))
            .await;
        want(got.map(drop), "a condition");
    }
    store
        .read_query(&EventQuery::from_items([types(64)]), Position(1), 10)
        .await
        .expect("exactly the limit of types");

    let twice = vec![
        StreamWrite::new(s.clone(), ExpectedVersion::Any, vec![case.event("e", [])]),
        StreamWrite::new(s.clone(), ExpectedVersion::Any, vec![case.event("e", [])]),
    ];
    match store.append_conditional(twice, None).await {
        Err(StoreError::InvalidInput(InvalidInput {
            field: InputField::StreamId,
            problem: InputProblem::Repeated,
            ..
        })) => {}
        other => panic!("a stream written twice: want InvalidInput, got {other:?}"),
    }
    let e = case.event("e", []);
    let same_id = vec![
        StreamWrite::new(s.clone(), ExpectedVersion::Any, vec![e.clone()]),
        StreamWrite::new(stream("dcb-bad-other"), ExpectedVersion::Any, vec![e]),
    ];
    assert!(
        matches!(
            store.append_conditional(same_id, None).await,
            Err(StoreError::DuplicateEventId { .. })
        ),
        "one id in two writes"
    );
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "no refused input wrote anything"
    );
}

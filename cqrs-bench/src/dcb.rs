//! Dynamic consistency boundaries (issue 15): conditional appends beside unconditional appends
//! of the same events, tagged events beside untagged ones, and decisions racing for seats.
//!
//! `cargo run -p cqrs-bench --release -- --dcb` (needs `CQRS_POSTGRES_URL` for the PostgreSQL
//! rows; the SQLite racing rows run without it).
//!
//! - **Appends** (PostgreSQL, one client and eight): each operation appends one `booked` event
//!   tagged `course:<n>` and `student:<n>` to its own stream, unconditionally or under the
//!   condition "no `booked` event of this course after the position read at the start" (each
//!   operation on another course, so no condition fails: the cost is the condition's alone).
//!   The untagged append of the same event is the third variant. The three alternate chunk by
//!   chunk (and take turns going first) on one store, so a slower moment of the machine weighs
//!   on all alike.
//! - **Racing seats**: sixteen writers decide at once on one course with three seats left: read
//!   the course's bookings, book if there is room, append under the condition of the read,
//!   decide again when it fails. Every race must end with exactly the capacity booked. Reported:
//!   races per second and the share of attempts refused by their condition.
//! - **Sustained**: sixteen writers book seats on fifty courses of twenty seats, each choosing
//!   courses at random until all are full: bookings per second and the refused share.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventweave_core::{
    AppendCondition, EventQuery, EventStore, ExpectedVersion, NewEvent, Payload, Position,
    QueryItem, StoreError, StreamId, StreamWrite, Tag, Tags, UserMetadata, new_id,
};
use eventweave_postgres::{PostgresConfig, PostgresStore};
use eventweave_sqlite::SqliteStore;
use tokio::task::JoinSet;

use crate::postgres::URL_VAR;
use crate::{Mode, Row, median};

/// Writers racing for seats.
const WRITERS: usize = 16;

/// Seats per course in the race.
const CAPACITY: usize = 10;

fn booking(course: &Tag, student: &Tag, tagged: bool) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: "booked".into(),
        event_version: 1,
        payload: Payload::from_json(r#"{"seat":1}"#),
        correlation_id: Some(new_id()),
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: if tagged {
            Tags::new([course.clone(), student.clone()])
        } else {
            Tags::empty()
        },
    }
}

fn tag(key: &str, value: impl std::fmt::Display) -> Tag {
    Tag::new(key, &value.to_string()).expect("a valid tag")
}

fn course_query(course: &Tag) -> EventQuery {
    EventQuery::from_items([QueryItem::types(["booked"]).with_tag(course.clone())])
}

/// The three ways of appending one booking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Untagged,
    Tagged,
    Conditional,
}

/// `count` appends by one client, each a booking of its own course (`prefix` keeps them apart).
async fn appends<S: EventStore>(
    store: &S,
    variant: Variant,
    prefix: &str,
    count: u64,
    after: Position,
) {
    for i in 0..count {
        let course = tag("course", format_args!("{prefix}-{i}"));
        let student = tag("student", format_args!("{prefix}-{i}"));
        let stream = StreamId::from(format!("student-{prefix}-{i}"));
        let event = booking(&course, &student, variant != Variant::Untagged);
        let done = match variant {
            Variant::Conditional => {
                let condition = AppendCondition::new(course_query(&course), after);
                let write = StreamWrite::new(stream, ExpectedVersion::NoStream, vec![event]);
                store
                    .append_conditional(vec![write], Some(&condition))
                    .await
            }
            _ => {
                store
                    .append(&stream, ExpectedVersion::NoStream, vec![event])
                    .await
            }
        };
        done.expect("an append of a booking");
    }
}

/// Events per second of each variant, `clients` clients at once, over `chunks` alternations of
/// `per_chunk` appends per client.
async fn append_rates(
    store: &PostgresStore,
    clients: u64,
    chunks: u64,
    per_chunk: u64,
) -> [f64; 3] {
    let variants = [Variant::Untagged, Variant::Tagged, Variant::Conditional];
    let mut time = [Duration::ZERO; 3];
    let after = store.head().await.expect("the head");
    for chunk in 0..chunks {
        for k in 0..3 {
            let v = (chunk as usize + k) % 3;
            let started = Instant::now();
            let mut tasks = JoinSet::new();
            for c in 0..clients {
                let store = store.clone();
                let prefix = format!("{}-{chunk}-{c}-{v}", new_id().simple());
                tasks.spawn(async move {
                    appends(&store, variants[v], &prefix, per_chunk, after).await
                });
            }
            tasks.join_all().await;
            time[v] += started.elapsed();
        }
    }
    let events = (clients * chunks * per_chunk) as f64;
    time.map(|t| events / t.as_secs_f64())
}

/// What racing writers did.
#[derive(Default)]
struct Tally {
    attempts: AtomicU64,
    refused: AtomicU64,
}

impl Tally {
    fn refused_share(&self) -> f64 {
        let attempts = self.attempts.load(Ordering::Relaxed).max(1);
        self.refused.load(Ordering::Relaxed) as f64 / attempts as f64
    }
}

/// One writer's decision loop on `course`: book once if there is room; true if it booked.
async fn decide<S: EventStore>(
    store: &S,
    course: &Tag,
    student: &Tag,
    capacity: usize,
    tally: &Tally,
) -> bool {
    let query = course_query(course);
    loop {
        let read = store
            .read_query(&query, Position(1), 10_000)
            .await
            .expect("read the course");
        if read.events.len() >= capacity {
            return false;
        }
        tally.attempts.fetch_add(1, Ordering::Relaxed);
        let stream = StreamId::from(format!("student-{student}-{}", new_id().simple()));
        let write = StreamWrite::new(
            stream,
            ExpectedVersion::NoStream,
            vec![booking(course, student, true)],
        );
        let condition = AppendCondition::new(query.clone(), read.through);
        match store
            .append_conditional(vec![write], Some(&condition))
            .await
        {
            Ok(_) => return true,
            Err(StoreError::ConditionFailed { .. }) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(other) => panic!("a booking failed: {other}"),
        }
    }
}

/// `races` races of sixteen writers for the last three seats of a course: races per second.
async fn race<S: EventStore>(store: &S, races: usize, tally: &Arc<Tally>) -> f64 {
    let mut time = Duration::ZERO;
    for r in 0..races {
        let course = tag("course", format_args!("race-{}-{r}", new_id().simple()));
        let taken: Vec<NewEvent> = (0..CAPACITY - 3)
            .map(|s| booking(&course, &tag("student", s), true))
            .collect();
        store
            .append(
                &StreamId::from(format!("earlier-{course}")),
                ExpectedVersion::NoStream,
                taken,
            )
            .await
            .expect("the earlier bookings");
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for w in 0..WRITERS {
            let (store, course, tally) = (store.clone(), course.clone(), Arc::clone(tally));
            tasks.spawn(async move {
                decide(&store, &course, &tag("student", w), CAPACITY, &tally).await
            });
        }
        let booked = tasks.join_all().await.into_iter().filter(|b| *b).count();
        time += started.elapsed();
        assert_eq!(booked, 3, "exactly the last three seats are taken");
        let read = store
            .read_query(&course_query(&course), Position(1), 100)
            .await
            .unwrap();
        assert_eq!(
            read.events.len(),
            CAPACITY,
            "the course is full, not over-booked"
        );
    }
    races as f64 / time.as_secs_f64()
}

/// Sixteen writers booking `courses` courses of `seats` seats at random until all are full:
/// bookings per second.
async fn sustained<S: EventStore>(
    store: &S,
    courses: usize,
    seats: usize,
    tally: &Arc<Tally>,
) -> f64 {
    let run = new_id().simple().to_string();
    let courses: Arc<Vec<Tag>> = Arc::new(
        (0..courses)
            .map(|c| tag("course", format_args!("{run}-{c}")))
            .collect(),
    );
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for w in 0..WRITERS {
        let (store, courses, tally) = (store.clone(), Arc::clone(&courses), Arc::clone(tally));
        tasks.spawn(async move {
            let student = tag("student", format_args!("{w}"));
            let mut open: Vec<usize> = (0..courses.len()).collect();
            let mut booked = 0u64;
            while !open.is_empty() {
                let pick = (new_id().as_u128() as usize) % open.len();
                if decide(&store, &courses[open[pick]], &student, seats, &tally).await {
                    booked += 1;
                } else {
                    open.swap_remove(pick);
                }
            }
            booked
        });
    }
    let booked: u64 = tasks.join_all().await.into_iter().sum();
    let elapsed = started.elapsed();
    assert_eq!(
        booked as usize,
        courses.len() * seats,
        "every seat booked once"
    );
    booked as f64 / elapsed.as_secs_f64()
}

/// The racing rows of one store.
async fn racing_rows<S: EventStore>(name: &str, store: &S, mode: Mode) -> Vec<Row> {
    let (races, courses, seats) = match mode {
        Mode::Full => (30, 50, 20),
        Mode::Quick => (2, 4, 5),
    };
    let race_tally = Arc::new(Tally::default());
    let sustained_tally = Arc::new(Tally::default());
    let mut race_rates = Vec::new();
    let mut sustained_rates = Vec::new();
    for _ in 0..mode.rounds().min(3) {
        race_rates.push(race(store, races, &race_tally).await);
        sustained_rates.push(sustained(store, courses, seats, &sustained_tally).await);
    }
    vec![
        Row {
            workload: format!(
                "{name}: 16 writers race for the last 3 seats ({:.0} % of attempts refused)",
                100.0 * race_tally.refused_share()
            ),
            rate: median(&mut race_rates),
            unit: "races/s",
            baseline: None,
            peer: None,
            target: "exactly 3 booked (checked)".into(),
        },
        Row {
            workload: format!(
                "{name}: 16 writers book {courses} courses of {seats} seats ({:.0} % refused)",
                100.0 * sustained_tally.refused_share()
            ),
            rate: median(&mut sustained_rates),
            unit: "bookings/s",
            baseline: None,
            peer: None,
            target: "every seat once (checked)".into(),
        },
    ]
}

/// Every row: PostgreSQL (when `CQRS_POSTGRES_URL` is set) and SQLite.
pub async fn run(mode: Mode) -> Vec<Row> {
    let mut rows = Vec::new();
    match std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
        None => println!("{URL_VAR} is not set: PostgreSQL dcb rows skipped"),
        Some(url) => rows.extend(postgres_rows(&url, mode).await),
    }
    let sqlite = SqliteStore::temporary().expect("a temporary SQLite store");
    rows.extend(racing_rows("SQLite", &sqlite, mode).await);
    rows
}

async fn postgres_rows(url: &str, mode: Mode) -> Vec<Row> {
    let schema = format!("cqrs_bench_dcb_{}", new_id().simple());
    let store = PostgresStore::open(PostgresConfig::new(url).schema(&schema).pool_size(WRITERS))
        .await
        .expect("open the store");
    let (chunks, per_chunk) = match mode {
        Mode::Full => (20, 100),
        Mode::Quick => (3, 5),
    };
    let mut rows = Vec::new();
    for clients in [1, 8] {
        let mut rates: [Vec<f64>; 3] = Default::default();
        for _ in 0..mode.rounds() {
            let round = append_rates(&store, clients, chunks, per_chunk / clients.min(4)).await;
            for (all, r) in rates.iter_mut().zip(round) {
                all.push(r);
            }
        }
        let [untagged, tagged, conditional] = rates.map(|mut r| median(&mut r));
        rows.push(Row {
            workload: format!("PostgreSQL: tagged append (2 tags), {clients} client(s)"),
            rate: tagged,
            unit: "events/s",
            baseline: Some(("untagged append".into(), untagged)),
            peer: None,
            target: "cost of tags (no target)".into(),
        });
        rows.push(Row {
            workload: format!("PostgreSQL: conditional append, {clients} client(s)"),
            rate: conditional,
            unit: "events/s",
            baseline: Some(("the same append, unconditional".into(), tagged)),
            peer: None,
            target: ">= 80% of unconditional".into(),
        });
    }
    rows.extend(racing_rows("PostgreSQL", &store, mode).await);
    drop(store);
    let admin = crate::postgres::connect(url).await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
    rows
}

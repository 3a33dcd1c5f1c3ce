//! The course example on the durable stores: the same application (`courses::app`) on SQLite
//! and on PostgreSQL (skipped, saying so, without `CQRS_POSTGRES_URL`), with the races of
//! `courses.rs`: sixteen students for the last three seats and one student for five courses
//! (three allowed). A gate holds every racer's conditional append until all have read and
//! decided on the same state, so only the stores' append conditions keep them apart.

use courses::*;
use eventweave_core::{
    CommandError, CommandOutcome, Cqrs, EventQuery, EventStore, Position, QueryItem, Tag,
};
use eventweave_postgres::{PostgresConfig, PostgresStore};
use eventweave_sqlite::SqliteStore;
mod gated;
use gated::Gated;

type Outcome = Result<CommandOutcome, CommandError<CourseError>>;

async fn subscribe<S: EventStore>(app: &Cqrs<S>, c: &str, s: &str) -> Outcome {
    app.execute(SubscribeStudent {
        course: course(c),
        student: student(s),
    })
    .await
}

async fn define<S: EventStore>(app: &Cqrs<S>, name: &str, capacity: u32) {
    app.execute(DefineCourse {
        course: course(name),
        capacity,
    })
    .await
    .expect("define the course");
}

/// Sixteen students for the last three seats, then one student for five courses, on `store`.
async fn races<S: EventStore>(store: S) {
    let setup = app(store.clone(), 100).await.unwrap();
    define(&setup, "popular", 10).await;
    for i in 0..7 {
        subscribe(&setup, "popular", &format!("early-{i}"))
            .await
            .unwrap();
    }
    let racing = app(Gated::new(store.clone(), 16), 100).await.unwrap();
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let app = racing.clone();
            tokio::spawn(async move { subscribe(&app, "popular", &format!("racer-{i}")).await })
        })
        .collect();
    let (mut won, mut full) = (0, 0);
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(CommandError::Rejected(CourseError::CourseFull(_))) => full += 1,
            other => panic!("a racer got {other:?}"),
        }
    }
    assert_eq!(
        (won, full),
        (3, 13),
        "exactly the last three seats are taken"
    );
    let c = Tag::new("course", "popular").unwrap();
    let subscriptions =
        EventQuery::from_items([QueryItem::types(["course.student_subscribed"]).with_tag(c)]);
    let read = store
        .read_query(&subscriptions, Position(1), 100)
        .await
        .unwrap();
    assert_eq!(
        read.events.len(),
        10,
        "the course holds its capacity, no more"
    );

    for i in 0..5 {
        define(&setup, &format!("c{i}"), 10).await;
    }
    let racing = app(Gated::new(store, 5), 100).await.unwrap();
    let racers: Vec<_> = (0..5)
        .map(|i| {
            let app = racing.clone();
            tokio::spawn(async move { subscribe(&app, &format!("c{i}"), "eve").await })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(CommandError::Rejected(CourseError::TooManyCourses(_))) => {}
            other => panic!("got {other:?}"),
        }
    }
    assert_eq!(won, MAX_COURSES_PER_STUDENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_races_on_sqlite() {
    races(SqliteStore::temporary().expect("a temporary store")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_races_on_postgres() {
    let Some(url) = std::env::var("CQRS_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        eventweave_core::testing::report_skip(
            "the_races_on_postgres",
            &"CQRS_POSTGRES_URL is not set",
        );
        return;
    };
    let schema = format!("courses_test_{}", eventweave_core::new_id().simple());
    let store = PostgresStore::open(PostgresConfig::new(&url).schema(&schema).pool_size(16))
        .await
        .expect("open the store");
    races(store.clone()).await;
    // Drop the schema: tables of this test only.
    drop(store);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop the test schema");
}

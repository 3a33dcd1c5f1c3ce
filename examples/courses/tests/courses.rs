//! The course rules, decided across streams on `MemoryStore`: each rule refused with its error,
//! students racing for the last seats, one student racing for more courses than allowed,
//! capacity changes, dispatch by name, and where the events are stored.

use courses::*;
use eventweave_core::{
    CommandError, CommandOutcome, Cqrs, EventQuery, EventStore, MemoryStore, Position, QueryItem,
    Router, Tag,
};
mod gated;
use gated::Gated;

type Outcome = Result<CommandOutcome, CommandError<CourseError>>;

fn rejected(outcome: Outcome) -> CourseError {
    match outcome {
        Err(CommandError::Rejected(e)) => e,
        other => panic!("want a rejection, got {other:?}"),
    }
}

async fn define<S: EventStore>(app: &Cqrs<S>, name: &str, capacity: u32) {
    app.execute(DefineCourse {
        course: course(name),
        capacity,
    })
    .await
    .expect("define the course");
}

async fn subscribe<S: EventStore>(app: &Cqrs<S>, c: &str, s: &str) -> Outcome {
    app.execute(SubscribeStudent {
        course: course(c),
        student: student(s),
    })
    .await
}

#[tokio::test]
async fn each_rule_is_enforced() {
    let app = app(MemoryStore::new(), 5).await.unwrap();
    assert_eq!(
        rejected(subscribe(&app, "c1", "ada").await),
        CourseError::NoSuchCourse(course("c1"))
    );
    define(&app, "c1", 1).await;
    let again = app
        .execute(DefineCourse {
            course: course("c1"),
            capacity: 5,
        })
        .await;
    assert_eq!(rejected(again), CourseError::AlreadyDefined(course("c1")));
    subscribe(&app, "c1", "ada").await.expect("a free seat");
    assert_eq!(
        rejected(subscribe(&app, "c1", "ada").await),
        CourseError::AlreadySubscribed(student("ada"), course("c1"))
    );
    assert_eq!(
        rejected(subscribe(&app, "c1", "bob").await),
        CourseError::CourseFull(course("c1"))
    );
    let same = app
        .execute(ChangeCourseCapacity {
            course: course("c1"),
            capacity: 1,
        })
        .await;
    assert_eq!(rejected(same), CourseError::SameCapacity(course("c1"), 1));
    let below = app
        .execute(ChangeCourseCapacity {
            course: course("c1"),
            capacity: 0,
        })
        .await;
    assert_eq!(
        rejected(below),
        CourseError::BelowSubscriptions(course("c1"), 1, 0)
    );
    app.execute(ChangeCourseCapacity {
        course: course("c1"),
        capacity: 2,
    })
    .await
    .expect("a larger capacity");
    subscribe(&app, "c1", "bob")
        .await
        .expect("the seat the capacity change added");

    for c in ["c2", "c3", "c4"] {
        define(&app, c, 10).await;
    }
    subscribe(&app, "c2", "ada").await.unwrap();
    subscribe(&app, "c3", "ada").await.unwrap();
    assert_eq!(
        rejected(subscribe(&app, "c4", "ada").await),
        CourseError::TooManyCourses(student("ada")),
        "ada takes c1, c2, c3: the limit"
    );
    subscribe(&app, "c4", "bob")
        .await
        .expect("another student is not limited by ada's courses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_students_race_for_the_last_three_seats() {
    let memory = MemoryStore::new();
    let setup = app(memory.clone(), 100).await.unwrap();
    define(&setup, "popular", 10).await;
    for i in 0..7 {
        subscribe(&setup, "popular", &format!("early-{i}"))
            .await
            .unwrap();
    }
    let app = app(Gated::new(memory, 16), 100).await.unwrap();
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { subscribe(&app, "popular", &format!("racer-{i}")).await })
        })
        .collect();
    let (mut won, mut full, mut attempts) = (0, 0, 0);
    for racer in racers {
        match racer.await.unwrap() {
            Ok(outcome) => {
                won += 1;
                attempts += outcome.attempts;
            }
            Err(CommandError::Rejected(CourseError::CourseFull(_))) => full += 1,
            other => panic!("a racer got {other:?}"),
        }
    }
    assert_eq!(
        (won, full),
        (3, 13),
        "exactly the last three seats are taken"
    );
    assert!(
        attempts > 3,
        "the winners after the first decided again: {attempts}"
    );
    let c = Tag::new("course", "popular").unwrap();
    let subscriptions =
        EventQuery::from_items([QueryItem::types(["course.student_subscribed"]).with_tag(c)]);
    let read = app
        .store()
        .read_query(&subscriptions, Position(1), 100)
        .await
        .unwrap();
    assert_eq!(
        read.events.len(),
        10,
        "the course holds its capacity, no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_student_racing_for_five_courses_gets_three() {
    let memory = MemoryStore::new();
    let setup = app(memory.clone(), 100).await.unwrap();
    for i in 0..5 {
        define(&setup, &format!("c{i}"), 10).await;
    }
    let app = app(Gated::new(memory, 5), 100).await.unwrap();
    let racers: Vec<_> = (0..5)
        .map(|i| {
            let app = app.clone();
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

#[tokio::test]
async fn events_go_to_the_decisions_stream_with_their_tags() {
    let app = app(MemoryStore::new(), 5).await.unwrap();
    define(&app, "c9", 3).await;
    let outcome = subscribe(&app, "c9", "ada").await.unwrap();
    assert_eq!(outcome.stream.as_str(), "courses-c9-ada");
    assert_eq!(outcome.version, 1);
    let event = &outcome.events[0];
    let tags: Vec<&str> = event.meta.tags.iter().map(Tag::as_str).collect();
    assert_eq!(tags, ["course:c9", "student:ada"]);
    assert_eq!(event.meta.event_name, "course.student_subscribed");
    let stored = app
        .store()
        .read_stream(&"courses-c9".into(), 1, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "the definition is in the course's stream");
}

#[tokio::test]
async fn commands_are_dispatched_by_name() {
    let app = app(MemoryStore::new(), 5).await.unwrap();
    let router = Router::new(app).decision::<Courses>().unwrap();
    assert_eq!(
        router.commands(),
        ["ChangeCourseCapacity", "DefineCourse", "SubscribeStudent"]
    );
    router
        .dispatch("DefineCourse", r#"{"course":"c1","capacity":1}"#)
        .await
        .unwrap();
    router
        .dispatch("SubscribeStudent", r#"{"course":"c1","student":"ada"}"#)
        .await
        .unwrap();
    let full = router
        .dispatch("SubscribeStudent", r#"{"course":"c1","student":"bob"}"#)
        .await
        .unwrap_err();
    assert!(full.to_string().contains("course c1 is full"), "{full}");
}

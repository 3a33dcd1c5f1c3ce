//! The run-time check of emitted tag values: a decision whose handler tags an event with
//! another course than the one its query read is refused before anything is written (the
//! compile-time checks see only tag keys and types, which are right here).

use courses::*;
use eventweave_core::fixture::DecisionFixture;
use eventweave_core::prelude::*;
use eventweave_core::{CommandError, MemoryStore, Tag};
use serde::{Deserialize, Serialize};

/// Subscribes the student to course `to` instead of the command's course: a bug.
#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(decision = Misrouted)]
pub struct SubscribeElsewhere {
    #[tag]
    pub course: CourseId,
    #[tag]
    pub student: StudentId,
    pub to: CourseId,
}

pub struct Misrouted;

#[decision(name = "courses-test-misrouted")]
impl Misrouted {
    #[handle]
    fn subscribe(
        cmd: &SubscribeElsewhere,
        _: &CourseSeats,
        _: &StudentCourses,
    ) -> StudentSubscribed {
        StudentSubscribed {
            course: cmd.to.clone(),
            student: cmd.student.clone(),
        }
    }
}

fn elsewhere(to: &str) -> SubscribeElsewhere {
    SubscribeElsewhere {
        course: course("c1"),
        student: student("s1"),
        to: course(to),
    }
}

fn escaped(error: &CommandError<std::convert::Infallible>) {
    match error {
        CommandError::EscapesQuery {
            command,
            event,
            expected,
            found,
        } => {
            assert_eq!(*command, "SubscribeElsewhere");
            assert_eq!(*event, StudentSubscribed::NAME);
            assert_eq!(expected, &Some(Tag::new("course", "c1").unwrap()));
            assert_eq!(found, &Some(Tag::new("course", "c2").unwrap()));
        }
        other => panic!("expected `EscapesQuery`, got {other:?}"),
    }
}

#[tokio::test]
async fn an_event_tagged_with_another_course_is_refused_before_it_is_written() {
    let store = MemoryStore::new();
    let app = courses::app(store.clone(), 3).await.unwrap();
    let error = app.execute(elsewhere("c2")).await.unwrap_err();
    escaped(&error);
    assert_eq!(
        error.to_string(),
        "the decision of `SubscribeElsewhere` emitted `course.student_subscribed` tagged \
         `course:c2`, but its query reads `course:c1`: the event would escape the decision's \
         condition; nothing was appended (emit it with the command's tag values)"
    );
    assert_eq!(store.head().await.unwrap(), eventweave_core::Position::ZERO);
    // The same command with the tag values it read is appended.
    app.execute(elsewhere("c1")).await.unwrap();
    assert_eq!(store.len(), 1);
}

#[test]
fn the_fixture_refuses_it_too() {
    let then = DecisionFixture::<Misrouted>::new().when(elsewhere("c2"));
    escaped(then.error().expect("refused"));
    DecisionFixture::<Misrouted>::new()
        .when(elsewhere("c1"))
        .expect_events(StudentSubscribed {
            course: course("c1"),
            student: student("s1"),
        });
}

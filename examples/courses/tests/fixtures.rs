//! The course rules as given/when/then fixtures: no store, the states folded from the given
//! events that each command's query selects.

use courses::*;
use eventweave_core::fixture::DecisionFixture;

fn defined(c: &str, capacity: u32) -> CourseDefined {
    CourseDefined {
        course: course(c),
        capacity,
    }
}

fn subscribed(c: &str, s: &str) -> StudentSubscribed {
    StudentSubscribed {
        course: course(c),
        student: student(s),
    }
}

fn subscribe(c: &str, s: &str) -> SubscribeStudent {
    SubscribeStudent {
        course: course(c),
        student: student(s),
    }
}

#[test]
fn a_free_seat_is_taken() {
    DecisionFixture::<Courses>::new()
        .given((defined("c1", 2), subscribed("c1", "bob")))
        .when(subscribe("c1", "ada"))
        .expect_events(subscribed("c1", "ada"));
}

#[test]
fn a_full_course_refuses() {
    DecisionFixture::<Courses>::new()
        .given((defined("c1", 1), subscribed("c1", "bob")))
        .when(subscribe("c1", "ada"))
        .expect_error(CourseError::CourseFull(course("c1")));
}

#[test]
fn other_courses_do_not_count() {
    // c2's subscriptions carry another course tag: c1's state never sees them.
    DecisionFixture::<Courses>::new()
        .given((defined("c1", 1), defined("c2", 1), subscribed("c2", "bob")))
        .when(subscribe("c1", "ada"))
        .expect_events(subscribed("c1", "ada"));
}

#[test]
fn a_student_at_the_limit_refuses() {
    DecisionFixture::<Courses>::new()
        .given((
            (
                defined("c1", 9),
                defined("c2", 9),
                defined("c3", 9),
                defined("c4", 9),
            ),
            (
                subscribed("c1", "ada"),
                subscribed("c2", "ada"),
                subscribed("c3", "ada"),
            ),
        ))
        .when(subscribe("c4", "ada"))
        .expect_error(CourseError::TooManyCourses(student("ada")));
}

#[test]
fn capacity_changes_count() {
    DecisionFixture::<Courses>::new()
        .given((
            defined("c1", 1),
            subscribed("c1", "bob"),
            CourseCapacityChanged {
                course: course("c1"),
                capacity: 2,
            },
        ))
        .when(subscribe("c1", "ada"))
        .expect_events(subscribed("c1", "ada"));
    DecisionFixture::<Courses>::new()
        .given(defined("c1", 5))
        .when(ChangeCourseCapacity {
            course: course("c1"),
            capacity: 5,
        })
        .expect_error(CourseError::SameCapacity(course("c1"), 5));
}

#[test]
fn emitted_events_carry_their_tags() {
    let then = DecisionFixture::<Courses>::new()
        .given(defined("c1", 2))
        .when(subscribe("c1", "ada"));
    let emitted = &then.emitted().expect("subscribed").events[0];
    let tags: Vec<&str> = emitted.tags.iter().map(|t| t.as_str()).collect();
    assert_eq!(tags, ["course:c1", "student:ada"]);
    assert_eq!(emitted.stream, None, "into the decision's own stream");
}

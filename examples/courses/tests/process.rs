//! A process manager that issues a decision's command: admissions accepted elsewhere become
//! subscriptions, decided by `Courses` like any other; a full course reaches the compensation
//! with the decision's error, typed. On `MemoryStore` and on SQLite, with a command re-run
//! after a simulated crash; and the same process manager in `ProcessFixture`.

use std::time::Duration;

use courses::*;
use eventweave_core::fixture::ProcessFixture;
use eventweave_core::prelude::*;
use eventweave_core::process::{Issue, ProcessManager, ProcessManagerSink, Rejection, derive_id};
use eventweave_core::runner::{Checkpoints, ProjectionRunner};
use eventweave_core::{
    CommandContext, EventQuery, ExpectedVersion, MemoryStore, NewEvent, Payload, Position,
    QueryItem, StreamId, Tag, Uuid, new_id,
};
use eventweave_sqlite::SqliteStore;
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

/// An application was accepted by the admissions office (another service): the student is to
/// be subscribed to the course.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "courses-test.application_accepted")]
pub struct ApplicationAccepted {
    pub course: CourseId,
    pub student: StudentId,
}

/// Subscribes accepted students; remembers those a full course turned away.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    pub turned_away: Vec<String>,
}

#[process_manager(name = "courses-test-admission", issues = [SubscribeStudent])]
impl Admission {
    fn on_accepted(&mut self, e: &ApplicationAccepted) -> Issue {
        Issue::command(SubscribeStudent {
            course: e.course.clone(),
            student: e.student.clone(),
        })
    }

    #[on_rejected]
    fn on_refused(&mut self, rejection: &Rejection) {
        if let (Some(CourseError::CourseFull(_)), Some(cmd)) = (
            rejection.error::<CourseError>(),
            rejection.command::<SubscribeStudent>(),
        ) {
            self.turned_away.push(cmd.student.0);
        }
    }
}

/// Records an accepted application in its own business transaction; returns the event's id
/// and correlation id.
async fn accept<S: EventStore>(store: &S, course: &str, student: &str) -> (Uuid, Uuid) {
    let (event_id, correlation) = (new_id(), new_id());
    let e = ApplicationAccepted {
        course: courses::course(course),
        student: courses::student(student),
    };
    let event = NewEvent {
        event_id,
        event_name: ApplicationAccepted::NAME.into(),
        event_version: 1,
        payload: Payload::from_json(serde_json::to_string(&e).unwrap()),
        correlation_id: Some(correlation),
        causation_id: None,
        metadata: Default::default(),
        tags: Default::default(),
    };
    let stream = StreamId::from(format!("admissions-{student}"));
    store
        .append(&stream, ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
    (event_id, correlation)
}

/// The students subscribed to `course`.
async fn subscribed<S: EventStore>(store: &S, course: &str) -> Vec<String> {
    let tag = Tag::new("course", course).unwrap();
    let query = EventQuery::from_items([QueryItem::types([StudentSubscribed::NAME]).with_tag(tag)]);
    let read = store.read_query(&query, Position(1), 1000).await.unwrap();
    read.events
        .iter()
        .map(|e| {
            let s: StudentSubscribed = serde_json::from_str(e.payload.as_str()).unwrap();
            s.student.0
        })
        .collect()
}

async fn issues_decision_commands<S: EventStore + Checkpoints>(store: S) {
    let app = courses::app(store.clone(), 8).await.unwrap();
    app.execute(DefineCourse {
        course: course("c1"),
        capacity: 1,
    })
    .await
    .unwrap();
    let (first, _) = accept(&store, "c1", "s1").await;
    // A crash after the command ran and before its completion was recorded: the sink runs it
    // again with the same command id, derived from the event.
    let id = derive_id(first, &format!("{}/command", Admission::NAME), 0);
    let earlier = SubscribeStudent {
        course: course("c1"),
        student: student("s1"),
    };
    app.execute_with(earlier, CommandContext::new().with_command_id(id))
        .await
        .unwrap();
    let (_, turned_away) = accept(&store, "c1", "s2").await;

    // No `.decision::<Courses>()`: the sink routes the declared `SubscribeStudent` by itself.
    let sink = ProcessManagerSink::<Admission, _>::new(app.clone());
    let running = ProjectionRunner::new(store.clone(), sink).spawn();
    let head = store.head().await.unwrap();
    running.settle(head, WAIT).await.unwrap();
    let sink = running.stop().await;

    assert_eq!(subscribed(&store, "c1").await, ["s1"], "recorded once");
    let rejections = sink.rejections();
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert!(rejections[0].is::<SubscribeStudent>());
    assert_eq!(
        rejections[0].error::<CourseError>(),
        Some(&CourseError::CourseFull(course("c1")))
    );
    let instance = sink.instance(turned_away).await.unwrap();
    assert_eq!(instance.turned_away, ["s2"], "the compensation ran");
}

#[tokio::test]
async fn a_process_manager_issues_decision_commands_in_memory() {
    issues_decision_commands(MemoryStore::new()).await;
}

#[tokio::test]
async fn a_process_manager_issues_decision_commands_on_sqlite() {
    issues_decision_commands(SqliteStore::temporary().expect("a temporary store")).await;
}

#[test]
fn the_fixture_compares_decision_commands_and_their_rejections() {
    ProcessFixture::<Admission>::new()
        .when(ApplicationAccepted {
            course: course("c1"),
            student: student("s1"),
        })
        .expect_commands([Issue::command(SubscribeStudent {
            course: course("c1"),
            student: student("s1"),
        })]);
    let then = ProcessFixture::<Admission>::new()
        .when_rejected(
            SubscribeStudent {
                course: course("c1"),
                student: student("s2"),
            },
            CourseError::CourseFull(course("c1")),
        )
        .expect_nothing();
    assert_eq!(then.state().turned_away, ["s2"]);
}

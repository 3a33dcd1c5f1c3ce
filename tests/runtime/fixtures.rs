//! The given/when/then fixtures.

use eventweave_core::CommandError;
use eventweave_core::fixture::{AggregateFixture, ProjectionFixture};
use eventweave_core::testing::domain::*;
use eventweave_core::{Payload, StreamId};

#[tokio::test]
async fn expect_events_and_state() {
    let then = AggregateFixture::<Counter>::new()
        .given((Opened, Added { n: 2 }))
        .when(Add { id: 1, n: 3 })
        .await
        .expect_events(Added { n: 3 });
    assert_eq!(then.state().total, 5);
}

#[tokio::test]
async fn expect_error_and_failures() {
    AggregateFixture::<Counter>::new()
        .given(Opened)
        .when(Add { id: 1, n: 0 })
        .await
        .expect_error(CounterError::Zero);
    AggregateFixture::<Counter>::new()
        .when(Add { id: 1, n: 1 })
        .await
        .expect_failure(|e| matches!(e, CommandError::NotFound { .. }));
    AggregateFixture::<Counter>::new()
        .given(Opened)
        .when(Open { id: 1 })
        .await
        .expect_failure(|e| matches!(e, CommandError::AlreadyExists { .. }));
    AggregateFixture::<Counter>::new()
        .given(Opened)
        .service(Limit(3))
        .when(AddLimited { id: 1, n: 4 })
        .await
        .expect_error(CounterError::OverLimit);
}

#[tokio::test]
#[should_panic(expected = "other events than expected")]
async fn expect_events_fails_on_other_events() {
    AggregateFixture::<Counter>::new()
        .given(Opened)
        .when(Add { id: 1, n: 3 })
        .await
        .expect_events(Added { n: 4 });
}

#[tokio::test]
#[should_panic(expected = "expected rejection")]
async fn expect_error_fails_on_success() {
    AggregateFixture::<Counter>::new()
        .given(Opened)
        .when(Add { id: 1, n: 3 })
        .await
        .expect_error(CounterError::Zero);
}

#[test]
fn projection_fixture_answers_queries() {
    ProjectionFixture::new(Totals::default())
        .given("counter-1", Opened)
        .given("counter-1", Added { n: 4 })
        .given("counter-2", Added { n: 1 })
        .given("counter-1", Added { n: 6 })
        .expect_query(TotalOf("counter-1".into()), 10)
        .expect_query(TotalOf("counter-2".into()), 1)
        .expect_query(SeenPositions, vec![2, 3, 4]);
}

#[test]
fn projection_fixture_reports_a_bad_payload() {
    let fixture = ProjectionFixture::new(Totals::default())
        .given("counter-1", Added { n: 4 })
        .given_raw(
            StreamId::from("counter-1"),
            "counter.added",
            1,
            Payload::from_json("[]"),
        )
        .given("counter-1", Added { n: 1 });
    let err = fixture.error().expect("the projection must stop");
    assert_eq!((err.version, err.position.0), (2, 2));
    assert_eq!(fixture.projection().by_stream["counter-1"], 4);
}

//! A command id is an idempotency key at the command bus: a command sent again after its reply
//! was lost, or after it succeeded, returns the first run's outcome with a warm or a cold
//! cache, even when the current state would now reject it; another command under the same id
//! is `CommandIdReused`. (The conformance suite checks the same on every store.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eventweave_core::testing::domain::*;
use eventweave_core::{
    BackendError, CommandContext, CommandError, Cqrs, EventStore, ExpectedVersion, MemoryStore,
    Mismatch, NewEvent, RecordedEvent, Retry, StoreError, StreamId, Uuid, new_id,
};

/// A `MemoryStore` whose next append, once armed, is written and then reported lost, as a
/// connection cut between the commit and the reply would.
#[derive(Clone, Default)]
struct LosingStore {
    inner: MemoryStore,
    lose_next: Arc<AtomicBool>,
}

impl EventStore for LosingStore {
    eventweave_core::forward_event_store!(inner: read_stream, read_all, head, wait_for_events);

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let recorded = self.inner.append(stream, expected, events).await?;
        if self.lose_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::OutcomeUnknown(BackendError::new(
                "connection reset before the reply",
            )));
        }
        Ok(recorded)
    }
    // `read_event` is left to the trait's provided scan, which must be enough.
}

async fn app(store: LosingStore) -> Cqrs<LosingStore> {
    Cqrs::builder(store)
        .service(Limit(100))
        .build()
        .await
        .unwrap()
}

fn with(id: Uuid) -> CommandContext {
    CommandContext::new().with_command_id(id)
}

#[tokio::test]
async fn a_lost_reply_is_resolved_by_sending_the_command_again_with_its_id() {
    let store = LosingStore::default();
    let app = app(store.clone()).await;
    app.execute(Open { id: 1 }).await.unwrap();
    let id = new_id();
    store.lose_next.store(true, Ordering::SeqCst);
    let lost = app
        .execute_with(AddLimited { id: 1, n: 60 }, with(id))
        .await
        .unwrap_err();
    assert_eq!(lost.retry(), Retry::SameIds, "{lost}");
    // The state after the event would reject the same command (60 + 60 > 100): the bus must
    // decide on the state the first run saw.
    let again = app
        .execute_with(AddLimited { id: 1, n: 60 }, with(id))
        .await
        .expect("the first run's outcome");
    assert_eq!((again.version, again.events.len()), (2, 1));
    let cold = self::app(store.clone()).await;
    let cold_again = cold
        .execute_with(AddLimited { id: 1, n: 60 }, with(id))
        .await
        .expect("the first run's outcome, cold cache");
    assert_eq!(cold_again.events, again.events);
    let (state, version) = app.load::<Counter>(&1).await.unwrap();
    assert_eq!((state.total, version), (60, 2), "recorded once");
}

#[tokio::test]
async fn a_command_id_sent_again_with_another_body_is_a_typed_error_warm_and_cold() {
    let store = LosingStore::default();
    let app = app(store.clone()).await;
    app.execute(Open { id: 7 }).await.unwrap();
    let id = new_id();
    app.execute_with(Add { id: 7, n: 10 }, with(id))
        .await
        .unwrap();
    let cold = self::app(store.clone()).await;
    for (app, cache) in [(&app, "warm"), (&cold, "cold")] {
        match app.execute_with(Add { id: 7, n: 12 }, with(id)).await {
            Err(e @ CommandError::CommandIdReused { .. }) => {
                assert_eq!(e.retry(), Retry::Never);
                assert!(e.to_string().contains("payload"), "{e}");
                let CommandError::CommandIdReused {
                    command_id,
                    mismatch,
                    ..
                } = e
                else {
                    unreachable!()
                };
                assert_eq!(command_id, id);
                assert!(matches!(mismatch, Mismatch::EventField { index: 0, .. }));
            }
            other => {
                panic!("a deposit of 12 resent under the id of one of 10 ({cache}): {other:?}")
            }
        }
        // Rejected now (n = 0 is refused), recorded then: also another command.
        match app.execute_with(Add { id: 7, n: 0 }, with(id)).await {
            Err(CommandError::CommandIdReused {
                mismatch: Mismatch::EventCount { stored: 1, sent: 0 },
                ..
            }) => {}
            other => panic!("a rejected command under a used id ({cache}): {other:?}"),
        }
    }
    let (state, version) = app.load::<Counter>(&7).await.unwrap();
    assert_eq!((state.total, version), (10, 2), "nothing else was applied");
}

//! Upcasting through the real runtime: rows of every older version of `Deposited` (the JSON
//! fixtures in `tests/fixtures/upcast`) load as current events in aggregates, in-memory
//! projections (through `EventRef`) and durable projections (through a runner); a row newer
//! than the code or one an upcaster rejects is a typed error naming where it is.

use std::time::Duration;

use eventweave_core::prelude::*;
use eventweave_core::runner::{MemorySink, OnFailure, ProjectionRunner, RetryPolicy, RunnerState};
use eventweave_core::{
    DecodeError, DecodeFailure, EventRef, EventSet, ExpectedVersion, ProjectionFailure, StreamId,
};
use serde_json::json;

#[path = "../fixtures/upcast/domain.rs"]
mod domain;

use domain::*;

const WAIT: Duration = Duration::from_secs(10);

/// Every deposit, as the in-memory read side saw it.
#[derive(Default)]
pub struct DepositLog {
    deposits: Vec<Deposited>,
}

#[derive(Query)]
#[query(response = Vec<Deposited>)]
pub struct AllDeposits;

#[projection(name = "upcast_deposit_log")]
impl DepositLog {
    fn on_deposited(&mut self, e: &Deposited) {
        self.deposits.push(e.clone());
    }

    #[query]
    fn all(&self, _: &AllDeposits) -> Vec<Deposited> {
        self.deposits.clone()
    }
}

/// Every deposit, as a durable projection saw it.
#[derive(Default)]
pub struct DurableDepositLog {
    deposits: Vec<Deposited>,
}

#[projection(name = "upcast_durable_deposit_log")]
impl DurableDepositLog {
    async fn on_deposited(&mut self, e: &Deposited) {
        tokio::task::yield_now().await;
        self.deposits.push(e.clone());
    }
}

fn all_fixture_deposits() -> Vec<Deposited> {
    // Global order is the order `append_fixtures` wrote: wallet-1's rows, then wallet-2's.
    let mut all = wallet_1_deposits();
    all.extend(wallet_2_deposits());
    all
}

async fn fixture_store() -> MemoryStore {
    let store = MemoryStore::new();
    append_fixtures(&store).await;
    store
}

/// Appends one `wallet.deposited` row of `event_version` to `stream` (opened first).
async fn bad_wallet(
    store: &MemoryStore,
    stream: &str,
    event_version: u32,
    payload: serde_json::Value,
) {
    let stream = StreamId::from(stream);
    let rows = [
        Row {
            stream: stream.to_string(),
            version: 1,
            event_name: "wallet.opened".into(),
            event_version: 1,
            payload: json!({ "owner": "eve" }),
        },
        Row {
            stream: stream.to_string(),
            version: 2,
            event_name: "wallet.deposited".into(),
            event_version,
            payload,
        },
    ];
    for row in rows {
        store
            .append(
                &stream,
                ExpectedVersion::Exact(row.version - 1),
                vec![row.new_event()],
            )
            .await
            .unwrap();
    }
}

#[test]
fn the_chain_runs_from_the_stored_version() {
    assert_eq!(Deposited::VERSION, 3);
    assert_eq!(
        Deposited::upcast(1, json!({ "cents": 5 })),
        Ok(json!({ "amount": 5, "currency": "EUR", "memo": "" }))
    );
    assert_eq!(
        Deposited::upcast(2, json!({ "amount": 5, "currency": "CHF" })),
        Ok(json!({ "amount": 5, "currency": "CHF", "memo": "" }))
    );
    // The current version goes through no upcaster.
    assert_eq!(
        WalletEvent::decode(
            "wallet.deposited",
            3,
            r#"{"amount":5,"currency":"USD","memo":"m"}"#
        ),
        Ok(WalletEvent::Deposited(Deposited {
            amount: 5,
            currency: "USD".into(),
            memo: "m".into()
        }))
    );
    assert_eq!(
        WalletEvent::decode("wallet.deposited", 1, r#"{"cents":9}"#),
        Ok(WalletEvent::Deposited(Deposited {
            amount: 9,
            currency: "EUR".into(),
            memo: String::new()
        }))
    );
    // An event without upcasters at version 1 decodes as before.
    assert_eq!(
        WalletEvent::decode("wallet.opened", 1, r#"{"owner":"ada"}"#),
        Ok(WalletEvent::Opened(Opened {
            owner: "ada".into()
        }))
    );
}

#[test]
fn upcaster_failures_say_which_step_failed() {
    let failure =
        WalletEvent::decode("wallet.deposited", 2, r#"{"amount":1,"currency":"usd"}"#).unwrap_err();
    assert_eq!(
        failure,
        DecodeFailure::Upcast {
            from: 2,
            message: "`usd` is not a three-letter currency code".into()
        }
    );
    assert_eq!(
        failure.to_string(),
        "upcasting from schema version 2 to 3 failed: `usd` is not a three-letter currency code"
    );
    // A version 1 row whose amount is not a number passes the JSON step and fails to fit the
    // typed input of the next one.
    let failure = WalletEvent::decode("wallet.deposited", 1, r#"{"cents":"lots"}"#).unwrap_err();
    assert!(
        matches!(&failure, DecodeFailure::Upcast { from: 2, message } if message.contains("does not fit the upcaster's input")),
        "{failure:?}"
    );
    // Invalid JSON is still `InvalidPayload`, before any upcaster runs.
    assert!(matches!(
        WalletEvent::decode("wallet.deposited", 1, "{"),
        Err(DecodeFailure::InvalidPayload(_))
    ));
}

#[tokio::test]
async fn stored_rows_of_every_version_load_as_current_events() {
    let store = fixture_store().await;
    let app = Cqrs::builder(store).build().await.unwrap();
    check_fixture_wallets(&app).await;
}

#[tokio::test]
async fn a_row_newer_than_the_code_is_a_decode_error_naming_it() {
    let store = MemoryStore::new();
    bad_wallet(&store, "wallet-9", 4, json!({ "amount": 1 })).await;
    let app = Cqrs::builder(store).build().await.unwrap();
    match app.load::<Wallet>(&9).await {
        Err(CommandError::Decode(DecodeError {
            stream,
            version,
            event_name,
            event_version,
            failure,
        })) => {
            assert_eq!(stream, StreamId::from("wallet-9"));
            assert_eq!(version, 2);
            assert_eq!(event_name, "wallet.deposited");
            assert_eq!(event_version, 4);
            assert_eq!(failure, DecodeFailure::UnsupportedVersion { known: 3 });
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_upcaster_is_a_decode_error_naming_the_row() {
    let store = MemoryStore::new();
    bad_wallet(
        &store,
        "wallet-8",
        2,
        json!({ "amount": 1, "currency": "euro" }),
    )
    .await;
    let app = Cqrs::builder(store).build().await.unwrap();
    let error = match app.load::<Wallet>(&8).await {
        Err(CommandError::Decode(e)) => e,
        other => panic!("expected a decode error, got {other:?}"),
    };
    assert_eq!(
        (
            error.stream.as_str(),
            error.version,
            error.event_name.as_str(),
            error.event_version
        ),
        ("wallet-8", 2, "wallet.deposited", 2)
    );
    assert!(matches!(
        error.failure,
        DecodeFailure::Upcast { from: 2, .. }
    ));
    assert_eq!(
        error.to_string(),
        "cannot decode event `wallet.deposited` (schema version 2) at version 2 of stream \
         `wallet-8`: upcasting from schema version 2 to 3 failed: `euro` is not a three-letter \
         currency code"
    );
}

#[tokio::test]
async fn projections_see_upcast_events() {
    let store = fixture_store().await;

    // `EventRef::decode`, as every projection reads stored events.
    let stored = store.read_all(Position(1), usize::MAX).await.unwrap();
    let decoded: Vec<Deposited> = stored
        .iter()
        .filter_map(|e| EventRef::stored(e).decode::<Deposited>().unwrap())
        .map(|d| d.clone())
        .collect();
    assert_eq!(decoded, all_fixture_deposits());

    // An in-memory projection, rebuilt from the stored rows at start-up.
    let app = Cqrs::builder(store.clone())
        .projection(DepositLog::default())
        .build()
        .await
        .unwrap();
    assert_eq!(
        app.query(AllDeposits).await.unwrap(),
        all_fixture_deposits()
    );

    // A durable projection, run from its checkpoint by a runner.
    let last = stored.last().unwrap().meta.position;
    let running = ProjectionRunner::new(store, MemorySink::new(DurableDepositLog::default()))
        .batch_size(3)
        .spawn();
    running.wait_for(last, WAIT).await.unwrap();
    let sink = running.stop().await;
    assert_eq!(sink.projection().deposits, all_fixture_deposits());
}

#[tokio::test]
async fn a_durable_projection_stops_at_a_row_it_cannot_upcast() {
    let store = MemoryStore::new();
    bad_wallet(
        &store,
        "wallet-7",
        2,
        json!({ "amount": 1, "currency": "??" }),
    )
    .await;
    let running = ProjectionRunner::new(store, MemorySink::new(DurableDepositLog::default()))
        .retry(RetryPolicy {
            max_attempts: 1,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        })
        .on_failure(OnFailure::Stop)
        .spawn();
    let error = match running.wait_for(Position(2), WAIT).await {
        Err(QueryError::ProjectionFailed(error)) => error,
        other => panic!("expected the projection to fail, got {other:?}"),
    };
    assert_eq!(error.stream, StreamId::from("wallet-7"));
    assert_eq!(error.version, 2);
    assert_eq!(error.event_name, "wallet.deposited");
    assert!(
        matches!(
            &error.failure,
            ProjectionFailure::Decode(DecodeFailure::Upcast { from: 2, .. })
        ),
        "{error}"
    );
    assert!(matches!(running.status().state, RunnerState::Failed(_)));
    running.stop().await;
}

//! The transfer process manager: given/when/then, one transfer followed through its ids alone,
//! re-delivery that issues nothing twice, and deadlines that survive a restart.

mod transfer_bank;

use std::time::Duration;

use bank::*;
use eventweave_core::fixture::ProcessFixture;
use eventweave_core::process::{Issue, ProcessManager, ProcessManagerSink, decode};
use eventweave_core::runner::{Checkpoints, ProjectionRunner, ProjectionSink, RunningProjection};
use eventweave_core::{
    CAUSED_BY_EVENT, Cqrs, Event, EventStore, MemoryStore, ProjectionFailure, RecordedEvent, Uuid,
};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

fn sent(to: u64, amount: u64) -> TransferSent {
    TransferSent {
        transfer: TransferId(7),
        to: AccountId(to),
        amount,
    }
}

#[test]
fn a_debit_issues_the_credit() {
    ProcessFixture::<TransferProcess>::new()
        .when_in("account-1", sent(2, 60))
        .expect_issued([Issue::command(ReceiveTransfer {
            account: AccountId(2),
            transfer: TransferId(7),
            from: AccountId(1),
            amount: 60,
        })]);
}

#[test]
fn a_rejected_credit_issues_the_refund_and_the_credit_ends_it() {
    let then = ProcessFixture::<TransferProcess>::new()
        .given_in("account-1", sent(2, 60))
        .when_rejected(
            ReceiveTransfer {
                account: AccountId(2),
                transfer: TransferId(7),
                from: AccountId(1),
                amount: 60,
            },
            BankError::Closed,
        )
        .expect_commands([Issue::command(RefundTransfer {
            account: AccountId(1),
            transfer: TransferId(7),
            amount: 60,
        })]);
    assert!(
        matches!(then.state(), TransferProcess::Refunding { reason, .. } if reason == "the account is closed")
    );
    ProcessFixture::<TransferProcess>::new()
        .given_in("account-1", sent(2, 60))
        .when_in(
            "account-2",
            TransferReceived {
                transfer: TransferId(7),
                from: AccountId(1),
                amount: 60,
            },
        )
        .expect_nothing();
}

async fn bank() -> (MemoryStore, Cqrs<MemoryStore>) {
    transfer_bank::transfer_bank(&[(1, "Ada"), (2, "Bob"), (3, "Cy")]).await
}

/// Waits until the runner has handled every stored event, including those its own commands
/// appended.
async fn settle<K: ProjectionSink, S: EventStore>(running: &RunningProjection<K>, store: &S) {
    let head = store.head().await.unwrap();
    running.settle(head, WAIT).await.unwrap();
}

/// The account events (not the process manager's own records) of one business transaction.
async fn transaction(store: &MemoryStore, correlation: Uuid) -> Vec<RecordedEvent> {
    store
        .read_all(eventweave_core::Position::ZERO, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.meta.correlation_id == Some(correlation))
        .filter(|e| e.meta.stream.as_str().starts_with("account-"))
        .collect()
}

/// The event that caused the command that recorded `event` (`None` for the first command).
fn cause(event: &RecordedEvent) -> Option<Uuid> {
    event
        .meta
        .metadata
        .get(CAUSED_BY_EVENT)
        .and_then(|v| v.as_str())
        .map(|s| s.parse().unwrap())
}

#[tokio::test]
async fn one_transfer_is_followed_from_first_command_to_last_event_through_its_ids() {
    let (store, app) = bank().await;
    let running = ProjectionRunner::new(store.clone(), transfer_process(&app).unwrap()).spawn();

    // Completed: debit → (process manager) credit.
    let first = start_transfer(&app, TransferId(1), AccountId(1), AccountId(2), 60)
        .await
        .unwrap();
    // One call: the debit is handled, and so is the credit its command recorded.
    let settled = running.settle(first.position(), WAIT).await.unwrap();
    let chain = transaction(&store, first.correlation_id).await;
    let names: Vec<_> = chain.iter().map(|e| &*e.meta.event_name).collect();
    assert_eq!(names, ["transfer.sent", "transfer.received"]);
    assert_eq!(settled, chain[1].meta.position, "waited for the credit too");
    assert!(running.checkpoint() >= chain[1].meta.position);
    // The first command started the transaction: its id is the correlation id.
    assert_eq!(chain[0].meta.causation_id, Some(first.command_id));
    assert_eq!(first.correlation_id, first.command_id);
    assert_eq!(cause(&chain[0]), None);
    // The credit's command was caused by the debit event, and is another command.
    assert_eq!(cause(&chain[1]), Some(chain[0].meta.event_id));
    assert_ne!(chain[1].meta.causation_id, chain[0].meta.causation_id);

    // Refunded: debit → credit rejected (closed account) → refund.
    let second = start_transfer(&app, TransferId(2), AccountId(1), AccountId(3), 30)
        .await
        .unwrap();
    running.settle(second.position(), WAIT).await.unwrap();
    let chain = transaction(&store, second.correlation_id).await;
    let names: Vec<_> = chain.iter().map(|e| &*e.meta.event_name).collect();
    assert_eq!(names, ["transfer.sent", "transfer.refunded"]);
    assert_eq!(cause(&chain[1]), Some(chain[0].meta.event_id));
    let sink = running.stop().await;
    assert_eq!(sink.rejections().len(), 1);
    let rejection = &sink.rejections()[0];
    assert!(rejection.is::<ReceiveTransfer>());
    // Production's rejection reads like the fixture's: the handler's error, typed, and its
    // own text (no "command rejected:" prefix).
    assert_eq!(rejection.error::<BankError>(), Some(&BankError::Closed));
    assert_eq!(rejection.message(), "the account is closed");
    assert_eq!(
        rejection.kind(),
        eventweave_core::process::RejectionKind::Rejected
    );
    assert_eq!(
        sink.instance(second.correlation_id).await.unwrap(),
        TransferProcess::Refunded
    );
    assert_eq!(
        sink.instance(first.correlation_id).await.unwrap(),
        TransferProcess::Completed
    );
    // The rejection is recorded in the instance stream, with the same correlation id.
    let instance = store
        .read_stream(
            &eventweave_core::process::instance_stream(
                TransferProcess::NAME,
                second.correlation_id,
            ),
            1,
            100,
        )
        .await
        .unwrap();
    assert!(instance.iter().any(|r| r.meta.event_name == "$pm.rejected"));
    assert!(
        instance
            .iter()
            .all(|r| r.meta.correlation_id == Some(second.correlation_id))
    );

    let (ada, _) = app.load::<Account>(&AccountId(1)).await.unwrap();
    let (bob, _) = app.load::<Account>(&AccountId(2)).await.unwrap();
    assert_eq!((ada.balance(), bob.balance()), (40, 60));
}

#[tokio::test]
async fn re_delivering_every_event_issues_no_command_twice() {
    let (store, app) = bank().await;
    let running = ProjectionRunner::new(store.clone(), transfer_process(&app).unwrap()).spawn();
    start_transfer(&app, TransferId(1), AccountId(1), AccountId(2), 60)
        .await
        .unwrap();
    start_transfer(&app, TransferId(2), AccountId(1), AccountId(3), 30)
        .await
        .unwrap();
    settle(&running, &store).await;
    running.stop().await;
    let before = store.head().await.unwrap();

    // A new process (empty caches) re-reads everything from checkpoint zero.
    store
        .save_checkpoint(TransferProcess::NAME, eventweave_core::Position::ZERO)
        .await
        .unwrap();
    let app = Cqrs::builder(store.clone())
        .service(Limits {
            max_withdrawal: transfer_bank::MAX_WITHDRAWAL,
        })
        .build()
        .await
        .unwrap();
    let running = ProjectionRunner::new(store.clone(), transfer_process(&app).unwrap()).spawn();
    settle(&running, &store).await;
    assert_eq!(
        store.head().await.unwrap(),
        before,
        "nothing was recorded again"
    );
    running.stop().await;

    // A command interrupted before its outcome was recorded runs again with the same command
    // id: its event ids are the same, so the store refuses a second copy.
    let received = store
        .read_all(eventweave_core::Position::ZERO, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.meta.event_name == TransferReceived::NAME)
        .unwrap();
    let again = app
        .execute_with(
            ReceiveTransfer {
                account: AccountId(2),
                transfer: TransferId(1),
                from: AccountId(1),
                amount: 60,
            },
            eventweave_core::CommandContext::new()
                .with_command_id(received.meta.causation_id.unwrap()),
        )
        .await;
    // Either the store's idempotent retry (the events recorded the first time) or
    // `DuplicateEventId`; never a second credit.
    match again {
        Ok(outcome) => assert_eq!(outcome.events[0].meta.event_id, received.meta.event_id),
        Err(eventweave_core::CommandError::Store(
            eventweave_core::StoreError::DuplicateEventId { .. },
        )) => {}
        Err(other) => panic!("{other:?}"),
    }
    assert_eq!(store.head().await.unwrap(), before);
    let (bob, _) = app.load::<Account>(&AccountId(2)).await.unwrap();
    assert_eq!(bob.balance(), 60);
    // The cache did not keep a state with the credit applied twice.
    let overdraw = app
        .execute(Withdraw {
            account: AccountId(2),
            amount: 61,
        })
        .await;
    assert!(
        matches!(
            overdraw,
            Err(eventweave_core::CommandError::Rejected(
                BankError::InsufficientFunds { balance: 60, .. }
            ))
        ),
        "{overdraw:?}"
    );
}

// ---- deadlines ---------------------------------------------------------------------------------

/// A timeout: the welcome bonus of a new account is due.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test.welcome_due")]
struct WelcomeDue {
    account: AccountId,
}

/// Gives every new account 1 cent, a while after it opened.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Welcome {
    paid: bool,
}

const BONUS_DELAY: Duration = Duration::from_millis(300);

impl ProcessManager for Welcome {
    const NAME: &'static str = "test-welcome";
    const EVENTS: &'static [&'static str] = &[AccountOpened::NAME, WelcomeDue::NAME];

    fn handle(&mut self, event: &RecordedEvent) -> Result<Vec<Issue>, ProjectionFailure> {
        if event.meta.event_name == AccountOpened::NAME {
            let account = event.meta.stream.as_str()["account-".len()..]
                .parse()
                .map(AccountId)
                .unwrap();
            return Ok(vec![Issue::deadline(BONUS_DELAY, WelcomeDue { account })]);
        }
        let due: WelcomeDue = decode(event)?;
        if self.paid {
            return Ok(Vec::new());
        }
        self.paid = true;
        Ok(vec![Issue::command(Deposit {
            account: due.account,
            amount: 1,
        })])
    }
}

#[test]
fn opening_schedules_the_bonus_and_the_timeout_pays_it() {
    ProcessFixture::<Welcome>::new()
        .when_in(
            "account-5",
            AccountOpened {
                owner: "Eve".into(),
            },
        )
        .expect_deadline(Issue::deadline(
            BONUS_DELAY,
            WelcomeDue {
                account: AccountId(5),
            },
        ))
        .expect_commands([]);
    ProcessFixture::<Welcome>::new()
        .when(WelcomeDue {
            account: AccountId(5),
        })
        .expect_commands([Issue::command(Deposit {
            account: AccountId(5),
            amount: 1,
        })]);
}

#[tokio::test]
async fn a_deadline_survives_a_restart_and_fires_once() {
    let store = MemoryStore::new();
    let app = Cqrs::builder(store.clone()).build().await.unwrap();
    let sink = || {
        ProcessManagerSink::<Welcome, _>::new(app.clone())
            .aggregate::<Account>()
            .unwrap()
    };
    let running = ProjectionRunner::new(store.clone(), sink()).spawn();
    app.execute(OpenAccount {
        account: AccountId(5),
        owner: "Eve".into(),
    })
    .await
    .unwrap();
    settle(&running, &store).await;
    // Stopped (and its timer with it) before the deadline is due.
    drop(running.stop().await);
    tokio::time::sleep(BONUS_DELAY + Duration::from_millis(100)).await;
    let (eve, _) = app.load::<Account>(&AccountId(5)).await.unwrap();
    assert_eq!(eve.balance(), 0, "nothing ran while stopped");

    // The new runner's timer reads the pending deadline back and fires it.
    let running = ProjectionRunner::new(store.clone(), sink()).spawn();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        settle(&running, &store).await;
        let (eve, _) = app.load::<Account>(&AccountId(5)).await.unwrap();
        if eve.balance() == 1 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settle(&running, &store).await;
    drop(running.stop().await);
    let (eve, _) = app.load::<Account>(&AccountId(5)).await.unwrap();
    assert_eq!(eve.balance(), 1, "the bonus was paid once");
    // The deposit is traceable to the account opening through the timeout event.
    let events = store
        .read_all(eventweave_core::Position::ZERO, usize::MAX)
        .await
        .unwrap();
    let opened = events
        .iter()
        .find(|e| e.meta.event_name == AccountOpened::NAME)
        .unwrap();
    let due = events
        .iter()
        .find(|e| e.meta.event_name == WelcomeDue::NAME)
        .unwrap();
    let deposit = events
        .iter()
        .find(|e| e.meta.event_name == MoneyDeposited::NAME)
        .unwrap();
    assert_eq!(due.meta.correlation_id, opened.meta.correlation_id);
    assert_eq!(deposit.meta.correlation_id, opened.meta.correlation_id);
    assert_eq!(cause(due), Some(opened.meta.event_id));
    assert_eq!(cause(deposit), Some(due.meta.event_id));
}

// ---- bounded rejections -------------------------------------------------------------------------

/// Tries to withdraw 1,000 more than every deposit: above the limit, so always rejected.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Overdraw;

impl ProcessManager for Overdraw {
    const NAME: &'static str = "test-overdraw";
    const EVENTS: &'static [&'static str] = &[MoneyDeposited::NAME];

    fn handle(&mut self, event: &RecordedEvent) -> Result<Vec<Issue>, ProjectionFailure> {
        let deposited: MoneyDeposited = decode(event)?;
        Ok(vec![Issue::command(Withdraw {
            account: AccountId(1),
            amount: 1_000 + deposited.amount,
        })])
    }
}

#[tokio::test]
async fn a_sink_keeps_only_its_most_recent_rejections() {
    let (store, app) = bank().await;
    for amount in 1..=300 {
        app.execute(Deposit {
            account: AccountId(1),
            amount,
        })
        .await
        .unwrap();
    }
    let sink = ProcessManagerSink::<Overdraw, _>::new(app.clone())
        .aggregate::<Account>()
        .unwrap();
    let running = ProjectionRunner::new(store.clone(), sink).spawn();
    settle(&running, &store).await;
    let sink = running.stop().await;
    // 301 rejections (the deposit of 100 that `bank()` makes, then 1..=300): the newest 256.
    let amounts: Vec<u64> = sink
        .rejections()
        .iter()
        .map(|r| r.command.body["amount"].as_u64().unwrap())
        .collect();
    assert_eq!(amounts.len(), 256, "kept");
    assert_eq!(
        amounts,
        (1_045..=1_300).collect::<Vec<u64>>(),
        "the newest, in order"
    );
    assert!(sink.rejections().iter().all(|r| r.is::<Withdraw>()));
}

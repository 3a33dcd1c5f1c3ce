//! The macros' expansions, exercised through the real runtime: a small bank with creation and
//! update handlers, sync and async handlers, a service, every kind of return value, a
//! projection with metadata and a fallible handler, queries, dispatch by name, and the
//! `crate = …` argument.

#[path = "macros/aggregate_ids.rs"]
mod aggregate_ids;
#[path = "macros/bank.rs"]
mod bank;
#[path = "macros/durable.rs"]
mod durable;
#[path = "macros/options.rs"]
mod options;
#[path = "macros/process.rs"]
mod process;
#[path = "macros/upcast.rs"]
mod upcast;
#[path = "macros/upsert.rs"]
mod upsert;

use eventweave_core::fixture::{AggregateFixture, ProjectionFixture};
use eventweave_core::prelude::*;
use eventweave_core::{
    CommandSet, DecodeFailure, DispatchError, EventSet, HandlerKind, Handles, ProjectionFailure,
    Router, registry,
};

use bank::*;

// ---------------------------------------------------------------------------------------------
// Event derive

#[test]
fn event_names_and_versions_come_from_the_attribute_or_the_type() {
    assert_eq!(AccountOpened::NAME, "account.opened");
    assert_eq!(AccountOpened::VERSION, 1);
    assert_eq!(MoneyDeposited::NAME, "MoneyDeposited");
    assert_eq!(MoneyDeposited::VERSION, 1);
    assert_eq!(MoneyWithdrawn::NAME, "account.withdrawn");
    assert_eq!(MoneyWithdrawn::VERSION, 2);
    assert_eq!(Note::NAME, "account.noted");
}

#[test]
fn events_are_registered_with_their_type_path() {
    let events = registry::events();
    let opened = events
        .iter()
        .find(|r| r.name == "account.opened")
        .expect("registered");
    assert_eq!(opened.version, 1);
    assert_eq!(opened.type_name, "macros::bank::AccountOpened");
    let withdrawn = events
        .iter()
        .find(|r| r.name == "account.withdrawn")
        .expect("registered");
    assert_eq!(withdrawn.version, 2);
    assert_eq!(withdrawn.type_name, "macros::bank::MoneyWithdrawn");
}

// ---------------------------------------------------------------------------------------------
// The generated event enum

#[test]
fn event_enum_lists_events_in_declaration_order() {
    assert_eq!(
        AccountEvent::NAMES,
        [
            "account.opened",
            "MoneyDeposited",
            "account.withdrawn",
            "account.closed",
            "account.noted"
        ]
    );
    let event = AccountEvent::from(MoneyWithdrawn { amount: 3, fee: 1 });
    assert_eq!(event.event_name(), "account.withdrawn");
    assert_eq!(event.event_version(), 2);
    assert_eq!(
        event.as_any().downcast_ref::<MoneyWithdrawn>(),
        Some(&MoneyWithdrawn { amount: 3, fee: 1 })
    );
    let mut payload = Vec::new();
    event.encode(&mut payload).unwrap();
    assert_eq!(payload, br#"{"amount":3,"fee":1}"#);
}

#[test]
fn event_enum_decodes_by_stored_name_and_version() {
    assert_eq!(
        AccountEvent::decode("account.withdrawn", 2, r#"{"amount":3,"fee":1}"#),
        Ok(AccountEvent::MoneyWithdrawn(MoneyWithdrawn {
            amount: 3,
            fee: 1
        }))
    );
    assert_eq!(
        AccountEvent::decode("account.closed", 1, "null"),
        Ok(AccountEvent::AccountClosed(AccountClosed))
    );
    assert_eq!(
        AccountEvent::decode("account.renamed", 1, "{}"),
        Err(DecodeFailure::UnknownEvent)
    );
    assert_eq!(
        AccountEvent::decode("account.withdrawn", 3, r#"{"amount":3,"fee":1}"#),
        Err(DecodeFailure::UnsupportedVersion { known: 2 })
    );
    assert!(matches!(
        AccountEvent::decode("MoneyDeposited", 1, r#"{"amount":"x"}"#),
        Err(DecodeFailure::InvalidPayload(_))
    ));
}

#[test]
fn event_enum_serializes_tagged_by_stored_name() {
    let event = AccountEvent::from(AccountOpened {
        owner: "ada".into(),
    });
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "account.opened", "version": 1, "data": {"owner": "ada"}})
    );
    let back: AccountEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, event);
    let note: AccountEvent =
        serde_json::from_str(r#"{"type":"account.noted","version":1,"data":"Flag"}"#).unwrap();
    assert_eq!(note, AccountEvent::Note(Note::Flag));
    let unknown =
        serde_json::from_str::<AccountEvent>(r#"{"type":"nope","version":1,"data":null}"#);
    assert!(unknown.unwrap_err().to_string().contains("`nope`"));
}

// ---------------------------------------------------------------------------------------------
// The aggregate, its handlers and the command bus

#[test]
fn aggregate_constants_and_handler_kinds() {
    assert_eq!(<Account as Aggregate>::NAME, "account");
    assert_eq!(Account::stream_id(&7).to_string(), "account-7");
    assert_eq!(<Account as Handles<OpenAccount>>::KIND, HandlerKind::Create);
    assert_eq!(<Account as Handles<Deposit>>::KIND, HandlerKind::Update);
    assert_eq!(<Account as Handles<Withdraw>>::KIND, HandlerKind::Update);
    assert_eq!(OpenAccount::NAME, "OpenAccount");
    assert_eq!(Deposit::NAME, "deposit");
    assert_eq!(
        *Deposit {
            amount: 1,
            account: 42
        }
        .aggregate_id(),
        42
    );
    assert!(!Account::default().is_rich());
}

#[test]
fn apply_folds_every_event() {
    let mut account = Account::default();
    for event in [
        AccountEvent::from(AccountOpened {
            owner: "ada".into(),
        }),
        MoneyDeposited { amount: 10 }.into(),
        MoneyWithdrawn { amount: 3, fee: 1 }.into(),
        Note::Flag.into(),
        AccountClosed.into(),
    ] {
        account.apply(&event);
    }
    assert_eq!(account.owner, "ada");
    assert_eq!(account.balance, 6);
    assert_eq!(account.notes, [Note::Flag]);
    assert!(account.closed);
}

#[tokio::test]
async fn commands_run_through_their_handlers() {
    let app = app().await;
    let opened = app
        .execute(OpenAccount {
            account: 1,
            owner: "ada".into(),
        })
        .await
        .unwrap();
    assert_eq!(opened.version, 1);
    assert_eq!(opened.events[0].meta.event_name, "account.opened");
    app.execute(Deposit {
        account: 1,
        amount: 50,
    })
    .await
    .unwrap();
    let withdrawn = app
        .execute(Withdraw {
            account: 1,
            amount: 20,
        })
        .await
        .unwrap();
    assert_eq!(withdrawn.version, 3);
    assert_eq!(withdrawn.events[0].meta.event_version, 2);
    assert_eq!(
        withdrawn.events[0].payload.as_str(),
        r#"{"amount":20,"fee":1}"#
    );
    let balance = app
        .query_after(withdrawn.position(), GetBalance { account: 1 })
        .await
        .unwrap();
    assert_eq!(balance, Some(29));

    let (account, version) = app.load::<Account>(&1).await.unwrap();
    assert_eq!(
        (account.owner.as_str(), account.balance, version),
        ("ada", 29, 3)
    );
}

#[tokio::test]
async fn unit_option_and_tuple_returns_record_zero_one_or_more_events() {
    let app = app().await;
    app.execute(OpenAccount {
        account: 2,
        owner: "bob".into(),
    })
    .await
    .unwrap();
    let ping = app.execute(Ping { account: 2 }).await.unwrap();
    assert!(ping.events.is_empty());
    assert_eq!(ping.version, 1);

    let silent = app
        .execute(Annotate {
            account: 2,
            text: None,
        })
        .await
        .unwrap();
    assert!(silent.events.is_empty());
    let noted = app
        .execute(Annotate {
            account: 2,
            text: Some("vip".into()),
        })
        .await
        .unwrap();
    assert_eq!(noted.events.len(), 1);
    assert_eq!(noted.events[0].payload.as_str(), r#"{"Text":"vip"}"#);

    app.execute(Deposit {
        account: 2,
        amount: 5,
    })
    .await
    .unwrap();
    let closed = app.execute(Close { account: 2 }).await.unwrap();
    let names: Vec<_> = closed
        .events
        .iter()
        .map(|e| e.meta.event_name.to_string())
        .collect();
    assert_eq!(names, ["account.withdrawn", "account.closed"]);
    let count = app
        .query_after(closed.position(), HowManyClosed)
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(app.query(GetBalance { account: 2 }).await.unwrap(), Some(0));
}

#[tokio::test]
async fn creation_and_update_rules_and_rejections() {
    let app = app().await;
    let missing = app
        .execute(Deposit {
            account: 3,
            amount: 1,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(missing, CommandError::NotFound { .. }),
        "{missing:?}"
    );
    app.execute(OpenAccount {
        account: 3,
        owner: "cy".into(),
    })
    .await
    .unwrap();
    let twice = app
        .execute(OpenAccount {
            account: 3,
            owner: "cy".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(twice, CommandError::AlreadyExists { version: 1, .. }),
        "{twice:?}"
    );
    let zero = app
        .execute(Deposit {
            account: 3,
            amount: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(zero.rejection(), Some(&BankError::ZeroAmount));
    let broke = app
        .execute(Withdraw {
            account: 3,
            amount: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(
        broke.rejection(),
        Some(&BankError::Insufficient { balance: 0 })
    );
}

#[tokio::test]
async fn a_missing_service_is_reported_with_its_type() {
    let app = Cqrs::builder(MemoryStore::new()).build().await.unwrap();
    app.execute(OpenAccount {
        account: 4,
        owner: "di".into(),
    })
    .await
    .unwrap();
    let err = app
        .execute(Withdraw {
            account: 4,
            amount: 1,
        })
        .await
        .unwrap_err();
    match err {
        CommandError::MissingService { command, service } => {
            assert_eq!(command, "Withdraw");
            assert!(service.ends_with("FeePolicy"), "{service}");
        }
        other => panic!("expected MissingService, got {other:?}"),
    }
}

#[tokio::test]
async fn aggregate_fixture_drives_the_generated_handlers() {
    AggregateFixture::<Account>::new()
        .given((
            AccountOpened { owner: "ed".into() },
            MoneyDeposited { amount: 10 },
        ))
        .service(FeePolicy { fee: 2 })
        .when(Withdraw {
            account: 5,
            amount: 4,
        })
        .await
        .expect_events(MoneyWithdrawn { amount: 4, fee: 2 });

    let then = AggregateFixture::<Account>::new()
        .given(AccountOpened { owner: "ed".into() })
        .when(Deposit {
            account: 5,
            amount: 0,
        })
        .await
        .expect_error(BankError::ZeroAmount);
    assert_eq!(then.state().owner, "ed");

    AggregateFixture::<Account>::new()
        .when(OpenAccount {
            account: 5,
            owner: "fa".into(),
        })
        .await
        .expect_events(AccountOpened { owner: "fa".into() });
}

// ---------------------------------------------------------------------------------------------
// The generated command enum and dispatch by name

#[test]
fn command_enum_decodes_json_by_command_name() {
    assert_eq!(
        AccountCommand::NAMES,
        [
            "OpenAccount",
            "deposit",
            "Withdraw",
            "Close",
            "Ping",
            "Annotate"
        ]
    );
    let decoded = AccountCommand::from_json("deposit", r#"{"account":1,"amount":2}"#).unwrap();
    assert!(matches!(
        decoded,
        AccountCommand::Deposit(Deposit {
            account: 1,
            amount: 2
        })
    ));
    let ping = AccountCommand::from_json("Ping", "{}");
    assert!(matches!(
        ping,
        Err(DispatchError::NotDeserializable { command: "Ping" })
    ));
    match AccountCommand::from_json("Deposit", "{}") {
        Err(DispatchError::UnknownCommand { name, known }) => {
            assert_eq!(name, "Deposit");
            assert_eq!(known, AccountCommand::NAMES);
        }
        _ => panic!("`Deposit` is routed as `deposit`"),
    }
    assert!(matches!(
        AccountCommand::from(Close { account: 9 }),
        AccountCommand::Close(Close { account: 9 })
    ));
}

#[tokio::test]
async fn router_dispatches_json_commands() {
    let app = app().await;
    let router = Router::new(app.clone()).aggregate::<Account>().unwrap();
    router
        .dispatch("OpenAccount", r#"{"account":6,"owner":"gus"}"#)
        .await
        .unwrap();
    let deposited = router
        .dispatch("deposit", r#"{"account":6,"amount":12}"#)
        .await
        .unwrap();
    assert_eq!(
        app.query_after(deposited.position(), GetBalance { account: 6 })
            .await
            .unwrap(),
        Some(12)
    );

    match router.dispatch("Transfer", "{}").await.unwrap_err() {
        DispatchError::UnknownCommand { name, known } => {
            assert_eq!(name, "Transfer");
            assert!(known.contains(&"deposit"), "{known:?}");
        }
        other => panic!("expected UnknownCommand, got {other:?}"),
    }
    match router
        .dispatch("deposit", r#"{"account":6,"amount":"#)
        .await
    {
        Err(DispatchError::InvalidBody { command, message }) => {
            assert_eq!(command, "deposit");
            assert!(message.contains("EOF"), "{message}");
        }
        other => panic!("expected InvalidBody, got {other:?}"),
    }
    assert!(matches!(
        router.dispatch("Ping", r#"{"account":6}"#).await,
        Err(DispatchError::NotDeserializable { command: "Ping" })
    ));
    match router
        .dispatch("deposit", r#"{"account":6,"amount":0}"#)
        .await
    {
        Err(DispatchError::Command(CommandError::Rejected(e))) => {
            assert_eq!(e.to_string(), "amount must not be zero");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let by_aggregate = app
        .dispatch::<Account>("Withdraw", r#"{"account":6,"amount":2}"#)
        .await
        .unwrap();
    assert_eq!(by_aggregate.events[0].meta.event_name, "account.withdrawn");
}

// ---------------------------------------------------------------------------------------------
// Projections and queries

#[test]
fn projection_constants() {
    assert_eq!(<Balances as Projection>::NAME, "balances");
    assert_eq!(
        <Balances as Projection>::EVENTS,
        ["account.opened", "MoneyDeposited", "account.withdrawn"]
    );
    assert_eq!(<ClosedCount as Projection>::NAME, "closed_count");
    assert_eq!(<ClosedCount as Projection>::EVENTS, ["account.closed"]);
    assert_eq!(Balances::default().total(), 0);
}

#[test]
fn projection_handlers_receive_metadata() {
    ProjectionFixture::new(Balances::default())
        .given(
            "account-1",
            AccountOpened {
                owner: "hal".into(),
            },
        )
        .given("account-1", MoneyDeposited { amount: 7 })
        .given(
            "account-2",
            AccountOpened {
                owner: "ida".into(),
            },
        )
        .given("account-1", AccountClosed)
        .expect_query(GetBalance { account: 1 }, Some(7))
        .expect_query(GetBalance { account: 2 }, Some(0))
        .expect_query(GetBalance { account: 3 }, None)
        .expect_query(
            Owners,
            vec![
                ("account-1".into(), "hal".into()),
                ("account-2".into(), "ida".into()),
            ],
        );
}

#[test]
fn a_failing_projection_handler_stops_at_its_event() {
    let fixture = ProjectionFixture::new(Balances::default())
        .given("account-1", MoneyDeposited { amount: 1 })
        .given("account-1", MoneyWithdrawn { amount: 1, fee: 1 });
    let error = fixture.error().expect("the projection stopped");
    assert_eq!(error.projection, "balances");
    assert_eq!(error.event_name, "account.withdrawn");
    assert_eq!(error.version, 2);
    match &error.failure {
        ProjectionFailure::Handler(e) => {
            assert_eq!(e.to_string(), "`account-1` would be overdrawn");
        }
        other => panic!("expected a handler failure, got {other:?}"),
    }
}

#[test]
fn a_projection_reports_undecodable_payloads() {
    let fixture = ProjectionFixture::new(Balances::default()).given_raw(
        "account-1".into(),
        "MoneyDeposited",
        1,
        eventweave_core::Payload::from_json(r#"{"amount":-1}"#),
    );
    let error = fixture.error().expect("the projection stopped");
    assert!(
        matches!(
            error.failure,
            ProjectionFailure::Decode(DecodeFailure::InvalidPayload(_))
        ),
        "{error}"
    );
}

#[tokio::test]
async fn projections_and_aggregates_are_registered_for_discovery() {
    let aggregate = registry::aggregates()
        .into_iter()
        .find(|r| r.name == "account")
        .expect("registered");
    assert_eq!(aggregate.type_name, "macros::bank::Account");
    assert_eq!(aggregate.events, AccountEvent::NAMES);
    assert_eq!(aggregate.commands, AccountCommand::NAMES);

    let projections = registry::projections();
    let balances = projections.iter().find(|r| r.name == "balances").unwrap();
    assert_eq!(balances.type_name, "macros::bank::Balances");
    assert!(balances.create.is_some());
    let closed = projections
        .iter()
        .find(|r| r.name == "closed_count")
        .unwrap();
    assert!(closed.create.is_none(), "`discover = false`");

    let app = Cqrs::builder(MemoryStore::new())
        .discover_projections()
        .build()
        .await
        .unwrap();
    let opened = app
        .execute(OpenAccount {
            account: 8,
            owner: "jo".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        app.query_after(opened.position(), GetBalance { account: 8 })
            .await
            .unwrap(),
        Some(0)
    );
    let status = app.projections();
    assert!(status.iter().any(|s| s.name == "balances"));
    assert!(!status.iter().any(|s| s.name == "closed_count"));
}

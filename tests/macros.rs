//! The macros' expansions, exercised through the real runtime: a small bank with creation and
//! update handlers, sync and async handlers, a service, every kind of return value, a
//! projection with metadata and a fallible handler, queries, dispatch by name, and the
//! `crate = …` argument.

use std::collections::HashMap;
use std::fmt;

use cqrs_core::fixture::{AggregateFixture, ProjectionFixture};
use cqrs_core::prelude::*;
use cqrs_core::{
    CommandSet, DecodeFailure, DispatchError, EventSet, HandlerKind, Handles, ProjectionFailure,
    Router, registry,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Events

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.opened")]
pub struct AccountOpened {
    pub owner: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MoneyDeposited {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.withdrawn", version = 2)]
pub struct MoneyWithdrawn {
    pub amount: u64,
    pub fee: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.closed")]
pub struct AccountClosed;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.noted")]
pub enum Note {
    Text(String),
    Flag,
}

// ---------------------------------------------------------------------------------------------
// Commands

#[derive(Command, Clone, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct OpenAccount {
    #[id]
    pub account: u64,
    pub owner: String,
}

#[derive(Command, Debug, Deserialize)]
#[command(aggregate = Account, name = "deposit")]
pub struct Deposit {
    pub amount: u64,
    #[id]
    pub account: u64,
}

#[derive(Command, Clone, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct Withdraw {
    #[id]
    pub account: u64,
    pub amount: u64,
}

#[derive(Command, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct Close {
    #[id]
    pub account: u64,
}

/// Not `Deserialize`: cannot be dispatched by name.
#[derive(Command, Debug)]
#[command(aggregate = Account)]
pub struct Ping {
    #[id]
    pub account: u64,
}

#[derive(Command, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct Annotate {
    #[id]
    pub account: u64,
    pub text: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The aggregate

#[derive(Debug, PartialEq)]
pub enum BankError {
    ZeroAmount,
    Insufficient { balance: u64 },
}

impl fmt::Display for BankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankError::ZeroAmount => f.write_str("amount must not be zero"),
            BankError::Insufficient { balance } => write!(f, "insufficient funds: {balance}"),
        }
    }
}

impl std::error::Error for BankError {}

/// A service: the fee of each withdrawal.
pub struct FeePolicy {
    pub fee: u64,
}

#[derive(Default, Debug)]
pub struct Account {
    pub owner: String,
    pub balance: u64,
    pub closed: bool,
    pub notes: Vec<Note>,
}

#[aggregate(id = u64)]
impl Account {
    /// Creation, by value, sync, cannot fail.
    #[handle]
    fn open(cmd: OpenAccount) -> AccountOpened {
        AccountOpened { owner: cmd.owner }
    }

    /// Update, by reference, sync, fallible.
    #[handle]
    fn deposit(&self, cmd: &Deposit) -> Result<MoneyDeposited, BankError> {
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(MoneyDeposited { amount: cmd.amount })
    }

    /// Update, by value, async, with a service, returning the event enum in a `Vec`.
    #[handle]
    async fn withdraw(
        &self,
        cmd: Withdraw,
        fees: &FeePolicy,
    ) -> Result<Vec<AccountEvent>, BankError> {
        tokio::task::yield_now().await;
        let total = cmd.amount + fees.fee;
        if total > self.balance {
            return Err(BankError::Insufficient {
                balance: self.balance,
            });
        }
        Ok(vec![
            MoneyWithdrawn {
                amount: cmd.amount,
                fee: fees.fee,
            }
            .into(),
        ])
    }

    /// A tuple with an `Option` inside.
    #[handle]
    fn close(&self, _: &Close) -> (Option<MoneyWithdrawn>, AccountClosed) {
        let payout = (self.balance > 0).then_some(MoneyWithdrawn {
            amount: self.balance,
            fee: 0,
        });
        (payout, AccountClosed)
    }

    /// Nothing happens: `()` is written out (and clippy's `unused_unit` stays quiet).
    #[handle]
    fn ping(&self, _: &Ping) -> () {}

    /// An `Option` of one event.
    #[handle]
    fn annotate(&self, cmd: &Annotate) -> Option<Note> {
        cmd.text.clone().map(Note::Text)
    }

    #[apply]
    fn opened(&mut self, e: &AccountOpened) {
        self.owner.clone_from(&e.owner);
    }

    #[apply]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn withdrawn(&mut self, e: &MoneyWithdrawn) {
        self.balance -= e.amount + e.fee;
    }

    #[apply]
    fn closed(&mut self, _: &AccountClosed) {
        self.closed = true;
    }

    #[apply]
    fn noted(&mut self, note: &Note) {
        self.notes.push(note.clone());
    }

    /// An ordinary method, kept as written.
    pub fn is_rich(&self) -> bool {
        self.balance >= 1000
    }
}

// ---------------------------------------------------------------------------------------------
// The read side

#[derive(Query)]
#[query(response = Option<u64>)]
pub struct GetBalance {
    pub account: u64,
}

#[derive(Query)]
#[query(response = Vec<(String, String)>)]
pub struct Owners;

#[derive(Debug, PartialEq)]
pub struct Overdrawn {
    pub stream: String,
}

impl fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` would be overdrawn", self.stream)
    }
}

impl std::error::Error for Overdrawn {}

#[derive(Default)]
pub struct Balances {
    by_stream: HashMap<String, u64>,
    owners: Vec<(String, String)>,
}

#[projection(name = "balances")]
impl Balances {
    fn on_opened(&mut self, e: &AccountOpened, meta: &EventMeta) {
        self.owners.push((meta.stream.to_string(), e.owner.clone()));
        self.by_stream.insert(meta.stream.to_string(), 0);
    }

    fn on_deposited(&mut self, e: &MoneyDeposited, meta: &cqrs_core::EventMeta) {
        *self.by_stream.entry(meta.stream.to_string()).or_default() += e.amount;
    }

    fn on_withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta) -> Result<(), Overdrawn> {
        let stream = meta.stream.to_string();
        let balance = self.by_stream.entry(stream.clone()).or_default();
        *balance = balance
            .checked_sub(e.amount + e.fee)
            .ok_or(Overdrawn { stream })?;
        Ok(())
    }

    #[query]
    fn balance(&self, q: &GetBalance) -> Option<u64> {
        self.by_stream
            .get(&format!("account-{}", q.account))
            .copied()
    }

    #[query]
    fn owners(&self, _: &Owners) -> Vec<(String, String)> {
        let mut owners = self.owners.clone();
        owners.sort();
        owners
    }

    /// Not a handler: `&self` without `#[query]`.
    pub fn total(&self) -> u64 {
        self.by_stream.values().sum()
    }
}

/// Counts closed accounts; not `Default`, so not discoverable.
pub struct ClosedCount {
    closed: u64,
}

#[derive(Query)]
#[query(response = u64)]
pub struct HowManyClosed;

#[projection(discover = false)]
impl ClosedCount {
    fn on_closed(&mut self, _: &AccountClosed) {
        self.closed += 1;
    }

    #[query]
    fn count(&self, _: &HowManyClosed) -> u64 {
        self.closed
    }
}

async fn app() -> Cqrs<MemoryStore> {
    Cqrs::builder(MemoryStore::new())
        .service(FeePolicy { fee: 1 })
        .projection(Balances::default())
        .projection(ClosedCount { closed: 0 })
        .build()
        .await
        .expect("the wiring is consistent")
}

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
    assert_eq!(opened.type_name, "macros::AccountOpened");
    let withdrawn = events
        .iter()
        .find(|r| r.name == "account.withdrawn")
        .expect("registered");
    assert_eq!(withdrawn.version, 2);
    assert_eq!(withdrawn.type_name, "macros::MoneyWithdrawn");
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
        cqrs_core::Payload::from_json(r#"{"amount":-1}"#),
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
    assert_eq!(aggregate.type_name, "macros::Account");
    assert_eq!(aggregate.events, AccountEvent::NAMES);
    assert_eq!(aggregate.commands, AccountCommand::NAMES);

    let projections = registry::projections();
    let balances = projections.iter().find(|r| r.name == "balances").unwrap();
    assert_eq!(balances.type_name, "macros::Balances");
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

// ---------------------------------------------------------------------------------------------
// `event = …`, `command = …`, `name = …` on the aggregate

mod lamps {
    use super::*;

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "lamp.switched")]
    pub struct Switched {
        pub on: bool,
    }

    #[derive(Command, Clone, Debug, Deserialize)]
    #[command(aggregate = Lamp)]
    pub struct Switch {
        #[id]
        pub room: String,
        pub on: bool,
    }

    #[derive(Default)]
    pub struct Lamp {
        pub on: bool,
        pub switches: u32,
    }

    #[aggregate(id = String, name = "lamps", event = LampChange, command = LampOrder)]
    impl Lamp {
        /// Creates the lamp or switches it: both through one `&self` handler would need a
        /// stream; this one creates.
        #[handle]
        async fn switch(cmd: &Switch) -> Switched {
            Switched { on: cmd.on }
        }

        #[apply]
        fn switched(&mut self, e: &Switched) {
            self.on = e.on;
            self.switches += 1;
        }
    }
}

#[tokio::test]
async fn enum_and_stream_names_can_be_chosen() {
    use lamps::{Lamp, LampChange, LampOrder, Switch, Switched};
    assert_eq!(<Lamp as Aggregate>::NAME, "lamps");
    assert_eq!(LampChange::NAMES, ["lamp.switched"]);
    assert_eq!(LampOrder::NAMES, ["Switch"]);
    let app = Cqrs::builder(MemoryStore::new()).build().await.unwrap();
    let outcome = app
        .execute(Switch {
            room: "hall".into(),
            on: true,
        })
        .await
        .unwrap();
    assert_eq!(outcome.stream.to_string(), "lamps-hall");
    let (lamp, _) = app.load::<Lamp>(&"hall".to_owned()).await.unwrap();
    assert!(lamp.on);
    assert_eq!(lamp.switches, 1);
    assert_eq!(
        LampChange::from(Switched { on: false }),
        LampChange::Switched(Switched { on: false })
    );
}

// ---------------------------------------------------------------------------------------------
// `crate = …`: the generated code goes through the given path. The shim re-exports the
// runtime and replaces one helper with a counting one, so the test sees that path being used.

mod shim {
    pub use cqrs_core::*;

    #[doc(hidden)]
    pub mod __private {
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub use cqrs_core::__private::*;

        /// How many events went through this shim's `encode_event`.
        pub static ENCODED: AtomicUsize = AtomicUsize::new(0);

        pub fn encode_event<E: serde::Serialize>(
            event: &E,
            out: &mut Vec<u8>,
        ) -> Result<(), serde_json::Error> {
            ENCODED.fetch_add(1, Ordering::SeqCst);
            cqrs_core::__private::encode_event(event, out)
        }
    }
}

mod through_shim {
    use serde::{Deserialize, Serialize};

    use crate::shim::{Command, Event, Query, aggregate, projection};

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(crate = "crate::shim", name = "meter.ticked")]
    pub struct Ticked {
        pub by: u32,
    }

    #[derive(Command, Clone, Debug)]
    #[command(aggregate = Meter, crate = crate::shim)]
    pub struct Tick {
        #[id]
        pub id: u64,
        pub by: u32,
    }

    #[derive(Query)]
    #[query(response = u32, crate = "crate::shim")]
    pub struct Ticks;

    #[derive(Default)]
    pub struct Meter;

    #[aggregate(id = u64, crate = "crate::shim")]
    impl Meter {
        #[handle]
        fn tick(cmd: Tick) -> Ticked {
            Ticked { by: cmd.by }
        }

        #[apply]
        fn ticked(&mut self, _: &Ticked) {}
    }

    #[derive(Default)]
    pub struct TickTotal(pub u32);

    #[projection(crate = crate::shim)]
    impl TickTotal {
        fn on_ticked(&mut self, e: &Ticked) {
            self.0 += e.by;
        }

        #[query]
        fn total(&self, _: &Ticks) -> u32 {
            self.0
        }
    }
}

#[tokio::test]
async fn crate_argument_routes_generated_code_through_the_given_path() {
    use std::sync::atomic::Ordering;

    use through_shim::{Tick, TickTotal, Ticks};

    let before = shim::__private::ENCODED.load(Ordering::SeqCst);
    let app = Cqrs::builder(MemoryStore::new())
        .projection(TickTotal::default())
        .build()
        .await
        .unwrap();
    let outcome = app.execute(Tick { id: 1, by: 3 }).await.unwrap();
    assert_eq!(outcome.events[0].meta.event_name, "meter.ticked");
    assert_eq!(
        shim::__private::ENCODED.load(Ordering::SeqCst),
        before + 1,
        "the event was encoded through `crate::shim::__private`"
    );
    assert_eq!(app.query_after(outcome.position(), Ticks).await.unwrap(), 3);
    let registered = registry::aggregates()
        .into_iter()
        .find(|r| r.name == "meter")
        .map(|r| r.type_name);
    assert_eq!(registered, Some("macros::through_shim::Meter"));
}

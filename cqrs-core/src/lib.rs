//! # eventweave-core
//!
//! The runtime of a CQRS and event-sourcing framework in which you write plain domain types and
//! annotated handlers, and macros generate the rest (see the README for the quick start).
//!
//! - **Write side**: [`Aggregate`]s decide with `#[handle]` methods and change only through
//!   `#[apply]` methods; [`Cqrs::execute`] loads (from a cache), decides, appends with an
//!   expected version, and retries on conflicts.
//! - **Store**: the [`EventStore`] trait, with [`MemoryStore`] here and durable stores in
//!   their own crates.
//! - **Read side**: [`Projection`]s fold events in global order; [`Query`]s are routed to the one
//!   projection that answers them, and [`Cqrs::query_after`] gives read-your-writes.
//! - **Tests**: [`fixture`] holds given/when/then fixtures.
//!
//! ## Tutorial
//!
//! Events are plain serializable structs with a stable stored name:
//!
//! ```
//! use eventweave_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "lamp.installed")] // the default would be "Installed"
//! pub struct Installed { pub watts: u32 }
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "Switched")]
//! pub struct Switched { pub on: bool }
//!
//! // Commands name the aggregate they target and the field that identifies it.
//! #[derive(Command, Clone, Serialize, Deserialize)]
//! #[command(aggregate = Lamp)]
//! pub struct Install { #[id] pub lamp: u32, pub watts: u32 }
//!
//! #[derive(Command, Clone, Serialize, Deserialize)]
//! #[command(aggregate = Lamp)]
//! pub struct Switch { #[id] pub lamp: u32, pub on: bool }
//!
//! #[derive(Debug, PartialEq)]
//! pub enum LampError { AlreadyThere }
//! impl std::fmt::Display for LampError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("already there") }
//! }
//! impl std::error::Error for LampError {}
//!
//! /// A service the handlers borrow.
//! pub struct Grid { pub max_watts: u32 }
//!
//! // The aggregate: `#[handle]` methods decide, `#[apply]` methods change state.
//! #[derive(Default)]
//! pub struct Lamp { on: bool, watts: u32 }
//!
//! #[aggregate(id = u32)]
//! impl Lamp {
//!     // No `self`: a creation command, run only on an empty stream.
//!     #[handle]
//!     fn install(cmd: &Install, grid: &Grid) -> Installed {
//!         Installed { watts: cmd.watts.min(grid.max_watts) }
//!     }
//!     // `&self`: an update, run only on an existing stream. `None` records nothing.
//!     #[handle]
//!     async fn switch(&self, cmd: &Switch) -> Result<Option<Switched>, LampError> {
//!         Ok((self.on != cmd.on).then_some(Switched { on: cmd.on }))
//!     }
//!     #[apply] fn installed(&mut self, e: &Installed) { self.watts = e.watts; }
//!     #[apply] fn switched(&mut self, e: &Switched) { self.on = e.on; }
//! }
//!
//! // A projection folds events (by parameter type) and answers queries.
//! #[derive(Default)]
//! pub struct Consumption { watts_on: u32, installed: std::collections::HashMap<String, u32> }
//!
//! #[derive(Query)]
//! #[query(response = u32)]
//! pub struct WattsOn;
//!
//! #[projection(name = "consumption")]
//! impl Consumption {
//!     fn on_installed(&mut self, e: &Installed, meta: &EventMeta) {
//!         self.installed.insert(meta.stream.to_string(), e.watts);
//!     }
//!     fn on_switched(&mut self, e: &Switched, meta: &EventMeta) {
//!         let watts = self.installed.get(meta.stream.as_str()).copied().unwrap_or(0);
//!         if e.on { self.watts_on += watts } else { self.watts_on -= watts }
//!     }
//!     #[query]
//!     fn watts_on(&self, _: &WattsOn) -> u32 { self.watts_on }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Cqrs::builder(MemoryStore::new())
//!     .projection(Consumption::default())
//!     .service(Grid { max_watts: 60 })
//!     .build()
//!     .await?;
//! app.execute(Install { lamp: 1, watts: 100 }).await?;
//! let on = app.execute(Switch { lamp: 1, on: true }).await?;
//! assert_eq!(app.query_after(on.position(), WattsOn).await?, 60);
//!
//! // Switching on twice records nothing; installing twice is a typed error.
//! assert!(app.execute(Switch { lamp: 1, on: true }).await?.events.is_empty());
//! let again = app.execute(Install { lamp: 1, watts: 5 }).await.unwrap_err();
//! assert!(matches!(again, CommandError::AlreadyExists { .. }));
//!
//! // Commands also arrive by name with a JSON body (HTTP, queues):
//! let off = app.dispatch::<Lamp>("Switch", r#"{"lamp": 1, "on": false}"#).await?;
//! assert_eq!(app.query_after(off.position(), WattsOn).await?, 0);
//! # Ok(())
//! # }
//! ```
//!
//! Test decisions without a store with [`fixture::AggregateFixture`], and projections with
//! [`fixture::ProjectionFixture`].
//!
//! ## Failures, retries and idempotency keys
//!
//! Every error says what the caller may do with [`Retry`] (`CommandError::retry`,
//! `StoreError::retry`, `DispatchError::retry`, `QueryError::retry`): `Never` (the command, the
//! data or the code must change), `Safe` (nothing was written: send it again, after a pause) or
//! `SameIds` (the store may have recorded it, but the reply was lost: send it again **with the
//! same command id**). A command id, given with [`CommandContext::with_command_id`], is the
//! command's idempotency key: its event ids derive from it, and a command sent again under an
//! id that already recorded events is run on the state its first run saw and returns that run's
//! outcome, whatever happened since. The same id with another command (a deposit of 12 resent
//! under the id of one of 10) is [`CommandError::CommandIdReused`], as payment APIs answer an
//! idempotency key reused with another request body. Give every command that a client may send
//! twice an id from the client (an `Idempotency-Key` header, a message id): a command run
//! without one gets random event ids, and after `SameIds` only reading its stream tells whether
//! it was recorded.
//!
//! ```
//! use eventweave_core::prelude::*;
//! use eventweave_core::{Mismatch, Retry, new_id};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "docs.wallet.credited")]
//! pub struct Credited { pub amount: u64, pub balance: u64 }
//!
//! #[derive(Command)]
//! #[command(aggregate = Wallet)]
//! pub struct Credit { #[id] pub wallet: u64, pub amount: u64 }
//!
//! #[derive(Default)]
//! pub struct Wallet { balance: u64 }
//!
//! #[aggregate(id = u64, name = "docs-wallet")]
//! impl Wallet {
//!     // A creation (no `self`): run again on the current state it would meet its own
//!     // stream. The bus decides again on the state the first run saw.
//!     #[handle]
//!     fn credit(cmd: &Credit) -> Credited { Credited { amount: cmd.amount, balance: cmd.amount } }
//!     #[apply]
//!     fn credited(&mut self, e: &Credited) { self.balance = e.balance; }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Cqrs::builder(MemoryStore::new()).build().await?;
//! let key = new_id(); // from the client, e.g. its Idempotency-Key header
//! let send = |amount| app.execute_with(
//!     Credit { wallet: 1, amount },
//!     CommandContext::new().with_command_id(key),
//! );
//! let first = match send(10).await {
//!     Ok(outcome) => outcome,
//!     // Only a lost reply may be retried blindly, and only with the same id.
//!     Err(e) if e.retry() == Retry::SameIds => send(10).await?,
//!     Err(e) => return Err(e.into()),
//! };
//! let again = send(10).await?; // a retry: the first outcome, nothing recorded twice
//! assert_eq!(again.events, first.events);
//! let other = send(12).await.unwrap_err(); // the same key with another body
//! assert!(matches!(
//!     other,
//!     CommandError::CommandIdReused { mismatch: Mismatch::EventField { index: 0, .. }, .. }
//! ));
//! assert_eq!(other.retry(), Retry::Never);
//! assert_eq!(app.load::<Wallet>(&1).await?.0.balance, 10);
//! # Ok(())
//! # }
//! ```
//!
//! ## Mistakes the compiler catches
//!
//! Executing a command that its aggregate has no handler for does not compile:
//!
//! ```compile_fail
//! # use eventweave_core::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # #[event(name = "Opened")]
//! # pub struct Opened;
//! #[derive(Command)]
//! #[command(aggregate = Door)]
//! pub struct Open { #[id] pub id: u64 }
//!
//! #[derive(Command)]
//! #[command(aggregate = Door)]
//! pub struct Slam { #[id] pub id: u64 }
//!
//! #[derive(Default)]
//! pub struct Door;
//!
//! #[aggregate(id = u64)]
//! impl Door {
//!     #[handle] fn open(_: &Open) -> Opened { Opened }
//!     #[apply] fn opened(&mut self, _: &Opened) {}
//! }
//!
//! async fn run(app: Cqrs<MemoryStore>) {
//!     app.execute(Slam { id: 1 }).await; // error: `Door` has no handler for `Slam`
//! }
//! ```
//!
//! Returning an event that the aggregate cannot apply does not compile either:
//!
//! ```compile_fail
//! # use eventweave_core::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # #[event(name = "Opened")]
//! # pub struct Opened;
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # #[event(name = "Slammed")]
//! # pub struct Slammed;
//! # #[derive(Command)]
//! # #[command(aggregate = Door)]
//! # pub struct Open { #[id] pub id: u64 }
//! # #[derive(Default)]
//! # pub struct Door;
//! #[aggregate(id = u64)]
//! impl Door {
//!     #[handle] fn open(_: &Open) -> Slammed { Slammed } // error: `Slammed` is not an event of `Door`
//!     #[apply] fn opened(&mut self, _: &Opened) {}
//! }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate self as eventweave_core;

mod aggregate;
mod app;
mod cache;
pub mod catalog;
mod context;
mod decision;
mod dispatch;
mod envelope;
mod error;
mod event;
mod event_of;
mod event_query;
pub mod fixture;
mod ids;
pub mod process;
mod progress;
mod projection;
mod query;
mod read_side;
pub mod registry;
pub mod runner;
mod services;
mod signal;
pub mod snapshot;
pub mod sql;
mod store;
mod tag;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod unwind;

/// The hash map of the hot paths: foldhash is several times faster than SipHash on short keys
/// and still randomly seeded per map, so keys chosen by clients cannot force collisions cheaply.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use aggregate::{Aggregate, AggregateId, Command, HandlerError, HandlerKind, Handles};
pub use aggregate::{CommandBus, CommandSet};
pub use app::{CommandFuture, Cqrs, CqrsBuilder, Execute, QueryFuture};
pub use context::{CAUSED_BY_EVENT, CommandContext, CommandOutcome};
pub use decision::{
    Decides, Decision, DecisionBus, DecisionCommand, DecisionCommandSet, DecisionState, Emits,
    Emitted, InAggregate, IntoEmits, StateSet, decision_stream,
};
pub use dispatch::Router;
pub use envelope::{EventMeta, NewEvent, Payload, RecordedEvent, UserMetadata};
pub use error::{
    BackendError, BoxError, BuildError, CommandError, DecodeError, DecodeFailure, DispatchError,
    ErrorChain, InputField, InputProblem, InvalidInput, InvalidQuery, Mismatch, ProjectionError,
    ProjectionFailure, QueryError, QueryProblem, Retry, StoreError,
};
pub use event::{Event, EventSet, UpcastPayload};
pub use event_of::{AggregateIdError, EventOf, IntoEvents};
pub use event_query::{
    AppendCondition, EventQuery, MAX_ITEM_TAGS, MAX_ITEM_TYPES, MAX_QUERY_ITEMS, QueryItem,
    QueryRead,
};
pub use ids::{Position, StreamId, Timestamp, Uuid, new_id};
pub use projection::{Decoded, DynProjection, EventRef, Projection};
pub use query::{Query, RoutedQuery};
pub use read_side::ProjectionStatus;
pub use services::Services;
pub use snapshot::{Snapshot, SnapshotPolicy, Warning};
pub use store::{
    DEFAULT_MAX_EVENT_BYTES, DynStore, EventStore, ExpectedVersion, InspectStore,
    MAX_EVENT_NAME_BYTES, MAX_EVENT_TAGS, MAX_EVENT_VERSION, MAX_STREAM_ID_BYTES, MemoryStore,
    StreamSummary, StreamWrite, Subscription, check_append, check_event_sizes, check_query,
    check_retry, check_snapshot, check_stream_id, check_writes, event_mismatch,
};
pub use tag::{
    MAX_TAG_BYTES, MAX_TAG_KEY_BYTES, Tag, TagError, TagField, TagProblem, TagValue, Tags,
};
pub use telemetry::{TRACEPARENT, TRACESTATE, TraceContext, TraceParent};

/// The derive and attribute macros (with the `derive` feature, on by default).
#[cfg(feature = "derive")]
pub use eventweave_derive::{
    Command, Event, Query, aggregate, decision, decision_state, process_manager, projection,
};

/// The `schemars` crate (1.x) whose `JsonSchema` impls the [event catalog](catalog) reads:
/// derive it on commands and events to get their payload schemas.
#[cfg(feature = "schemars")]
#[cfg_attr(docsrs, doc(cfg(feature = "schemars")))]
pub use schemars;

/// Everything a domain module needs: `use eventweave_core::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "derive")]
    pub use crate::{aggregate, decision, decision_state, process_manager, projection};

    pub use crate::{
        Aggregate, AggregateIdError, Command, CommandContext, CommandError, CommandOutcome, Cqrs,
        Event, EventMeta, EventStore, InAggregate, MemoryStore, Position, Projection, Query,
        QueryError, RoutedQuery, UpcastPayload,
    };
}

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

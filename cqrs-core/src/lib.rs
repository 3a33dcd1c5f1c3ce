//! # cqrs-core
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
//! ## Mistakes the compiler catches
//!
//! Executing a command that its aggregate has no handler for does not compile:
//!
//! ```compile_fail
//! # use cqrs_core::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
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
//!     #[handle] fn open(_: Open) -> Opened { Opened }
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
//! # use cqrs_core::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # pub struct Opened;
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # pub struct Slammed;
//! # #[derive(Command)]
//! # #[command(aggregate = Door)]
//! # pub struct Open { #[id] pub id: u64 }
//! # #[derive(Default)]
//! # pub struct Door;
//! #[aggregate(id = u64)]
//! impl Door {
//!     #[handle] fn open(_: Open) -> Slammed { Slammed } // error: `Slammed` is not an event of `Door`
//!     #[apply] fn opened(&mut self, _: &Opened) {}
//! }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate self as cqrs_core;

mod aggregate;
mod app;
mod cache;
mod context;
mod dispatch;
mod envelope;
mod error;
mod event;
pub mod fixture;
mod ids;
mod projection;
mod query;
mod read_side;
pub mod registry;
mod services;
mod signal;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod unwind;

/// The hash map of the hot paths: foldhash is several times faster than SipHash on short keys
/// and still randomly seeded per map, so keys chosen by clients cannot force collisions cheaply.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use aggregate::{
    Aggregate, AggregateId, Command, CommandOf, HandlerError, HandlerKind, Handles,
};
pub use app::{Cqrs, CqrsBuilder};
pub use context::{CAUSED_BY_EVENT, CommandContext, CommandOutcome};
pub use dispatch::{CommandSet, Router};
pub use envelope::{EventMeta, NewEvent, Payload, RecordedEvent, UserMetadata};
pub use error::{
    BoxError, BuildError, CommandError, DecodeError, DecodeFailure, DispatchError, ProjectionError,
    ProjectionFailure, QueryError, StoreError,
};
pub use event::{Event, EventSet, IntoEvents};
pub use ids::{Position, StreamId, Timestamp, Uuid, new_id};
pub use projection::{Decoded, DynProjection, EventRef, Projection};
pub use query::{Query, RoutedQuery};
pub use read_side::ProjectionStatus;
pub use services::Services;
pub use store::{EventStore, ExpectedVersion, MemoryStore, Subscription};

/// The derive and attribute macros (with the `derive` feature, on by default).
#[cfg(feature = "derive")]
pub use cqrs_derive::{Command, Event, Query, aggregate, projection};

/// Everything a domain module needs: `use cqrs_core::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "derive")]
    pub use crate::{aggregate, projection};

    pub use crate::{
        Aggregate, Command, CommandContext, CommandError, CommandOutcome, Cqrs, Event, EventMeta,
        EventStore, MemoryStore, Position, Projection, Query, QueryError, RoutedQuery,
    };
}

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

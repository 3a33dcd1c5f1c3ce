//! Process managers (sagas): react to events of several aggregates by issuing commands.
//!
//! A [`ProcessManager`] is a state type whose handlers take events and return [`Issue`]s:
//! commands to run and deadlines to schedule. One instance lives per business transaction
//! (the events' correlation id); its state is persisted in the event store, in the stream
//! `pm-{NAME}-{correlation}`, so every store works without new tables. A
//! [`ProcessManagerSink`] runs it from a checkpoint like a durable projection (give it to a
//! [`ProjectionRunner`](crate::runner::ProjectionRunner): checkpoints, retries, leases,
//! stop/park all apply).
//!
//! Exactly-once commands: the instance stream records, per handled event, the new state and
//! the commands it issued (each with a command id derived from the event id), before any of
//! them runs. A re-delivered event is found in the instance and issues nothing; a command
//! interrupted by a crash runs again with the same command id, whose event ids are derived
//! from it (see [`CommandContext::with_command_id`](crate::CommandContext::with_command_id)),
//! so it cannot be recorded twice.
//!
//! Correlation and causation: every command a process manager issues inherits the triggering
//! event's correlation id and records that event under
//! [`CAUSED_BY_EVENT`](crate::CAUSED_BY_EVENT).
//!
//! Deadlines: [`Issue::deadline`] schedules a timeout event, due a given time after the
//! triggering event was recorded. It is recorded in the stream `pm-{NAME}-$deadlines` and
//! fired (appended to that stream, with the instance's correlation id) by a timer task that
//! the sink starts. The timer follows the deadline stream: it fires the deadlines recorded there
//! before a restart or by another process (read when the runner gains the lease, and at the
//! latest every [`ProcessManagerSink::deadline_poll`]), and drops those another process fired.
//! The timeout event is then delivered to the process manager like any other event; its id is
//! the deadline's, so it is stored once even when two processes' timers fire it.
//!
//! Rejections: a command its aggregate rejects (or that fails otherwise, short of a store
//! failure, which is retried) is recorded in the instance stream and
//! [`ProcessManager::on_rejected`] runs (the compensation), whose commands run next. The
//! [`Rejection`] it gets carries the handler's error typed ([`Rejection::error`]) and its text
//! ([`Rejection::message`]), identical in production and in `ProcessFixture::when_rejected`.
//! The sink keeps the most recent ones in memory ([`ProcessManagerSink::rejections`]).
//!
//! # Choices
//!
//! - **Registered as a durable projection** (`ProjectionKind::Durable`, no constructor): a process
//!   manager runs from a checkpoint under its name like one, so `list_projections` shows its lag
//!   and the registry check refuses a projection of the same name. A kind of its own was avoided
//!   when `ProjectionKind` was exhaustive, because a new variant would have broken users' matches;
//!   it is `#[non_exhaustive]` now. It also has a registration of its own (with the declared
//!   `issues = [...]`) for the catalog.
//! - **State in the event store**, one stream per instance (records: handled, completed, rejected),
//!   instead of new tables: every store gets it with no migration, and the records carry the
//!   business transaction's correlation id, so they show up when it is traced.
//! - **Issued commands are name + JSON, run through `Router`.** `Issue::command` checks the command
//!   at compile time ([`Issuable`]: an aggregate's command it handles, or a decision's command
//!   it decides), but the sink, generic over the store, cannot name every command type, so it
//!   runs them by name; the JSON is also the outbox record and what `ProcessFixture` compares.
//!   Saga commands are few, so the extra serialization costs little. The sink routes the
//!   aggregates and decisions of the declared commands (`issues = [...]`) by itself; others are
//!   given with `.aggregate::<A>()` / `.decision::<D>()`, and a command the sink cannot route
//!   is a handler failure at run time.
//! - **Decision commands are issued like aggregate commands** (one `Issue::command`, one
//!   [`Issuable`] trait implemented by both kinds): recorded before they run, with a command id
//!   derived from the event, so a re-run after a crash finds the first run's events (the
//!   decision bus answers a command id whose first event is stored with that run's events);
//!   their rejections reach `on_rejected` with the decision's error typed.
//! - **What a process manager issues is declared** (`issues = [A, B]`): handlers return `Issue`,
//!   which erases the command type, and scanning handler bodies for `Issue::command(X { .. })`
//!   would miss commands built in helpers. Each entry is checked to be a command at compile time,
//!   and `ProcessFixture` fails a test whose handler issues a command the list lacks. Without a
//!   declaration the catalog says "unknown" (`null`), not "none".
//! - **Deadlines are events**: a fired timeout is appended to `pm-{NAME}-$deadlines` with the
//!   deadline id as its event id, then delivered by the runner like any other event; firing twice
//!   does nothing, and restarts re-read that stream (`deadline.rs`).
//! - **Adding a process manager to a store with history starts it at the head**, in the bank
//!   example (`examples/bank/src/main.rs`): its handlers would otherwise issue commands again for
//!   old events handled before it existed.

mod deadline;
mod fixture;
mod issue;
mod record;
mod sink;

pub use fixture::{ProcessFixture, ThenProcess};
pub use issue::{
    IntoIssues, Issuable, Issue, IssuedCommand, IssuedDeadline, Rejection, RejectionKind,
};
pub use sink::{ProcessManagerSink, REJECTIONS_KEPT};
// Defined with the ids (the command bus derives event ids with it too).
pub use crate::ids::{DERIVED_ID_NAMESPACE, derive_id};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::dispatch::Router;
use crate::envelope::RecordedEvent;
use crate::error::{DispatchError, ProjectionFailure};
use crate::event::{Event, decode_payload};
use crate::ids::Uuid;
use crate::store::EventStore;

/// A process manager: the state of one business transaction and how it reacts to events.
///
/// The state starts as `Default::default()` for each new correlation id and is stored as JSON
/// after every event it handles, so it must be `Serialize + DeserializeOwned`. Handlers must be
/// deterministic (same state and event, same issues): they may run again after a crash before
/// their result was recorded.
///
/// ```
/// # use eventweave_core::prelude::*;
/// # use eventweave_core::process::{Issue, ProcessManager, Rejection, decode};
/// # use eventweave_core::{ProjectionFailure, RecordedEvent};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// # #[event(name = "doc.pm.ordered")]
/// # pub struct Ordered { pub item: u64 }
/// # #[derive(Command, Clone, Debug, Serialize, Deserialize)]
/// # #[command(aggregate = Stock)]
/// # pub struct Reserve { #[id] pub item: u64 }
/// # #[derive(Default)]
/// # pub struct Stock;
/// # #[aggregate(id = u64, name = "doc-pm-stock")]
/// # impl Stock {
/// #     #[handle] fn reserve(_: &Reserve) -> Ordered { Ordered { item: 0 } }
/// #     #[apply] fn ordered(&mut self, _: &Ordered) {}
/// # }
/// #[derive(Default, Clone, Serialize, Deserialize)]
/// struct Fulfilment { item: Option<u64> }
///
/// impl ProcessManager for Fulfilment {
///     const NAME: &'static str = "fulfilment";
///     const EVENTS: &'static [&'static str] = &[Ordered::NAME];
///
///     fn handle(&mut self, event: &RecordedEvent) -> Result<Vec<Issue>, ProjectionFailure> {
///         let ordered: Ordered = decode(event)?;
///         self.item = Some(ordered.item);
///         Ok(vec![Issue::command(Reserve { item: ordered.item })])
///     }
/// }
/// ```
pub trait ProcessManager:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Unique name: the checkpoint and the instance streams are named after it.
    const NAME: &'static str;
    /// Stored names of the events it handles (timeout events included).
    const EVENTS: &'static [&'static str];
    /// Names of the commands its handlers may issue, when declared
    /// (`#[process_manager(issues = [A, B])]`); `None` when not declared. The
    /// [event catalog](crate::catalog) draws these edges, and
    /// [`ProcessFixture`] fails a test in which a handler issues
    /// a command missing from the list.
    const ISSUES: Option<&'static [&'static str]> = None;

    /// Reacts to one event (of a name in [`EVENTS`](Self::EVENTS)): updates the state and
    /// returns the commands to run and the deadlines to schedule. An error is retried by the
    /// runner, like a projection's.
    fn handle(&mut self, event: &RecordedEvent) -> Result<Vec<Issue>, ProjectionFailure>;

    /// Routes, in `router`, the aggregates and decisions of the commands it declares
    /// (`#[process_manager(issues = [...])]` generates it); by default none, and the sink is
    /// given them with `.aggregate::<A>()` and `.decision::<D>()`.
    #[doc(hidden)]
    fn __route_issues<S: EventStore>(router: &mut Router<S>) -> Result<(), DispatchError> {
        let _ = router;
        Ok(())
    }

    /// Compensation: a command this instance issued was rejected (recorded in the instance
    /// stream before this runs). By default nothing more is issued.
    fn on_rejected(&mut self, rejection: &Rejection) -> Vec<Issue> {
        let _ = rejection;
        Vec::new()
    }
}

/// The typed value of a stored event (older schema versions upcast), for hand-written
/// [`ProcessManager::handle`] methods.
pub fn decode<E: Event>(event: &RecordedEvent) -> Result<E, ProjectionFailure> {
    decode_payload(event.meta.event_version, event.payload.as_str())
        .map_err(ProjectionFailure::Decode)
}

/// The stream of one process-manager instance.
pub fn instance_stream(name: &str, correlation: Uuid) -> crate::StreamId {
    crate::StreamId::from(format!("pm-{name}-{correlation}"))
}

/// The stream that holds a process manager's scheduled deadlines and fired timeout events.
pub fn deadline_stream(name: &str) -> crate::StreamId {
    crate::StreamId::from(format!("pm-{name}-$deadlines"))
}

#[cfg(test)]
mod tests;

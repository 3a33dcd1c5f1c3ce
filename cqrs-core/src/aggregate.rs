//! Aggregates and commands: the consistency boundary, what targets it, and how it decides.
//!
//! # Choices
//!
//! - **The command names its aggregate** (`#[command(aggregate = Account)]`), and `execute`
//!   requires `C::Aggregate: Handles<C>`. That turns "no handler" into a trait error whose
//!   `#[diagnostic::on_unimplemented]` text says which method to add, and makes dispatch a direct,
//!   monomorphized call: no registry lookup on the typed path.
//! - **Creation or update by the handler's form.** No `self`: creates (only on an empty stream,
//!   else `AlreadyExists`); `&self`: updates (only on an existing stream, else `NotFound`); `state:
//!   Option<&Self>` first: either, with the same expected-version check. A creation command whose
//!   stream is not cached is not loaded first: it appends with `NoStream`, whose conflict is
//!   reported as `AlreadyExists`, so a new aggregate costs one round trip, not two.
//! - **Handlers take the command by reference internally** (`Handles::handle(&self, &C, …)`),
//!   because a conflict re-runs the handler. A user handler may take `C` by value; the generated
//!   code clones it (and a non-`Clone` command gets an error saying to take `&C` or derive
//!   `Clone`).
//! - **A handler's command must target its aggregate**, checked where the generated command enum
//!   calls `__private::CommandTarget<C, A>` (spanned on the handler's command parameter): a
//!   `#[command(aggregate = Other)]` then gives one error saying which aggregate the command
//!   targets, instead of a type mismatch on an associated type.
//! - `CommandSet` and `CommandBus` are the model's view of the bus, so this module needs nothing
//!   from `app` or `dispatch` (the layers in `cqrs-core/tests/layers.rs`).

use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;

use crate::context::{CommandContext, CommandOutcome};
use crate::error::{CommandError, DispatchError};
use crate::event::EventSet;
use crate::ids::StreamId;
use crate::services::Services;
use crate::snapshot::SnapshotPolicy;

/// What identifies one aggregate instance: anything printable, hashable and cheap to clone
/// (`u64`, `String`, `Uuid`, or a newtype with `Display`).
pub trait AggregateId: Clone + Eq + Hash + Display + Debug + Send + Sync + 'static {}

impl<T: Clone + Eq + Hash + Display + Debug + Send + Sync + 'static> AggregateId for T {}

/// A consistency boundary whose state is the fold of its events.
///
/// Implement it with `#[aggregate(id = …)]` on the impl block that holds the `#[handle]` and
/// `#[apply]` methods. The state starts as `Default::default()` and only `apply` changes it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "not an aggregate",
    note = "put `#[aggregate(id = …)]` on an impl block of `{Self}` that holds its `#[handle]` and `#[apply]` methods"
)]
pub trait Aggregate: Default + Send + Sync + Sized + 'static {
    /// The identifier type; the stream is named `"{NAME}-{id}"`.
    type Id: AggregateId;
    /// The generated event enum.
    type Event: EventSet;
    /// The generated command enum, for untyped dispatch by name.
    type Command: CommandSet<Aggregate = Self>;
    /// The stream category (`#[aggregate(name = …)]`, default: the type's name in snake case).
    const NAME: &'static str;

    /// The key of the tag every event of this aggregate carries, with the aggregate's id as
    /// its value (`#[aggregate(tag = "account")]` gives `account:<id>`), so that decisions read
    /// its events by tag (it then is a [`DecisionState`](crate::DecisionState) too). `None`, the
    /// default, adds no tag.
    const ID_TAG: Option<&'static str> = None;

    /// When the aggregate takes snapshots (`#[aggregate(snapshot_every = 1000,
    /// snapshot_version = 2)]`); `None`, the default, never. With a policy, a cold load starts
    /// from the stream's latest snapshot of the same `version` and reads only the events after it.
    const SNAPSHOTS: Option<SnapshotPolicy> = None;

    /// Folds one event into the state. Generated: an exhaustive match over `Self::Event`.
    fn apply(&mut self, event: &Self::Event);

    /// The state as a snapshot payload (JSON). Called only when [`Aggregate::SNAPSHOTS`] is set;
    /// generated as [`snapshot::to_json`](crate::snapshot::to_json), which a hand-written
    /// aggregate that takes snapshots calls too.
    fn encode_snapshot(&self) -> Result<String, String> {
        Err(format!("`{}` does not take snapshots", Self::NAME))
    }

    /// The state from a snapshot payload written by [`Aggregate::encode_snapshot`]. An error
    /// discards the snapshot (with a warning) and the state is rebuilt from the events.
    fn decode_snapshot(payload: &str) -> Result<Self, String> {
        let _ = payload;
        Err(format!("`{}` does not take snapshots", Self::NAME))
    }

    /// The stream that holds the events of aggregate `id`.
    fn stream_id(id: &Self::Id) -> StreamId {
        StreamId::from(format!("{}-{}", Self::NAME, id))
    }
}

/// A request to change one aggregate, routed to it by type.
///
/// Implement it with `#[derive(Command)]`, `#[command(aggregate = Account)]` and an `#[id]` on
/// the field that names the target aggregate.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "not a command",
    note = "add `#[derive(Command)]` and `#[command(aggregate = …)]` to `{Self}`, and `#[id]` to its id field"
)]
pub trait Command: Send + Sync + 'static {
    /// The aggregate this command targets.
    type Aggregate: Aggregate;
    /// The name used by untyped dispatch (`#[command(name = …)]`, default: the type's name).
    const NAME: &'static str;

    /// The id of the target aggregate.
    fn aggregate_id(&self) -> &<Self::Aggregate as Aggregate>::Id;
}

/// The commands of one aggregate as an enum, generated by `#[aggregate]` (`AccountCommand`).
pub trait CommandSet: Send + Sized + 'static {
    /// The aggregate that handles them.
    type Aggregate: Aggregate;
    /// The names of every command, sorted as declared.
    const NAMES: &'static [&'static str];

    /// The command called `name`, deserialized from `body`.
    fn from_json(name: &str, body: &str) -> Result<Self, DispatchError>;

    /// Runs the command through `bus` (a [`Cqrs`](crate::Cqrs); see `Cqrs::execute_with`); a
    /// business rejection comes back boxed in [`DispatchError::Command`].
    fn execute_on<B: CommandBus>(
        self,
        bus: &B,
        context: CommandContext,
    ) -> impl Future<Output = Result<CommandOutcome, DispatchError>> + Send;
}

/// What runs a command: the model's view of the command bus, so that the generated command
/// enums ([`CommandSet::execute_on`]) dispatch without this layer importing the bus.
/// [`Cqrs`](crate::Cqrs) implements it with [`Cqrs::execute_with`](crate::Cqrs::execute_with).
pub trait CommandBus: Sync {
    /// Runs `cmd` in `context`.
    fn execute_command<C>(
        &self,
        cmd: C,
        context: CommandContext,
    ) -> impl Future<
        Output = Result<CommandOutcome, CommandError<<C::Aggregate as Handles<C>>::Error>>,
    > + Send
    where
        C: Command,
        C::Aggregate: Handles<C>;
}

/// Whether a handler creates its aggregate, changes an existing one, or does either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandlerKind {
    /// A handler without `self`: runs only on an empty stream (else `CommandError::AlreadyExists`).
    Create,
    /// A `&self` handler: runs only on an existing stream (else `CommandError::NotFound`).
    Update,
    /// A handler taking `Option<&Self>` (`None` for an empty stream): runs on either, with the
    /// same expected-version check (`NoStream` or the version it read), so two commands racing
    /// to create one aggregate cannot both create it: the loser retries as an update.
    CreateOrUpdate,
}

/// What a generated handler returns when it does not produce events.
#[derive(Debug)]
pub enum HandlerError<E> {
    /// The user's handler returned `Err`.
    Rejected(E),
    /// A service parameter's type was not registered.
    MissingService(&'static str),
}

/// `Self` handles command `C`. One impl per `#[handle]` method, generated by `#[aggregate]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no handler for `{C}`",
    label = "no `#[handle]` method takes `{C}`",
    note = "add `#[handle] fn …(&self, cmd: &{C}) -> Result<…, …>` to the `#[aggregate]` impl of `{Self}` (or `fn …(cmd: &{C})` without `self` for a command that creates it)"
)]
pub trait Handles<C: Command>: Aggregate {
    /// The handler's business error (`std::convert::Infallible` when it cannot fail).
    type Error: std::error::Error + Send + Sync + 'static;
    /// Creation or update.
    const KIND: HandlerKind;

    /// Decides: the events that `cmd` causes in the current state (`version` events recorded
    /// so far, 0 for an aggregate that does not exist yet), or a rejection. It must not have
    /// side effects beyond its services: it may run again after a conflict.
    fn handle(
        &self,
        cmd: &C,
        services: &Services,
        version: u64,
    ) -> impl Future<Output = Result<Vec<Self::Event>, HandlerError<Self::Error>>> + Send;
}

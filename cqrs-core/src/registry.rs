//! Link-time registry of every event, command, aggregate, projection, query and process manager
//! type in the program, filled by the macros through `inventory`. It powers discovery
//! (`CqrsBuilder::discover_projections`), the start-up checks that the compiler cannot make across
//! crates (two event types stored under one name) and the [event catalog](crate::catalog).
//! Order is unspecified, so every listing here is sorted.
//!
//! A crate that the final binary never references is not linked, and its registrations are
//! absent: explicit registration (`CqrsBuilder::projection`) always works.
//!
//! Merged doctests and test binaries share one registry, so two test modules that declare different
//! event types under one stored name make `build()` fail with `BuildError::DuplicateEventName`,
//! exactly as in a real program. Tests use distinct names.

use crate::error::BuildError;
use crate::projection::DynProjection;

/// The JSON Schema of a registered type's payload, or `None` when it has none.
///
/// Schemas exist only when `eventweave-core` is built with its `schemars` feature *and* the type
/// implements `schemars::JsonSchema` (schemars 1, as re-exported by `eventweave_core::schemars`).
/// The derives emit the same code either way: an autoref probe in `__private` picks the
/// `JsonSchema` branch when both hold and the `None` branch otherwise, so neither the feature nor
/// the derive on the user's type can break a build.
pub type SchemaFn = fn() -> Option<serde_json::Value>;

/// One `#[derive(Event)]` type.
pub struct EventRegistration {
    /// Stored name.
    pub name: &'static str,
    /// Schema version.
    pub version: u32,
    /// `module::Type`.
    pub type_name: &'static str,
    /// Its payload's JSON Schema, when there is one (see [`SchemaFn`]).
    pub schema: SchemaFn,
    /// Decodes a stored payload of this event at the given schema version into the type
    /// (upcasting older versions) and back to JSON: the event as the code sees it today.
    pub decode: fn(u32, &str) -> Result<serde_json::Value, crate::error::DecodeFailure>,
}

/// The registration of the event stored as `name`, if one is registered.
pub fn event(name: &str) -> Option<&'static EventRegistration> {
    inventory::iter::<EventRegistration>().find(|r| r.name == name)
}

/// One `#[derive(Command)]` type.
pub struct CommandRegistration {
    /// `Command::NAME`, the name untyped dispatch routes by.
    pub name: &'static str,
    /// `module::Type`.
    pub type_name: &'static str,
    /// Stream category (`Aggregate::NAME`) of the aggregate it targets
    /// (`#[command(aggregate = …)]`), or the name (`Decision::NAME`) of the decision that
    /// decides it (`#[command(decision = …)]`; that decision's [`DecisionRegistration`] lists
    /// it).
    pub aggregate: &'static str,
    /// Its JSON Schema, when there is one (see [`SchemaFn`]).
    pub schema: SchemaFn,
}

/// One `#[derive(Query)]` type (generic queries are not registered).
#[derive(Debug)]
pub struct QueryRegistration {
    /// `module::Type`.
    pub type_name: &'static str,
    /// The response type as written in `#[query(response = …)]`.
    pub response: &'static str,
    /// The name of the projection whose `#[query]` method answers it, or `None` when no
    /// projection does. (A function: the derive on the query cannot name the projection, which
    /// is declared elsewhere in the crate; it probes for `RoutedQuery`.)
    pub projection: fn() -> Option<&'static str>,
    /// The query's JSON Schema, when there is one (see [`SchemaFn`]).
    pub schema: SchemaFn,
    /// The response type's JSON Schema, when there is one (see [`SchemaFn`]).
    pub response_schema: SchemaFn,
}

/// One `#[process_manager]` type. It is also registered as a durable
/// [`ProjectionRegistration`] (it runs from a checkpoint under the same name).
#[derive(Debug)]
pub struct ProcessManagerRegistration {
    /// Its name (checkpoint and instance streams).
    pub name: &'static str,
    /// `module::Type`.
    pub type_name: &'static str,
    /// Stored names of the events it handles.
    pub events: &'static [&'static str],
    /// Names of the commands its handlers may issue, as declared with
    /// `#[process_manager(issues = [A, B])]`; `None` when undeclared. A handler's return type
    /// (`Issue`) does not say which command it carries, so this cannot be read from the types;
    /// `ProcessFixture` checks the declaration against what handlers issue in tests.
    pub issues: Option<&'static [&'static str]>,
}

/// One `#[aggregate]` type.
#[derive(Debug)]
pub struct AggregateRegistration {
    /// Stream category.
    pub name: &'static str,
    /// `module::Type`.
    pub type_name: &'static str,
    /// Stored names of its events.
    pub events: &'static [&'static str],
    /// Names of the commands it handles.
    pub commands: &'static [&'static str],
}

/// One `#[decision]` type: what the catalog shows of it.
#[derive(Debug)]
pub struct DecisionRegistration {
    /// `Decision::NAME` (its own streams' category).
    pub name: &'static str,
    /// `module::Type`.
    pub type_name: &'static str,
    /// Names of the commands it decides.
    pub commands: &'static [&'static str],
    /// The states its handlers fold (a state used by several handlers may appear more than
    /// once).
    pub states: &'static [DecisionStateInfo],
    /// Stored names of the events its handlers' return types name (a handler returning
    /// `Emits` built by hand names none).
    pub emits: &'static [&'static str],
}

/// A state a decision folds: which events it reads, and by which tags.
#[derive(Debug)]
pub struct DecisionStateInfo {
    /// The state's type name (`DecisionState::STATE_NAME`).
    pub name: &'static str,
    /// The keys of the tags its events are selected by (values from the command).
    pub tags: &'static [&'static str],
    /// Stored names of the events it folds.
    pub events: &'static [&'static str],
}

/// One `#[projection]` type.
pub struct ProjectionRegistration {
    /// Projection name.
    pub name: &'static str,
    /// `module::Type`.
    pub type_name: &'static str,
    /// Stored names of the events it handles.
    pub events: &'static [&'static str],
    /// In memory, or durable (run from a checkpoint).
    pub kind: ProjectionKind,
    /// Makes a fresh, empty instance (`Default::default()`), or `None` when the projection opted
    /// out of discovery (`#[projection(discover = false)]`).
    pub create: Option<fn() -> Box<dyn DynProjection>>,
}

/// How a projection keeps its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProjectionKind {
    /// A [`Projection`](crate::Projection): state in memory, fed by the application and rebuilt
    /// from the first event at start-up.
    InMemory,
    /// A [`DurableProjection`](crate::runner::DurableProjection): run from a stored checkpoint.
    Durable,
}

/// `in memory` or `durable`, for listings.
impl std::fmt::Display for ProjectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProjectionKind::InMemory => "in memory",
            ProjectionKind::Durable => "durable",
        })
    }
}

impl std::fmt::Debug for EventRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRegistration")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("type_name", &self.type_name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CommandRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandRegistration")
            .field("name", &self.name)
            .field("type_name", &self.type_name)
            .field("aggregate", &self.aggregate)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ProjectionRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRegistration")
            .field("name", &self.name)
            .field("type_name", &self.type_name)
            .field("events", &self.events)
            .field("kind", &self.kind)
            .field("discoverable", &self.create.is_some())
            .finish()
    }
}

inventory::collect!(EventRegistration);
inventory::collect!(AggregateRegistration);
inventory::collect!(ProjectionRegistration);
inventory::collect!(CommandRegistration);
inventory::collect!(QueryRegistration);
inventory::collect!(ProcessManagerRegistration);
inventory::collect!(DecisionRegistration);

/// Every registered event type, sorted by stored name then type.
pub fn events() -> Vec<&'static EventRegistration> {
    let mut all: Vec<_> = inventory::iter::<EventRegistration>().collect();
    all.sort_by_key(|r| (r.name, r.type_name));
    all
}

/// Every registered aggregate type, sorted by name then type.
pub fn aggregates() -> Vec<&'static AggregateRegistration> {
    let mut all: Vec<_> = inventory::iter::<AggregateRegistration>().collect();
    all.sort_by_key(|r| (r.name, r.type_name));
    all
}

/// Every registered projection type, sorted by name then type.
pub fn projections() -> Vec<&'static ProjectionRegistration> {
    let mut all: Vec<_> = inventory::iter::<ProjectionRegistration>().collect();
    all.sort_by_key(|r| (r.name, r.type_name));
    all
}

/// Every registered command type, sorted by name then type.
pub fn commands() -> Vec<&'static CommandRegistration> {
    let mut all: Vec<_> = inventory::iter::<CommandRegistration>().collect();
    all.sort_by_key(|r| (r.name, r.type_name));
    all
}

/// Every registered (non-generic) query type, sorted by type.
pub fn queries() -> Vec<&'static QueryRegistration> {
    let mut all: Vec<_> = inventory::iter::<QueryRegistration>().collect();
    all.sort_by_key(|r| r.type_name);
    all
}

/// Every registered process manager, sorted by name then type.
pub fn process_managers() -> Vec<&'static ProcessManagerRegistration> {
    let mut all: Vec<_> = inventory::iter::<ProcessManagerRegistration>().collect();
    all.sort_by_key(|r| (r.name, r.type_name));
    all
}

/// Every registered decision, sorted by name then type.
pub fn decisions() -> Vec<&'static DecisionRegistration> {
    let mut all: Vec<_> = inventory::iter::<DecisionRegistration>().collect();
    all.sort_by_key(|r| (r.name, r.type_name));
    all
}

/// The start-up checks: no two event types share a stored name, no two projection types share
/// a name. `CqrsBuilder::build` runs it.
pub fn check() -> Result<(), BuildError> {
    let events = events();
    for pair in events.windows(2) {
        if pair[0].name == pair[1].name && pair[0].type_name != pair[1].type_name {
            return Err(BuildError::DuplicateEventName {
                name: pair[0].name,
                types: [pair[0].type_name, pair[1].type_name],
            });
        }
    }
    let projections = projections();
    for pair in projections.windows(2) {
        if pair[0].name == pair[1].name && pair[0].type_name != pair[1].type_name {
            return Err(BuildError::DuplicateProjection {
                name: pair[0].name,
                types: [pair[0].type_name, pair[1].type_name],
            });
        }
    }
    Ok(())
}

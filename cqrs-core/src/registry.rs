//! Link-time registry of every event, aggregate and projection type in the program, filled by the
//! macros through `inventory`. It powers discovery (`CqrsBuilder::discover_projections`) and the
//! start-up checks that the compiler cannot make across crates (two event types stored under one
//! name). Order is unspecified, so every listing here is sorted.
//!
//! A crate that the final binary never references is not linked, and its registrations are
//! absent: explicit registration (`CqrsBuilder::projection`) always works.

use crate::error::BuildError;
use crate::projection::DynProjection;

/// One `#[derive(Event)]` type.
#[derive(Debug)]
pub struct EventRegistration {
    /// Stored name.
    pub name: &'static str,
    /// Schema version.
    pub version: u32,
    /// `module::Type`.
    pub type_name: &'static str,
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

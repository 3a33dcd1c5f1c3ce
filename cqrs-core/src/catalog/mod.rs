//! The event catalog: what the program declares (commands, aggregates, events, projections,
//! queries, process managers) and how they connect, read from the
//! [`registry`](mod@crate::registry)
//! that the macros fill, rendered as a [Mermaid diagram](Catalog::to_mermaid), a
//! [JSON document](Catalog::to_json) for tools and the [JSON Schemas](Catalog::schemas_json) of
//! command and event payloads.
//!
//! ```
//! use eventweave_core::catalog::Catalog;
//! use eventweave_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "catalog-doc.lamp.lit")]
//! pub struct Lit;
//!
//! #[derive(Command, Debug)]
//! #[command(aggregate = Lamp)]
//! pub struct Light { #[id] pub lamp: u64 }
//!
//! #[derive(Default, Serialize, Deserialize)]
//! pub struct Lamp { lit: bool }
//!
//! #[aggregate(id = u64, name = "catalog-doc-lamp")]
//! impl Lamp {
//!     #[handle] fn light(&self, _: &Light) -> Result<Lit, std::convert::Infallible> { Ok(Lit) }
//!     #[apply] fn lit(&mut self, _: &Lit) { self.lit = true; }
//! }
//!
//! // Only what is declared in this module (a program has one catalog of everything it links).
//! let catalog = Catalog::registered_in(module_path!());
//! assert_eq!(catalog.aggregates[0].commands, ["Light"]);
//! assert!(catalog.to_mermaid().contains(r#"agg_catalog_doc_lamp --> evt_catalog_doc_lamp_lit"#));
//! assert!(catalog.to_json().contains(r#""name": "catalog-doc.lamp.lit""#));
//! ```
//!
//! The catalog sees what is *linked*: a crate the binary never references registers nothing
//! (see the registry's docs). Which commands a process manager issues cannot be read
//! from its handlers' types (`Issue` carries any command), so it is what
//! `#[process_manager(issues = [A, B])]` declares, checked by `ProcessFixture` in tests; a process
//! manager without the declaration shows no such edges and `"issues": null` in the JSON.
//!
//! # Choices
//!
//! - **The catalog reads the registry, not the source.** Each derive registers what it knows at its
//!   site: an event its schema probe, a command its target aggregate, a query which projection
//!   answers it. A query's derive cannot name that projection (declared elsewhere), but the orphan
//!   rule puts `impl RoutedQuery for Q` in the query's crate, so an autoref probe compiled at the
//!   derive (`RouteProbe`) sees it. Queries and the commands a process manager issues were the only
//!   links missing from the existing registrations; process managers got a registration of their
//!   own beside their durable-projection one (whose fields the projection macro fills).
//! - **`schemars` 1 without default features** (only `std`; no derive macro): the `schemars`
//!   feature reads the `JsonSchema` impls users derive with their own `schemars` dependency. The
//!   bank depends on schemars (with its derive) to show it; that turns the feature on in every
//!   workspace build, which also proves it adds no bound (the UI suite runs without it). Why a
//!   probe and not a `cfg`: `probe.rs`.
//! - **Output is byte-stable** (`json.rs`, `mermaid.rs`): every list sorted, Mermaid node ids from
//!   names with a numbered suffix on collision. So a committed copy can be compared with the code;
//!   the bank's `tests/catalog.rs` does.

#[cfg(test)]
mod decision_tests;
mod json;
mod mermaid;
#[doc(hidden)]
pub mod probe;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::registry::{
    self, AggregateRegistration, CommandRegistration, DecisionRegistration, EventRegistration,
    ProcessManagerRegistration, ProjectionKind, ProjectionRegistration, QueryRegistration,
    SchemaFn,
};

pub use json::{FORMAT, FORMAT_VERSION, SCHEMAS_FORMAT};

/// Everything the program declares, sorted, with the links between the items.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Catalog {
    /// By name.
    pub aggregates: Vec<AggregateEntry>,
    /// By name.
    pub decisions: Vec<DecisionEntry>,
    /// By name, then type.
    pub commands: Vec<CommandEntry>,
    /// By stored name.
    pub events: Vec<EventEntry>,
    /// By name (process managers are not listed here).
    pub projections: Vec<ProjectionEntry>,
    /// By name.
    pub process_managers: Vec<ProcessManagerEntry>,
    /// By type.
    pub queries: Vec<QueryEntry>,
}

/// An aggregate: the commands it handles and the events it records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AggregateEntry {
    /// Stream category (`Aggregate::NAME`).
    pub name: String,
    /// `module::Type`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Names of the commands it has handlers for, sorted.
    pub commands: Vec<String>,
    /// Stored names of its events, sorted.
    pub events: Vec<String>,
}

/// A decision: the states it reads (event types and tags), the commands it decides and the
/// events it may emit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionEntry {
    /// `Decision::NAME`.
    pub name: String,
    /// `module::Type`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Names of the commands it decides, sorted.
    pub commands: Vec<String>,
    /// The states its handlers fold, by name.
    pub states: Vec<StateEntry>,
    /// Stored names of the events its handlers' return types name, sorted (a handler that
    /// builds `Emits` by hand adds none).
    pub emits: Vec<String>,
}

/// A decision's state: the events it reads, selected by which tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateEntry {
    /// The state's type name.
    pub name: String,
    /// Keys of the tags its events are selected by (values from the command), as declared.
    pub tags: Vec<String>,
    /// Stored names of the events it folds, sorted.
    pub events: Vec<String>,
}

/// A command.
#[derive(Clone, Debug, Serialize)]
pub struct CommandEntry {
    /// `Command::NAME`.
    pub name: String,
    /// `module::Type`; `None` for a command known only by name (listed by an aggregate, its
    /// `Command` impl not derived or not linked).
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// The aggregate it targets (`#[command(aggregate = …)]`), when known.
    pub aggregate: Option<String>,
    /// The decision that decides it (`#[command(decision = …)]`), when known.
    pub decision: Option<String>,
    /// Whether that aggregate or decision has a handler for it.
    pub handled: bool,
    /// Process managers that declare they issue it, sorted.
    pub issued_by: Vec<String>,
    #[serde(skip)]
    schema: Option<SchemaFn>,
}

/// An event type.
#[derive(Clone, Debug, Serialize)]
pub struct EventEntry {
    /// Stored name.
    pub name: String,
    /// Schema version; `None` for an event known only by name.
    pub version: Option<u32>,
    /// `module::Type`; `None` for an event known only by name.
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// Aggregates that record it, sorted.
    pub recorded_by: Vec<String>,
    /// Decisions that may emit it, sorted.
    pub emitted_by: Vec<String>,
    /// Decisions that read it (one of their states folds it), sorted.
    pub read_by: Vec<String>,
    /// Projections that handle it, sorted.
    pub projections: Vec<String>,
    /// Process managers that handle it, sorted.
    pub process_managers: Vec<String>,
    #[serde(skip)]
    schema: Option<SchemaFn>,
}

/// A projection (in memory or durable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProjectionEntry {
    /// Its name (and its checkpoint's, when durable).
    pub name: String,
    /// `module::Type`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// `in-memory` or `durable`.
    pub kind: &'static str,
    /// Stored names of the events it handles, sorted.
    pub events: Vec<String>,
    /// Types of the queries it answers, sorted.
    pub queries: Vec<String>,
}

/// A process manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessManagerEntry {
    /// Its name.
    pub name: String,
    /// `module::Type`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Stored names of the events it handles, sorted.
    pub events: Vec<String>,
    /// Names of the commands it declares it issues, sorted; `None` when it declares none
    /// (unknown, not "nothing").
    pub issues: Option<Vec<String>>,
}

/// A query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueryEntry {
    /// `module::Type`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The response type as written.
    pub response: String,
    /// The projection that answers it, if any.
    pub projection: Option<String>,
}

/// The registrations a catalog is made of (a slice per kind), for [`Catalog::from_parts`].
#[derive(Clone, Debug, Default)]
pub struct Registrations<'a> {
    /// Event types.
    pub events: Vec<&'a EventRegistration>,
    /// Command types.
    pub commands: Vec<&'a CommandRegistration>,
    /// Aggregates.
    pub aggregates: Vec<&'a AggregateRegistration>,
    /// Decisions.
    pub decisions: Vec<&'a DecisionRegistration>,
    /// Projections (process managers' own registrations as durable projections included).
    pub projections: Vec<&'a ProjectionRegistration>,
    /// Queries.
    pub queries: Vec<&'a QueryRegistration>,
    /// Process managers.
    pub process_managers: Vec<&'a ProcessManagerRegistration>,
}

impl Registrations<'static> {
    /// Everything registered in the program.
    pub fn all() -> Self {
        Registrations {
            events: registry::events(),
            commands: registry::commands(),
            aggregates: registry::aggregates(),
            decisions: registry::decisions(),
            projections: registry::projections(),
            queries: registry::queries(),
            process_managers: registry::process_managers(),
        }
    }
}

impl Registrations<'_> {
    /// Keeps the registrations whose type is declared in `module` or a module below it
    /// (`bank` keeps `bank::account::Account`, not `bankers::X`).
    pub fn retain_module(&mut self, module: &str) {
        let inside = |type_name: &str| {
            type_name
                .strip_prefix(module)
                .is_some_and(|rest| rest.starts_with("::"))
        };
        self.events.retain(|r| inside(r.type_name));
        self.commands.retain(|r| inside(r.type_name));
        self.aggregates.retain(|r| inside(r.type_name));
        self.decisions.retain(|r| inside(r.type_name));
        self.projections.retain(|r| inside(r.type_name));
        self.queries.retain(|r| inside(r.type_name));
        self.process_managers.retain(|r| inside(r.type_name));
    }
}

impl Catalog {
    /// The catalog of everything registered in the program.
    pub fn registered() -> Catalog {
        Catalog::from_parts(&Registrations::all())
    }

    /// The catalog of what is declared in `module` and the modules below it (say `"bank"`, or
    /// `module_path!()`): events and commands that its aggregates name without registering
    /// them (hand-written impls) are listed by name.
    pub fn registered_in(module: &str) -> Catalog {
        let mut parts = Registrations::all();
        parts.retain_module(module);
        Catalog::from_parts(&parts)
    }

    /// The catalog of `parts`.
    pub fn from_parts(parts: &Registrations<'_>) -> Catalog {
        let pm_names: BTreeSet<(&str, &str)> = parts
            .process_managers
            .iter()
            .map(|r| (r.name, r.type_name))
            .collect();
        let mut catalog = Catalog {
            aggregates: parts
                .aggregates
                .iter()
                .map(|r| AggregateEntry {
                    name: r.name.to_owned(),
                    type_name: r.type_name.to_owned(),
                    commands: sorted(r.commands.iter().copied()),
                    events: sorted(r.events.iter().copied()),
                })
                .collect(),
            decisions: parts.decisions.iter().map(|r| decision(r)).collect(),
            process_managers: parts
                .process_managers
                .iter()
                .map(|r| ProcessManagerEntry {
                    name: r.name.to_owned(),
                    type_name: r.type_name.to_owned(),
                    events: sorted(r.events.iter().copied()),
                    issues: r.issues.map(|issues| sorted(issues.iter().copied())),
                })
                .collect(),
            queries: parts
                .queries
                .iter()
                .map(|r| QueryEntry {
                    type_name: r.type_name.to_owned(),
                    response: r.response.to_owned(),
                    projection: (r.projection)().map(str::to_owned),
                })
                .collect(),
            ..Catalog::default()
        };
        catalog.projections = parts
            .projections
            .iter()
            .filter(|r| !pm_names.contains(&(r.name, r.type_name)))
            .map(|r| ProjectionEntry {
                name: r.name.to_owned(),
                type_name: r.type_name.to_owned(),
                kind: match r.kind {
                    ProjectionKind::Durable => "durable",
                    _ => "in-memory",
                },
                events: sorted(r.events.iter().copied()),
                queries: sorted(
                    catalog
                        .queries
                        .iter()
                        .filter(|q| q.projection.as_deref() == Some(r.name))
                        .map(|q| q.type_name.as_str()),
                ),
            })
            .collect();
        catalog.events = events(parts, &catalog);
        catalog.commands = commands(parts, &catalog);
        catalog.sort();
        catalog
    }

    fn sort(&mut self) {
        self.aggregates
            .sort_by(|a, b| (&a.name, &a.type_name).cmp(&(&b.name, &b.type_name)));
        self.decisions
            .sort_by(|a, b| (&a.name, &a.type_name).cmp(&(&b.name, &b.type_name)));
        self.commands
            .sort_by(|a, b| (&a.name, &a.type_name).cmp(&(&b.name, &b.type_name)));
        self.events
            .sort_by(|a, b| (&a.name, &a.type_name).cmp(&(&b.name, &b.type_name)));
        self.projections
            .sort_by(|a, b| (&a.name, &a.type_name).cmp(&(&b.name, &b.type_name)));
        self.process_managers
            .sort_by(|a, b| (&a.name, &a.type_name).cmp(&(&b.name, &b.type_name)));
        self.queries.sort_by(|a, b| a.type_name.cmp(&b.type_name));
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.aggregates.is_empty()
            && self.decisions.is_empty()
            && self.commands.is_empty()
            && self.events.is_empty()
            && self.projections.is_empty()
            && self.process_managers.is_empty()
            && self.queries.is_empty()
    }
}

/// Every event: registered types, and names that aggregates, projections and process
/// managers list without a registered type.
fn events(parts: &Registrations<'_>, catalog: &Catalog) -> Vec<EventEntry> {
    let mut names: BTreeSet<&str> = parts.events.iter().map(|r| r.name).collect();
    names.extend(
        catalog
            .aggregates
            .iter()
            .flat_map(|a| a.events.iter().map(String::as_str)),
    );
    names.extend(catalog.decisions.iter().flat_map(|d| {
        let read = d.states.iter().flat_map(|s| s.events.iter());
        read.chain(d.emits.iter()).map(String::as_str)
    }));
    names.extend(
        catalog
            .projections
            .iter()
            .flat_map(|p| p.events.iter().map(String::as_str)),
    );
    names.extend(
        catalog
            .process_managers
            .iter()
            .flat_map(|p| p.events.iter().map(String::as_str)),
    );
    let mut out = Vec::new();
    for name in names {
        let links = |entry: &mut EventEntry| {
            entry.recorded_by = linked(
                catalog.aggregates.iter().map(|a| (&a.name, &a.events)),
                name,
            );
            entry.emitted_by = linked(catalog.decisions.iter().map(|d| (&d.name, &d.emits)), name);
            entry.read_by = sorted(
                catalog
                    .decisions
                    .iter()
                    .filter(|d| d.states.iter().any(|s| s.events.iter().any(|e| e == name)))
                    .map(|d| d.name.as_str()),
            );
            entry.projections = linked(
                catalog.projections.iter().map(|p| (&p.name, &p.events)),
                name,
            );
            entry.process_managers = linked(
                catalog
                    .process_managers
                    .iter()
                    .map(|p| (&p.name, &p.events)),
                name,
            );
        };
        let types: Vec<_> = parts.events.iter().filter(|r| r.name == name).collect();
        if types.is_empty() {
            let mut entry = EventEntry {
                name: name.to_owned(),
                version: None,
                type_name: None,
                recorded_by: Vec::new(),
                emitted_by: Vec::new(),
                read_by: Vec::new(),
                projections: Vec::new(),
                process_managers: Vec::new(),
                schema: None,
            };
            links(&mut entry);
            out.push(entry);
        }
        for r in types {
            let mut entry = EventEntry {
                name: name.to_owned(),
                version: Some(r.version),
                type_name: Some(r.type_name.to_owned()),
                recorded_by: Vec::new(),
                emitted_by: Vec::new(),
                read_by: Vec::new(),
                projections: Vec::new(),
                process_managers: Vec::new(),
                schema: Some(r.schema),
            };
            links(&mut entry);
            out.push(entry);
        }
    }
    out
}

/// Every command: registered types, and names that aggregates handle or process managers
/// declare without a registered type.
fn commands(parts: &Registrations<'_>, catalog: &Catalog) -> Vec<CommandEntry> {
    let issued_by = |name: &str| {
        sorted(
            catalog
                .process_managers
                .iter()
                .filter(|p| p.issues.iter().flatten().any(|c| c == name))
                .map(|p| p.name.as_str()),
        )
    };
    let handled = |aggregate: &str, name: &str| {
        catalog
            .aggregates
            .iter()
            .any(|a| a.name == aggregate && a.commands.iter().any(|c| c == name))
    };
    let decided = |decision: &str, name: &str| {
        catalog
            .decisions
            .iter()
            .any(|d| d.name == decision && d.commands.iter().any(|c| c == name))
    };
    // A registration's `aggregate` names a decision when that decision lists the command.
    let mut out: Vec<CommandEntry> = parts
        .commands
        .iter()
        .map(|r| {
            let by_decision = decided(r.aggregate, r.name);
            CommandEntry {
                name: r.name.to_owned(),
                type_name: Some(r.type_name.to_owned()),
                aggregate: (!by_decision).then(|| r.aggregate.to_owned()),
                decision: by_decision.then(|| r.aggregate.to_owned()),
                handled: by_decision || handled(r.aggregate, r.name),
                issued_by: issued_by(r.name),
                schema: Some(r.schema),
            }
        })
        .collect();
    for aggregate in &catalog.aggregates {
        for name in &aggregate.commands {
            let known = out
                .iter()
                .any(|c| &c.name == name && c.aggregate.as_deref() == Some(&aggregate.name));
            if !known {
                out.push(CommandEntry {
                    name: name.clone(),
                    type_name: None,
                    aggregate: Some(aggregate.name.clone()),
                    decision: None,
                    handled: true,
                    issued_by: issued_by(name),
                    schema: None,
                });
            }
        }
    }
    for decision in &catalog.decisions {
        for name in &decision.commands {
            let known = out
                .iter()
                .any(|c| &c.name == name && c.decision.as_deref() == Some(&decision.name));
            if !known {
                out.push(CommandEntry {
                    name: name.clone(),
                    type_name: None,
                    aggregate: None,
                    decision: Some(decision.name.clone()),
                    handled: true,
                    issued_by: issued_by(name),
                    schema: None,
                });
            }
        }
    }
    for pm in &catalog.process_managers {
        for name in pm.issues.iter().flatten() {
            if !out.iter().any(|c| &c.name == name) {
                out.push(CommandEntry {
                    name: name.clone(),
                    type_name: None,
                    aggregate: None,
                    decision: None,
                    handled: false,
                    issued_by: issued_by(name),
                    schema: None,
                });
            }
        }
    }
    out
}

/// A decision's entry: its states once each (by name), lists sorted.
fn decision(r: &DecisionRegistration) -> DecisionEntry {
    let mut states: Vec<StateEntry> = Vec::new();
    for s in r.states {
        if states.iter().any(|known| known.name == s.name) {
            continue;
        }
        states.push(StateEntry {
            name: s.name.to_owned(),
            tags: s.tags.iter().map(|t| (*t).to_owned()).collect(),
            events: sorted(s.events.iter().copied()),
        });
    }
    states.sort_by(|a, b| a.name.cmp(&b.name));
    DecisionEntry {
        name: r.name.to_owned(),
        type_name: r.type_name.to_owned(),
        commands: sorted(r.commands.iter().copied()),
        states,
        emits: sorted(r.emits.iter().copied()),
    }
}

/// Names of the items (name, their list) whose list holds `name`, sorted.
fn linked<'a>(
    items: impl Iterator<Item = (&'a String, &'a Vec<String>)>,
    name: &str,
) -> Vec<String> {
    sorted(
        items
            .filter(|(_, list)| list.iter().any(|n| n == name))
            .map(|(item, _)| item.as_str()),
    )
}

/// Sorted, without duplicates, owned.
fn sorted<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let set: BTreeSet<&str> = names.into_iter().collect();
    set.into_iter().map(str::to_owned).collect()
}

//! Decisions: commands decided on the events they depend on, selected by type and tag across
//! streams (dynamic consistency boundaries, dcb.events), instead of on one aggregate's stream.
//!
//! A decision's handler takes its command and one or more **states** ([`DecisionState`]): each
//! a fold of the events of some types that carry the tags the command names (`CourseSeats` of
//! course `c1`, `StudentCourses` of student `s7`). The runtime reads the events of every state
//! in one [`EventQuery`](crate::EventQuery), folds them, asks the handler, and appends its
//! events under the [`AppendCondition`](crate::AppendCondition) "no event matching the query
//! after the position the read was complete through"; when the condition fails it decides
//! again on a fresh read (`CqrsBuilder::max_retries` times).
//!
//! # Choices
//!
//! - **States are small types, composed per handler.** A rule over two things (the course's
//!   capacity and the student's course count) is two states in the handler's parameters, not
//!   one struct that knows both; each state type is reusable by other decisions. The query is
//!   the OR of one item per state: the state's event types, with the state's tag keys filled
//!   from the command's `#[tag]` fields.
//! - **Which command field fills a state's tag** is, by default, the command's one `#[tag]`
//!   field with that key; `#[tags(account = from)]` on the parameter picks another, so one state
//!   type can be read twice (the two accounts of a transfer).
//! - **Aggregates are states too** when they carry their id as a tag
//!   (`#[aggregate(tag = "account")]`): a decision reads an account's whole history through
//!   it, and writes [`InAggregate`] events into the account's own stream, so the aggregate's
//!   version checks, cache and projections see them. Its other events go to the decision's own
//!   stream, `<decision name>-<command's tag values>` (the history of that course and student,
//!   say), with `ExpectedVersion::Any`: the condition guards consistency, not the version.
//! - **Compile-time checks** (each a const evaluation whose panic message names the types,
//!   on the user's tokens): a state folds an event that lacks one of the state's tags (it would
//!   never be read); the command has no `#[tag]` field for a state's tag, or one of another
//!   type than the events' (compared by the types' names as written); a handler emits an event
//!   that none of its states would read back (the decision could not see its own effect).
//! - **Emitted tag values are checked at run time**: an event the command's own query would
//!   not match (tagged with another course than the command's, say) is refused with
//!   [`CommandError::EscapesQuery`] before anything is written. The compile-time check covers
//!   keys and types; values exist only at run time. (The alternative, appending it anyway, would
//!   let the next decision on those tags miss it: its rule would silently stop holding.)
//! - **Handlers are synchronous** and take no services (a decision is a pure function of its
//!   command and states; retries re-run it).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::aggregate::Aggregate;
use crate::cache::Caches;
use crate::context::{CommandContext, CommandOutcome};
use crate::envelope::RecordedEvent;
use crate::error::{CommandError, DecodeFailure, DispatchError};
use crate::event::Event;
use crate::event_of::EventOf;
use crate::event_query::QueryItem;
use crate::ids::StreamId;
use crate::tag::{Tag, TagError, TagField, Tags};

/// A fold of the events a decision depends on: events of [`EVENT_NAMES`](Self::EVENT_NAMES)
/// carrying a tag for each of [`TAG_KEYS`](Self::TAG_KEYS), whose values come from the command.
///
/// Implement it with `#[decision_state(tags(course))]` on the impl block that holds its
/// `#[apply]` methods, or `#[aggregate(tag = "…")]` on an aggregate.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a decision state",
    label = "not a decision state",
    note = "put `#[decision_state(tags(…))]` on the impl block of `{Self}` that holds its `#[apply]` methods, or `tag = \"…\"` in the `#[aggregate]` of an aggregate"
)]
pub trait DecisionState: Default + Send + Sync + 'static {
    /// The state's name (its type's), for messages.
    const STATE_NAME: &'static str;
    /// The keys of the tags that select its events (values from the command).
    const TAG_KEYS: &'static [&'static str];
    /// For each key, the type its events' tag fields have, as written (`""`: unknown).
    const TAG_TYPES: &'static [&'static str];
    /// The stored names of the events it folds.
    const EVENT_NAMES: &'static [&'static str];

    /// Folds one stored event of [`EVENT_NAMES`](Self::EVENT_NAMES).
    fn fold_stored(&mut self, event: &RecordedEvent) -> Result<(), DecodeFailure>;

    /// The query item of this state for the tags `tags` (one per key, in key order).
    fn query_item(tags: impl IntoIterator<Item = Tag>) -> QueryItem {
        QueryItem::types(Self::EVENT_NAMES.iter().copied()).with_tags(tags)
    }
}

/// The states a handler folds, as a tuple (generated per handler).
pub trait StateSet: Default + Send + Sync + 'static {
    /// Folds `event` into the state at `slot` (0-based, in parameter order).
    fn fold(&mut self, slot: usize, event: &RecordedEvent) -> Result<(), DecodeFailure>;
}

macro_rules! state_tuples {
    ($(($($s:ident $i:tt),+)),+ $(,)?) => {
        $(
            impl<$($s: DecisionState),+> StateSet for ($($s,)+) {
                fn fold(&mut self, slot: usize, event: &RecordedEvent) -> Result<(), DecodeFailure> {
                    match slot {
                        $($i => self.$i.fold_stored(event),)+
                        _ => Ok(()),
                    }
                }
            }
        )+
    };
}

state_tuples!(
    (S0 0),
    (S0 0, S1 1),
    (S0 0, S1 1, S2 2),
    (S0 0, S1 1, S2 2, S3 3),
    (S0 0, S1 1, S2 2, S3 3, S4 4),
    (S0 0, S1 1, S2 2, S3 3, S4 4, S5 5),
);

/// A command decided by a [`Decision`] (`#[command(decision = …)]` with `#[tag]` fields).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a decision's command",
    label = "not a decision's command",
    note = "add `#[derive(Command)]` and `#[command(decision = …)]` to `{Self}`, and `#[tag]` to the fields that select its events"
)]
pub trait DecisionCommand: Send + Sync + 'static {
    /// The decision that decides it.
    type Decision: Decision;
    /// The name used by untyped dispatch (default: the type's name).
    const NAME: &'static str;
    /// Its `#[tag]` fields, in declaration order.
    const TAG_FIELDS: &'static [TagField];

    /// The tag text of the `index`-th `#[tag]` field (in [`TAG_FIELDS`](Self::TAG_FIELDS)).
    fn tag_value(&self, index: usize) -> String;
}

/// A set of command handlers decided on states (`#[decision]` on its impl block).
pub trait Decision: Send + Sync + 'static {
    /// The name of its own stream's category (`#[decision(name = …)]`, default: the type's
    /// name in snake case).
    const NAME: &'static str;
    /// The generated enum of its commands, for untyped dispatch.
    type Command: DecisionCommandSet<Decision = Self>;
}

/// `Self` decides command `C`: one impl per `#[handle]` method, generated by `#[decision]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no handler for `{C}`",
    label = "no `#[handle]` method takes `{C}`",
    note = "add `#[handle] fn …(cmd: &{C}, state: &SomeState) -> Result<…, …>` to the `#[decision]` impl of `{Self}`"
)]
pub trait Decides<C: DecisionCommand>: Decision {
    /// The handler's business error (`std::convert::Infallible` when it cannot fail).
    type Error: std::error::Error + Send + Sync + 'static;
    /// The states it folds, as a tuple in parameter order.
    type States: StateSet;

    /// One query item per state, in parameter order, with the tags taken from `cmd`.
    fn query_items(cmd: &C) -> Result<Vec<QueryItem>, TagError>;

    /// Decides on the folded states: the events to append, or a rejection. It must have no side
    /// effects: it runs again when the condition fails.
    fn decide(cmd: &C, states: &Self::States) -> Result<Emits, Self::Error>;
}

/// The commands of one decision as an enum, generated by `#[decision]` (`TransfersCommand`).
pub trait DecisionCommandSet: Send + Sized + 'static {
    /// The decision.
    type Decision: Decision;
    /// The names of every command, as declared.
    const NAMES: &'static [&'static str];

    /// The command called `name`, deserialized from `body`.
    fn from_json(name: &str, body: &str) -> Result<Self, DispatchError>;

    /// Runs the command through `bus` (a [`Cqrs`](crate::Cqrs)); a business rejection comes
    /// back boxed in [`DispatchError::Command`].
    fn execute_on<B: DecisionBus>(
        self,
        bus: &B,
        context: CommandContext,
    ) -> impl Future<Output = Result<CommandOutcome, DispatchError>> + Send;
}

/// What runs a decision's command: the model's view of the command bus (as
/// [`CommandBus`](crate::CommandBus) is for aggregates). [`Cqrs`](crate::Cqrs) implements it.
pub trait DecisionBus: Sync {
    /// Runs `cmd` in `context`.
    fn execute_decision<C>(
        &self,
        cmd: C,
        context: CommandContext,
    ) -> impl Future<
        Output = Result<CommandOutcome, CommandError<<C::Decision as Decides<C>>::Error>>,
    > + Send
    where
        C: DecisionCommand,
        C::Decision: Decides<C>;
}

/// One event a decision emits, serialized, with its tags and where it goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Emitted {
    /// The aggregate stream it goes to (`None`: the decision's own stream).
    pub stream: Option<StreamId>,
    /// Its stored name.
    pub name: &'static str,
    /// Its schema version.
    pub version: u32,
    /// Its JSON, or why it could not be serialized (or tagged).
    pub payload: Result<String, String>,
    /// Its tags.
    pub tags: Tags,
    /// For an aggregate's event: drops the aggregate's cached state, which the append makes
    /// stale (a command decided on it could be rejected on an old balance without ever
    /// meeting the version check).
    pub(crate) evict: Option<Evict>,
}

/// Drops one aggregate's entry from the command bus's cache.
#[derive(Clone)]
pub(crate) struct Evict(Arc<dyn Fn(&Caches) + Send + Sync>);

impl Evict {
    pub(crate) fn run(&self, caches: &Caches) {
        (self.0)(caches);
    }
}

/// Not part of what was emitted: two emitted events are equal without it.
impl PartialEq for Evict {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Evict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Evict")
    }
}

/// What a decision's handler emits, in order (built from its return value through
/// [`IntoEmits`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Emits {
    /// The events.
    pub events: Vec<Emitted>,
}

impl Emits {
    /// Nothing.
    pub fn new() -> Self {
        Emits::default()
    }

    /// Emits `event` into the decision's own stream.
    pub fn push<E: Event>(&mut self, event: E) {
        self.events.push(emitted(None, &event, None, None));
    }

    /// Emits `event` into the stream of aggregate `id` of type `A`.
    pub fn push_to<A: Aggregate, E: EventOf<A> + Event>(&mut self, id: &A::Id, event: E) {
        let id_tag = A::ID_TAG.map(|key| Tag::new(key, &id.to_string()));
        let owned = id.clone();
        let evict = Evict(Arc::new(move |caches: &Caches| {
            caches.of::<A>().evict(&owned);
        }));
        self.events
            .push(emitted(Some(A::stream_id(id)), &event, id_tag, Some(evict)));
    }
}

fn emitted<E: Event>(
    stream: Option<StreamId>,
    event: &E,
    id_tag: Option<Result<Tag, TagError>>,
    evict: Option<Evict>,
) -> Emitted {
    let tagged = event.tags().and_then(|tags| match id_tag {
        None => Ok(tags),
        Some(tag) => Ok(Tags::new(tags.iter().cloned().chain([tag?]))),
    });
    let payload = match tagged {
        Ok(_) => serde_json::to_string(event).map_err(|e| e.to_string()),
        Err(ref e) => Err(e.to_string()),
    };
    Emitted {
        stream,
        name: E::NAME,
        version: E::VERSION,
        payload,
        tags: tagged.unwrap_or_default(),
        evict,
    }
}

/// What a decision's handler may return: an event (into the decision's stream), an
/// [`InAggregate`] event, `()`, `Option`, `Vec` or a tuple of those.
#[diagnostic::on_unimplemented(
    message = "a decision cannot emit `{Self}`",
    label = "not an event",
    note = "a decision's handler returns an event, `InAggregate<Aggregate, Event>`, `()`, `Option`, `Vec` or a tuple of those (optionally in a `Result`)"
)]
pub trait IntoEmits {
    /// Adds the events to `out`.
    fn into_emits(self, out: &mut Emits);
}

impl<E: Event> IntoEmits for E {
    fn into_emits(self, out: &mut Emits) {
        out.push(self);
    }
}

impl IntoEmits for Emits {
    fn into_emits(mut self, out: &mut Emits) {
        out.events.append(&mut self.events);
    }
}

impl IntoEmits for () {
    fn into_emits(self, _: &mut Emits) {}
}

impl<T: IntoEmits> IntoEmits for Option<T> {
    fn into_emits(self, out: &mut Emits) {
        if let Some(inner) = self {
            inner.into_emits(out);
        }
    }
}

impl<T: IntoEmits> IntoEmits for Vec<T> {
    fn into_emits(self, out: &mut Emits) {
        for inner in self {
            inner.into_emits(out);
        }
    }
}

macro_rules! emit_tuples {
    ($(($($t:ident $i:tt),+)),+ $(,)?) => {
        $(
            impl<$($t: IntoEmits),+> IntoEmits for ($($t,)+) {
                fn into_emits(self, out: &mut Emits) {
                    $(self.$i.into_emits(out);)+
                }
            }
        )+
    };
}

emit_tuples!(
    (T0 0, T1 1),
    (T0 0, T1 1, T2 2),
    (T0 0, T1 1, T2 2, T3 3),
    (T0 0, T1 1, T2 2, T3 3, T4 4),
);

/// An event a decision writes into an aggregate's stream: `InAggregate::<Account, _>::new(id,
/// MoneyWithdrawn { … })`. The aggregate's next command sees it (its cached state is stale and
/// reloaded on the version conflict).
pub struct InAggregate<A: Aggregate, E> {
    /// The aggregate's id.
    pub id: A::Id,
    /// The event.
    pub event: E,
}

impl<A: Aggregate, E: EventOf<A>> InAggregate<A, E> {
    /// `event` for aggregate `id`.
    pub fn new(id: A::Id, event: E) -> Self {
        InAggregate { id, event }
    }
}

impl<A: Aggregate, E: EventOf<A> + Event> IntoEmits for InAggregate<A, E> {
    fn into_emits(self, out: &mut Emits) {
        out.push_to::<A, E>(&self.id, self.event);
    }
}

impl<A: Aggregate, E: fmt::Debug> fmt::Debug for InAggregate<A, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InAggregate")
            .field("aggregate", &A::NAME)
            .field("id", &self.id)
            .field("event", &self.event)
            .finish()
    }
}

/// Refuses an emitted event that escapes the query of the command that decided it (`items`,
/// one per state of its handler), so that the next decision on the same tags would not read it
/// and no condition would guard it. Two rules:
///
/// 1. A tag of the event whose key the query reads its type by must have one of the values the
///    query read (`course:c2` is refused when the states folding `StudentSubscribed` read
///    `course:c1`), even when another state still matches the event (by its student): the
///    course's state, which the decision was about, would not see it.
/// 2. Some item matches the event (its type, and every tag of the item).
///
/// A transfer reading one account state twice (`account:a`, `account:b`) may emit an event
/// tagged with either. The macros check the keys and types at compile time; the values exist
/// only here. Events that cannot be encoded are left to the append, which reports them.
pub(crate) fn check_read_back<E>(
    command: &'static str,
    items: &[QueryItem],
    emits: &Emits,
) -> Result<(), CommandError<E>> {
    for emitted in emits.events.iter().filter(|e| e.payload.is_ok()) {
        let folding: Vec<&QueryItem> = items
            .iter()
            .filter(|i| {
                let types = i.event_types();
                types.is_empty() || types.iter().any(|t| t == emitted.name)
            })
            .collect();
        let escapes = |expected: Option<&Tag>, found: Option<&Tag>| CommandError::EscapesQuery {
            command,
            event: emitted.name,
            expected: expected.cloned(),
            found: found.cloned(),
        };
        for tag in emitted.tags.iter() {
            let mut read = folding
                .iter()
                .flat_map(|i| i.required_tags())
                .filter(|t| t.key() == tag.key())
                .peekable();
            let first = read.peek().copied();
            if first.is_some() && !read.any(|t| t == tag) {
                return Err(escapes(first, Some(tag)));
            }
        }
        if !items.iter().any(|i| i.matches(emitted.name, &emitted.tags)) {
            let expected = folding
                .first()
                .and_then(|i| i.required_tags().iter().find(|t| !emitted.tags.contains(t)));
            let found = expected.and_then(|e| emitted.tags.iter().find(|t| t.key() == e.key()));
            return Err(escapes(expected, found));
        }
    }
    Ok(())
}

/// The stream of a decision's own events for a command: `<decision name>-<tag values>`
/// (values of the command's `#[tag]` fields in declaration order, joined by `-`).
pub fn decision_stream<C: DecisionCommand>(cmd: &C) -> StreamId {
    let mut name = String::from(<C::Decision as Decision>::NAME);
    for i in 0..C::TAG_FIELDS.len() {
        name.push('-');
        name.push_str(&cmd.tag_value(i));
    }
    StreamId::from(name)
}

//! Events: the [`Event`] trait every event type implements (`#[derive(Event)]`), the
//! [`EventSet`] trait of an aggregate's generated event enum, and [`IntoEvents`], which lets a
//! handler return one event, several, or none.

use std::any::Any;
use std::fmt::{self, Debug};
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregate::Aggregate;
use crate::envelope::EventMeta;
use crate::error::DecodeFailure;
use crate::ids::StreamId;

/// A fact that happened, stored under a stable name and schema version.
///
/// Implement it with `#[derive(Event)]` and `#[event(name = "account.opened")]` (plus
/// `version = 2` once the payload's shape changes; the default is 1). The stored name is
/// required and must never change once events are stored: it is how stored rows find their
/// type again, which is why it is not taken from the type's name (a rename would orphan them).
///
/// When the payload's shape changes, raise `version` and declare an upcaster from each older
/// version to the next (`#[upcast(from = 1, with = opened_v1_to_v2)]`): events stored at an
/// older version are then upcast step by step to the current shape when they are loaded, by
/// aggregates and projections alike. A missing step does not compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not an event",
    note = "add `#[derive(Event)]` (with `Serialize`, `Deserialize`, `Clone`, `Debug`, `PartialEq`) to `{Self}`",
    note = "projections, process managers and `#[apply]` methods take events; if `{Self}` is a command, its aggregate's `#[handle]` method takes it"
)]
pub trait Event:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static
{
    /// The stable stored name.
    const NAME: &'static str;
    /// The payload's schema version (starts at 1).
    const VERSION: u32;

    /// Turns the JSON of a payload stored at schema version `from` (older than
    /// [`VERSION`](Event::VERSION)) into the JSON of the current version, running the upcaster
    /// of each version from `from` to `VERSION - 1` in turn.
    ///
    /// `#[derive(Event)]` generates it from the `#[upcast(from = n, with = f)]` attributes. The
    /// default, for hand-written impls, returns the payload unchanged: older payloads are then
    /// read as the current shape.
    fn upcast(from: u32, payload: serde_json::Value) -> Result<serde_json::Value, DecodeFailure> {
        let _ = from;
        Ok(payload)
    }
}

/// A payload shape an upcaster may return: `serde_json::Value`, any [`Event`] (the last step
/// usually returns the event itself), or a typed older version of an event that implements it.
///
/// ```ignore
/// #[derive(Serialize, Deserialize)]
/// struct OpenedV2 { owner: String }
///
/// impl UpcastPayload for OpenedV2 {}
///
/// fn opened_v1_to_v2(v1: OpenedV1) -> OpenedV2 { OpenedV2 { owner: v1.name } }
/// ```
///
/// It is not implemented for `()` or `Result`, so an upcaster that returns nothing, or a
/// `Result` whose error is not a `std::error::Error`, does not compile.
#[diagnostic::on_unimplemented(
    message = "an upcaster cannot return `{Self}`",
    label = "returns `{Self}`",
    note = "an upcaster returns the next version's payload: `serde_json::Value`, an event, or a type that implements `Serialize` and `UpcastPayload` (`impl UpcastPayload for {Self} {{}}`), optionally in a `Result` whose error implements `std::error::Error + Send + Sync + 'static`"
)]
pub trait UpcastPayload: Serialize + 'static {}

impl UpcastPayload for serde_json::Value {}

impl<E: Event> UpcastPayload for E {}

/// Decodes a payload stored at schema version `version` as `E`: the current version directly
/// (no detour through `serde_json::Value`), an older one through [`Event::upcast`], a newer one
/// not at all ([`DecodeFailure::UnsupportedVersion`]).
#[inline]
pub(crate) fn decode_payload<E: Event>(version: u32, payload: &str) -> Result<E, DecodeFailure> {
    if version == E::VERSION {
        return serde_json::from_str(payload).map_err(invalid_payload);
    }
    if version > E::VERSION {
        return Err(DecodeFailure::UnsupportedVersion { known: E::VERSION });
    }
    upcast_payload(version, payload)
}

/// The cold path of [`decode_payload`]: a payload of an older version.
#[inline(never)]
fn upcast_payload<E: Event>(version: u32, payload: &str) -> Result<E, DecodeFailure> {
    let value = serde_json::from_str(payload).map_err(invalid_payload)?;
    let current = E::upcast(version, value)?;
    serde_json::from_value(current).map_err(|e| {
        DecodeFailure::InvalidPayload(format!(
            "after upcasting from schema version {version}: {e}"
        ))
    })
}

fn invalid_payload(e: serde_json::Error) -> DecodeFailure {
    DecodeFailure::InvalidPayload(e.to_string())
}

/// The closed set of events one aggregate records: the enum that `#[aggregate]` generates
/// (`AccountEvent` for `Account`), one variant per `#[apply]` method.
pub trait EventSet: Clone + Debug + PartialEq + Send + Sync + Sized + 'static {
    /// Stored names of every variant, in declaration order.
    const NAMES: &'static [&'static str];

    /// Stored name of this event.
    fn event_name(&self) -> &'static str;

    /// Schema version of this event.
    fn event_version(&self) -> u32;

    /// Serializes the inner event (not the enum) as JSON into `out`.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;

    /// Decodes a stored payload by its stored name and schema version.
    fn decode(name: &str, version: u32, payload: &str) -> Result<Self, DecodeFailure>;

    /// The inner event as `Any`, so in-process projections read it without decoding.
    fn as_any(&self) -> &(dyn Any + Send + Sync);
}

/// What a handler may return: an event of the aggregate, the aggregate's event enum, a `Vec` or
/// `Option` of those, a tuple of them, or `()` for "nothing happened".
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of aggregate `{A}`",
    label = "`{A}` has no `#[apply]` method for this",
    note = "add `#[apply] fn …(&mut self, event: &{Self})` to the `#[aggregate]` impl of `{A}`, or return one of its events (a single event, a `Vec`, an `Option`, a tuple or `()`)"
)]
pub trait IntoEvents<A: Aggregate> {
    /// Appends the events to `out`, in order.
    fn into_events(self, out: &mut Vec<A::Event>);
}

// Not listed as a suggestion when a type is not an event of `A`: the note already says
// which shapes a handler may return.
#[diagnostic::do_not_recommend]
impl<A: Aggregate> IntoEvents<A> for () {
    fn into_events(self, _: &mut Vec<A::Event>) {}
}

// Not listed as a suggestion when a type is not an event of `A`: the note already says
// which shapes a handler may return.
#[diagnostic::do_not_recommend]
impl<A: Aggregate, T: IntoEvents<A>> IntoEvents<A> for Vec<T> {
    fn into_events(self, out: &mut Vec<A::Event>) {
        out.reserve(self.len());
        for item in self {
            item.into_events(out);
        }
    }
}

// Not listed as a suggestion when a type is not an event of `A`: the note already says
// which shapes a handler may return.
#[diagnostic::do_not_recommend]
impl<A: Aggregate, T: IntoEvents<A>> IntoEvents<A> for Option<T> {
    fn into_events(self, out: &mut Vec<A::Event>) {
        if let Some(item) = self {
            item.into_events(out);
        }
    }
}

macro_rules! tuple_into_events {
    ($($t:ident $i:tt),+) => {
        #[diagnostic::do_not_recommend]
        impl<A: Aggregate, $($t: IntoEvents<A>),+> IntoEvents<A> for ($($t,)+) {
            fn into_events(self, out: &mut Vec<A::Event>) {
                $( self.$i.into_events(out); )+
            }
        }
    };
}
tuple_into_events!(T0 0);
tuple_into_events!(T0 0, T1 1);
tuple_into_events!(T0 0, T1 1, T2 2);
tuple_into_events!(T0 0, T1 1, T2 2, T3 3);
tuple_into_events!(T0 0, T1 1, T2 2, T3 3, T4 4);
tuple_into_events!(T0 0, T1 1, T2 2, T3 3, T4 4, T5 5);

/// `Self` is an event of aggregate `A`: recorded in `A`'s streams. Generated by `#[aggregate]`
/// for each `#[apply]` event; it is what lets
/// [`EventMeta::aggregate_id`](crate::EventMeta::aggregate_id) give a projection or a process
/// manager the aggregate's typed id.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of aggregate `{A}`",
    label = "no `#[apply]` method of `{A}` takes this event",
    note = "`#[aggregate]` implements `EventOf<A>` for each event an `#[apply]` method of `A` takes"
)]
pub trait EventOf<A: Aggregate> {}

// The typed aggregate id lives with the model traits, not in `envelope` (which knows nothing
// of aggregates): imports flow from ids and envelope to the model, never back.
impl EventMeta {
    /// The typed id of the aggregate whose stream recorded `event` (`"member-42"` gives
    /// `MemberId(42)`), for projections and process managers that need it: the aggregate is
    /// the one `event` belongs to, so asking a `Loaned` event for a `Book`'s id does not
    /// compile. The id type must parse back what its `Display` writes (`FromStr`).
    ///
    /// ```
    /// # use cqrs_core::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    /// #[event(name = "doc.joined")]
    /// pub struct Joined;
    /// # #[derive(Command)] #[command(aggregate = Member)]
    /// # pub struct Join { #[id] pub member: u64 }
    /// #[derive(Default)] pub struct Member;
    /// #[aggregate(id = u64, name = "doc-member")]
    /// impl Member {
    /// #   #[handle] fn join(_: &Join) -> Joined { Joined }
    ///     #[apply] fn joined(&mut self, _: &Joined) {}
    /// }
    ///
    /// #[derive(Default)] pub struct Members { ids: Vec<u64> }
    /// #[projection(name = "doc_members")]
    /// impl Members {
    ///     fn on_joined(&mut self, e: &Joined, meta: &EventMeta) -> Result<(), cqrs_core::AggregateIdError> {
    ///         let member: u64 = meta.aggregate_id(e)?;
    ///         self.ids.push(member);
    ///         Ok(())
    ///     }
    /// }
    /// # fn main() {}
    /// ```
    pub fn aggregate_id<A, E>(&self, event: &E) -> Result<A::Id, AggregateIdError>
    where
        A: Aggregate,
        E: EventOf<A>,
        A::Id: FromStr,
    {
        let _ = event;
        let error = || AggregateIdError {
            stream: self.stream.clone(),
            aggregate: A::NAME,
        };
        let id = self
            .stream
            .as_str()
            .strip_prefix(A::NAME)
            .and_then(|rest| rest.strip_prefix('-'))
            .ok_or_else(error)?;
        let parsed: A::Id = id.parse().map_err(|_| error())?;
        // Only an id that prints back to the same stream is the aggregate's.
        if A::stream_id(&parsed) == self.stream {
            Ok(parsed)
        } else {
            Err(error())
        }
    }
}

/// [`EventMeta::aggregate_id`] found a stream that is not one of the aggregate's (an event
/// appended elsewhere by hand, or an id type whose `FromStr` does not read its `Display`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregateIdError {
    /// The event's stream.
    pub stream: StreamId,
    /// The aggregate's stream category (`Aggregate::NAME`).
    pub aggregate: &'static str,
}

impl fmt::Display for AggregateIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream `{}` is not a `{}` stream with a readable id (`{}-<id>`)",
            self.stream, self.aggregate, self.aggregate
        )
    }
}

impl std::error::Error for AggregateIdError {}

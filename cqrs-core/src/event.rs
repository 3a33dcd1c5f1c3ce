//! Events: the [`Event`] trait every event type implements (`#[derive(Event)]`), the
//! [`EventSet`] trait of an aggregate's generated event enum, and decoding with upcasts. What a
//! handler may return, and which aggregate an event belongs to, is in `event_of`.
//!
//! Upcasters are declared on the event and chained version by version: `#[upcast(from = n, with =
//! f)]` per older version. The derive refuses a chain with a missing step, so an event whose
//! version is raised without an upcaster does not compile (before, an older row would have been
//! decoded as the new shape). Rows at the current version skip the `serde_json::Value` round trip.
//! Upcaster outputs must implement [`UpcastPayload`] (events and `Value` do; a typed intermediate
//! version opts in with one line), because "anything `Serialize`" would accept `()` or `Result<_,
//! String>` silently.
//!
//! Events are serialized once, to JSON, at append. The store contract is untyped (name, version,
//! JSON payload), so one store holds every aggregate and durable stores need no generics.
//! In-process projections still get the typed value (`EventRef::with_typed`), so the hot path never
//! decodes what it just encoded.
//!
//! Stored event names are written out (`#[event(name = "…")]` is required): a default taken from
//! the type's name made renaming a struct orphan every event stored under the old name.

use std::any::Any;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::DecodeFailure;

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

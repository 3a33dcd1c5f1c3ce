//! Support for macro-generated code. Not public API: names here may change in any release,
//! which is why `eventweave-core` pins `eventweave-derive` to one exact version.
//!
//! It holds `event_info`, the compile-time building of diagnostic messages, and `CommandTarget`
//! (the check that a handler's command targets its aggregate, see `aggregate.rs`).

use std::error::Error as StdError;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[path = "private/dcb.rs"]
mod dcb;

pub use dcb::*;

pub use ::inventory;
pub use ::serde;
pub use ::serde_json;

pub use crate::Cqrs;
pub use crate::aggregate::{Aggregate, AggregateId, Command, HandlerError, HandlerKind, Handles};
pub use crate::aggregate::{CommandBus, CommandSet};
pub use crate::catalog::probe::{
    NoRoute, NoSchema, RouteProbe, RouteViaProjection, SchemaProbe, SchemaViaSchemars,
};
pub use crate::context::{CommandContext, CommandOutcome};
pub use crate::dispatch::Router;
pub use crate::envelope::{EventMeta, RecordedEvent};
pub use crate::error::{
    BoxError, CommandError, DecodeFailure, DispatchError, ProjectionError, ProjectionFailure,
};
pub use crate::event::{Event, EventSet, UpcastPayload, decode_payload};
pub use crate::event_of::{EventOf, IntoEvents};
pub use crate::process::{
    IntoIssues, Issuable, Issue, ProcessManager, Rejection, decode as process_decode,
};
pub use crate::projection::{Decoded, DynProjection, EventRef, Projection};
pub use crate::query::{Query, RoutedQuery};
pub use crate::registry::{
    AggregateRegistration, CommandRegistration, DecisionRegistration, DecisionStateInfo,
    EventRegistration, ProcessManagerRegistration, ProjectionKind, ProjectionRegistration,
    QueryRegistration,
};
pub use crate::runner::DurableProjection;
pub use crate::services::Services;
pub use crate::store::EventStore;

pub use ::core::any::Any;
pub use ::core::future::{Future, ready};
pub use ::core::marker::Send;
pub use ::core::result::Result::{self, Err, Ok};
pub use ::std::vec::Vec;

/// Serializes one event's payload.
#[inline]
pub fn encode_event<E: Serialize>(event: &E, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, event)
}

/// Decodes one event's payload written at schema `version`, upcasting an older one.
///
/// For hand-written `EventSet::decode` impls; generated code calls [`decode_payload`], which
/// this wraps, so that it instantiates one function less per event type.
#[inline]
pub fn decode_event<E: Event>(version: u32, payload: &str) -> Result<E, DecodeFailure> {
    crate::event::decode_payload(version, payload)
}

/// A stored payload decoded as `E` (upcast from `version`) and serialized again: what
/// `EventRegistration::decode` does.
///
/// Every `#[derive(Event)]` instantiates it, so it is written to instantiate little per type
/// (in a release build, this function and the serialization it instantiates are still most of
/// what the macros cost over hand-written code: see BENCHMARKS.md):
/// no closure, no `?` on an `E`-typed result, the event serialized in place into
/// `serde_json::value::Serializer` (what `serde_json::to_value` does, without instantiating
/// `to_value` too), and the decoding shared with `EventSet::decode` (`decode_payload::<E>`).
pub fn event_json<E: Event>(
    version: u32,
    payload: &str,
) -> Result<serde_json::Value, DecodeFailure> {
    match crate::event::decode_payload::<E>(version, payload) {
        Ok(event) => match Serialize::serialize(&event, serde_json::value::Serializer) {
            Ok(value) => Ok(value),
            Err(e) => Err(reserialize_failure(e)),
        },
        Err(failure) => Err(failure),
    }
}

/// [`event_json`]'s error when the decoded event does not serialize again (one function for
/// every event type).
fn reserialize_failure(e: serde_json::Error) -> DecodeFailure {
    DecodeFailure::InvalidPayload(e.to_string())
}

/// The `schema` of a registration when the runtime is built without its `schemars` feature:
/// no schema. One function for every registered type (see [`schema_fn`]).
pub fn no_schema() -> Option<serde_json::Value> {
    None
}

/// `schema_fn!(T)`: the `SchemaFn` a derive registers for type `T`.
///
/// With the runtime's `schemars` feature, a function local to the derive site that asks the
/// autoref probe (`SchemaProbe`) for `T`'s schema; without it, [`no_schema`]. The choice is made
/// by this crate's own features when the macro is defined, so generated code still names no
/// `cfg` of the user's crate, and a build without `schemars` (the default) compiles no function
/// and no probe instantiation per registered type.
#[cfg(feature = "schemars")]
#[doc(hidden)]
#[macro_export]
macro_rules! __eventweave_schema_fn {
    ($ty:ty) => {{
        fn __schema() -> ::core::option::Option<$crate::__private::serde_json::Value> {
            #[allow(unused_imports)]
            use $crate::__private::{NoSchema as _, SchemaViaSchemars as _};
            (&&$crate::__private::SchemaProbe::<$ty>::new()).json_schema()
        }
        __schema
    }};
}

/// `schema_fn!(T)`: the `SchemaFn` a derive registers for type `T` (built without the
/// `schemars` feature: [`no_schema`], see the other definition).
#[cfg(not(feature = "schemars"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __eventweave_schema_fn {
    ($ty:ty) => {
        $crate::__private::no_schema
    };
}

pub use crate::__eventweave_schema_fn as schema_fn;

/// Serializes an event enum as `{"type": name, "version": n, "data": event}`.
pub fn serialize_tagged<S: Serializer, E: Serialize>(
    name: &str,
    version: u32,
    event: &E,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut s = serializer.serialize_struct("Event", 3)?;
    s.serialize_field("type", name)?;
    s.serialize_field("version", &version)?;
    s.serialize_field("data", event)?;
    s.end()
}

/// Reads the form [`serialize_tagged`] writes.
pub fn deserialize_tagged<'de, D: Deserializer<'de>, T: EventSet>(
    deserializer: D,
) -> Result<T, D::Error> {
    #[derive(Deserialize)]
    struct Tagged {
        #[serde(rename = "type")]
        name: String,
        version: u32,
        data: serde_json::Value,
    }
    let tagged = Tagged::deserialize(deserializer)?;
    let payload = serde_json::to_string(&tagged.data).map_err(D::Error::custom)?;
    T::decode(&tagged.name, tagged.version, &payload)
        .map_err(|failure| D::Error::custom(format_args!("event `{}`: {failure}", tagged.name)))
}

/// `true` when two strings are equal, in a `const` context.
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// For each of `names`, the index of the first earlier name equal to it, or its own index when
/// none is: every duplicate of an aggregate's stored names found in one `const` evaluation, which
/// `#[aggregate]` makes once per aggregate (`N` events, `M` a power of two at least `2 * N`, the
/// size of the hash table). Each event's check then reads its entry ([`distinct_event_name`]).
///
/// Const evaluation interprets every step, so the work is kept small: one pass hashes each name
/// once into an open-addressing table, and two names' bytes are compared only when they land in
/// the same probe sequence (comparing every pair, as one check per event against the names
/// before it did, grows with the square of the number of events).
pub const fn earlier_duplicates<const N: usize, const M: usize>(names: &[&str]) -> [usize; N] {
    let mut earlier = [0usize; N];
    // Indices into `names`; `usize::MAX` is an empty slot.
    let mut table = [usize::MAX; M];
    let mut i = 0;
    while i < N {
        let bytes = names[i].as_bytes();
        let mut hash = bytes.len();
        let mut k = 0;
        while k < bytes.len() {
            hash = hash.wrapping_mul(31).wrapping_add(bytes[k] as usize);
            k += 1;
        }
        let mut slot = hash % M;
        earlier[i] = i;
        loop {
            let j = table[slot];
            if j == usize::MAX {
                table[slot] = i;
                break;
            }
            if str_eq(names[j], names[i]) {
                earlier[i] = j;
                break;
            }
            slot = (slot + 1) % M;
        }
        i += 1;
    }
    earlier
}

/// The check that event `at` of an aggregate has a stored name of its own: `earlier` is the
/// table [`earlier_duplicates`] made, `names` the stored names (`EventSet::NAMES`), `types` the
/// events' type names, in the same order. When an earlier event has the same name, const
/// evaluation fails with the message `before`, the name, `": \``, the earlier type and `after`.
///
/// `#[track_caller]`: the failure is reported where the generated code calls it (spanned on
/// the later event's type), as if the panic were written there, with no frame of this function.
#[track_caller]
pub const fn distinct_event_name(
    earlier: &[usize],
    names: &[&str],
    types: &[&str],
    at: usize,
    before: &str,
    after: &str,
) {
    if earlier[at] < at {
        duplicate_event_name(names[at], types[earlier[at]], before, after);
    }
}

/// [`distinct_event_name`]'s failure: the message is built only here, when the check fails.
#[track_caller]
const fn duplicate_event_name(name: &str, earlier_type: &str, before: &str, after: &str) -> ! {
    let message = Message::new(&[before, name, "\": `", earlier_type, after]);
    panic!("{}", message.as_str())
}

/// Length of `parts` concatenated: the size of a compile-time error message built with
/// [`concat_bytes`] (generated code names no type or stored name it cannot know in advance).
pub const fn concat_len(parts: &[&str]) -> usize {
    let mut len = 0;
    let mut i = 0;
    while i < parts.len() {
        len += parts[i].len();
        i += 1;
    }
    len
}

/// `parts` concatenated into `N` (= [`concat_len`]) bytes of UTF-8, at compile time.
pub const fn concat_bytes<const N: usize>(parts: &[&str]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut i = 0;
    while i < parts.len() {
        let bytes = parts[i].as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            out[at] = bytes[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// A compile-time error message of at most [`Message::CAPACITY`] bytes, concatenated from
/// parts that are only known during const evaluation (a longer one is cut at a character
/// boundary). Unlike [`concat_bytes`] it needs no `const` item of the exact length, so a check
/// that passes builds no message at all.
pub struct Message {
    bytes: [u8; Message::CAPACITY],
    len: usize,
}

impl Message {
    /// The longest message kept.
    pub const CAPACITY: usize = 1024;

    /// `parts` concatenated.
    pub const fn new(parts: &[&str]) -> Self {
        let mut bytes = [0u8; Message::CAPACITY];
        let mut len = 0;
        let mut i = 0;
        while i < parts.len() {
            let part = parts[i].as_bytes();
            let mut j = 0;
            while j < part.len() && len < Message::CAPACITY {
                bytes[len] = part[j];
                len += 1;
                j += 1;
            }
            i += 1;
        }
        Message { bytes, len }
    }

    /// The message as text.
    pub const fn as_str(&self) -> &str {
        let mut len = self.len;
        loop {
            let (text, _) = self.bytes.split_at(len);
            match std::str::from_utf8(text) {
                Ok(text) => return text,
                // Only a character cut by the capacity can fail: drop its bytes.
                Err(_) => len -= 1,
            }
        }
    }
}

/// Bytes made by [`concat_bytes`] back as text (they are UTF-8: they came from `&str`s).
pub const fn utf8(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => "",
    }
}

/// Looks up a handler's service parameter.
#[inline]
pub fn service<T: 'static, E>(services: &Services) -> Result<&T, HandlerError<E>> {
    services
        .get::<T>()
        .ok_or(HandlerError::MissingService(std::any::type_name::<T>()))
}

/// A handler that takes its command by value gets a clone: it may run again after a conflict.
#[diagnostic::on_unimplemented(
    message = "a handler that takes `{Self}` by value needs `{Self}: Clone`",
    label = "taken by value here",
    note = "take the command by reference (`cmd: &{Self}`), or derive `Clone` for `{Self}`: a handler may run again after a conflict"
)]
pub trait CloneCommand {
    /// A copy for one attempt.
    fn clone_command(&self) -> Self;
}

impl<T: Clone> CloneCommand for T {
    #[inline]
    fn clone_command(&self) -> Self {
        self.clone()
    }
}

/// Boxes the business error of a typed command error, for untyped dispatch.
pub fn box_command_error<E: StdError + Send + Sync + 'static>(
    error: CommandError<E>,
) -> DispatchError {
    DispatchError::Command(error.map_rejection(|e| Box::new(e) as BoxError))
}

/// Autoref probe: `(&&JsonProbe::<C>::new()).decode_command(…)` deserializes when
/// `C: Deserialize` and reports `NotDeserializable` otherwise.
pub struct JsonProbe<T>(PhantomData<T>);

impl<T> JsonProbe<T> {
    /// A probe for `T` (what generated code uses: a constant, so no constructor is
    /// instantiated per command type).
    pub const NEW: Self = JsonProbe(PhantomData);

    /// A probe for `T`.
    pub const fn new() -> Self {
        JsonProbe(PhantomData)
    }
}

impl<T> Default for JsonProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The branch taken when the command implements `Deserialize`.
pub trait DecodeViaSerde<T> {
    /// Deserializes the body.
    fn decode_command(&self, command: &'static str, body: &str) -> Result<T, DispatchError>;
}

impl<T: DeserializeOwned> DecodeViaSerde<T> for &JsonProbe<T> {
    // `#[inline]`: a copy goes to the generated `from_json`'s codegen unit, where a release
    // build can fold it in (one function less per command to optimize on its own).
    #[inline]
    fn decode_command(&self, command: &'static str, body: &str) -> Result<T, DispatchError> {
        match serde_json::from_str(body) {
            Ok(decoded) => Ok(decoded),
            Err(e) => Err(invalid_body(command, &e)),
        }
    }
}

/// `DispatchError::InvalidBody` (one function for every command type, where a closure would be
/// instantiated per type).
fn invalid_body(command: &'static str, error: &serde_json::Error) -> DispatchError {
    DispatchError::InvalidBody {
        command,
        message: error.to_string(),
    }
}

/// The branch taken when it does not.
pub trait DecodeUnsupported<T> {
    /// Reports that the command cannot come from JSON.
    fn decode_command(&self, command: &'static str, body: &str) -> Result<T, DispatchError>;
}

impl<T> DecodeUnsupported<T> for JsonProbe<T> {
    fn decode_command(&self, command: &'static str, _: &str) -> Result<T, DispatchError> {
        Err(DispatchError::NotDeserializable { command })
    }
}

/// The check that a state with `#[aggregate(snapshot_every = …)]` can be snapshotted: the
/// generated code calls [`snapshot_state`] once, spanned on the `snapshot_every` value.
///
/// `M` tells two impls apart so that a state that is neither `Serialize` nor `Deserialize` is
/// reported once, with this message: with a single impl the compiler would report each unmet
/// serde bound on its own (one error for `Serialize`, one for `Deserialize`); with two that may
/// apply, it tries both and, when neither does, reports `SnapshotState` itself. The second,
/// [`NoSnapshot`], applies to no type. Generated code never names `M`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` takes snapshots, so it needs serde's `Serialize` and `Deserialize`",
    label = "`snapshot_every` needs `{Self}: Serialize + Deserialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}`, or remove `snapshot_every` from its `#[aggregate]` to take no snapshots"
)]
pub trait SnapshotState<M> {}

/// Marks the impl of [`SnapshotState`] for a state that serde can (de)serialize.
pub enum SerdeState {}

/// Marks the impl of [`SnapshotState`] that applies to no type (see there why it exists).
pub enum NoSnapshot {}

mod sealed {
    /// Implemented by no type.
    pub trait Never {}
}

impl<T: Serialize + DeserializeOwned> SnapshotState<SerdeState> for T {}

impl<T: sealed::Never> SnapshotState<NoSnapshot> for T {}

/// Fails to compile, once, with [`SnapshotState`]'s message when `T` cannot be snapshotted.
pub const fn snapshot_state<T: SnapshotState<M>, M>() {}

/// Autoref probe: `(&&SnapshotProbe::<A>::new()).encode_state(…)` (de)serializes when
/// `A: Serialize + DeserializeOwned`, and reports an error otherwise. The generated
/// `Aggregate::encode_snapshot` and `decode_snapshot` call it so that their bodies add no bound
/// of their own: [`snapshot_state`] alone reports a state that is not serde's.
pub struct SnapshotProbe<T>(PhantomData<T>);

impl<T> SnapshotProbe<T> {
    /// A probe for `T`.
    pub const fn new() -> Self {
        SnapshotProbe(PhantomData)
    }
}

impl<T> Default for SnapshotProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The branch taken when the state implements `Serialize + DeserializeOwned`.
pub trait SnapshotViaSerde<T> {
    /// [`snapshot::to_json`](crate::snapshot::to_json).
    fn encode_state(&self, state: &T) -> Result<String, String>;
    /// [`snapshot::from_json`](crate::snapshot::from_json).
    fn decode_state(&self, payload: &str) -> Result<T, String>;
}

impl<T: Serialize + DeserializeOwned> SnapshotViaSerde<T> for &SnapshotProbe<T> {
    #[inline]
    fn encode_state(&self, state: &T) -> Result<String, String> {
        crate::snapshot::to_json(state)
    }

    #[inline]
    fn decode_state(&self, payload: &str) -> Result<T, String> {
        crate::snapshot::from_json(payload)
    }
}

/// The branch taken when it does not: never run, since [`snapshot_state`] fails to compile then.
pub trait SnapshotUnsupported<T> {
    /// An error.
    fn encode_state(&self, state: &T) -> Result<String, String>;
    /// An error.
    fn decode_state(&self, payload: &str) -> Result<T, String>;
}

impl<T> SnapshotUnsupported<T> for SnapshotProbe<T> {
    fn encode_state(&self, _: &T) -> Result<String, String> {
        Err(unsupported::<T>())
    }

    fn decode_state(&self, _: &str) -> Result<T, String> {
        Err(unsupported::<T>())
    }
}

fn unsupported<T>() -> String {
    format!(
        "`{}` does not implement `Serialize + Deserialize`",
        std::any::type_name::<T>()
    )
}

/// What a projection's event handler may return.
#[diagnostic::on_unimplemented(
    message = "a projection handler returns `()` or `Result<(), E>`, not `{Self}`",
    label = "unsupported return type",
    note = "`E` must implement `std::error::Error + Send + Sync + 'static`"
)]
pub trait ProjectionOutcome {
    /// The handler's error, if any.
    fn into_failure(self) -> Option<ProjectionFailure>;
}

impl ProjectionOutcome for () {
    #[inline]
    fn into_failure(self) -> Option<ProjectionFailure> {
        None
    }
}

impl<E: StdError + Send + Sync + 'static> ProjectionOutcome for Result<(), E> {
    #[inline]
    fn into_failure(self) -> Option<ProjectionFailure> {
        self.err().map(|e| ProjectionFailure::Handler(Arc::new(e)))
    }
}

/// What a process manager's event handler may return: anything [`IntoIssues`], or a `Result`
/// of it whose error stops the runner at that event (retried, like a projection's).
#[diagnostic::on_unimplemented(
    message = "a process manager's event handler returns `()`, `Issue`, `Vec<Issue>`, `Option<Issue>` or `Result<…, E>` of one of those, not `{Self}`",
    label = "unsupported return type",
    note = "`E` must implement `std::error::Error + Send + Sync + 'static`"
)]
pub trait ProcessOutcome {
    /// The issues, or the handler's error.
    fn into_outcome(self) -> Result<Vec<Issue>, ProjectionFailure>;
}

impl<T: IntoIssues> ProcessOutcome for T {
    #[inline]
    fn into_outcome(self) -> Result<Vec<Issue>, ProjectionFailure> {
        Ok(self.into_issues())
    }
}

impl<T: IntoIssues, E: StdError + Send + Sync + 'static> ProcessOutcome for Result<T, E> {
    #[inline]
    fn into_outcome(self) -> Result<Vec<Issue>, ProjectionFailure> {
        self.map(IntoIssues::into_issues)
            .map_err(|e| ProjectionFailure::Handler(Arc::new(e)))
    }
}

/// What an `#[on_rejected]` method may return: anything [`IntoIssues`] (a compensation cannot
/// fail: the rejection is already recorded).
#[diagnostic::on_unimplemented(
    message = "an `#[on_rejected]` method returns `()`, `Issue`, `Vec<Issue>` or `Option<Issue>`, not `{Self}`",
    label = "unsupported return type",
    note = "a compensation cannot fail: the rejection is recorded in the instance stream before it runs"
)]
pub trait Compensation {
    /// The issues.
    fn into_compensation(self) -> Vec<Issue>;
}

impl<T: IntoIssues> Compensation for T {
    #[inline]
    fn into_compensation(self) -> Vec<Issue> {
        self.into_issues()
    }
}

/// A durable projection's handler gets the event as an owned value: an `EventRef` (which may
/// hold a `&dyn Any`) is not `Send`, so none may live across the handler's `.await`.
/// `Ok(None)` when `event` is not an `E`.
pub fn decode_stored<E: Event>(
    projection: &'static str,
    event: &RecordedEvent,
) -> Result<Option<E>, ProjectionError> {
    let stored = EventRef::stored(event);
    match stored.decode::<E>() {
        Ok(None) => Ok(None),
        Ok(Some(Decoded::Owned(e))) => Ok(Some(e)),
        Ok(Some(Decoded::Borrowed(e))) => Ok(Some(e.clone())),
        Err(failure) => Err(stored.error(projection, ProjectionFailure::Decode(failure))),
    }
}

/// What a durable projection's handler returned, as `DurableProjection::handle` reports it.
#[inline]
pub fn handled(
    projection: &'static str,
    event: &RecordedEvent,
    failure: Option<ProjectionFailure>,
) -> Result<(), ProjectionError> {
    match failure {
        None => Ok(()),
        Some(failure) => Err(EventRef::stored(event).error(projection, failure)),
    }
}

/// What a `#[reset]` method returned, as `DurableProjection::reset` reports it.
#[inline]
pub fn reset_done(failure: Option<ProjectionFailure>) -> Result<(), ProjectionFailure> {
    failure.map_or(Ok(()), Err)
}

/// The future of a durable projection's `async` handler, checked to be `Send` where the
/// generated code calls the handler (spanned on its name), so a handler that holds a non-`Send`
/// value across an `.await` is reported once, at that handler.
#[inline]
pub fn send_handler<F: Future + Send>(future: F) -> impl Future<Output = F::Output> + Send {
    future
}

/// How the generated command enum runs a command, and the compile-time check that the command
/// targets the aggregate whose `#[aggregate]` impl handles it.
///
/// The generated code calls `<<C as Command>::Aggregate as CommandTarget<C, A>>::execute_routed`
/// with `A` the aggregate of the impl block, spanned on the handler's command parameter. It is
/// implemented only when `C`'s aggregate is `A`, so a `#[command(aggregate = Other)]` fails with
/// this message (a bound such as `C: Command<Aggregate = A>` would report a type mismatch on the associated type
/// instead), and only once (the call itself needs no other bound).
#[diagnostic::on_unimplemented(
    message = "`{C}` is not a command of aggregate `{A}`",
    label = "`{C}` targets `{Self}`",
    note = "`#[command(aggregate = {Self})]` on `{C}` names another aggregate: move this handler to the `#[aggregate]` impl of `{Self}`, or change the attribute"
)]
pub trait CommandTarget<C, A> {
    /// `app.execute_with(command, context)`, with the business error boxed.
    fn execute_routed<B: CommandBus>(
        bus: &B,
        command: C,
        context: CommandContext,
    ) -> impl Future<Output = Result<CommandOutcome, DispatchError>> + Send;
}

impl<C: Command<Aggregate = A>, A: Handles<C>> CommandTarget<C, A> for A {
    async fn execute_routed<B: CommandBus>(
        bus: &B,
        command: C,
        context: CommandContext,
    ) -> Result<CommandOutcome, DispatchError> {
        bus.execute_command(command, context)
            .await
            .map_err(box_command_error)
    }
}

/// The constructor a `#[projection]` registers for `CqrsBuilder::discover_projections`.
#[diagnostic::on_unimplemented(
    message = "projection `{Self}` is discoverable, so it needs `Default`",
    label = "`{Self}` does not implement `Default`",
    note = "derive `Default` for `{Self}`, or write `#[projection(discover = false)]` and add it with `CqrsBuilder::projection`"
)]
pub trait DiscoverableProjection {
    /// A fresh, empty instance.
    fn create() -> Box<dyn DynProjection>;
}

impl<P: Projection + Default> DiscoverableProjection for P {
    fn create() -> Box<dyn DynProjection> {
        Box::new(P::default())
    }
}

/// Marks an upcaster `fn(In) -> Out`.
pub struct Plain<In, Out>(PhantomData<fn(In) -> Out>);

/// Marks an upcaster `fn(In) -> Result<Out, E>`.
pub struct Fallible<In, Out, E>(PhantomData<fn(In) -> Result<Out, E>>);

/// A function named by `#[upcast(from = n, with = f)]`: it takes the payload of version `n`
/// and returns the payload of version `n + 1`. `M` tells the accepted forms apart
/// ([`Plain`], [`Fallible`]); generated code never names it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an upcaster",
    label = "expected `fn(Old) -> New` or `fn(Old) -> Result<New, E>`",
    note = "an upcaster takes one version's payload by value, as `serde_json::Value` or a type that implements `Deserialize`, and returns the next version's: `serde_json::Value`, an event, or a type that implements `UpcastPayload`",
    note = "a fallible upcaster returns `Result<New, E>` with `E: std::error::Error + Send + Sync + 'static`"
)]
pub trait Upcaster<M> {
    /// Runs the upcaster on JSON; `Err` says what failed.
    fn upcast_json(&self, payload: serde_json::Value) -> Result<serde_json::Value, String>;
}

impl<F, In, Out> Upcaster<Plain<In, Out>> for F
where
    F: Fn(In) -> Out,
    In: DeserializeOwned + 'static,
    Out: UpcastPayload,
{
    #[inline]
    fn upcast_json(&self, payload: serde_json::Value) -> Result<serde_json::Value, String> {
        into_json(self(from_json(payload)?))
    }
}

impl<F, In, Out, E> Upcaster<Fallible<In, Out, E>> for F
where
    F: Fn(In) -> Result<Out, E>,
    In: DeserializeOwned + 'static,
    Out: UpcastPayload,
    E: StdError + Send + Sync + 'static,
{
    #[inline]
    fn upcast_json(&self, payload: serde_json::Value) -> Result<serde_json::Value, String> {
        into_json(self(from_json(payload)?).map_err(|e| e.to_string())?)
    }
}

/// Runs the upcaster `f` from version `from` (generated code calls it spanned on the user's
/// `with = …` path, so a function of the wrong form is reported there, once).
#[inline]
pub fn upcast<M, F: Upcaster<M>>(
    f: F,
    from: u32,
    payload: serde_json::Value,
) -> Result<serde_json::Value, DecodeFailure> {
    f.upcast_json(payload)
        .map_err(|message| DecodeFailure::Upcast { from, message })
}

/// The upcaster's input: the JSON itself when it takes `serde_json::Value`.
#[inline]
fn from_json<In: DeserializeOwned + 'static>(payload: serde_json::Value) -> Result<In, String> {
    same_type(payload).or_else(|payload| {
        serde_json::from_value(payload)
            .map_err(|e| format!("the payload does not fit the upcaster's input: {e}"))
    })
}

/// The upcaster's output as JSON: itself when it returns `serde_json::Value`.
#[inline]
fn into_json<Out: Serialize + 'static>(out: Out) -> Result<serde_json::Value, String> {
    same_type(out).or_else(|out| {
        serde_json::to_value(out)
            .map_err(|e| format!("the upcaster's output does not serialize: {e}"))
    })
}

/// `value` as a `U` when `T` is `U` (no copy), or back as it was.
#[inline]
fn same_type<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    if let Some(same) = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
    {
        return Ok(same);
    }
    match slot {
        Some(value) => Err(value),
        None => unreachable!("the value is taken only when `T` is `U`"),
    }
}

/// One event type a generated projection or process manager handles: its stored name and its
/// decoders, made by [`event_info`], which checks `E: Event` once. The generated code takes
/// everything about the type from here, so a handler parameter that is not an event (a command,
/// say) is reported once, on that parameter, instead of at every use.
pub struct EventInfo<E> {
    /// `E::NAME`.
    pub name: &'static str,
    /// For in-memory projections: decodes (or borrows) the event if it is an `E`.
    pub decode: for<'a, 'b> fn(&'b EventRef<'a>) -> Result<Option<Decoded<'a, E>>, DecodeFailure>,
    /// For durable projections: an owned `E` if the stored event is one.
    pub decode_stored: fn(&'static str, &RecordedEvent) -> Result<Option<E>, ProjectionError>,
    /// For process managers: the event (whose name was matched) decoded.
    pub decode_process: fn(&RecordedEvent) -> Result<E, ProjectionFailure>,
}

/// The [`EventInfo`] of event type `E`.
pub const fn event_info<E: Event>() -> EventInfo<E> {
    fn decode_ref<'a, E: Event>(
        event: &EventRef<'a>,
    ) -> Result<Option<Decoded<'a, E>>, DecodeFailure> {
        event.decode::<E>()
    }
    EventInfo {
        name: E::NAME,
        decode: decode_ref::<E>,
        decode_stored: decode_stored::<E>,
        decode_process: crate::process::decode::<E>,
    }
}

#[cfg(test)]
mod tests {
    use super::{Message, earlier_duplicates};

    /// What `earlier_duplicates` must return, the slow way.
    fn by_pairs(names: &[&str]) -> Vec<usize> {
        (0..names.len())
            .map(|i| (0..i).find(|&j| names[j] == names[i]).unwrap_or(i))
            .collect()
    }

    #[test]
    fn earlier_duplicates_names_the_first_earlier_equal_name() {
        const NAMES: &[&str] = &["a", "b", "a", "", "b", "a", "ab", "ba", ""];
        const EARLIER: [usize; 9] = earlier_duplicates::<9, 32>(NAMES);
        assert_eq!(EARLIER, [0, 1, 0, 3, 1, 0, 6, 7, 3]);
        assert_eq!(EARLIER.to_vec(), by_pairs(NAMES));
    }

    #[test]
    fn earlier_duplicates_agrees_with_comparing_every_pair() {
        // 40 names (20 distinct, each twice) in a table of 64 slots, more than half full, so
        // probe sequences run into each other.
        let owned: Vec<String> = (0..40).map(|i| format!("shop.event{}", i % 20)).collect();
        let names: Vec<&str> = owned.iter().map(String::as_str).collect();
        assert_eq!(
            earlier_duplicates::<40, 64>(&names).to_vec(),
            by_pairs(&names)
        );
        let distinct: Vec<&str> = names[..20].to_vec();
        assert_eq!(
            earlier_duplicates::<20, 32>(&distinct).to_vec(),
            (0..20).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_message_is_its_parts_and_a_long_one_is_cut_at_a_character_boundary() {
        const SHORT: Message = Message::new(&["`Door` has ", "two", " events"]);
        assert_eq!(SHORT.as_str(), "`Door` has two events");
        // One byte, then two-byte characters: the capacity (1,024) splits the 512th, which is
        // dropped whole.
        let long = "é".repeat(Message::CAPACITY);
        let cut = Message::new(&["a", &long]);
        assert_eq!(cut.as_str().len(), 1 + 2 * 511);
        assert!(cut.as_str().starts_with("aé") && cut.as_str().ends_with('é'));
    }
}

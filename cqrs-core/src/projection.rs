//! Projections: read models folded from events, and the [`EventRef`] they receive.
//!
//! There are two kinds of projection rather than one. In-memory projections ([`Projection`]) stay
//! inline with the command bus: they read the typed values without decoding, which is what makes 2M
//! commands/s with a projection attached possible, and a restart rebuilds them (quickly: the
//! catch-up path reads 0.5M+ events/s; BENCHMARKS.md, "Read side"). Everything that must survive a
//! crash, or has effects, is a durable projection (`runner::DurableProjection`) run from a
//! checkpoint by `ProjectionRunner`. The macro picks the kind from the handlers (async, or taking
//! `db: &U`, means durable), so the user does not name traits.

use std::any::Any;
use std::ops::Deref;

use crate::envelope::{EventMeta, Payload, RecordedEvent};
use crate::error::{DecodeFailure, ProjectionError, ProjectionFailure};
use crate::event::Event;

/// A read model built from events.
///
/// Implement it with `#[projection(name = "…")]` on an impl block: every `&mut self` method
/// whose second parameter is `&SomeEvent` (optionally followed by `&EventMeta`) handles that
/// event; `#[query]` methods answer queries.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a projection",
    label = "not a projection",
    note = "put `#[projection(name = \"…\")]` on an impl block of `{Self}` that holds its event handlers",
    note = "a `#[projection]` whose handlers are `async` or take `db: &…` is durable: run it with `eventweave_core::runner::ProjectionRunner`, not `CqrsBuilder::projection`"
)]
pub trait Projection: Send + Sync + 'static {
    /// Unique name; checkpoints and start-up checks use it.
    const NAME: &'static str;
    /// Stored names of the events it handles.
    const EVENTS: &'static [&'static str];

    /// Folds one event. Events it does not handle are ignored (`Ok`).
    fn handle(&mut self, event: EventRef<'_>) -> Result<(), ProjectionError>;
}

/// One event as a projection sees it: the envelope, the payload, and (in the process that
/// recorded it) the typed value, so in-process delivery skips decoding.
#[derive(Clone, Copy)]
pub struct EventRef<'a> {
    meta: &'a EventMeta,
    payload: &'a Payload,
    typed: Option<&'a (dyn Any + Send + Sync)>,
}

impl<'a> EventRef<'a> {
    /// A stored event, decoded on demand.
    pub fn stored(event: &'a RecordedEvent) -> Self {
        EventRef {
            meta: &event.meta,
            payload: &event.payload,
            typed: None,
        }
    }

    /// A stored event whose typed value is at hand (`typed` is the inner event, not an enum).
    pub fn with_typed(event: &'a RecordedEvent, typed: &'a (dyn Any + Send + Sync)) -> Self {
        EventRef {
            meta: &event.meta,
            payload: &event.payload,
            typed: Some(typed),
        }
    }

    /// The envelope.
    pub fn meta(&self) -> &'a EventMeta {
        self.meta
    }

    /// The stored name.
    pub fn name(&self) -> &'a str {
        &self.meta.event_name
    }

    /// The serialized payload.
    pub fn payload(&self) -> &'a Payload {
        self.payload
    }

    /// The event as `E` if its stored name is `E::NAME`; `Ok(None)` for other events. A payload
    /// stored at an older schema version is upcast to the current one.
    pub fn decode<E: Event>(&self) -> Result<Option<Decoded<'a, E>>, DecodeFailure> {
        if *self.meta.event_name != *E::NAME {
            return Ok(None);
        }
        if let Some(e) = self.typed.and_then(|t| (t as &dyn Any).downcast_ref::<E>()) {
            return Ok(Some(Decoded::Borrowed(e)));
        }
        crate::event::decode_payload::<E>(self.meta.event_version, self.payload.as_str())
            .map(|e| Some(Decoded::Owned(e)))
    }

    /// A [`ProjectionError`] about this event.
    pub fn error(&self, projection: &'static str, failure: ProjectionFailure) -> ProjectionError {
        ProjectionError {
            projection,
            stream: self.meta.stream.clone(),
            version: self.meta.version,
            position: self.meta.position,
            event_name: self.meta.event_name.to_string(),
            failure,
        }
    }
}

/// An event either borrowed from the process that recorded it or decoded from its payload.
pub enum Decoded<'a, E> {
    /// The recorder's value.
    Borrowed(&'a E),
    /// Decoded from the payload.
    Owned(E),
}

impl<E> Deref for Decoded<'_, E> {
    type Target = E;
    fn deref(&self) -> &E {
        match self {
            Decoded::Borrowed(e) => e,
            Decoded::Owned(e) => e,
        }
    }
}

/// Object-safe view of a [`Projection`], so an application holds projections of many types.
pub trait DynProjection: Send + Sync + 'static {
    /// `Projection::NAME`.
    fn name(&self) -> &'static str;
    /// `Projection::EVENTS`.
    fn events(&self) -> &'static [&'static str];
    /// `Projection::handle`.
    fn handle_dyn(&mut self, event: EventRef<'_>) -> Result<(), ProjectionError>;
    /// For typed access by queries.
    fn as_any(&self) -> &dyn Any;
    /// The Rust type name, for error messages.
    fn type_name(&self) -> &'static str;
}

impl<P: Projection> DynProjection for P {
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn events(&self) -> &'static [&'static str] {
        P::EVENTS
    }
    fn handle_dyn(&mut self, event: EventRef<'_>) -> Result<(), ProjectionError> {
        self.handle(event)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<P>()
    }
}

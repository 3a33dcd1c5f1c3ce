//! Given/when/then fixtures: test an aggregate's decisions, a decision's handlers
//! ([`DecisionFixture`]) or a projection's answers without a store.
//!
//! ```
//! # use eventweave_core::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # #[event(name = "Started")]
//! # pub struct Started;
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # #[event(name = "Added")]
//! # pub struct Added { pub n: u32 }
//! # #[derive(Command)]
//! # #[command(aggregate = Counter)]
//! # pub struct Open { #[id] pub id: u64 }
//! # #[derive(Command, Clone)]
//! # #[command(aggregate = Counter)]
//! # pub struct Add { #[id] pub id: u64, pub n: u32 }
//! # #[derive(Debug, PartialEq)]
//! # pub struct TooBig;
//! # impl std::fmt::Display for TooBig { fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { f.write_str("too big") } }
//! # impl std::error::Error for TooBig {}
//! # #[derive(Default)]
//! # pub struct Counter { total: u32 }
//! # #[aggregate(id = u64)]
//! # impl Counter {
//! #     #[handle] fn open(_: &Open) -> Started { Started }
//! #     #[handle] fn add(&self, cmd: &Add) -> Result<Added, TooBig> {
//! #         if self.total + cmd.n > 10 { Err(TooBig) } else { Ok(Added { n: cmd.n }) }
//! #     }
//! #     #[apply] fn opened(&mut self, _: &Started) {}
//! #     #[apply] fn added(&mut self, e: &Added) { self.total += e.n; }
//! # }
//! use eventweave_core::fixture::AggregateFixture;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! AggregateFixture::<Counter>::new()
//!     .given((Started, Added { n: 7 }))
//!     .when(Add { id: 1, n: 2 })
//!     .await
//!     .expect_events(Added { n: 2 });
//!
//! AggregateFixture::<Counter>::new()
//!     .given((Started, Added { n: 7 }))
//!     .when(Add { id: 1, n: 5 })
//!     .await
//!     .expect_error(TooBig);
//! # }
//! ```

pub use crate::process::{ProcessFixture, ThenProcess};
pub use decision::{DecisionFixture, ThenDecision};

#[path = "fixture/decision.rs"]
mod decision;

use std::collections::HashMap;
use std::fmt::Debug;

use crate::aggregate::{Aggregate, Command, HandlerError, HandlerKind, Handles};
use crate::envelope::{NewEvent, Payload, RecordedEvent, UserMetadata};
use crate::error::{CommandError, ProjectionError};
use crate::event::Event;
use crate::event_of::IntoEvents;
use crate::ids::{Position, StreamId, Timestamp, new_id};
use crate::projection::{EventRef, Projection};
use crate::query::RoutedQuery;
use crate::services::Services;

/// Given past events, when a command arrives, then expect events or an error.
pub struct AggregateFixture<A: Aggregate> {
    state: A,
    version: u64,
    services: Services,
}

impl<A: Aggregate> Default for AggregateFixture<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Aggregate> AggregateFixture<A> {
    /// An aggregate with no events.
    pub fn new() -> Self {
        AggregateFixture {
            state: A::default(),
            version: 0,
            services: Services::new(),
        }
    }

    /// Applies past events: one event, a tuple, a `Vec`, …
    pub fn given(mut self, events: impl IntoEvents<A>) -> Self {
        let mut past = Vec::new();
        events.into_events(&mut past);
        for event in &past {
            self.state.apply(event);
        }
        self.version += past.len() as u64;
        self
    }

    /// Registers a service that handlers take by reference.
    pub fn service<T: Send + Sync + 'static>(mut self, service: T) -> Self {
        self.services.insert(service);
        self
    }

    /// The state the given events produced.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Runs the command's handler against the state, with the same creation/update rules as
    /// `Cqrs::execute`.
    pub async fn when<C>(mut self, cmd: C) -> Then<A, <A as Handles<C>>::Error>
    where
        C: Command<Aggregate = A>,
        A: Handles<C>,
    {
        let stream = A::stream_id(cmd.aggregate_id());
        let result = match (<A as Handles<C>>::KIND, self.version) {
            (HandlerKind::Create, 1..) => Err(CommandError::AlreadyExists {
                stream,
                version: self.version,
            }),
            (HandlerKind::Update, 0) => Err(CommandError::NotFound { stream }),
            _ => match self.state.handle(&cmd, &self.services, self.version).await {
                Ok(events) => Ok(events),
                Err(HandlerError::Rejected(e)) => Err(CommandError::Rejected(e)),
                Err(HandlerError::MissingService(service)) => Err(CommandError::MissingService {
                    command: C::NAME,
                    service,
                }),
            },
        };
        if let Ok(events) = &result {
            for event in events {
                self.state.apply(event);
            }
        }
        Then {
            result,
            state: self.state,
        }
    }
}

/// The outcome of [`AggregateFixture::when`], with assertions.
pub struct Then<A: Aggregate, E> {
    result: Result<Vec<A::Event>, CommandError<E>>,
    state: A,
}

impl<A: Aggregate, E: Debug> Then<A, E> {
    /// Asserts the command produced exactly these events, in order.
    #[track_caller]
    pub fn expect_events(self, expected: impl IntoEvents<A>) -> Self {
        let mut want = Vec::new();
        expected.into_events(&mut want);
        match &self.result {
            Ok(got) => assert_eq!(
                got, &want,
                "the command produced other events than expected"
            ),
            Err(e) => panic!("expected events {want:?}, but the command failed: {e:?}"),
        }
        self
    }

    /// Asserts the command succeeded without producing events.
    #[track_caller]
    pub fn expect_no_events(self) -> Self {
        self.expect_events(())
    }

    /// Asserts the handler rejected the command with this error.
    #[track_caller]
    pub fn expect_error(self, expected: E) -> Self
    where
        E: PartialEq,
    {
        match &self.result {
            Err(CommandError::Rejected(got)) => {
                assert_eq!(
                    got, &expected,
                    "the command was rejected with another error"
                )
            }
            Err(other) => panic!("expected rejection {expected:?}, got {other:?}"),
            Ok(events) => {
                panic!("expected rejection {expected:?}, but the command produced {events:?}")
            }
        }
        self
    }

    /// Asserts the command failed in a way `check` accepts (e.g. `NotFound`, `AlreadyExists`).
    #[track_caller]
    pub fn expect_failure(self, check: impl FnOnce(&CommandError<E>) -> bool) -> Self {
        match &self.result {
            Err(e) => assert!(check(e), "the command failed in an unexpected way: {e:?}"),
            Ok(events) => panic!("expected a failure, but the command produced {events:?}"),
        }
        self
    }

    /// The events, if the command succeeded.
    pub fn events(&self) -> Option<&[A::Event]> {
        self.result.as_deref().ok()
    }

    /// The error, if the command failed.
    pub fn error(&self) -> Option<&CommandError<E>> {
        self.result.as_ref().err()
    }

    /// The state after applying the produced events.
    pub fn state(&self) -> &A {
        &self.state
    }
}

/// Given events on streams, then expect a projection's query answers.
///
/// Events go through the same path as events read from a store (serialized, then decoded by
/// the projection), with envelopes numbered as a store would number them.
pub struct ProjectionFixture<P: Projection> {
    projection: P,
    position: Position,
    versions: HashMap<StreamId, u64>,
    error: Option<ProjectionError>,
}

impl<P: Projection> ProjectionFixture<P> {
    /// Starts from `projection`.
    pub fn new(projection: P) -> Self {
        ProjectionFixture {
            projection,
            position: Position::ZERO,
            versions: HashMap::new(),
            error: None,
        }
    }

    /// Delivers `event` as the next event of `stream`. After a failure, events are ignored
    /// (as a running projection stops) and [`ProjectionFixture::error`] reports it.
    pub fn given<E: Event>(self, stream: impl Into<StreamId>, event: E) -> Self {
        let payload = serde_json::to_string(&event)
            .unwrap_or_else(|e| panic!("event `{}` does not serialize: {e}", E::NAME));
        self.given_raw(
            stream.into(),
            E::NAME,
            E::VERSION,
            Payload::from_json(payload),
        )
    }

    /// Delivers a stored row as is (for tests of bad payloads or old versions).
    pub fn given_raw(
        mut self,
        stream: StreamId,
        name: &str,
        version: u32,
        payload: Payload,
    ) -> Self {
        if self.error.is_some() {
            return self;
        }
        let stream_version = self.versions.entry(stream.clone()).or_insert(0);
        *stream_version += 1;
        self.position = self.position.next();
        let recorded: RecordedEvent = NewEvent {
            event_id: new_id(),
            event_name: name.to_owned().into(),
            event_version: version,
            payload,
            correlation_id: None,
            causation_id: None,
            metadata: UserMetadata::empty(),
            tags: crate::Tags::empty(),
        }
        .record(stream, *stream_version, self.position, Timestamp::now());
        if let Err(e) = self.projection.handle(EventRef::stored(&recorded)) {
            self.error = Some(e);
        }
        self
    }

    /// Asks a query of the projection.
    ///
    /// # Panics
    ///
    /// If a handler failed on one of the given events (the projection stopped there, as it
    /// would in an application): the panic message names the event and the failure. Check
    /// [`ProjectionFixture::error`] first to assert a failure instead.
    #[track_caller]
    pub fn query<Q: RoutedQuery<Projection = P>>(&self, query: Q) -> Q::Response {
        if let Some(e) = &self.error {
            panic!("the projection stopped: {e}");
        }
        Q::answer(&self.projection, &query)
    }

    /// Asserts a query's answer. Panics like [`ProjectionFixture::query`] after a handler
    /// failure.
    #[track_caller]
    pub fn expect_query<Q>(self, query: Q, expected: Q::Response) -> Self
    where
        Q: RoutedQuery<Projection = P>,
        Q::Response: PartialEq + Debug,
    {
        assert_eq!(self.query(query), expected, "unexpected query answer");
        self
    }

    /// The projection's state.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Why the projection stopped, if it did.
    pub fn error(&self) -> Option<&ProjectionError> {
        self.error.as_ref()
    }
}

//! A tiny counter domain written by hand against the traits (no macros): what the macros
//! generate, spelled out. The conformance suite drives stores through it, and the runtime's own
//! tests use it so they do not depend on `eventweave-derive`.
//!
//! Rules: `Open` creates a counter; `Add { n }` adds `n`, except that `n == 0` is rejected with
//! [`CounterError::Zero`], `n == 13` panics in the handler and `n == 666` panics in `apply`;
//! `AddLimited` needs a [`Limit`] service. [`Totals`] projects totals per stream.

use std::any::Any;
use std::fmt;

use crate::{
    Aggregate, Command, CommandBus, CommandContext, CommandOutcome, CommandSet, DecodeFailure,
    DispatchError, Event, EventRef, EventSet, HandlerError, HandlerKind, Handles, IntoEvents,
    Projection, ProjectionError, ProjectionFailure, Query, RoutedQuery, Services,
};
use serde::{Deserialize, Serialize};

/// A counter was opened.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened;
impl Event for Opened {
    const NAME: &'static str = "counter.opened";
    const VERSION: u32 = 1;
}

/// `n` was added.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Added {
    /// The amount.
    pub n: u64,
}
impl Event for Added {
    const NAME: &'static str = "counter.added";
    const VERSION: u32 = 1;
}

/// The counter's event enum.
#[derive(Clone, Debug, PartialEq)]
pub enum CounterEvent {
    /// See [`Opened`].
    Opened(Opened),
    /// See [`Added`].
    Added(Added),
}

impl EventSet for CounterEvent {
    const NAMES: &'static [&'static str] = &[Opened::NAME, Added::NAME];
    fn event_name(&self) -> &'static str {
        match self {
            CounterEvent::Opened(_) => Opened::NAME,
            CounterEvent::Added(_) => Added::NAME,
        }
    }
    fn event_version(&self) -> u32 {
        1
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            CounterEvent::Opened(e) => serde_json::to_writer(out, e),
            CounterEvent::Added(e) => serde_json::to_writer(out, e),
        }
    }
    fn decode(name: &str, version: u32, payload: &str) -> Result<Self, DecodeFailure> {
        if name == Opened::NAME {
            crate::__private::decode_event(version, payload).map(CounterEvent::Opened)
        } else if name == Added::NAME {
            crate::__private::decode_event(version, payload).map(CounterEvent::Added)
        } else {
            Err(DecodeFailure::UnknownEvent)
        }
    }
    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        match self {
            CounterEvent::Opened(e) => e,
            CounterEvent::Added(e) => e,
        }
    }
}

impl IntoEvents<Counter> for Opened {
    fn into_events(self, out: &mut Vec<CounterEvent>) {
        out.push(CounterEvent::Opened(self));
    }
}
impl IntoEvents<Counter> for Added {
    fn into_events(self, out: &mut Vec<CounterEvent>) {
        out.push(CounterEvent::Added(self));
    }
}

/// The aggregate.
#[derive(Default, Debug)]
pub struct Counter {
    /// Whether `Opened` was applied.
    pub open: bool,
    /// Sum of the `Added` events.
    pub total: u64,
}

impl Aggregate for Counter {
    type Id = u64;
    type Event = CounterEvent;
    type Command = CounterCommand;
    const NAME: &'static str = "counter";
    fn apply(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Opened(_) => self.open = true,
            CounterEvent::Added(e) => {
                assert!(e.n != 666, "apply refuses 666");
                self.total += e.n;
            }
        }
    }
}

/// Creates counter `id`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Open {
    /// The counter.
    pub id: u64,
}
impl Command for Open {
    type Aggregate = Counter;
    const NAME: &'static str = "Open";
    fn aggregate_id(&self) -> &u64 {
        &self.id
    }
}

/// Adds `n` to counter `id`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Add {
    /// The counter.
    pub id: u64,
    /// The amount.
    pub n: u64,
}
impl Command for Add {
    type Aggregate = Counter;
    const NAME: &'static str = "Add";
    fn aggregate_id(&self) -> &u64 {
        &self.id
    }
}

/// Adds `n` if the total stays within the [`Limit`] service.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddLimited {
    /// The counter.
    pub id: u64,
    /// The amount.
    pub n: u64,
}
impl Command for AddLimited {
    type Aggregate = Counter;
    const NAME: &'static str = "AddLimited";
    fn aggregate_id(&self) -> &u64 {
        &self.id
    }
}

/// A service: the largest total `AddLimited` accepts.
pub struct Limit(pub u64);

/// Rejections.
#[derive(Debug, PartialEq)]
pub enum CounterError {
    /// `Add { n: 0 }`.
    Zero,
    /// `AddLimited` beyond the limit.
    OverLimit,
}
impl fmt::Display for CounterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for CounterError {}

impl Handles<Open> for Counter {
    type Error = std::convert::Infallible;
    const KIND: HandlerKind = HandlerKind::Create;
    fn handle(
        &self,
        _: &Open,
        _: &Services,
        _: u64,
    ) -> impl Future<Output = Result<Vec<CounterEvent>, HandlerError<Self::Error>>> + Send {
        std::future::ready(Ok(vec![CounterEvent::Opened(Opened)]))
    }
}

impl Handles<Add> for Counter {
    type Error = CounterError;
    const KIND: HandlerKind = HandlerKind::Update;
    fn handle(
        &self,
        cmd: &Add,
        _: &Services,
        _: u64,
    ) -> impl Future<Output = Result<Vec<CounterEvent>, HandlerError<Self::Error>>> + Send {
        let n = cmd.n;
        async move {
            match n {
                0 => Err(HandlerError::Rejected(CounterError::Zero)),
                13 => panic!("handler refuses 13"),
                n => Ok(vec![CounterEvent::Added(Added { n })]),
            }
        }
    }
}

impl Handles<AddLimited> for Counter {
    type Error = CounterError;
    const KIND: HandlerKind = HandlerKind::Update;
    fn handle(
        &self,
        cmd: &AddLimited,
        services: &Services,
        _: u64,
    ) -> impl Future<Output = Result<Vec<CounterEvent>, HandlerError<Self::Error>>> + Send {
        let result = (|| {
            let limit = crate::__private::service::<Limit, CounterError>(services)?;
            if self.total + cmd.n > limit.0 {
                return Err(HandlerError::Rejected(CounterError::OverLimit));
            }
            Ok(vec![CounterEvent::Added(Added { n: cmd.n })])
        })();
        std::future::ready(result)
    }
}

/// The counter's command enum.
pub enum CounterCommand {
    /// See [`Open`].
    Open(Open),
    /// See [`Add`].
    Add(Add),
    /// See [`AddLimited`].
    AddLimited(AddLimited),
}

impl CommandSet for CounterCommand {
    type Aggregate = Counter;
    const NAMES: &'static [&'static str] = &[Open::NAME, Add::NAME, AddLimited::NAME];
    fn from_json(name: &str, body: &str) -> Result<Self, DispatchError> {
        let bad = |command: &'static str| {
            move |e: serde_json::Error| DispatchError::InvalidBody {
                command,
                message: e.to_string(),
            }
        };
        match name {
            "Open" => serde_json::from_str(body)
                .map(CounterCommand::Open)
                .map_err(bad("Open")),
            "Add" => serde_json::from_str(body)
                .map(CounterCommand::Add)
                .map_err(bad("Add")),
            "AddLimited" => serde_json::from_str(body)
                .map(CounterCommand::AddLimited)
                .map_err(bad("AddLimited")),
            _ => Err(DispatchError::UnknownCommand {
                name: name.to_owned(),
                known: Self::NAMES.to_vec(),
            }),
        }
    }
    async fn execute_on<B: CommandBus>(
        self,
        app: &B,
        context: CommandContext,
    ) -> Result<CommandOutcome, DispatchError> {
        match self {
            CounterCommand::Open(c) => app
                .execute_command(c, context)
                .await
                .map_err(crate::__private::box_command_error),
            CounterCommand::Add(c) => app
                .execute_command(c, context)
                .await
                .map_err(crate::__private::box_command_error),
            CounterCommand::AddLimited(c) => app
                .execute_command(c, context)
                .await
                .map_err(crate::__private::box_command_error),
        }
    }
}

/// Totals per stream, and the global positions it saw (to check ordering).
#[derive(Default)]
pub struct Totals {
    /// Sum of `Added` per stream.
    pub by_stream: std::collections::HashMap<String, u64>,
    /// Global positions of the `Added` events, in the order seen.
    pub positions: Vec<u64>,
}

impl Projection for Totals {
    const NAME: &'static str = "totals";
    const EVENTS: &'static [&'static str] = &[Added::NAME];
    fn handle(&mut self, event: EventRef<'_>) -> Result<(), ProjectionError> {
        match event.decode::<Added>() {
            Ok(Some(e)) => {
                *self
                    .by_stream
                    .entry(event.meta().stream.to_string())
                    .or_default() += e.n;
                self.positions.push(event.meta().position.0);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(f) => Err(event.error(Self::NAME, ProjectionFailure::Decode(f))),
        }
    }
}

/// The total of one stream.
pub struct TotalOf(pub String);
impl Query for TotalOf {
    type Response = u64;
}
impl RoutedQuery for TotalOf {
    type Projection = Totals;
    fn answer(p: &Totals, q: &TotalOf) -> u64 {
        p.by_stream.get(&q.0).copied().unwrap_or(0)
    }
}

/// The positions [`Totals`] saw.
pub struct SeenPositions;
impl Query for SeenPositions {
    type Response = Vec<u64>;
}
impl RoutedQuery for SeenPositions {
    type Projection = Totals;
    fn answer(p: &Totals, _: &SeenPositions) -> Vec<u64> {
        p.positions.clone()
    }
}

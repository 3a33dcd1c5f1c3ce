//! The application entry point: [`Cqrs`] runs commands against aggregates in a store, feeds
//! projections and answers queries.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

mod decide;
mod earlier;
mod futures;

pub use futures::{CommandFuture, QueryFuture};

use crate::aggregate::{Aggregate, Command, CommandBus, HandlerError, HandlerKind, Handles};
use crate::cache::{Caches, Hydrated};
use crate::context::{CAUSED_BY_EVENT, CommandContext, CommandOutcome};
use crate::envelope::{NewEvent, Payload};
use crate::error::{BuildError, CommandError, DecodeError, StoreError};
use crate::event::EventSet;
use crate::ids::derive_id;
use crate::ids::{Position, StreamId, Timestamp, new_id_at, unix_millis};
use crate::progress::{Progress, ProgressFn};
use crate::projection::{DynProjection, Projection};
use crate::query::RoutedQuery;
use crate::read_side::{ProjectionStatus, ReadSide};
use crate::registry;
use crate::services::Services;
use crate::snapshot::{self, Snapshot, SnapshotPolicy, Warning};
use crate::store::{EventStore, ExpectedVersion};
use crate::tag::{Tag, Tags};
use crate::telemetry::{CommandSpan, CommandTelemetry, LoadTelemetry};
use crate::unwind::{self, CatchUnwind};
use earlier::EarlierRun;

/// Events read per round trip when an aggregate is loaded.
const LOAD_BATCH: usize = 4096;

/// The hook that receives [`Warning`]s.
type WarningFn = Arc<dyn Fn(&Warning) + Send + Sync>;

/// A command bus, query bus and projection host over one event store.
///
/// Cheap to clone: clones share the store, caches and projections.
///
/// ```
/// # use eventweave_core::{Cqrs, MemoryStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = Cqrs::builder(MemoryStore::new()).max_retries(3).build().await.unwrap();
/// assert_eq!(app.position(), eventweave_core::Position::ZERO);
/// # }
/// ```
pub struct Cqrs<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Cqrs<S> {
    fn clone(&self) -> Self {
        Cqrs {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// The bus the generated command enums dispatch through (untyped dispatch, process managers).
impl<S: EventStore> CommandBus for Cqrs<S> {
    fn execute_command<C>(
        &self,
        cmd: C,
        context: CommandContext,
    ) -> impl Future<
        Output = Result<CommandOutcome, CommandError<<C::Aggregate as Handles<C>>::Error>>,
    > + Send
    where
        C: Command,
        C::Aggregate: Handles<C>,
    {
        self.execute_aggregate(cmd, context)
    }
}

/// A command that [`Cqrs::execute`] runs: a command of an aggregate that handles it
/// ([`Handles`]), or of a decision that decides it
/// ([`Decides`](crate::Decides), implemented by `#[derive(Command)]` for
/// `#[command(decision = …)]`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be executed: no aggregate or decision handles it",
    label = "no handler for `{Self}`",
    note = "add `#[handle]` for `{Self}` to the `#[aggregate]` or `#[decision]` impl its `#[command(…)]` names"
)]
pub trait Execute: Send + Sync + Sized + 'static {
    /// The handler's business error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Runs the command (what [`Cqrs::execute_with`] calls).
    #[doc(hidden)]
    fn __execute<S: EventStore>(
        self,
        app: &Cqrs<S>,
        context: CommandContext,
    ) -> CommandFuture<'_, Self::Error>;
}

impl<C> Execute for C
where
    C: Command,
    C::Aggregate: Handles<C>,
{
    type Error = <C::Aggregate as Handles<C>>::Error;

    #[inline]
    fn __execute<S: EventStore>(
        self,
        app: &Cqrs<S>,
        context: CommandContext,
    ) -> CommandFuture<'_, Self::Error> {
        app.execute_aggregate(self, context)
    }
}

/// Shows the store's type and where the read side stands (not the caches or services), for any
/// store, so that `build().await.unwrap_err()` and `{:?}` work whatever the store.
impl<S> std::fmt::Debug for Cqrs<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Cqrs")
            .field("store", &std::any::type_name::<S>())
            .field("position", &inner.read_side.applied())
            .field("projections", &inner.read_side.status().len())
            .field("max_retries", &inner.max_retries)
            .field("query_timeout", &inner.query_timeout)
            .finish_non_exhaustive()
    }
}

struct Inner<S> {
    store: S,
    services: Services,
    caches: Caches,
    read_side: ReadSide,
    max_retries: u32,
    query_timeout: Duration,
    on_warning: WarningFn,
}

/// Configures a [`Cqrs`] application. Made by [`Cqrs::builder`].
pub struct CqrsBuilder<S> {
    store: S,
    services: Services,
    projections: Vec<Box<dyn DynProjection>>,
    max_retries: u32,
    cache_capacity: usize,
    turns: bool,
    coupled: bool,
    query_timeout: Duration,
    discover: bool,
    progress: Option<ProgressFn>,
    on_warning: WarningFn,
}

impl<S: EventStore> CqrsBuilder<S> {
    /// Adds a projection; it receives every event in global order from position 1.
    pub fn projection<P: Projection>(mut self, projection: P) -> Self {
        self.projections.push(Box::new(projection));
        self
    }

    /// Adds every projection registered with `#[projection]` (through `inventory`) that this
    /// builder does not already have, each as `Default::default()`.
    pub fn discover_projections(mut self) -> Self {
        self.discover = true;
        self
    }

    /// Registers a service that handlers take by reference (`limits: &Limits`).
    pub fn service<T: Send + Sync + 'static>(mut self, service: T) -> Self {
        self.services.insert(service);
        self
    }

    /// How many times a command is retried on fresh state after a concurrent write to its
    /// stream (default 5). `0` fails at the first conflict.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// How many hydrated aggregates of each type stay in memory (default 10 000). `0` disables
    /// the cache, so every command replays its stream.
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// Lets commands of this process on one aggregate id run side by side (each replaying the
    /// stream when another holds its cached state, the later ones failing their append and
    /// retrying), as before commands took turns per id. Only for the benchmark that measures
    /// the difference (`cqrs-bench --contention`); not part of the API.
    #[doc(hidden)]
    pub fn __without_turns(mut self) -> Self {
        self.turns = false;
        self
    }

    /// Runs every in-memory projection and query under one lock, as before each projection
    /// had its own, so one slow projection holds up every command and query. Only for the
    /// benchmark that measures the difference (`cqrs-bench --contention`); not part of the API.
    #[doc(hidden)]
    pub fn __coupled_projections(mut self) -> Self {
        self.coupled = true;
        self
    }

    /// How long `query_after` waits for a projection to reach a position (default 5 s).
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// Reports the progress of the start-up catch-up of the in-memory projections (once per
    /// batch of stored events, about once a second while it waits for positions that are not
    /// readable yet, and once at the end, with `done == total`), e.g. to draw a progress bar.
    pub fn on_progress(mut self, report: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(report));
        self
    }

    /// Receives what goes wrong without failing a command or a load: a snapshot that does not
    /// decode (discarded, the aggregate rebuilt from its events) or that could not be saved.
    /// By default each warning is printed to stderr.
    pub fn on_warning(mut self, report: impl Fn(&Warning) + Send + Sync + 'static) -> Self {
        self.on_warning = Arc::new(report);
        self
    }

    /// Checks the wiring (duplicate event or projection names anywhere in the program), then
    /// catches every projection up with the events already stored.
    ///
    /// It returns once the projections have applied every event up to the store's head as read
    /// when the catch-up began, not at the first read that comes back empty or short: on
    /// PostgreSQL a position drawn by a transaction that is still running is not readable yet,
    /// with events beyond it. Such a position keeps `build` waiting until its transaction
    /// commits or ends (a transaction idle for long is ended by the server's
    /// `idle_in_transaction_session_timeout`, if set); meanwhile
    /// [`on_progress`](CqrsBuilder::on_progress) hears about it about once a second. A store
    /// error ends the build with `BuildError::Store`.
    pub async fn build(mut self) -> Result<Cqrs<S>, BuildError> {
        registry::check()?;
        if self.discover {
            for registration in registry::projections() {
                let known = self
                    .projections
                    .iter()
                    .any(|p| p.name() == registration.name);
                if let (false, Some(create)) = (known, registration.create) {
                    self.projections.push(create());
                }
            }
        }
        let mut names: Vec<(&'static str, &'static str)> = self
            .projections
            .iter()
            .map(|p| (p.name(), p.type_name()))
            .collect();
        names.sort();
        if let Some(pair) = names.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(BuildError::DuplicateProjection {
                name: pair[0].0,
                types: [pair[0].1, pair[1].1],
            });
        }
        let app = Cqrs {
            inner: Arc::new(Inner {
                read_side: ReadSide::new(self.projections, self.coupled),
                store: self.store,
                services: self.services,
                caches: Caches::new(self.cache_capacity, self.turns),
                max_retries: self.max_retries,
                query_timeout: self.query_timeout,
                on_warning: self.on_warning,
            }),
        };
        app.inner
            .read_side
            .catch_up_reporting(&app.inner.store, self.progress.as_ref())
            .await
            .map_err(BuildError::Store)?;
        Ok(app)
    }
}

impl<S: EventStore> Cqrs<S> {
    /// Starts configuring an application over `store`.
    pub fn builder(store: S) -> CqrsBuilder<S> {
        CqrsBuilder {
            store,
            services: Services::new(),
            projections: Vec::new(),
            max_retries: 5,
            cache_capacity: 10_000,
            turns: true,
            coupled: false,
            query_timeout: Duration::from_secs(5),
            discover: false,
            progress: None,
            on_warning: Arc::new(snapshot::print_warning),
        }
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The registered services.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    /// Runs `cmd` as a new business transaction. See [`Cqrs::execute_with`].
    #[inline]
    pub fn execute<C: Execute>(&self, cmd: C) -> CommandFuture<'_, C::Error> {
        self.execute_with(cmd, CommandContext::default())
    }

    /// Runs `cmd`.
    ///
    /// A command of an aggregate: loads the aggregate (from the cache, or by replaying its
    /// stream), asks the handler, applies and appends the events with the version it read, and
    /// hands them to the projections. On a concurrent write it reloads and retries, up to
    /// `max_retries` times.
    ///
    /// A command of a decision: reads the events of the decision's states (by type and tag),
    /// folds them, asks the handler, and appends its events under the condition that no event
    /// matching the read was written since; when one was, it reads and decides again, up to
    /// `max_retries` times (see [`Decides`](crate::Decides)).
    ///
    /// Commands of this process on one aggregate id run one after the other, in the order they
    /// were first polled: a command waits for the one in flight on its id and starts from the
    /// state that one left, so concurrent commands on a hot aggregate neither replay its stream
    /// nor conflict with each other. A handler must therefore not await another command on its
    /// own aggregate id (it would wait for itself).
    ///
    /// A rejection, a panic, or a failed append leaves the store and the cache as they were.
    /// Dropping the future before it completes gives up its turn (and its place in the queue).
    #[inline]
    pub fn execute_with<C: Execute>(
        &self,
        cmd: C,
        context: CommandContext,
    ) -> CommandFuture<'_, C::Error> {
        cmd.__execute(self, context)
    }

    /// [`Cqrs::execute_with`] for a command of an aggregate.
    fn execute_aggregate<C>(
        &self,
        cmd: C,
        context: CommandContext,
    ) -> CommandFuture<'_, <C::Aggregate as Handles<C>>::Error>
    where
        C: Command,
        C::Aggregate: Handles<C>,
    {
        let CommandContext {
            command_id: given,
            correlation_id,
            caused_by_event,
            metadata,
            trace,
        } = context;
        // One clock reading stamps the command id and the ids of the events it records.
        let millis = unix_millis();
        let command_id = given.unwrap_or_else(|| new_id_at(millis));
        let correlation_id = correlation_id.unwrap_or(command_id);
        let telemetry = CommandTelemetry::start(
            <C::Aggregate as Aggregate>::NAME,
            C::NAME,
            command_id,
            correlation_id,
            caused_by_event,
            trace.as_ref(),
        );
        // The events' metadata is made here, not in the future, which then holds one pointer of
        // it instead of the whole context. A trace handed on is the command span's, as when
        // the future (which enters it on each poll) made it.
        let metadata = {
            let _entered = telemetry.as_ref().map(|traced| traced.0.enter());
            event_metadata(metadata, caused_by_event, trace.as_ref())
        };
        let start = CommandStart {
            millis,
            command_id,
            correlation_id,
            derive_from: given,
            metadata,
        };
        CommandFuture::new(self.run_command(cmd, start), telemetry)
    }

    /// The size in bytes of the future that runs `cmd`, which every command builds and moves
    /// into its box: a test keeps it under glibc's thread-cache limit. Not part of the API.
    #[doc(hidden)]
    pub fn __command_future_size<C>(&self, cmd: C) -> usize
    where
        C: Command,
        C::Aggregate: Handles<C>,
    {
        let start = CommandStart {
            millis: 0,
            command_id: crate::Uuid::nil(),
            correlation_id: crate::Uuid::nil(),
            derive_from: None,
            metadata: crate::UserMetadata::empty(),
        };
        std::mem::size_of_val(&self.run_command(cmd, start))
    }

    /// The command bus itself, behind [`Cqrs::execute_with`]: loads, decides, applies, appends
    /// (retrying on conflicts) and delivers one command.
    ///
    /// Every command builds this future and moves it into a box, so it is kept small: an
    /// `async` block over the arguments (an `async fn` keeps a second copy of them), cold paths
    /// boxed, and locals that are borrowed (which the future keeps until their scope ends)
    /// scoped to one attempt.
    #[allow(clippy::manual_async_fn)] // an `async fn` would store its arguments twice
    fn run_command<C>(
        &self,
        cmd: C,
        start: CommandStart,
    ) -> impl Future<
        Output = Result<CommandOutcome, CommandError<<C::Aggregate as Handles<C>>::Error>>,
    > + Send
    + '_
    where
        C: Command,
        C::Aggregate: Handles<C>,
    {
        async move {
            let inner = &*self.inner;
            let CommandStart {
                millis,
                command_id,
                correlation_id,
                derive_from,
                ..
            } = start;
            let metadata = &start.metadata;
            // A command id seen before: answer with that run's outcome, or say the command
            // differs. (Cold paths are boxed: the command's future stays small.)
            if let Some(base) = derive_from
                && let Some(answer) =
                    Box::pin(self.answer_earlier_run(&cmd, base, correlation_id, metadata)).await
            {
                return answer;
            }
            let cache = inner.caches.of::<C::Aggregate>();
            let id = cmd.aggregate_id();
            // This process's commands on one id run one at a time, in arrival order (`cache.rs`).
            let (turn, found) = match cache.try_turn(id) {
                Ok(began) => began,
                Err(queued) => queued.await,
            };
            let creates = <C::Aggregate as Handles<C>>::KIND == HandlerKind::Create;
            let mut attempts = 0;
            // The state of the next attempt; `None` reloads it.
            let mut next = found;
            loop {
                attempts += 1;
                let Hydrated {
                    mut state,
                    version,
                    stream,
                    id_tags,
                } = match next {
                    Some(hydrated) => hydrated,
                    // A creation command needs an empty stream, and the append's `NoStream`
                    // check proves it is one: no read round trip before it (the usual case is a
                    // new id).
                    None if creates => {
                        Hydrated::new(C::Aggregate::default(), 0, C::Aggregate::stream_id(id))
                    }
                    None => Box::pin(self.hydrate::<C::Aggregate, _>(id)).await?,
                };
                // Made once per cached aggregate, then kept with it.
                let id_tags = match id_tags {
                    Some(tags) => tags,
                    None => tags_of_id::<C::Aggregate, _>(id)?,
                };
                CommandSpan::deciding(attempts, &stream, version);
                match (<C::Aggregate as Handles<C>>::KIND, version) {
                    (HandlerKind::Create, 1..) => {
                        let err = CommandError::AlreadyExists {
                            stream: stream.clone(),
                            version,
                        };
                        turn.put(Hydrated {
                            state,
                            version,
                            stream,
                            id_tags: Some(id_tags),
                        });
                        return Err(err);
                    }
                    (HandlerKind::Update, 0) => return Err(CommandError::NotFound { stream }),
                    _ => {}
                }
                let decided = CatchUnwind(pin!(state.handle(&cmd, &inner.services, version))).await;
                let events = match decided {
                    Ok(Ok(events)) => events,
                    Ok(Err(rejection)) => {
                        turn.put(Hydrated {
                            state,
                            version,
                            stream,
                            id_tags: Some(id_tags),
                        });
                        return Err(match rejection {
                            HandlerError::Rejected(e) => CommandError::Rejected(e),
                            HandlerError::MissingService(service) => CommandError::MissingService {
                                command: C::NAME,
                                service,
                            },
                        });
                    }
                    Err(message) => {
                        return Err(CommandError::Panicked {
                            command: C::NAME,
                            stream,
                            message,
                        });
                    }
                };
                if events.is_empty() {
                    turn.put(Hydrated {
                        state,
                        version,
                        stream: stream.clone(),
                        id_tags: Some(id_tags),
                    });
                    return Ok(CommandOutcome {
                        command_id,
                        correlation_id,
                        stream,
                        version,
                        attempts,
                        events: Vec::new(),
                    });
                }
                // Apply before appending: an `#[apply]` that panics then appends nothing.
                if let Err(message) = unwind::catch(|| events.iter().for_each(|e| state.apply(e))) {
                    return Err(CommandError::Panicked {
                        command: C::NAME,
                        stream,
                        message,
                    });
                }
                let ids = EventIds {
                    millis,
                    derive_from,
                };
                let new_events =
                    encode(&events, ids, command_id, correlation_id, metadata, &id_tags)?;
                let expected = match version {
                    0 => ExpectedVersion::NoStream,
                    v => ExpectedVersion::Exact(v),
                };
                let writing = inner.read_side.start_write();
                let appended = inner.store.append(&stream, expected, new_events).await;
                let recorded = match appended {
                    Ok(recorded) => recorded,
                    Err(error) => {
                        // Boxed while the write ends: an error is large, and rare.
                        let error = Box::new(error);
                        writing.finish(&inner.store).await;
                        match *error {
                            // A creation met an existing stream: the user's mistake, not a race.
                            StoreError::Conflict { actual, .. } if creates => {
                                return Err(CommandError::AlreadyExists {
                                    stream,
                                    version: actual,
                                });
                            }
                            // Another process wrote: drop the stale state, reload it (still
                            // holding the turn) and decide again.
                            StoreError::Conflict { actual, .. } => {
                                let retrying = attempts <= inner.max_retries;
                                let aggregate = <C::Aggregate as Aggregate>::NAME;
                                CommandSpan::conflict(
                                    aggregate, &stream, version, actual, attempts, retrying,
                                );
                                if retrying {
                                    next = None;
                                    continue;
                                }
                                return Err(CommandError::Conflict { stream, attempts });
                            }
                            // Another process ran this command id meanwhile, with another command.
                            StoreError::IdempotencyConflict { mismatch, .. } => {
                                return Err(CommandError::CommandIdReused {
                                    command_id,
                                    stream,
                                    mismatch,
                                });
                            }
                            other => return Err(other.into()),
                        }
                    }
                };
                // The store recognised events of an earlier run of this command (same derived
                // ids): they were decided on an older state, so the state just computed has them
                // twice. It is dropped (not cached); the next command reloads.
                if recorded.first().is_some_and(|e| e.meta.version <= version) {
                    writing.finish(&inner.store).await;
                    return Ok(CommandOutcome {
                        command_id,
                        correlation_id,
                        stream,
                        version: recorded.last().map_or(version, |e| e.meta.version),
                        attempts,
                        events: recorded,
                    });
                }
                let before = version;
                let version = recorded.last().map_or(version, |e| e.meta.version);
                // Taken before the state goes back to the cache; saved after the append (a
                // failed save is a warning: the command succeeded). Boxed: rare, and large.
                let snapshot = match <C::Aggregate as Aggregate>::SNAPSHOTS {
                    Some(policy) if policy.crossed(before, version) => {
                        Some(Box::new(take_snapshot(&state, policy, version)))
                    }
                    _ => None,
                };
                turn.put(Hydrated {
                    state,
                    version,
                    stream: stream.clone(),
                    id_tags: Some(id_tags),
                });
                if let Some(rest) = inner.read_side.deliver(&inner.store, &recorded, &events) {
                    rest.await;
                }
                writing.finish(&inner.store).await;
                if let Some(taken) = snapshot {
                    Box::pin(self.save_snapshot(&stream, version, *taken)).await;
                }
                return Ok(CommandOutcome {
                    command_id,
                    correlation_id,
                    stream,
                    version,
                    attempts,
                    events: recorded,
                });
            }
        }
    }

    /// When `base`, the command id given, recorded events already: that run's outcome, or
    /// why this command differs from it (see `earlier.rs`).
    async fn answer_earlier_run<C>(
        &self,
        cmd: &C,
        base: crate::Uuid,
        correlation_id: crate::Uuid,
        metadata: &crate::UserMetadata,
    ) -> Option<Result<CommandOutcome, CommandError<<C::Aggregate as Handles<C>>::Error>>>
    where
        C: Command,
        C::Aggregate: Handles<C>,
    {
        let first = match self
            .inner
            .store
            .read_event(derive_id(base, "event", 0))
            .await
        {
            Ok(Some(first)) => first,
            Ok(None) => return None,
            Err(error) => return Some(Err(error.into())),
        };
        CommandSpan::earlier_run(base);
        let earlier = EarlierRun {
            command_id: base,
            correlation_id,
            metadata,
            first,
        };
        Some(self.earlier_run(cmd, earlier).await)
    }

    /// Replays aggregate `id` from the store, bypassing the cache: its state and version
    /// (`0` when the stream is empty). An aggregate with a snapshot policy starts from its
    /// latest usable snapshot and reads only the events after it.
    pub async fn load<A: Aggregate>(
        &self,
        id: &A::Id,
    ) -> Result<(A, u64), CommandError<std::convert::Infallible>> {
        let hydrated = self.hydrate::<A, _>(id).await?;
        Ok((hydrated.state, hydrated.version))
    }

    async fn hydrate<A: Aggregate, E>(&self, id: &A::Id) -> Result<Hydrated<A>, CommandError<E>> {
        self.hydrate_until(id, u64::MAX).await
    }

    /// The aggregate as it was at stream version `until` (or its latest version, if lower).
    async fn hydrate_until<A: Aggregate, E>(
        &self,
        id: &A::Id,
        until: u64,
    ) -> Result<Hydrated<A>, CommandError<E>> {
        let stream = A::stream_id(id);
        let telemetry = LoadTelemetry::start(A::NAME, &stream);
        telemetry
            .instrument(self.replay(stream, until, &telemetry))
            .await
    }

    /// Replays `stream` up to version `until` (from a snapshot, if the aggregate takes them).
    async fn replay<A: Aggregate, E>(
        &self,
        stream: StreamId,
        until: u64,
        telemetry: &LoadTelemetry,
    ) -> Result<Hydrated<A>, CommandError<E>> {
        let (mut state, mut version) = match A::SNAPSHOTS {
            Some(policy) => match self.start_from_snapshot::<A>(&stream, policy).await {
                (state, version) if version <= until => (state, version),
                // A snapshot past `until` holds events after it: replay from the start.
                _ => (A::default(), 0),
            },
            None => (A::default(), 0),
        };
        let start = version;
        if start > 0 {
            telemetry.snapshot_used(start);
        }
        loop {
            let limit = LOAD_BATCH.min(usize::try_from(until - version).unwrap_or(usize::MAX));
            let batch = if limit == 0 {
                Vec::new()
            } else {
                self.inner
                    .store
                    .read_stream(&stream, version + 1, limit)
                    .await?
            };
            for stored in &batch {
                let meta = &stored.meta;
                let event = A::Event::decode(
                    &meta.event_name,
                    meta.event_version,
                    stored.payload.as_str(),
                )
                .map_err(|failure| {
                    CommandError::Decode(DecodeError {
                        stream: stream.clone(),
                        version: meta.version,
                        event_name: meta.event_name.to_string(),
                        event_version: meta.event_version,
                        failure,
                    })
                })?;
                unwind::catch(|| state.apply(&event)).map_err(|message| {
                    CommandError::Panicked {
                        command: "(loading)",
                        stream: stream.clone(),
                        message,
                    }
                })?;
                version = meta.version;
            }
            if batch.len() < limit || version == until {
                // A load that replayed a whole interval (no snapshot yet, one of another shape,
                // one discarded, or a save that failed) leaves a snapshot for the next one.
                if let Some(policy) = A::SNAPSHOTS
                    && until == u64::MAX
                    && version - start >= policy.every()
                {
                    let taken = take_snapshot(&state, policy, version);
                    self.save_snapshot(&stream, version, taken).await;
                }
                telemetry.loaded(version - start, version);
                return Ok(Hydrated::new(state, version, stream));
            }
        }
    }

    /// The state and version to replay from: the latest snapshot of `stream` when it has the
    /// policy's version and decodes, else the default state at version 0.
    async fn start_from_snapshot<A: Aggregate>(
        &self,
        stream: &StreamId,
        policy: SnapshotPolicy,
    ) -> (A, u64) {
        let warn = &self.inner.on_warning;
        match self.inner.store.load_snapshot(stream).await {
            Ok(Some(kept)) if kept.snapshot_version == policy.version() => {
                match unwind::catch(|| A::decode_snapshot(&kept.payload)) {
                    Ok(Ok(state)) => return (state, kept.version),
                    Ok(Err(reason)) | Err(reason) => warn(&Warning::SnapshotDiscarded {
                        stream: stream.clone(),
                        version: kept.version,
                        reason,
                    }),
                }
            }
            // Another state shape: ignored, and replaced after the replay.
            Ok(_) => {}
            Err(error) => warn(&Warning::SnapshotLoadFailed {
                stream: stream.clone(),
                error,
            }),
        }
        (A::default(), 0)
    }

    /// Saves a snapshot taken by [`take_snapshot`]; a failure is a warning.
    async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        taken: Result<Snapshot, String>,
    ) {
        let saved = match taken {
            Ok(snapshot) => self
                .inner
                .store
                .save_snapshot(stream, snapshot)
                .await
                .map_err(|e| e.to_string()),
            Err(reason) => Err(reason),
        };
        if let Err(reason) = saved {
            (self.inner.on_warning)(&Warning::SnapshotSaveFailed {
                stream: stream.clone(),
                version,
                reason,
            });
        }
    }

    /// Answers `query` from its projection's current state (which may lag behind commands of
    /// other processes; see [`Cqrs::query_after`]).
    pub fn query<Q: RoutedQuery>(&self, query: Q) -> QueryFuture<'_, Q::Response> {
        QueryFuture::new(async move { self.inner.read_side.query(&query).await })
    }

    /// Read-your-writes: waits until the projections have applied every event up to `position`
    /// (e.g. `outcome.position()`), then answers `query`. While it waits it reads the store
    /// whenever the store announces events (of other processes, or positions that became
    /// readable). Fails with `QueryError::Timeout` after the configured query timeout
    /// ([`CqrsBuilder::query_timeout`]), e.g. while a transaction of another process holds a
    /// position below `position`.
    pub fn query_after<Q: RoutedQuery>(
        &self,
        position: Position,
        query: Q,
    ) -> QueryFuture<'_, Q::Response> {
        let inner = &*self.inner;
        QueryFuture::new(async move {
            inner
                .read_side
                .query_after(&inner.store, position, &query, inner.query_timeout)
                .await
        })
    }

    /// Applies to the projections every stored event they have not seen (e.g. appended by
    /// another process), up to the store's head as read when called, and returns the position
    /// reached (at least that head).
    ///
    /// Like [`CqrsBuilder::build`], it waits for positions below that head that are not
    /// readable yet (a PostgreSQL transaction still running), for as long as they are not;
    /// use [`Cqrs::query_after`] to wait with a timeout instead.
    pub async fn catch_up(&self) -> Result<Position, StoreError> {
        self.inner.read_side.catch_up(&self.inner.store).await
    }

    /// How many events of this process wait for an earlier position before the projections
    /// can apply them (bounded; for tests).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn pending_events(&self) -> usize {
        self.inner.read_side.pending_len()
    }

    /// The last global position every in-memory projection has applied (the lowest of theirs:
    /// each projection applies at its own pace, see [`Cqrs::projections`]).
    pub fn position(&self) -> Position {
        self.inner.read_side.applied()
    }

    /// Name, handled events, position and error of every projection.
    pub fn projections(&self) -> Vec<ProjectionStatus> {
        self.inner.read_side.status()
    }
}

/// Serializes `state` at stream `version` (a panicking `Serialize` is an error, not a crash).
fn take_snapshot<A: Aggregate>(
    state: &A,
    policy: SnapshotPolicy,
    version: u64,
) -> Result<Snapshot, String> {
    let payload = unwind::catch(|| state.encode_snapshot()).and_then(|encoded| encoded)?;
    Ok(Snapshot {
        version,
        snapshot_version: policy.version(),
        payload,
        taken_at: Timestamp::now(),
    })
}

thread_local! {
    /// Serialization scratch space, reused so an append allocates only the payloads themselves.
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
}

/// The ids a decision's command gets before it runs.
#[derive(Clone, Copy)]
struct CommandIds {
    /// The clock reading that stamps the command id and its events' ids.
    millis: u64,
    command_id: crate::Uuid,
    correlation_id: crate::Uuid,
}

/// What a command starts with, made before its future (see [`Cqrs::run_command`]).
struct CommandStart {
    /// The clock reading that stamps the command id and its events' ids.
    millis: u64,
    command_id: crate::Uuid,
    correlation_id: crate::Uuid,
    /// The command id the caller gave: the command's event ids derive from it.
    derive_from: Option<crate::Uuid>,
    /// What every event of the command carries.
    metadata: crate::UserMetadata,
}

/// The metadata of a command's events: the caller's, with the event that caused the command and
/// the trace context handed on (if any).
fn event_metadata(
    mut metadata: crate::UserMetadata,
    caused_by_event: Option<crate::Uuid>,
    trace: Option<&crate::telemetry::TraceContext>,
) -> crate::UserMetadata {
    if let Some(event_id) = caused_by_event {
        metadata.insert(CAUSED_BY_EVENT, event_id.to_string());
    }
    if let Some(trace) = crate::telemetry::events_trace(trace) {
        trace.write_metadata(&mut metadata);
    }
    metadata
}

/// How the events of one command get their ids.
#[derive(Clone, Copy)]
struct EventIds {
    /// The clock reading of the command (random UUIDv7s).
    millis: u64,
    /// The command id given by the caller: event `i` gets `derive_id(id, i)` instead.
    derive_from: Option<crate::Uuid>,
}

/// The tags every event of aggregate `id` carries (`#[aggregate(tag = …)]`): its id tag, or
/// none. Made once per cached aggregate (`Hydrated::id_tags`), so a command only clones an `Arc`.
fn tags_of_id<A: Aggregate, X>(id: &A::Id) -> Result<Tags, CommandError<X>> {
    match A::ID_TAG {
        None => Ok(Tags::empty()),
        Some(key) => Tag::new(key, &id.to_string())
            .map(|tag| Tags::new([tag]))
            .map_err(|e| CommandError::Encode {
                event: A::NAME,
                message: e.to_string(),
            }),
    }
}

/// Serializes each event once, into the envelope the store records, with its tags (and the
/// aggregate's id tag, if it has one).
fn encode<E: EventSet, X>(
    events: &[E],
    ids: EventIds,
    command_id: crate::Uuid,
    correlation_id: crate::Uuid,
    metadata: &crate::UserMetadata,
    id_tags: &Tags,
) -> Result<Vec<NewEvent>, CommandError<X>> {
    ENCODE_BUFFER.with_borrow_mut(|buffer| {
        let mut encoded = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            buffer.clear();
            let failed = |message: String| CommandError::Encode {
                event: event.event_name(),
                message,
            };
            event.encode(buffer).map_err(|e| failed(e.to_string()))?;
            // serde_json writes UTF-8 only; this check is a cheap guard, not a conversion.
            let json = std::str::from_utf8(buffer).map_err(|e| failed(e.to_string()))?;
            let own = event.tags().map_err(|e| failed(e.to_string()))?;
            let tags = if own.is_empty() {
                id_tags.clone()
            } else if id_tags.is_empty() {
                own
            } else {
                Tags::new(own.iter().chain(id_tags.iter()).cloned())
            };
            encoded.push(NewEvent {
                event_id: match ids.derive_from {
                    None => new_id_at(ids.millis),
                    Some(base) => derive_id(base, "event", index as u64),
                },
                event_name: event.event_name().into(),
                event_version: event.event_version(),
                payload: Payload::serialized(json),
                correlation_id: Some(correlation_id),
                causation_id: Some(command_id),
                metadata: metadata.clone(),
                tags,
            });
        }
        Ok(encoded)
    })
}

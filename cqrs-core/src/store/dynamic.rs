//! [`DynStore`]: any store behind one type, for applications that choose their store at run
//! time (SQLite in development, PostgreSQL in production) without making every function generic.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::envelope::{NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::event_query::{AppendCondition, EventQuery, QueryRead};
use crate::ids::{Position, StreamId, Uuid};
use crate::snapshot::Snapshot;
use crate::store::{Checkpoints, ParkedEvent};
use crate::store::{EventStore, ExpectedVersion, StreamWrite};

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An [`EventStore`] (and [`Checkpoints`]) whose concrete type is chosen at run time.
///
/// `EventStore` returns `impl Future`s, so `dyn EventStore` does not exist; `DynStore` wraps any
/// store and forwards every call through a boxed future (one allocation per call, and a copy
/// of the stream id or projection name the call names). Everything
/// generic over a store takes it: `Cqrs<DynStore>`, runners, process managers, subscriptions.
///
/// ```
/// use eventweave_core::{Cqrs, DynStore, MemoryStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let use_memory = std::env::var("DATABASE_URL").is_err();
/// let store = if use_memory {
///     DynStore::new(MemoryStore::new())
/// } else {
///     unimplemented!("DynStore::new(PostgresStore::open(…).await?)")
/// };
/// let app: Cqrs<DynStore> = Cqrs::builder(store).build().await.unwrap();
/// assert!(app.store().downcast_ref::<MemoryStore>().is_some());
/// # }
/// ```
#[derive(Clone)]
pub struct DynStore {
    inner: Arc<dyn ErasedStore>,
    type_name: &'static str,
}

impl DynStore {
    /// Wraps `store`.
    pub fn new<S: EventStore + Checkpoints>(store: S) -> Self {
        DynStore {
            inner: Arc::new(store),
            type_name: std::any::type_name::<S>(),
        }
    }

    /// The store inside, if it is an `S` (to reach its own API, such as a SQL store's sinks).
    pub fn downcast_ref<S: EventStore + Checkpoints>(&self) -> Option<&S> {
        self.inner.as_any().downcast_ref::<S>()
    }
}

impl fmt::Debug for DynStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DynStore").field(&self.type_name).finish()
    }
}

/// The object-safe mirror of `EventStore + Checkpoints`, implemented for every store. Names
/// are taken owned: `EventStore`'s futures may borrow the store but not the arguments.
trait ErasedStore: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn append(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Boxed<'_, Result<Vec<RecordedEvent>, StoreError>>;
    fn read_stream(
        &self,
        stream: StreamId,
        from_version: u64,
        limit: usize,
    ) -> Boxed<'_, Result<Vec<RecordedEvent>, StoreError>>;
    fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Boxed<'_, Result<Vec<RecordedEvent>, StoreError>>;
    fn head(&self) -> Boxed<'_, Result<Position, StoreError>>;
    fn read_query(
        &self,
        query: EventQuery,
        from: Position,
        limit: usize,
    ) -> Boxed<'_, Result<QueryRead, StoreError>>;
    fn append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<AppendCondition>,
    ) -> Boxed<'_, Result<Vec<RecordedEvent>, StoreError>>;
    fn read_event(&self, event_id: Uuid) -> Boxed<'_, Result<Option<RecordedEvent>, StoreError>>;
    fn wait_for_events(&self, after: Position) -> Boxed<'_, ()>;
    fn load_snapshot(&self, stream: StreamId) -> Boxed<'_, Result<Option<Snapshot>, StoreError>>;
    fn save_snapshot(
        &self,
        stream: StreamId,
        snapshot: Snapshot,
    ) -> Boxed<'_, Result<(), StoreError>>;
    fn load_checkpoint(&self, projection: String) -> Boxed<'_, Result<Position, StoreError>>;
    fn save_checkpoint(
        &self,
        projection: String,
        position: Position,
    ) -> Boxed<'_, Result<(), StoreError>>;
    fn park_event(&self, parked: ParkedEvent) -> Boxed<'_, Result<(), StoreError>>;
    fn parked_events(&self, projection: String) -> Boxed<'_, Result<Vec<ParkedEvent>, StoreError>>;
    fn unpark_event(
        &self,
        projection: String,
        position: Option<Position>,
    ) -> Boxed<'_, Result<bool, StoreError>>;
}

impl<S: EventStore + Checkpoints> ErasedStore for S {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn append(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Boxed<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(async move { EventStore::append(self, &stream, expected, events).await })
    }
    fn read_stream(
        &self,
        stream: StreamId,
        from_version: u64,
        limit: usize,
    ) -> Boxed<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(async move { EventStore::read_stream(self, &stream, from_version, limit).await })
    }
    fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Boxed<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(EventStore::read_all(self, from, limit))
    }
    fn head(&self) -> Boxed<'_, Result<Position, StoreError>> {
        Box::pin(EventStore::head(self))
    }
    fn read_query(
        &self,
        query: EventQuery,
        from: Position,
        limit: usize,
    ) -> Boxed<'_, Result<QueryRead, StoreError>> {
        Box::pin(async move { EventStore::read_query(self, &query, from, limit).await })
    }
    fn append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<AppendCondition>,
    ) -> Boxed<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(
            async move { EventStore::append_conditional(self, writes, condition.as_ref()).await },
        )
    }
    fn read_event(&self, event_id: Uuid) -> Boxed<'_, Result<Option<RecordedEvent>, StoreError>> {
        Box::pin(EventStore::read_event(self, event_id))
    }
    fn wait_for_events(&self, after: Position) -> Boxed<'_, ()> {
        Box::pin(EventStore::wait_for_events(self, after))
    }
    fn load_snapshot(&self, stream: StreamId) -> Boxed<'_, Result<Option<Snapshot>, StoreError>> {
        Box::pin(async move { EventStore::load_snapshot(self, &stream).await })
    }
    fn save_snapshot(
        &self,
        stream: StreamId,
        snapshot: Snapshot,
    ) -> Boxed<'_, Result<(), StoreError>> {
        Box::pin(async move { EventStore::save_snapshot(self, &stream, snapshot).await })
    }
    fn load_checkpoint(&self, projection: String) -> Boxed<'_, Result<Position, StoreError>> {
        Box::pin(async move { Checkpoints::load_checkpoint(self, &projection).await })
    }
    fn save_checkpoint(
        &self,
        projection: String,
        position: Position,
    ) -> Boxed<'_, Result<(), StoreError>> {
        Box::pin(async move { Checkpoints::save_checkpoint(self, &projection, position).await })
    }
    fn park_event(&self, parked: ParkedEvent) -> Boxed<'_, Result<(), StoreError>> {
        Box::pin(Checkpoints::park_event(self, parked))
    }
    fn parked_events(&self, projection: String) -> Boxed<'_, Result<Vec<ParkedEvent>, StoreError>> {
        Box::pin(async move { Checkpoints::parked_events(self, &projection).await })
    }
    fn unpark_event(
        &self,
        projection: String,
        position: Option<Position>,
    ) -> Boxed<'_, Result<bool, StoreError>> {
        Box::pin(async move { Checkpoints::unpark_event(self, &projection, position).await })
    }
}

impl EventStore for DynStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        self.inner.append(stream.clone(), expected, events)
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        self.inner.read_stream(stream.clone(), from_version, limit)
    }

    fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        self.inner.read_all(from, limit)
    }

    fn head(&self) -> impl Future<Output = Result<Position, StoreError>> + Send {
        self.inner.head()
    }

    fn read_query(
        &self,
        query: &EventQuery,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<QueryRead, StoreError>> + Send {
        self.inner.read_query(query.clone(), from, limit)
    }

    fn append_conditional(
        &self,
        writes: Vec<StreamWrite>,
        condition: Option<&AppendCondition>,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        self.inner.append_conditional(writes, condition.cloned())
    }

    fn read_event(
        &self,
        event_id: Uuid,
    ) -> impl Future<Output = Result<Option<RecordedEvent>, StoreError>> + Send {
        self.inner.read_event(event_id)
    }

    fn wait_for_events(&self, after: Position) -> impl Future<Output = ()> + Send {
        self.inner.wait_for_events(after)
    }

    fn load_snapshot(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        self.inner.load_snapshot(stream.clone())
    }

    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.save_snapshot(stream.clone(), snapshot)
    }
}

impl Checkpoints for DynStore {
    fn load_checkpoint(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<Position, StoreError>> + Send {
        self.inner.load_checkpoint(projection.to_owned())
    }

    fn save_checkpoint(
        &self,
        projection: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.save_checkpoint(projection.to_owned(), position)
    }

    fn park_event(
        &self,
        parked: ParkedEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.park_event(parked)
    }

    fn parked_events(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<Vec<ParkedEvent>, StoreError>> + Send {
        self.inner.parked_events(projection.to_owned())
    }

    fn unpark_event(
        &self,
        projection: &str,
        position: Option<Position>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.inner.unpark_event(projection.to_owned(), position)
    }
}

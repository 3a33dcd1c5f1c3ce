//! # eventweave-sqlite
//!
//! A durable, embedded [`EventStore`](eventweave_core::EventStore) for the cqrs framework: every
//! event in one SQLite file, no server. The default store for examples and single-node
//! applications. It keeps the whole store contract and passes the shared conformance suite:
//! atomic appends, expected-version checks with typed conflicts, idempotent retries by event
//! id, gap-free global positions, and live subscriptions.
//!
//! ```
//! use eventweave_core::{EventStore, ExpectedVersion, NewEvent, Payload, Position, StreamId, UserMetadata};
//! use eventweave_sqlite::{Durability, SqliteConfig, SqliteStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("eventweave-sqlite-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("shop.db");
//! let store = SqliteStore::open_with(&path, SqliteConfig::new().durability(Durability::Full))?;
//! let stream = StreamId::from("cart-1");
//! let added = NewEvent {
//!     event_id: eventweave_core::new_id(),
//!     event_name: "cart.item_added".into(),
//!     event_version: 1,
//!     payload: Payload::from_json(r#"{"sku":"tea","qty":2}"#),
//!     correlation_id: None,
//!     causation_id: None,
//!     metadata: UserMetadata::empty(),
//!     tags: eventweave_core::Tags::empty(),
//! };
//! let recorded = store.append(&stream, ExpectedVersion::NoStream, vec![added]).await?;
//! assert_eq!((recorded[0].meta.version, recorded[0].meta.position), (1, Position(1)));
//! drop(store);
//!
//! // Reopened (say, after a restart), the file still holds the event.
//! let store = SqliteStore::open(&path)?;
//! let events = store.read_all(Position::ZERO, 100).await?;
//! assert_eq!(events[0].payload.as_str(), r#"{"sku":"tea","qty":2}"#);
//! # drop(store);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! With the command bus it is one line: `Cqrs::builder(SqliteStore::open("bank.db")?)`.
//! [`SqliteStore::temporary`] gives a fresh store in a temporary file for tests.
//!
//! ## Durability
//!
//! The journal is always WAL (write-ahead log). [`SqliteConfig::durability`] picks what an
//! acknowledged append survives:
//!
//! | [`Durability`] | `PRAGMA synchronous` | process crash (panic, `SIGKILL`, OOM kill) | OS crash or power loss |
//! |---|---|---|---|
//! | `Normal` (default) | `NORMAL` | survives | the file stays consistent and no batch is ever split, but appends acknowledged since the last checkpoint may be lost |
//! | `Full` | `FULL` | survives | survives, as far as the disk honours `fsync` |
//!
//! In both, an append is one SQLite transaction: after any crash a batch is either wholly
//! present or wholly absent (tested by killing a writer with `SIGKILL` mid-append, 20 times).
//!
//! ## Execution model
//!
//! SQLite calls run **inline, on the task that calls the store**, not on a blocking thread
//! pool. An append is a few tens of microseconds of CPU (no disk wait with `Normal`, which
//! does not sync at commit), so handing it to another thread (`spawn_blocking`, or a
//! dedicated writer thread with a channel) would cost as much as the append itself in thread
//! wake-ups; the benchmark measures commands at about the speed of raw insert transactions
//! this way. The price: while an append runs, it occupies its runtime worker thread, and it
//! can block it for longer when it waits for a disk flush (`Full`), for a checkpoint, or for
//! another process's write lock (up to [`SqliteConfig::busy_timeout`]).
//!
//! - **Writes take turns in the process, with `.await`**: every writer of one file in this
//!   process (appends, snapshot and checkpoint saves, parked events, and [`SqliteSink`]
//!   batches), through any handle opened on the file, first waits for the file's *write turn*
//!   asynchronously, then runs its transaction, and gives the turn back at `COMMIT` or
//!   `ROLLBACK`. Waiting for the turn never blocks a runtime thread, also on a
//!   `current_thread` runtime, and the turn is handed out in order (first come, first served).
//!   A sink batch holds it across its handlers' `.await`s, so an append made meanwhile waits
//!   until the batch commits (as long as the batch runs), then succeeds. SQLite's write lock
//!   orders the process's writers with other processes; only that wait happens in SQLite's busy
//!   handler (sleeping the thread, up to [`SqliteConfig::busy_timeout`]).
//! - **Reads** use a small pool of separate read connections. In WAL mode a reader works on a
//!   snapshot, so reads never block appends, nor appends reads.
//! - **Waiting for events**: an append through this handle wakes waiters at once; appends by
//!   other processes (or other handles on the same file) are found by looking at the newest
//!   position every [`SqliteConfig::poll_interval`].
//!
//! ## Schema
//!
//! One `events` table (the position is the rowid, so positions are gap-free and in commit
//! order) with unique indexes on event id and on (stream, version); `checkpoints` and
//! `parked_events` for durable projections (schema version 2); and a `schema_migrations`
//! table recording the applied schema versions ([`SCHEMA_VERSION`]). Files of an older version
//! are migrated when opened. Opening a file of a newer
//! schema fails with [`OpenError::SchemaTooNew`] and leaves it untouched. Payloads and
//! metadata are JSON text, stored verbatim; `recorded_at` is in microseconds. Tags are a JSON
//! array in `events.tags` and rows of `event_tags (tag, position)`, the index of
//! [`read_query`](eventweave_core::EventStore::read_query) (schema version 5); a conditional
//! append ([`append_conditional`](eventweave_core::EventStore::append_conditional)) checks its
//! condition and inserts in one `BEGIN IMMEDIATE` transaction.
//!
//! ## Projections in the same database (exactly once)
//!
//! A read model kept in SQL tables of the store's file is updated **exactly once** per event.
//! [`SqliteSink`] runs a `DurableProjection<SqliteTx>` for a
//! [`ProjectionRunner`](eventweave_core::runner::ProjectionRunner): for each batch it opens a write
//! transaction, runs the handlers, whose statements go through the [`SqliteTx`] they are given,
//! moves the projection's checkpoint, and commits. A crash (even `SIGKILL`), a failing or
//! panicking handler, or a batch cancelled halfway never leaves the read model and the
//! checkpoint out of step, so after a restart the runner goes on from the checkpoint and no
//! event is counted twice or missed.
//!
//! `#[projection]` generates the `DurableProjection<SqliteTx>` impl for handlers that take
//! `db: &SqliteTx`; here it is written by hand:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use eventweave_core::runner::{DurableProjection, ProjectionRunner};
//! use eventweave_core::{Event, EventRef, EventStore, ExpectedVersion, ProjectionError};
//! use eventweave_core::{ProjectionFailure, RecordedEvent, StreamId};
//! use eventweave_sqlite::{SqliteSink, SqliteStore, SqliteTx, rusqlite};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "account.deposited")]
//! struct Deposited {
//!     amount: i64,
//! }
//!
//! /// The balance of each account, in the table `balances` of the store's file.
//! struct Balances;
//!
//! impl DurableProjection<SqliteTx> for Balances {
//!     const NAME: &'static str = "balances";
//!     const EVENTS: &'static [&'static str] = &[Deposited::NAME];
//!
//!     async fn handle(
//!         &mut self,
//!         db: &SqliteTx,
//!         event: &RecordedEvent,
//!     ) -> Result<(), ProjectionError> {
//!         let failed = |failure| ProjectionError::new(Self::NAME, event, failure);
//!         let Some(deposit) = EventRef::stored(event)
//!             .decode::<Deposited>()
//!             .map_err(|e| failed(ProjectionFailure::Decode(e)))?
//!         else {
//!             return Ok(());
//!         };
//!         // Runs inside the batch's transaction, committed with the checkpoint.
//!         db.execute(
//!             "INSERT INTO balances (account, total) VALUES (?1, ?2)
//!              ON CONFLICT (account) DO UPDATE SET total = total + excluded.total",
//!             (event.meta.stream.as_str(), deposit.amount),
//!         )
//!         .map_err(|e| failed(ProjectionFailure::Handler(Arc::new(e))))?;
//!         Ok(())
//!     }
//!
//!     /// Empties the table before a rebuild (in the transaction that resets the checkpoint).
//!     async fn reset(&mut self, db: &SqliteTx) -> Result<(), ProjectionFailure> {
//!         db.execute("DELETE FROM balances", [])
//!             .map_err(|e| ProjectionFailure::Handler(Arc::new(e)))?;
//!         Ok(())
//!     }
//! }
//!
//! # fn deposit(amount: i64) -> eventweave_core::NewEvent {
//! #     eventweave_core::NewEvent {
//! #         event_id: eventweave_core::new_id(),
//! #         event_name: Deposited::NAME.into(),
//! #         event_version: 1,
//! #         payload: eventweave_core::Payload::from_json(format!(r#"{{"amount":{amount}}}"#)),
//! #         correlation_id: None,
//! #         causation_id: None,
//! #         metadata: eventweave_core::UserMetadata::empty(),
//! #         tags: eventweave_core::Tags::empty(),
//! #     }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteStore::temporary()?;
//! let sink = SqliteSink::new(&store, Balances)?;
//! sink.unit().execute(
//!     "CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, total INTEGER NOT NULL)",
//!     [],
//! )?;
//! let running = ProjectionRunner::new(store.clone(), sink).spawn();
//!
//! let account = StreamId::from("account-1");
//! let recorded = store
//!     .append(&account, ExpectedVersion::Any, vec![deposit(5), deposit(7)])
//!     .await?;
//! // Read-your-writes: wait until the projection has committed the last event.
//! running.wait_for(recorded[1].meta.position, Duration::from_secs(5)).await?;
//!
//! // The read model is plain tables: query it with your own connection and SQL.
//! let conn = rusqlite::Connection::open(store.path())?;
//! let total: i64 = conn.query_row(
//!     "SELECT total FROM balances WHERE account = ?1",
//!     [account.as_str()],
//!     |row| row.get(0),
//! )?;
//! assert_eq!(total, 12);
//! running.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! - **Reading the model**: the crate offers no query API for it; it is ordinary tables in the
//!   file, read with the application's own `rusqlite::Connection` (in WAL mode readers never
//!   block the sink, nor the sink them).
//! - **Handlers** write only through the [`SqliteTx`] (`execute`, `query_row`, or `with` for the
//!   whole `rusqlite::Connection`) and must not run `BEGIN`, `COMMIT` or `ROLLBACK`. A handler
//!   error (a `rusqlite::Error` or any error of the application, as
//!   `ProjectionFailure::Handler`) or panic rolls back that event's changes; the events before
//!   it in the batch are committed with the checkpoint just before it, and the runner retries
//!   the event, then stops at it or parks it (`OnFailure`).
//! - **Checkpoints** are rows of the `checkpoints` table, parked events rows of
//!   `parked_events`; [`SqliteStore`] implements
//!   [`Checkpoints`](eventweave_core::runner::Checkpoints) to read them (and to keep the
//!   checkpoints of at-least-once `CheckpointedSink`s).
//! - **One runner per projection**: each sink checks, inside its transaction, that the
//!   checkpoint is where it left it, and writes nothing otherwise ([`CheckpointMoved`]), so two
//!   runners of one projection never apply an event twice; they do waste work, so give
//!   several processes leases: [`SqliteLeases`] (a row per projection with an owner and an
//!   expiry the holder renews; `ProjectionRunner::leases(SqliteLeases::new(&store), retry)`).
//! - **Write turn**: a batch holds the file's write turn (and SQLite's write lock) from its
//!   `BEGIN` to its `COMMIT`, handlers' `.await`s included. Appends of this process wait for it
//!   with `.await` (without blocking a runtime thread) for as long as the batch runs; appends of
//!   other processes wait in SQLite's busy handler, up to their busy timeout. Keep handlers quick
//!   and batches moderate (`ProjectionRunner::batch_size`, default 512 events). A handler must
//!   not write through the store (an append would wait for its own batch): such a write fails
//!   at once with [`WriteInSinkBatch`].
//!
//! ## Bad stored data
//!
//! Rows are never trusted: a row whose metadata, ids or columns cannot be read back is a
//! [`StoreError::Decode`](eventweave_core::StoreError::Decode) naming its stream, version and event
//! name. Payloads are returned as stored; the command bus and projections report one that does
//! not decode (corrupt JSON, unknown event name, wrong shape) with the same coordinates.

mod append;
mod changes;
mod checkpoints;
mod config;
mod connection;
mod dcb;
mod error;
mod group;
mod inspect;
mod lease;
mod portable;
mod read;
mod schema;
mod sink;
mod snapshots;
mod store;
mod turns;
mod tx;

pub use config::{Durability, SqliteConfig};
pub use error::{CheckpointMoved, OpenError, WriteInSinkBatch};
pub use lease::{DEFAULT_LEASE_TTL, SqliteLease, SqliteLeases};
pub use portable::SqliteReader;
pub use schema::SCHEMA_VERSION;
pub use sink::SqliteSink;
pub use store::SqliteStore;
pub use tx::SqliteTx;

/// The SQLite bindings this crate is built on, for code that opens the store's file directly
/// (inspection, repairs, read models kept in the same file).
pub use rusqlite;

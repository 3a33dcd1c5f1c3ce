//! # cqrs-sqlite
//!
//! A durable, embedded [`EventStore`](cqrs_core::EventStore) for the cqrs framework: every
//! event in one SQLite file, no server. The default store for examples and single-node
//! applications. It keeps the whole store contract and passes the shared conformance suite:
//! atomic appends, expected-version checks with typed conflicts, idempotent retries by event
//! id, gap-free global positions, and live subscriptions.
//!
//! ```
//! use cqrs_core::{EventStore, ExpectedVersion, NewEvent, Payload, Position, StreamId, UserMetadata};
//! use cqrs_sqlite::{Durability, SqliteConfig, SqliteStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("cqrs-sqlite-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("shop.db");
//! let store = SqliteStore::open_with(&path, SqliteConfig::new().durability(Durability::Full))?;
//! let stream = StreamId::from("cart-1");
//! let added = NewEvent {
//!     event_id: cqrs_core::new_id(),
//!     event_name: "cart.item_added".into(),
//!     event_version: 1,
//!     payload: Payload::from_json(r#"{"sku":"tea","qty":2}"#),
//!     correlation_id: None,
//!     causation_id: None,
//!     metadata: UserMetadata::empty(),
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
//! - **Writes** go through one connection behind a mutex: appends through one handle (and its
//!   clones) take turns in the process; SQLite's write lock orders them with other processes.
//! - **Reads** use a small pool of separate read connections. In WAL mode a reader works on a
//!   snapshot, so reads never block appends, nor appends reads.
//! - **Waiting for events**: an append through this handle wakes waiters at once; appends by
//!   other processes (or other handles on the same file) are found by looking at the newest
//!   position every [`SqliteConfig::poll_interval`].
//!
//! ## Schema
//!
//! One `events` table (the position is the rowid, so positions are gap-free and in commit
//! order) with unique indexes on event id and on (stream, version), and a `schema_migrations`
//! table recording the applied schema versions ([`SCHEMA_VERSION`]). Opening a file of a newer
//! schema fails with [`OpenError::SchemaTooNew`] and leaves it untouched. Payloads and
//! metadata are JSON text, stored verbatim; `recorded_at` is in microseconds.
//!
//! ## Bad stored data
//!
//! Rows are never trusted: a row whose metadata, ids or columns cannot be read back is a
//! [`StoreError::Decode`](cqrs_core::StoreError::Decode) naming its stream, version and event
//! name. Payloads are returned as stored; the command bus and projections report one that does
//! not decode (corrupt JSON, unknown event name, wrong shape) with the same coordinates.

mod append;
mod changes;
mod checkpoints;
mod config;
mod connection;
mod error;
mod read;
mod schema;
mod sink;
mod store;
mod tx;

pub use config::{Durability, SqliteConfig};
pub use error::{CheckpointMoved, OpenError};
pub use schema::SCHEMA_VERSION;
pub use sink::SqliteSink;
pub use store::SqliteStore;
pub use tx::SqliteTx;

/// The SQLite bindings this crate is built on, for code that opens the store's file directly
/// (inspection, repairs, read models kept in the same file).
pub use rusqlite;

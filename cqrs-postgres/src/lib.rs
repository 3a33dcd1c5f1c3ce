//! The production event store of the `cqrs` framework: every event in one PostgreSQL table,
//! shared by any number of application servers.
//!
//! [`PostgresStore`] implements [`eventweave_core::EventStore`] and passes the framework's store
//! conformance suite: atomic batch appends with expected-version checks, idempotent retries by
//! event id, one global order that readers follow without skipping or repeating an event (also
//! when transactions commit out of order), live subscriptions woken by LISTEN/NOTIFY, and typed
//! errors for stored rows that no longer read back.
//!
//! # Example
//!
//! ```no_run
//! use eventweave_core::{Cqrs, EventStore, Position};
//! use eventweave_postgres::{PostgresConfig, PostgresStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Connects, creates or migrates the schema, and keeps a pool of connections.
//! let store = PostgresStore::open(
//!     PostgresConfig::new("postgres://app@db.internal/bank")
//!         .schema("bank")
//!         .pool_size(16),
//! )
//! .await?;
//!
//! // The command bus and projections on top of it, as with any store.
//! let app = Cqrs::builder(store.clone()).build().await?;
//! # let _ = app;
//!
//! // Every event of every stream, in global order: the stored ones, then live ones.
//! let mut all = store.subscribe(Position::ZERO);
//! let first = all.next().await?;
//! println!("{} #{} at {}", first.meta.stream, first.meta.version, first.meta.position);
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration
//!
//! [`PostgresConfig`] holds:
//!
//! | setting | default | what it does |
//! |---|---|---|
//! | URL | (required) | `postgres://user:password@host:port/db` or libpq `key=value` form, parsed once ([`PostgresConfig::parse`] reports a malformed one as a [`ConfigError`]). `Debug` never shows the password. |
//! | [`ssl_mode`](PostgresConfig::ssl_mode), [`ssl_root_cert`](PostgresConfig::ssl_root_cert) | `sslmode`/`sslrootcert` of the URL, else `prefer` | TLS, with libpq's modes (see [TLS](#tls)). |
//! | [`schema`](PostgresConfig::schema) | `cqrs` | schema of the store's tables, created if missing. Names are always quoted. |
//! | [`events_table`](PostgresConfig::events_table), [`migrations_table`](PostgresConfig::migrations_table) | `events`, `schema_migrations` | table names. |
//! | [`pool_size`](PostgresConfig::pool_size) | 8 | connections for appends and reads (one more for LISTEN/NOTIFY). |
//! | [`group_commit`](PostgresConfig::group_commit), [`append_statements`](PostgresConfig::append_statements) | on, 2 | appends that arrive while 2 append statements are in flight go together in the next one (see **Group commit** below). |
//! | [`sink_pool_size`](PostgresConfig::sink_pool_size) | 4 | connections for [`PgSink`] batches and checkpoints, a pool of their own so projections never starve commands. |
//! | [`acquire_timeout`](PostgresConfig::acquire_timeout) | 30 s | longest wait for a free pooled connection; then `StoreError::Unavailable` naming the pool. |
//! | [`connect_timeout`](PostgresConfig::connect_timeout) | URL's `connect_timeout`, else 10 s | longest time to open a connection (TCP, TLS, authentication, session settings). |
//! | [`idle_in_transaction_timeout`](PostgresConfig::idle_in_transaction_timeout) | 10 s | the server ends a store session idle inside a transaction this long (see [Bounds](#bounds-on-a-writer-that-died)). |
//! | [`statement_timeout`](PostgresConfig::statement_timeout) | not set (the server's) | the server cancels a store statement that runs this long (a stall behind another session's lock): `StoreError::Unavailable`, nothing written. Migrations run without it. |
//! | [`tcp_keepalives`](PostgresConfig::tcp_keepalives) | 10 s idle, 5 s × 3 | keepalives on both ends of every connection. |
//! | [`max_event_bytes`](PostgresConfig::max_event_bytes) | 16 MiB | largest event (payload + metadata) an append accepts; larger ones are refused before anything is written. |
//! | [`poll_interval`](PostgresConfig::poll_interval) | 500 ms | how long a waiting reader trusts notifications before it re-reads anyway. |
//! | [`notify_interval`](PostgresConfig::notify_interval) | 5 ms | the shortest time between two NOTIFYs of one store. |
//!
//! Opening creates the schema, the tables and indexes, or applies the migrations a schema lacks,
//! in one transaction under an advisory lock, so processes that start together migrate once.
//! A schema migrated by a newer version of this crate is refused
//! ([`OpenError::SchemaTooNew`]).
//!
//! # TLS
//!
//! With the default `tls` feature, connections use rustls (no OpenSSL). The mode comes from the
//! connection string's `sslmode` or [`PostgresConfig::ssl_mode`], with libpq's meanings
//! ([`SslMode`]): `disable`; `prefer` (the default: TLS when the server offers it, certificate
//! not checked); `require` (TLS or no connection; certificate not checked unless a root
//! certificate is configured, then as `verify-ca`); `verify-ca` (the certificate chains to a
//! trusted root, any host name); `verify-full` (chain and host name). Trusted roots: the PEM file
//! of `sslrootcert=` or [`PostgresConfig::ssl_root_cert`], else the Mozilla set
//! (`webpki-roots`). A refused handshake is [`OpenError::Tls`], saying why. Every connection of
//! the store (pools, LISTEN/NOTIFY, leases) uses the same mode and roots.
//!
//! ```no_run
//! # use eventweave_postgres::{PostgresConfig, PostgresStore};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::open(PostgresConfig::parse(
//!     "postgres://app@db.example.com/bank?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
//! )?)
//! .await?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! # Bounds on a writer that died
//!
//! A reader stops at a position whose appending transaction is still open (see
//! [Gap-free global order](#gap-free-global-order)). If that writer is stuck or gone, the server
//! ends its session and rolls the transaction back, and readers move on, within:
//!
//! - [`idle_in_transaction_timeout`](PostgresConfig::idle_in_transaction_timeout) (default
//!   10 s) for a client that is alive but stopped inside its transaction (a frozen process, a
//!   stuck task): every store session sets `idle_in_transaction_session_timeout`;
//! - the server's TCP keepalives, `idle + interval × retries`
//!   ([`TcpKeepalives::bound`], default 10 + 5 × 3 = 25 s), for a host that vanished (power
//!   loss, network partition): every store session sets `tcp_keepalives_*`;
//! - at once for a process that was killed (its kernel closes the socket).
//!
//! # Schema
//!
//! The events table, `events`: `position` (bigint primary key, drawn from a sequence with `CACHE 1`),
//! `stream`, `version` (unique together), `event_id` (unique uuid), `event_name`,
//! `event_version`, `payload` (jsonb), `metadata` (jsonb, NULL when empty), `correlation_id`,
//! `causation_id`, `recorded_at` (timestamptz, the database's clock), `tags` (text[], NULL
//! without tags). JSONB normalises formatting: a payload comes back as the same JSON value, not
//! the same text. `event_tags` (`tag`, `position`; both the primary key) has one row per tag of
//! each tagged event: the index reading by query uses. A PL/pgSQL function,
//! `cqrs_<hash>_dcb_append`, runs conditional appends and appends to several streams as one
//! statement (its statements lock, then check and insert, each with its own snapshot); a
//! second, `cqrs_<hash>_dcb_conflict`, is the check a lone conditional event's statement calls
//! after its locks, in a snapshot of its own.
//!
//! Two more tables serve durable projections: `checkpoints` (`projection` primary key,
//! `position`, `updated_at`) and `parked_events` (`projection`, `position`, `event_id`,
//! `stream`, `version`, `event_name`, `error`, `parked_at`; primary key `(projection, position)`).
//! Beside an events table with another name than `events` they are named
//! `<events>_checkpoints` and `<events>_parked_events`.
//!
//! Write to the table only through the store: gap-free reading relies on how appends draw
//! positions (below), and the store assumes rows are never deleted or changed.
//!
//! # Appends
//!
//! An append is one statement in its own transaction: one round trip. A batch is one
//! `INSERT … SELECT … FROM unnest($ids, $names, …)`. The expected version is checked in the
//! statement (version `v` must exist, or `v` is 0) and by the unique `(stream, version)`
//! constraint (a stream already beyond `v` cannot take `v + 1`), so concurrent appends at the
//! same version cannot both commit. When the statement writes nothing, the store looks the
//! batch's event ids up: the same ids stored, in order, as the same stream's events make the
//! append a retry and return the stored events; ids stored otherwise are
//! [`DuplicateEventId`](eventweave_core::StoreError::DuplicateEventId); otherwise the version did not
//! hold and the error is [`Conflict`](eventweave_core::StoreError::Conflict) with the stream's version.
//!
//! # Reading by query and conditional appends
//!
//! [`read_query`](eventweave_core::EventStore::read_query) returns the events matching an
//! [`EventQuery`](eventweave_core::EventQuery) and a position it is complete through, which is
//! gap-free (every position up to it is committed or will stay empty, as `read_all` decides
//! below). [`append_conditional`](eventweave_core::EventStore::append_conditional) appends to
//! several streams atomically, under "no event matching this query after that position": it
//! locks, exclusively, one advisory key per query item that every matching event locks shared
//! before it draws its position, then checks in a snapshot taken after the locks. So a
//! concurrent writer of a matching event either is waited for and seen, or draws after the
//! decision; appends whose queries do not overlap do not wait for each other. ARCHITECTURE.md
//! has the argument.
//! **Group commit** ([`group_commit`](PostgresConfig::group_commit), on by default): at most
//! [`append_statements`](PostgresConfig::append_statements) append statements run at a time;
//! appends that arrive while they all run wait and go together in the next statement, one
//! commit for all of them, each with its own expected-version check and its own outcome. An
//! append that finds a statement free runs at once, so a lone client never waits.
//!
//! # Gap-free global order
//!
//! Positions come from a sequence, and transactions commit in any order: the one that drew
//! position 10 may commit after the one that drew 11. A reader that returned 11 and moved on
//! would miss 10 forever. This store prevents that without serialising writers:
//!
//! 1. Every append takes a transaction id, then an advisory lock keyed by this store and that
//!    id (its *appender lock*, held until it ends), and only then draws positions: the position
//!    is `CASE WHEN pg_try_advisory_xact_lock(…, pg_current_xact_id() …) THEN nextval(…) END`.
//! 2. [`read_all`](eventweave_core::EventStore::read_all) reads the rows and `pg_current_snapshot()`
//!    in one statement, hence one snapshot, together with `next_xid`, the next transaction id to
//!    be assigned (`xmin + age(xmin)`, read without assigning one).
//! 3. A position missing below a visible row (a *hole*) belongs to a transaction that took its
//!    id before drawing the hole, hence before the visible row was drawn and committed, hence
//!    before the snapshot: its id is below `next_xid`, and it was either still running or rolled
//!    back. So `read_all` returns events only up to the first hole, and remembers the hole with
//!    that `next_xid`.
//! 4. The hole is permanent (a rollback), and readers step over it, once a later snapshot's
//!    `xmin` reaches that bound, or once a look at `pg_locks` finds no appender lock of this
//!    store with an id below it (then a read sent after that look steps over it). The second
//!    rule ignores transactions that never appended to this store, so an idle session holding
//!    a transaction open elsewhere on the server (which holds `xmin` back) stalls nobody.
//!
//! (The snapshot's `xmax` is *not* a valid bound: it is one past the newest *completed* id,
//! and the transaction holding a hole may have a higher id than the one that wrote the visible
//! row. A test reproduces that interleaving.)
//!
//! Writers never wait for each other (PostgreSQL still commits them in groups), and a reader
//! waits at a hole only as long as the appender that holds it runs. The bookkeeping is per
//! store instance, shared by clones, and bounded. Only the store may write the events table:
//! rows inserted by other means take no appender lock, and readers could step over them while
//! they are uncommitted. ARCHITECTURE.md has the full argument.
//!
//! # LISTEN/NOTIFY
//!
//! [`wait_for_events`](eventweave_core::EventStore::wait_for_events), and so
//! [`Subscription`](eventweave_core::Subscription), is woken at once by appends of the same store
//! instance, and by appends of other processes through a NOTIFY on a channel derived from the
//! schema and table names. One dedicated connection per store sends the NOTIFYs (and LISTENs,
//! from the first time a reader of this store waits): a commit marks the store dirty and one
//! NOTIFY announces all commits of a
//! [`notify_interval`](PostgresConfig::notify_interval). The NOTIFY is deliberately not sent
//! inside the append transaction: PostgreSQL serialises the commits of notifying transactions,
//! which measured 12,700 → 4,500 inserts per second with 8 clients. Polling every
//! [`poll_interval`](PostgresConfig::poll_interval) is the safety net for a lost notification
//! (a writer killed between commit and NOTIFY, a dropped listening connection); a reader stopped
//! at a hole left by a rolled-back transaction, which announces nothing, re-reads ten times as
//! often.
//!
//! # Projections in the same database (exactly once)
//!
//! A read model kept in tables of the same database is updated **exactly once**: [`PgSink`]
//! runs each batch of events in one transaction that also moves the projection's checkpoint
//! (table `checkpoints`), so a batch's changes and its checkpoint commit together or not at
//! all; after a crash, a handler error or a lost lease, the runner resumes from the committed
//! checkpoint and no event is counted twice. The projection implements
//! [`DurableProjection<PgTx>`](eventweave_core::runner::DurableProjection) (by hand, as here, or with
//! `#[projection]` and handlers that take `db: &PgTx`); its statements go through [`PgTx`] and
//! run in the batch's transaction.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use eventweave_core::prelude::*;
//! use eventweave_core::runner::{DurableProjection, OnFailure, ProjectionRunner};
//! use eventweave_core::{EventRef, ProjectionError, ProjectionFailure, RecordedEvent};
//! use eventweave_postgres::{PgLeases, PgSink, PgTx, PostgresStore, params};
//! use serde::{Deserialize, Serialize};
//!
//! /// An event of the application's counters.
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "counter.added")]
//! pub struct Added { pub n: u64 }
//!
//! /// Per counter, the number of `Added` events and their sum, in table `app.counter_totals`.
//! struct CounterTotals;
//!
//! impl DurableProjection<PgTx> for CounterTotals {
//!     const NAME: &'static str = "counter_totals";
//!     const EVENTS: &'static [&'static str] = &[Added::NAME];
//!
//!     async fn handle(&mut self, db: &PgTx, event: &RecordedEvent) -> Result<(), ProjectionError> {
//!         let failed = |failure| ProjectionError::new(Self::NAME, event, failure);
//!         let Some(added) = EventRef::stored(event)
//!             .decode::<Added>()
//!             .map_err(|e| failed(ProjectionFailure::Decode(e)))?
//!         else {
//!             return Ok(());
//!         };
//!         // Staged: queued, and sent with the batch's other staged statements in one
//!         // pipelined burst before the checkpoint moves. Text statements are prepared once
//!         // per connection, then reused; parameters are owned (`params!`).
//!         db.stage(
//!             "INSERT INTO app.counter_totals AS t (counter, events, total) VALUES ($1, 1, $2)
//!              ON CONFLICT (counter) DO UPDATE SET events = t.events + 1, total = t.total + $2",
//!             params![event.meta.stream.to_string(), added.n as i64],
//!         );
//!         Ok(())
//!     }
//!
//!     /// Before a rebuild: empty the table (in the transaction that sets the checkpoint to 0).
//!     async fn reset(&mut self, db: &PgTx) -> Result<(), ProjectionFailure> {
//!         db.execute("DELETE FROM app.counter_totals", &[])
//!             .await
//!             .map(drop)
//!             .map_err(|e| ProjectionFailure::Handler(Arc::new(e)))
//!     }
//! }
//!
//! # async fn run(store: PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
//! let sink = PgSink::new(&store, CounterTotals);
//! // At every start, before the runner: the read model's tables (names qualified, see below).
//! sink.setup(
//!     "CREATE SCHEMA IF NOT EXISTS app;
//!      CREATE TABLE IF NOT EXISTS app.counter_totals (
//!          counter text PRIMARY KEY, events bigint NOT NULL, total bigint NOT NULL)",
//! )
//! .await?;
//! let running = ProjectionRunner::new(store.clone(), sink)
//!     .on_failure(OnFailure::Park)
//!     // Every application server runs this; one at a time works, the others stand by.
//!     .leases(PgLeases::new(&store), Duration::from_secs(1))
//!     .spawn();
//! # let _ = running;
//! # Ok(())
//! # }
//! ```
//!
//! **Which schema a sink's statements use**: the store qualifies its own tables with its schema
//! ([`PostgresConfig::schema`]), but a read model's statements run as written, with the
//! connection's `search_path` (the role's default, usually `"$user", public`). Qualify the read
//! model's table names, as above, or set the path for every connection of the store in the
//! connection string (`options=-csearch_path%3Dapp`). The driver is re-exported as
//! [`tokio_postgres`] for the types [`PgTx`] takes.
//!
//! Every batch: `BEGIN`; `SELECT position FROM checkpoints WHERE projection = $1 FOR UPDATE`,
//! refused unless it is where this sink last left it; the handlers; the checkpoint update;
//! `COMMIT`, the first two and the last two pipelined. A handler error rolls back the batch and
//! commits the events before the failing one on their own, so the runner retries, parks or stops
//! exactly at that event. An `apply` the runner drops (its lease was lost) closes its
//! connection rather than returning it to the pool mid-transaction, and the server rolls back.
//! Each projection transaction sets `idle_in_transaction_session_timeout` to 60 s (`SET LOCAL`),
//! so a process frozen mid-batch cannot hold the checkpoint row forever. Events a projection
//! gives up on ([`OnFailure::Park`](eventweave_core::runner::OnFailure)) are kept in `parked_events`
//! and listed by [`Checkpoints::parked_events`](eventweave_core::runner::Checkpoints::parked_events).
//!
//! ## Staged or awaited statements
//!
//! A statement a handler awaits ([`PgTx::execute`], [`PgTx::query`], …) costs a round trip per
//! event, so a projection that awaits one upsert per event runs at most as fast as the
//! connection's round trips (and no faster by hand). [`PgTx::stage`] queues a write whose
//! result the handler does not need (an upsert, an insert, a delete) instead; the sink sends a
//! batch's staged statements pipelined, in the order they were staged, before the checkpoint
//! update, in the same transaction, so a batch costs a few round trips whatever its size. Stage
//! every write whose result (rows affected, `RETURNING`) the handler does not use; await
//! queries and writes whose result it needs. Both mix correctly: every awaited statement of
//! [`PgTx`] first sends what was staged before it, so it sees those writes (but each such
//! flush is a round trip; [`PgTx::client`] does not flush, call [`PgTx::flush`] first). A
//! staged statement that fails fails the event whose handler staged it, as if that handler
//! had returned the error: the runner retries, parks or stops at that event, and its
//! [`ProjectionError`](eventweave_core::ProjectionError) names it. Measured with one upsert per
//! event in batches of 512 (release build, local server, busy two-core machine, 100,000
//! events): 9,000 to 21,000 events per second awaited, about 50,000 staged.
//!
//! ## Leases
//!
//! [`PgLeases`] lets several processes run the same projections: a lease is a session-level
//! advisory lock (`pg_try_advisory_lock`, keyed by schema, events table and projection name) on
//! a connection of its own, outside the pool. A process that dies loses its connection and its
//! locks, and a standby's runner takes over from the checkpoint (measured: about 150 ms after a
//! `SIGKILL`, with a 100 ms retry). A lease is lost when its connection ends or a `SELECT 1`
//! every second fails; the runner then stops at once. A process may not know yet that it lost its
//! lease; the checkpoint fence above makes its next commit fail instead of counting events twice.
//!
//! # Behind a connection pooler
//!
//! Connect the store to PostgreSQL directly, or through PgBouncer in **session** mode.
//! Transaction mode breaks three things the store relies on: session advisory locks (the
//! appender lock that keeps positions gap-free, projection leases and the migration lock) would
//! be taken on one server connection and released on another; `LISTEN` does not survive past a
//! transaction, so other processes' appends are only seen at the poll interval; and the
//! statements each pooled connection prepares once would meet server connections that never
//! prepared them.
//!
//! # Errors
//!
//! Opening fails with [`OpenError`]. Operations fail with [`eventweave_core::StoreError`]: a pool
//! that stays exhausted for the acquire timeout, or a connection that cannot be opened within
//! the connect timeout, is `Unavailable`; driver failures are classified as described on
//! `StoreError`; a stored row that cannot be read back (a NULL where a
//! value belongs, metadata that is not a JSON object, a negative schema version) is `Decode`,
//! naming the stream, version and event name. `read_stream` fails as a whole on such a row;
//! `read_all` returns the events before it, and fails when it starts at it.

mod append;
mod checkpoint;
mod config;
mod connect;
mod conninfo;
mod dcb;
mod decode;
mod error;
mod group;
mod holes;
mod hooks;
mod inspect;
mod lease;
mod notify;
mod pool;
mod portable;
mod read;
mod schema;
mod sink;
mod snapshot;
mod statements;
mod store;
#[cfg(feature = "tls")]
mod tls;
mod versions;

pub use config::{PostgresConfig, TcpKeepalives};
pub use conninfo::{ConfigError, SslMode};
pub use error::OpenError;
#[doc(hidden)]
pub use hooks::HeldAppend;
pub use lease::{PgLease, PgLeases};
pub use portable::PgReader;
pub use sink::{PgSink, PgStatement, PgTx, StagedParams};

#[doc(hidden)]
pub mod __private {
    pub use tokio_postgres::types::ToSql;
}
pub use store::PostgresStore;

/// The driver, re-exported: [`PgTx`] takes its types (`ToSql` parameters, `Row`s, errors), so
/// a read model needs no direct dependency on it (and cannot get a mismatched version).
pub use tokio_postgres;

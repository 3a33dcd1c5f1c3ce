//! [`DurableProjection`]: a read model kept outside the process, updated by async handlers that
//! may fail, through a unit of work `U` that a sink provides (a SQL transaction, or nothing).
//!
//! Durable projections are not on the query bus: their state is in a database that many processes
//! read. A `#[query]` method on one is a compile error that says to query the database, and to use
//! `RunningProjection::wait_for` for read-your-writes.

use std::future::Future;

use crate::envelope::RecordedEvent;
use crate::error::{ProjectionError, ProjectionFailure};

/// A projection run by a [`ProjectionRunner`](crate::runner::ProjectionRunner) from a checkpoint.
///
/// `#[projection]` implements it (instead of [`Projection`](crate::Projection)) when a handler is
/// `async` or takes a third parameter `db: &U` after the event and the optional `&EventMeta`:
/// the unit of work of the sink that runs it (for example `eventweave_sqlite::SqliteTx` or
/// `eventweave_postgres::PgTx`, whose statements commit in one transaction with the checkpoint). A
/// projection whose handlers take no unit implements it for every `U`, and runs at least once
/// under any sink.
///
/// Handlers see only events after the checkpoint, in global order. A handler error or panic is
/// retried by the runner with back-off and never skipped silently.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a durable projection over `{U}`",
    label = "no durable projection over `{U}`",
    note = "a `#[projection]` impl whose handlers take `db: &{U}` (or are `async`) is a durable projection over that unit of work"
)]
pub trait DurableProjection<U: ?Sized + Sync = ()>: Send + 'static {
    /// Unique name; the checkpoint is stored under it.
    const NAME: &'static str;
    /// Stored names of the events it handles; the runner hands it no others.
    const EVENTS: &'static [&'static str];

    /// Folds one event through `unit`.
    fn handle<'a>(
        &'a mut self,
        unit: &'a U,
        event: &'a RecordedEvent,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;

    /// Empties the read model before a rebuild (a `#[reset]` method; by default nothing).
    fn reset<'a>(
        &'a mut self,
        unit: &'a U,
    ) -> impl Future<Output = Result<(), ProjectionFailure>> + Send + 'a {
        let _ = unit;
        async { Ok(()) }
    }
}

//! The futures [`Cqrs::execute`](crate::Cqrs::execute) and [`Cqrs::query`](crate::Cqrs::query)
//! return.
//!
//! They are named types rather than `async fn`s for the compiler's sake: the bound that a
//! command has a handler (or a query a projection) is checked once, where the method is called.
//! An `async fn` carries its `where` clause into its opaque future, so a missing handler was
//! reported three times (on the argument, the call and the `.await`). These types carry no
//! such bound: they only hold the future the method built while the bound was known to hold.
//!
//! The price is one allocation per command (the future is boxed). The command bus keeps that
//! future under 1,032 bytes (a test in `cqrs-bench` checks the bank's commands), the largest
//! block glibc serves from its per-thread cache: above it, allocating and freeing the box cost
//! about 700 instructions more per command. An allocation-free named future is open work.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::context::CommandOutcome;
use crate::error::{CommandError, QueryError};
use crate::telemetry::Traced;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The outcome of one command, once awaited: what [`Cqrs::execute`](crate::Cqrs::execute) and
/// [`Cqrs::execute_with`](crate::Cqrs::execute_with) return. `E` is the handler's error type.
///
/// Like any future it does nothing until polled; dropping it before it completes cancels the
/// command (what was not appended is not stored; see the command bus docs for what was).
#[must_use = "a command runs only when its future is awaited"]
pub struct CommandFuture<'a, E> {
    inner: Boxed<'a, Result<CommandOutcome, CommandError<E>>>,
    /// The command's span, entered on each poll, and its metrics, with the function that
    /// records the outcome (`CommandTelemetry::finish` for this `E`, taken where the handler's
    /// bounds were known, so this type carries none). `None` when nothing listens.
    telemetry: Option<Box<Traced<E>>>,
}

impl<'a, E> CommandFuture<'a, E> {
    #[inline]
    pub(crate) fn new(
        inner: impl Future<Output = Result<CommandOutcome, CommandError<E>>> + Send + 'a,
        telemetry: Option<Box<Traced<E>>>,
    ) -> Self {
        CommandFuture {
            inner: Box::pin(inner),
            telemetry,
        }
    }
}

impl<E> Future for CommandFuture<'_, E> {
    type Output = Result<CommandOutcome, CommandError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &this.telemetry {
            None => this.inner.as_mut().poll(cx),
            Some(traced) => poll_traced(&mut this.inner, traced, cx),
        }
    }
}

/// A poll inside the command's span; at the end, its outcome recorded.
#[inline(never)]
fn poll_traced<E>(
    inner: &mut Boxed<'_, Result<CommandOutcome, CommandError<E>>>,
    (telemetry, finish): &Traced<E>,
    cx: &mut Context<'_>,
) -> Poll<Result<CommandOutcome, CommandError<E>>> {
    let result = {
        let _entered = telemetry.enter();
        std::task::ready!(inner.as_mut().poll(cx))
    };
    finish(telemetry, &result);
    Poll::Ready(result)
}

impl<E> fmt::Debug for CommandFuture<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommandFuture")
    }
}

/// The answer to one query, once awaited: what [`Cqrs::query`](crate::Cqrs::query) and
/// [`Cqrs::query_after`](crate::Cqrs::query_after) return. `R` is the query's response type.
#[must_use = "a query is answered only when its future is awaited"]
pub struct QueryFuture<'a, R> {
    inner: Boxed<'a, Result<R, QueryError>>,
}

impl<'a, R> QueryFuture<'a, R> {
    pub(crate) fn new(inner: impl Future<Output = Result<R, QueryError>> + Send + 'a) -> Self {
        QueryFuture {
            inner: Box::pin(inner),
        }
    }
}

impl<R> Future for QueryFuture<'_, R> {
    type Output = Result<R, QueryError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<R> fmt::Debug for QueryFuture<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueryFuture")
    }
}

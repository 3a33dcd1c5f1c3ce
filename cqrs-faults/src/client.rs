//! The load's client: runs a command through `Cqrs::execute_with` with a command id and retries
//! it the way the error API says a client may, recording the outcome in the [`Ledger`].
//!
//! - `Retry::Safe` (nothing written) and `CommandError::Conflict` (the bus ran out of its own
//!   retries; nothing written): retry after a pause.
//! - `Retry::SameIds` (an append may have landed): retry with the *same command id*, so the
//!   events get the same derived ids and a landed append is recognised as the same command.
//! - `Retry::Never`: give up. Refused if no earlier attempt had an unknown outcome; otherwise the
//!   client can no longer learn whether the command was stored, which the checks report.
//!
//! Every attempt uses the same command id, so retrying a `Safe` error with it is also correct.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use eventweave_core::{
    Command, CommandContext, CommandError, CommandOutcome, Cqrs, EventStore, Handles, Retry, Uuid,
    new_id,
};

use crate::ledger::{Entry, Fate, Ledger, Retries};

/// How long a client keeps retrying one command before it gives up (longer than a server
/// restart takes).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(90);

/// Whether and how a command that failed with `error` may be retried.
pub fn retry_of<E>(error: &CommandError<E>) -> Retry {
    match error {
        CommandError::Store(e) => e.retry(),
        // The bus re-decided `max_retries` times against concurrent writers; nothing was
        // appended, and running it again is an ordinary new attempt.
        CommandError::Conflict { .. } => Retry::Safe,
        _ => Retry::Never,
    }
}

/// How a client ended one command.
#[derive(Debug)]
pub enum Ended {
    /// Acknowledged, with its outcome.
    Acknowledged(Box<CommandOutcome>),
    /// Gave up without knowing.
    Uncertain,
    /// Refused (the error's text).
    Refused(String),
}

/// Options of one command's client.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attempt {
    /// Drop the first attempt's future after a random number of polls up to this one, as a
    /// caller with a timeout does (wherever it is suspended: the command may land or not; the
    /// client then retries with the same id). Counting polls instead of time drops it at every
    /// kind of suspension point, however fast the store answers.
    pub drop_first_within_polls: Option<u32>,
}

/// Runs `cmd` with a fresh command id until it is acknowledged, refused, or
/// [`GIVE_UP_AFTER`] passes, and records the outcome in `ledger`. `report` is called with the
/// command id before the first attempt (workers print it, so a killed worker's last command is
/// known to the parent).
pub async fn run<S, C>(
    app: &Cqrs<S>,
    ledger: &Ledger,
    cmd: C,
    entry: Entry,
    options: Attempt,
    report: impl Fn(&str, Uuid, &Entry, Option<&str>),
) -> Ended
where
    S: EventStore,
    C: Command + Clone,
    C::Aggregate: Handles<C>,
    <C::Aggregate as Handles<C>>::Error: Display,
{
    let id = new_id();
    report("try", id, &entry, None);
    let started = Instant::now();
    let mut retries = Retries::default();
    let mut unknown = false;
    let mut pause = Duration::from_millis(5);
    let mut first = true;
    let ended = loop {
        let attempt = app.execute_with(cmd.clone(), CommandContext::new().with_command_id(id));
        let result = match (first, options.drop_first_within_polls) {
            (true, Some(polls)) => match (Polls {
                future: Box::pin(attempt),
                left: 1 + (new_id().as_u128() as u32) % polls.max(1),
            })
            .await
            {
                Some(result) => result,
                None => {
                    // The future was dropped mid-flight: it may have appended.
                    retries.dropped += 1;
                    unknown = true;
                    first = false;
                    continue;
                }
            },
            _ => attempt.await,
        };
        first = false;
        match result {
            Ok(outcome) => {
                retries.reruns += u64::from(outcome.attempts.saturating_sub(1));
                break Ended::Acknowledged(Box::new(outcome));
            }
            Err(error) => {
                let retry = retry_of(&error);
                match (&error, retry) {
                    (_, Retry::SameIds) => {
                        retries.outcome_unknown += 1;
                        unknown = true;
                    }
                    (CommandError::Conflict { .. }, _) => retries.conflict += 1,
                    (_, Retry::Safe) => retries.unavailable += 1,
                    _ => {}
                }
                if retry == Retry::Never || started.elapsed() > GIVE_UP_AFTER {
                    let message = error.to_string();
                    if unknown {
                        if retry == Retry::Never {
                            let text = format!("command {id}: {message}");
                            ledger.lost_outcome(text.clone());
                            report("lost", id, &entry, Some(&text));
                        }
                        break Ended::Uncertain;
                    }
                    break Ended::Refused(message);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        }
    };
    ledger.count(&retries);
    let (fate, kind, message) = match &ended {
        Ended::Acknowledged(_) => (Fate::Acknowledged, "ack", None),
        Ended::Uncertain => (Fate::Uncertain, "unknown", None),
        Ended::Refused(m) => (Fate::Refused(m.clone()), "refused", Some(m.as_str())),
    };
    report(kind, id, &entry, message);
    ledger.record(id, entry, fate);
    ended
}

/// A future polled at most `left` times: then `None`, and the inner future is dropped.
struct Polls<F> {
    future: Pin<Box<F>>,
    left: u32,
}

impl<F: Future> Future for Polls<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        match self.future.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending => {
                if self.left == 0 {
                    // Be polled once more, to give up.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }
}

/// A report callback that prints nothing (writers inside the suite's own process).
pub fn silent(_: &str, _: Uuid, _: &Entry, _: Option<&str>) {}

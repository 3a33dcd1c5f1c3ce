//! What a process manager's handler returns: [`Issue`]s (commands and deadlines), and what its
//! compensation handler receives: a [`Rejection`].

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::aggregate::{Command, Handles};
use crate::dispatch::Router;
use crate::error::{BoxError, CommandError, DispatchError};
use crate::event::Event;
use crate::ids::Uuid;
use crate::store::EventStore;

/// A command a process manager can issue with [`Issue::command`]: a command of an aggregate
/// that handles it (every such command, through a blanket impl), or of a decision that decides
/// it (`#[derive(Command)]` implements it for `#[command(decision = …)]`).
///
/// Both kinds are recorded and run the same way: by name through the process sink's
/// [`Router`], with a command id derived from the triggering event, their rejections handed to
/// the compensation.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be issued by a process manager: no aggregate or decision handles it",
    label = "not a handled command",
    note = "a process manager issues a `#[derive(Command)]` type whose `#[command(aggregate = …)]` or `#[command(decision = …)]` has a `#[handle]` method for it"
)]
pub trait Issuable: Send + Sync + 'static {
    /// The name it is recorded and routed by.
    const NAME: &'static str;

    /// Routes the aggregate or decision that handles it in `router` (nothing when it is
    /// routed already).
    #[doc(hidden)]
    fn __route<S: EventStore>(router: &mut Router<S>) -> Result<(), DispatchError>;
}

impl<C> Issuable for C
where
    C: Command,
    C::Aggregate: Handles<C>,
{
    const NAME: &'static str = <C as Command>::NAME;

    fn __route<S: EventStore>(router: &mut Router<S>) -> Result<(), DispatchError> {
        router.__ensure_aggregate::<C::Aggregate>()
    }
}

/// A command or a deadline that a process manager issues.
///
/// Both are data (a name and a JSON body), recorded in the instance stream before they take
/// effect, compared by value in [`ProcessFixture`](crate::fixture::ProcessFixture) tests.
#[derive(Clone, PartialEq)]
pub struct Issue(pub(crate) Kind);

#[derive(Clone, PartialEq)]
pub(crate) enum Kind {
    Command(IssuedCommand),
    Deadline(IssuedDeadline),
    /// A value that could not be serialized: the sink reports it as a handler failure.
    Invalid {
        what: &'static str,
        message: String,
    },
}

/// A command issued by a process manager: its name (`Command::NAME`) and JSON body.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct IssuedCommand {
    /// The command's name, as routed by [`Router`](crate::Router).
    pub name: String,
    /// The command as JSON.
    pub body: Value,
}

/// A timeout event scheduled by a process manager.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct IssuedDeadline {
    /// How long after the triggering event was recorded the timeout is due (microseconds).
    pub after_micros: u64,
    /// The timeout event's stored name.
    pub event_name: String,
    /// Its schema version.
    pub event_version: u32,
    /// The timeout event as JSON.
    pub payload: Value,
}

impl Issue {
    /// Issues `command`. Only compiles for a command that an aggregate or a decision handles
    /// ([`Issuable`]), and that is serializable both ways (it is recorded before it runs, and
    /// run by name).
    pub fn command<C>(command: C) -> Issue
    where
        C: Issuable + Serialize + DeserializeOwned,
    {
        match serde_json::to_value(&command) {
            Ok(body) => Issue(Kind::Command(IssuedCommand {
                name: C::NAME.to_owned(),
                body,
            })),
            Err(e) => Issue(Kind::Invalid {
                what: C::NAME,
                message: e.to_string(),
            }),
        }
    }

    /// Schedules `timeout` to be delivered to this instance `after` the triggering event was
    /// recorded (list its name in the process manager's events).
    pub fn deadline<E: Event>(after: Duration, timeout: E) -> Issue {
        match serde_json::to_value(&timeout) {
            Ok(payload) => Issue(Kind::Deadline(IssuedDeadline {
                after_micros: u64::try_from(after.as_micros()).unwrap_or(u64::MAX),
                event_name: E::NAME.to_owned(),
                event_version: E::VERSION,
                payload,
            })),
            Err(e) => Issue(Kind::Invalid {
                what: E::NAME,
                message: e.to_string(),
            }),
        }
    }

    /// The command, if this issues one.
    pub fn as_command(&self) -> Option<&IssuedCommand> {
        match &self.0 {
            Kind::Command(c) => Some(c),
            _ => None,
        }
    }

    /// The deadline, if this schedules one.
    pub fn as_deadline(&self) -> Option<&IssuedDeadline> {
        match &self.0 {
            Kind::Deadline(d) => Some(d),
            _ => None,
        }
    }
}

impl fmt::Debug for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Command(c) => write!(f, "command {} {}", c.name, c.body),
            Kind::Deadline(d) => write!(
                f,
                "deadline in {:?}: {} {}",
                Duration::from_micros(d.after_micros),
                d.event_name,
                d.payload
            ),
            Kind::Invalid { what, message } => write!(f, "unserializable {what}: {message}"),
        }
    }
}

/// What a process-manager handler may return: an [`Issue`], a `Vec` or `Option` of them, or
/// `()` for nothing.
pub trait IntoIssues {
    /// The issues, in order.
    fn into_issues(self) -> Vec<Issue>;
}

impl IntoIssues for () {
    fn into_issues(self) -> Vec<Issue> {
        Vec::new()
    }
}

impl IntoIssues for Issue {
    fn into_issues(self) -> Vec<Issue> {
        vec![self]
    }
}

impl IntoIssues for Vec<Issue> {
    fn into_issues(self) -> Vec<Issue> {
        self
    }
}

impl IntoIssues for Option<Issue> {
    fn into_issues(self) -> Vec<Issue> {
        self.into_iter().collect()
    }
}

/// A command issued by a process manager that did not succeed, as its compensation
/// (`#[on_rejected]`) sees it: the same in production and in
/// [`ProcessFixture::when_rejected`](crate::fixture::ProcessFixture::when_rejected).
///
/// The handler's own error stays typed: match on it with [`Rejection::error`].
///
/// ```
/// # use eventweave_core::process::Rejection;
/// # #[derive(Debug, PartialEq, thiserror::Error)]
/// # enum BookError { #[error("no copy available")] NoCopyAvailable }
/// fn compensate(rejection: &Rejection) -> &'static str {
///     match rejection.error::<BookError>() {
///         Some(BookError::NoCopyAvailable) => "put the member on the waiting list",
///         None => "not a business refusal: see rejection.kind()",
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Rejection {
    /// The command's id (derived from the event that issued it).
    pub command_id: Uuid,
    /// The command that was rejected.
    pub command: IssuedCommand,
    kind: RejectionKind,
    /// The handler's error (kind `Rejected`), or the command error's message.
    reason: Arc<dyn StdError + Send + Sync>,
}

/// Why a process manager's command did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The aggregate's or decision's handler refused it: [`Rejection::error`] gives its
    /// error, typed.
    Rejected,
    /// A command for an existing aggregate found none.
    NotFound,
    /// A creation command found the aggregate already there.
    AlreadyExists,
    /// Any other failure of the command itself (its handler panicked, a service was missing,
    /// its events could not be encoded, …); the message says which.
    Failed,
}

/// A command error's text, when it is not the handler's own error.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

impl Rejection {
    /// The rejection of `command` (id `command_id`) by its handler's `error`.
    pub fn rejected<E: StdError + Send + Sync + 'static>(
        command_id: Uuid,
        command: IssuedCommand,
        error: E,
    ) -> Self {
        Rejection {
            command_id,
            command,
            kind: RejectionKind::Rejected,
            reason: Arc::new(error),
        }
    }

    /// The rejection of `command` by a command error that is not a store failure (those are
    /// retried, never turned into rejections). A `Rejected` error keeps its value, typed.
    pub(crate) fn from_command_error(
        command_id: Uuid,
        command: IssuedCommand,
        error: CommandError<BoxError>,
    ) -> Self {
        let (kind, reason): (_, Arc<dyn StdError + Send + Sync>) = match error {
            CommandError::Rejected(e) => (RejectionKind::Rejected, Arc::from(e)),
            e @ CommandError::NotFound { .. } => {
                (RejectionKind::NotFound, Arc::new(Message(e.to_string())))
            }
            e @ CommandError::AlreadyExists { .. } => (
                RejectionKind::AlreadyExists,
                Arc::new(Message(e.to_string())),
            ),
            e => (RejectionKind::Failed, Arc::new(Message(e.to_string()))),
        };
        Rejection {
            command_id,
            command,
            kind,
            reason,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The handler's error, if the handler refused the command with an `E`: match on it.
    pub fn error<E: StdError + 'static>(&self) -> Option<&E> {
        match self.kind {
            RejectionKind::Rejected => (&*self.reason as &(dyn StdError + 'static)).downcast_ref(),
            _ => None,
        }
    }

    /// The error's message: the handler error's `Display` (`no copy available`), or for other
    /// kinds the command error's. The same text in tests and in production, and the text
    /// recorded in the instance stream.
    pub fn message(&self) -> String {
        self.reason.to_string()
    }

    /// Whether the rejected command is `C`.
    pub fn is<C: Issuable>(&self) -> bool {
        self.command.name == C::NAME
    }

    /// The rejected command, decoded (`None` if it is not a `C`).
    pub fn command<C: Issuable + DeserializeOwned>(&self) -> Option<C> {
        if !self.is::<C>() {
            return None;
        }
        serde_json::from_value(self.command.body.clone()).ok()
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("command_id", &self.command_id)
            .field("command", &self.command)
            .field("kind", &self.kind)
            .field("message", &self.message())
            .finish()
    }
}

/// `command `Name` rejected: message`.
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command `{}` ", self.command.name)?;
        match self.kind {
            RejectionKind::Rejected => write!(f, "rejected: {}", self.reason),
            _ => write!(f, "failed: {}", self.reason),
        }
    }
}

/// Equal when they are about the same command and say the same (kind and message).
impl PartialEq for Rejection {
    fn eq(&self, other: &Self) -> bool {
        self.command_id == other.command_id
            && self.command == other.command
            && self.kind == other.kind
            && self.message() == other.message()
    }
}

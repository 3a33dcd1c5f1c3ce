//! What a process manager's handler returns: [`Issue`]s (commands and deadlines), and what its
//! compensation handler receives: a [`Rejection`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::aggregate::{Command, Handles};
use crate::event::Event;
use crate::ids::Uuid;

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
    /// Issues `command`. Only compiles for a command whose aggregate has a handler for it, and
    /// that is serializable both ways (it is recorded before it runs, and run by name).
    pub fn command<C>(command: C) -> Issue
    where
        C: Command + Serialize + DeserializeOwned,
        C::Aggregate: Handles<C>,
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

/// A command issued by a process manager that did not succeed.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The command's id (derived from the event that issued it).
    pub command_id: Uuid,
    /// The command that was rejected.
    pub command: IssuedCommand,
    /// Why (the command error's message).
    pub error: String,
}

impl Rejection {
    /// Whether the rejected command is `C`.
    pub fn is<C: Command>(&self) -> bool {
        self.command.name == C::NAME
    }

    /// The rejected command, decoded (`None` if it is not a `C`).
    pub fn command<C: Command + DeserializeOwned>(&self) -> Option<C> {
        if !self.is::<C>() {
            return None;
        }
        serde_json::from_value(self.command.body.clone()).ok()
    }
}

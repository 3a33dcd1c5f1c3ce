//! [`ProcessFixture`]: given events, when an event (or a rejection), expect commands and
//! deadlines — without a store.

use serde::Serialize;

use crate::envelope::{EventMeta, Payload, RecordedEvent, UserMetadata};
use crate::error::{BoxError, CommandError};
use crate::event::Event;
use crate::ids::{Position, StreamId, Timestamp, Uuid, new_id};
use crate::process::issue::IssuedCommand;
use crate::process::{Issuable, Issue, ProcessManager, Rejection, derive_id};

/// Given past events, when an event arrives (or an issued command is rejected), then expect
/// the commands and deadlines the process manager issues.
///
/// Commands compare by name and JSON, so expectations are written with the same
/// [`Issue::command`] / [`Issue::deadline`] the handlers use.
pub struct ProcessFixture<P> {
    state: P,
    correlation: Uuid,
    version: u64,
}

impl<P: ProcessManager> Default for ProcessFixture<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: ProcessManager> ProcessFixture<P> {
    /// A new instance (default state).
    pub fn new() -> Self {
        ProcessFixture {
            state: P::default(),
            correlation: new_id(),
            version: 0,
        }
    }

    /// Handles a past event, in stream `stream` (the issues are dropped).
    ///
    /// # Panics
    /// If the handler fails or `P` does not handle events of this name.
    pub fn given_in<E: Event>(mut self, stream: &str, event: E) -> Self {
        let recorded = self.record(stream, &event);
        if let Err(e) = self.state.handle(&recorded) {
            panic!("`{}` failed on the given `{}`: {e}", P::NAME, E::NAME);
        }
        self
    }

    /// Handles a past event (in the stream `"fixture"`).
    pub fn given<E: Event>(self, event: E) -> Self {
        self.given_in("fixture", event)
    }

    /// The state the given events produced.
    pub fn state(&self) -> &P {
        &self.state
    }

    /// Handles `event` in stream `stream` and returns what it issued.
    ///
    /// # Panics
    /// If `P` does not handle events of this name, the handler fails, or it issues a command
    /// that its declared `issues = [...]` does not list.
    #[track_caller]
    pub fn when_in<E: Event>(mut self, stream: &str, event: E) -> ThenProcess<P> {
        let recorded = self.record(stream, &event);
        match self.state.handle(&recorded) {
            Ok(issued) => ThenProcess {
                state: self.state,
                issued: declared::<P>(issued),
            },
            Err(e) => panic!("`{}` failed on `{}`: {e}", P::NAME, E::NAME),
        }
    }

    /// Handles `event` (in the stream `"fixture"`) and returns what it issued.
    #[track_caller]
    pub fn when<E: Event>(self, event: E) -> ThenProcess<P> {
        self.when_in("fixture", event)
    }

    /// Runs the compensation handler for `command` rejected by its handler with `error` (the
    /// aggregate's error type): the [`Rejection`] is the one production would pass, so
    /// [`Rejection::error`] gives `error` back typed and [`Rejection::message`] its text.
    pub fn when_rejected<C, E>(self, command: C, error: E) -> ThenProcess<P>
    where
        C: Issuable + Serialize,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.compensate(command, CommandError::Rejected(Box::new(error)))
    }

    /// Runs the compensation handler for `command` failing with `error`, any command error
    /// (`CommandError::NotFound`, say) but the store failures and conflicts production retries.
    pub fn when_failed<C, E>(self, command: C, error: CommandError<E>) -> ThenProcess<P>
    where
        C: Issuable + Serialize,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.compensate(command, error.map_rejection(|e| Box::new(e) as BoxError))
    }

    fn compensate<C: Issuable + Serialize>(
        mut self,
        command: C,
        error: CommandError<BoxError>,
    ) -> ThenProcess<P> {
        let rejection = Rejection::from_command_error(
            derive_id(self.correlation, "fixture", self.version),
            IssuedCommand {
                name: C::NAME.to_owned(),
                body: serde_json::to_value(&command).expect("the command serializes"),
            },
            error,
        );
        let issued = self.state.on_rejected(&rejection);
        ThenProcess {
            state: self.state,
            issued: declared::<P>(issued),
        }
    }

    fn record<E: Event>(&mut self, stream: &str, event: &E) -> RecordedEvent {
        assert!(
            P::EVENTS.contains(&E::NAME),
            "`{}` does not handle `{}` (its events: {:?})",
            P::NAME,
            E::NAME,
            P::EVENTS
        );
        self.version += 1;
        RecordedEvent {
            meta: EventMeta {
                event_id: new_id(),
                stream: StreamId::from(stream),
                version: self.version,
                position: Position(self.version),
                event_name: E::NAME.into(),
                event_version: E::VERSION,
                recorded_at: Timestamp::now(),
                correlation_id: Some(self.correlation),
                causation_id: None,
                metadata: UserMetadata::empty(),
                tags: crate::Tags::empty(),
            },
            payload: Payload::from_json(
                serde_json::to_string(event).expect("the event serializes"),
            ),
        }
    }
}

/// `issued`, after checking that every command in it is one `P` declares (when it declares
/// any): the catalog draws the declaration, so a test fails when it stops being true.
#[track_caller]
fn declared<P: ProcessManager>(issued: Vec<Issue>) -> Vec<Issue> {
    if let Some(declared) = P::ISSUES {
        for command in issued.iter().filter_map(Issue::as_command) {
            assert!(
                declared.contains(&command.name.as_str()),
                "`{}` issued `{}`, which its `#[process_manager(issues = [...])]` does not list \
                 (it lists {declared:?}): add it, so the event catalog shows it",
                P::NAME,
                command.name,
            );
        }
    }
    issued
}

/// What a process manager issued in a [`ProcessFixture`].
#[derive(Debug)]
pub struct ThenProcess<P> {
    state: P,
    issued: Vec<Issue>,
}

impl<P> ThenProcess<P> {
    /// Asserts that exactly `expected` was issued (commands and deadlines, in order).
    #[track_caller]
    pub fn expect_issued(self, expected: impl IntoIterator<Item = Issue>) -> Self {
        let expected: Vec<Issue> = expected.into_iter().collect();
        assert_eq!(self.issued, expected, "issued");
        self
    }

    /// Asserts the commands issued, in order (deadlines ignored).
    #[track_caller]
    pub fn expect_commands(self, expected: impl IntoIterator<Item = Issue>) -> Self {
        let commands: Vec<&Issue> = self
            .issued
            .iter()
            .filter(|i| i.as_command().is_some())
            .collect();
        let expected: Vec<Issue> = expected.into_iter().collect();
        assert_eq!(
            commands,
            expected.iter().collect::<Vec<_>>(),
            "issued commands"
        );
        self
    }

    /// Asserts that nothing was issued.
    #[track_caller]
    pub fn expect_nothing(self) -> Self {
        assert!(
            self.issued.is_empty(),
            "expected nothing, issued {:?}",
            self.issued
        );
        self
    }

    /// Asserts that `deadline` (an [`Issue::deadline`]) was scheduled.
    #[track_caller]
    pub fn expect_deadline(self, deadline: Issue) -> Self {
        assert!(
            self.issued.contains(&deadline),
            "expected {deadline:?}, issued {:?}",
            self.issued
        );
        self
    }

    /// The state after the event.
    pub fn state(&self) -> &P {
        &self.state
    }

    /// Everything issued.
    pub fn issued(&self) -> &[Issue] {
        &self.issued
    }
}

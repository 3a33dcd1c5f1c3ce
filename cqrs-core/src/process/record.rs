//! What the instance stream `pm-{NAME}-{correlation}` and the deadline stream record, and the
//! instance they fold back into.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::ids::Uuid;
use crate::process::ProcessManager;
use crate::process::issue::IssuedCommand;
use crate::telemetry::TraceContext;

/// Stored name of [`Handled`].
pub(crate) const HANDLED: &str = "$pm.handled";
/// Stored name of [`Completed`].
pub(crate) const COMPLETED: &str = "$pm.completed";
/// Stored name of [`Rejected`].
pub(crate) const REJECTED: &str = "$pm.rejected";
/// Stored name of [`DeadlineRecord`].
pub(crate) const DEADLINE: &str = "$pm.deadline";
/// Metadata key of a fired timeout event: the deadline's id.
pub(crate) const DEADLINE_KEY: &str = "deadline";

/// A command waiting to run (recorded, not yet known to have run).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// Its command id.
    pub id: Uuid,
    /// The event that caused it.
    pub cause: Uuid,
    /// Name and body.
    pub command: IssuedCommand,
    /// The W3C trace of its cause, if it carried one (absent in records written before).
    #[serde(default, flatten)]
    pub trace: TraceRecord,
}

/// A trace context as recorded in the instance and deadline streams: the `traceparent` and
/// `tracestate` of the event that caused a command or deadline, so that the command (run
/// later, perhaps after a restart) and the timeout event join its trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TraceRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl TraceRecord {
    pub fn of(trace: Option<&TraceContext>) -> Self {
        trace.map_or_else(TraceRecord::default, |t| TraceRecord {
            traceparent: Some(t.traceparent().to_string()),
            tracestate: t.tracestate().map(str::to_owned),
        })
    }

    /// The context, if one was recorded (and is valid).
    pub fn context(&self) -> Option<TraceContext> {
        TraceContext::from_headers(self.traceparent.as_deref()?, self.tracestate.as_deref())
    }
}

/// An event was handled: the new state and what it issued.
#[derive(Serialize, Deserialize)]
pub(crate) struct Handled {
    pub event: Uuid,
    pub state: Value,
    pub commands: Vec<Pending>,
    pub deadlines: Vec<Uuid>,
}

/// A command ran (or had already run).
#[derive(Serialize, Deserialize)]
pub(crate) struct Completed {
    pub command: Uuid,
}

/// A command was rejected; the compensation's state and commands.
#[derive(Serialize, Deserialize)]
pub(crate) struct Rejected {
    pub command: Uuid,
    pub name: String,
    pub error: String,
    pub state: Value,
    pub commands: Vec<Pending>,
    pub deadlines: Vec<Uuid>,
}

/// A scheduled deadline, in the deadline stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeadlineRecord {
    /// The deadline's id: also the event id of the timeout event once fired.
    pub id: Uuid,
    /// The instance it belongs to.
    pub correlation: Uuid,
    /// The event whose handler scheduled it.
    pub cause: Uuid,
    /// When it is due (microseconds since the Unix epoch).
    pub due_micros: i64,
    pub event_name: String,
    pub event_version: u32,
    /// The timeout event's JSON.
    pub payload: String,
    /// The W3C trace of its cause, if it carried one (absent in records written before).
    #[serde(default, flatten)]
    pub trace: TraceRecord,
}

/// One process-manager instance, folded from its stream.
pub(crate) struct Instance<P> {
    pub state: P,
    pub version: u64,
    pub handled: HashSet<Uuid>,
    /// Commands recorded but not yet completed or rejected, in the order they run.
    pub pending: Vec<Pending>,
}

impl<P: ProcessManager> Instance<P> {
    pub fn new() -> Self {
        Instance {
            state: P::default(),
            version: 0,
            handled: HashSet::new(),
            pending: Vec::new(),
        }
    }

    /// Folds one record of the instance stream.
    pub fn fold(&mut self, record: &RecordedEvent) -> Result<(), StoreError> {
        let meta = &record.meta;
        let bad = |e: String| {
            StoreError::Backend(
                format!(
                    "process manager `{}`: record {} of `{}` is unreadable: {e}",
                    P::NAME,
                    meta.version,
                    meta.stream
                )
                .into(),
            )
        };
        let json = record.payload.as_str();
        match &*meta.event_name {
            HANDLED => {
                let handled: Handled =
                    serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
                self.state =
                    serde_json::from_value(handled.state).map_err(|e| bad(e.to_string()))?;
                self.handled.insert(handled.event);
                self.pending.extend(handled.commands);
            }
            COMPLETED => {
                let done: Completed = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
                self.pending.retain(|p| p.id != done.command);
            }
            REJECTED => {
                let rejected: Rejected =
                    serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
                self.state =
                    serde_json::from_value(rejected.state).map_err(|e| bad(e.to_string()))?;
                self.pending.retain(|p| p.id != rejected.command);
                self.pending.splice(0..0, rejected.commands);
            }
            other => return Err(bad(format!("unknown record `{other}`"))),
        }
        self.version = meta.version;
        Ok(())
    }
}

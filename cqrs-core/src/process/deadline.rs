//! The deadline timer: fires scheduled deadlines by appending their timeout events, also those
//! scheduled before a restart (read back from the deadline stream).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::context::CAUSED_BY_EVENT;
use crate::envelope::{NewEvent, Payload, UserMetadata};
use crate::ids::{StreamId, Timestamp, Uuid};
use crate::process::record::{DEADLINE, DEADLINE_KEY, DeadlineRecord};
use crate::store::{EventStore, ExpectedVersion};

/// Records read per round trip when the timer reads the deadline stream back.
const READ_BATCH: usize = 1024;
/// How long the timer waits before trying again after the store failed.
const RETRY: Duration = Duration::from_secs(1);

/// Handle of the timer task; dropping it ends the task.
pub(crate) struct Timer {
    schedule: mpsc::UnboundedSender<DeadlineRecord>,
}

impl Timer {
    /// Starts the timer of the deadline stream `stream`.
    pub fn start<S: EventStore>(store: S, stream: StreamId) -> Timer {
        let (schedule, inbox) = mpsc::unbounded_channel();
        tokio::spawn(run(store, stream, inbox));
        Timer { schedule }
    }

    /// Adds a deadline recorded in the deadline stream.
    pub fn schedule(&self, deadline: DeadlineRecord) {
        let _ = self.schedule.send(deadline);
    }
}

/// The deadlines scheduled in `stream` whose timeout event is not there yet.
async fn pending<S: EventStore>(
    store: &S,
    stream: &StreamId,
) -> Result<Vec<DeadlineRecord>, crate::StoreError> {
    let mut scheduled = Vec::new();
    let mut fired = HashSet::new();
    let mut from = 1;
    loop {
        let batch = store.read_stream(stream, from, READ_BATCH).await?;
        for event in &batch {
            if event.meta.event_name == DEADLINE {
                if let Ok(record) = serde_json::from_str::<DeadlineRecord>(event.payload.as_str()) {
                    scheduled.push(record);
                }
            } else {
                fired.insert(event.meta.event_id);
            }
            from = event.meta.version + 1;
        }
        if batch.len() < READ_BATCH {
            scheduled.retain(|d: &DeadlineRecord| !fired.contains(&d.id));
            return Ok(scheduled);
        }
    }
}

async fn run<S: EventStore>(
    store: S,
    stream: StreamId,
    mut inbox: mpsc::UnboundedReceiver<DeadlineRecord>,
) {
    let mut due: BTreeMap<(i64, Uuid), DeadlineRecord> = BTreeMap::new();
    loop {
        match pending(&store, &stream).await {
            Ok(found) => {
                due.extend(found.into_iter().map(|d| ((d.due_micros, d.id), d)));
                break;
            }
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
    loop {
        let wait = match due.first_key_value() {
            Some(((at, _), _)) => {
                let now = Timestamp::now().unix_micros();
                Duration::from_micros(u64::try_from(at - now).unwrap_or(0))
            }
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            received = inbox.recv() => match received {
                Some(d) => { due.insert((d.due_micros, d.id), d); }
                None => return,
            },
            () = tokio::time::sleep(wait) => {
                let now = Timestamp::now().unix_micros();
                while let Some(entry) = due.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    if fire(&store, &stream, entry.get()).await.is_err() {
                        tokio::time::sleep(RETRY).await;
                        break;
                    }
                    entry.remove();
                }
            }
        }
    }
}

/// Appends the timeout event of `deadline` (its id is the deadline's, so firing twice is the
/// store's idempotent retry).
async fn fire<S: EventStore>(
    store: &S,
    stream: &StreamId,
    deadline: &DeadlineRecord,
) -> Result<(), crate::StoreError> {
    let mut metadata = UserMetadata::empty();
    metadata.insert(CAUSED_BY_EVENT, deadline.cause.to_string());
    metadata.insert(DEADLINE_KEY, deadline.id.to_string());
    let event = NewEvent {
        event_id: deadline.id,
        event_name: deadline.event_name.clone().into(),
        event_version: deadline.event_version,
        payload: Payload::from_json(deadline.payload.as_str()),
        correlation_id: Some(deadline.correlation),
        causation_id: None,
        metadata,
    };
    match store
        .append(stream, ExpectedVersion::Any, vec![event])
        .await
    {
        Ok(_) | Err(crate::StoreError::DuplicateEventId { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

//! The deadline timer: follows the deadline stream and fires the deadlines recorded there by
//! appending their timeout events.
//!
//! The stream is the timer's only source: it reads it from the start once, then only what is
//! new (it keeps the next version to read), when the sink asks ([`Timer::refresh`]: after it
//! recorded deadlines, and every time the runner loads the checkpoint, which it does each time
//! it gains the lease), and at the latest every poll interval. So a deadline another process
//! recorded (and perhaps could not fire: it stopped or lost the lease) is fired here, and one
//! whose timeout event another process appended is dropped.
//!
//! The timer runs for as long as its sink exists, also while the runner stands by without the
//! lease. That is harmless: a timeout event's id is its deadline's id, so when two timers fire
//! one deadline the store records it once (the second append is an idempotent retry of the
//! same event), and the event is handled by whichever process holds the lease.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::context::CAUSED_BY_EVENT;
use crate::envelope::{NewEvent, Payload, UserMetadata};
use crate::ids::{StreamId, Timestamp, Uuid};
use crate::process::record::{DEADLINE, DEADLINE_KEY, DeadlineRecord};
use crate::store::{EventStore, ExpectedVersion};

/// Records read per round trip when the timer reads the deadline stream.
const READ_BATCH: usize = 1024;
/// How long the timer waits before trying again after the store failed.
const RETRY: Duration = Duration::from_secs(1);
/// Default of the longest time between two reads of the deadline stream.
pub(crate) const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// Handle of the timer task; dropping it ends the task.
pub(crate) struct Timer {
    wake: mpsc::Sender<()>,
}

impl Timer {
    /// Starts the timer of the deadline stream `stream`, which reads what is new in the stream
    /// at least every `poll`.
    pub fn start<S: EventStore>(store: S, stream: StreamId, poll: Duration) -> Timer {
        // One slot: a refresh asked for while another is waiting adds nothing.
        let (wake, inbox) = mpsc::channel(1);
        tokio::spawn(run(store, stream, inbox, poll));
        Timer { wake }
    }

    /// Asks the timer to read what is new in the deadline stream.
    pub fn refresh(&self) {
        let _ = self.wake.try_send(());
    }
}

/// The deadlines of the stream that are due to fire, as far as the timer has read it.
#[derive(Default)]
struct Book {
    /// The next version of the deadline stream to read.
    next_version: u64,
    /// Deadlines whose timeout event was not read yet, by due time.
    due: BTreeMap<(i64, Uuid), DeadlineRecord>,
    /// The due time of each deadline in `due`, by id.
    by_id: HashMap<Uuid, i64>,
}

impl Book {
    fn new() -> Self {
        Book {
            next_version: 1,
            ..Book::default()
        }
    }

    /// Reads the stream from `next_version` on: adds the deadlines recorded there, drops those
    /// whose timeout event is there (fired by this timer or another process's).
    async fn follow<S: EventStore>(
        &mut self,
        store: &S,
        stream: &StreamId,
    ) -> Result<(), crate::StoreError> {
        loop {
            let batch = store
                .read_stream(stream, self.next_version, READ_BATCH)
                .await?;
            for event in &batch {
                if event.meta.event_name == DEADLINE {
                    if let Ok(record) =
                        serde_json::from_str::<DeadlineRecord>(event.payload.as_str())
                    {
                        self.add(record);
                    }
                } else {
                    self.remove(event.meta.event_id);
                }
                self.next_version = event.meta.version + 1;
            }
            if batch.len() < READ_BATCH {
                return Ok(());
            }
        }
    }

    fn add(&mut self, record: DeadlineRecord) {
        if self.by_id.insert(record.id, record.due_micros).is_none() {
            self.due.insert((record.due_micros, record.id), record);
        }
    }

    fn remove(&mut self, id: Uuid) {
        if let Some(at) = self.by_id.remove(&id) {
            self.due.remove(&(at, id));
        }
    }

    /// How long until the first deadline is due (`None`: nothing is scheduled).
    fn next_wait(&self) -> Option<Duration> {
        let ((at, _), _) = self.due.first_key_value()?;
        let now = Timestamp::now().unix_micros();
        Some(Duration::from_micros(u64::try_from(at - now).unwrap_or(0)))
    }

    /// Fires every deadline that is due; `Err` when the store failed (the rest stay due).
    async fn fire_due<S: EventStore>(
        &mut self,
        store: &S,
        stream: &StreamId,
    ) -> Result<(), crate::StoreError> {
        let now = Timestamp::now().unix_micros();
        while let Some((&(at, id), deadline)) = self.due.first_key_value() {
            if at > now {
                break;
            }
            fire(store, stream, deadline).await?;
            self.remove(id);
        }
        Ok(())
    }
}

async fn run<S: EventStore>(
    store: S,
    stream: StreamId,
    mut inbox: mpsc::Receiver<()>,
    poll: Duration,
) {
    let mut book = Book::new();
    let mut read_at: Option<tokio::time::Instant> = None;
    loop {
        let stale = read_at.is_none_or(|at| at.elapsed() >= poll);
        let failed = if stale {
            match book.follow(&store, &stream).await {
                Ok(()) => {
                    read_at = Some(tokio::time::Instant::now());
                    book.fire_due(&store, &stream).await.is_err()
                }
                Err(_) => true,
            }
        } else {
            book.fire_due(&store, &stream).await.is_err()
        };
        if failed {
            // The store failed: wait before trying again (a refresh asked for meanwhile stays
            // in the channel and is taken next round).
            tokio::time::sleep(RETRY).await;
            if inbox.is_closed() {
                return;
            }
            continue;
        }
        // Until the first deadline is due or the next read, whichever comes first.
        let until_poll = read_at.map_or(Duration::ZERO, |at| poll.saturating_sub(at.elapsed()));
        let wait = book
            .next_wait()
            .map_or(until_poll, |due| due.min(until_poll));
        tokio::select! {
            received = inbox.recv() => match received {
                Some(()) => read_at = None,
                None => return,
            },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Appends the timeout event of `deadline` (its id is the deadline's, so firing twice, here or
/// in another process, is the store's idempotent retry).
async fn fire<S: EventStore>(
    store: &S,
    stream: &StreamId,
    deadline: &DeadlineRecord,
) -> Result<(), crate::StoreError> {
    let mut metadata = UserMetadata::empty();
    metadata.insert(CAUSED_BY_EVENT, deadline.cause.to_string());
    metadata.insert(DEADLINE_KEY, deadline.id.to_string());
    if let Some(trace) = deadline.trace.context() {
        trace.write_metadata(&mut metadata);
    }
    let event = NewEvent {
        event_id: deadline.id,
        event_name: deadline.event_name.clone().into(),
        event_version: deadline.event_version,
        payload: Payload::from_json(deadline.payload.as_str()),
        correlation_id: Some(deadline.correlation),
        causation_id: None,
        metadata,
        tags: crate::Tags::empty(),
    };
    match store
        .append(stream, ExpectedVersion::Any, vec![event])
        .await
    {
        // The id is taken: the deadline fired, here or elsewhere (another version of the
        // application may have written other metadata, which is `IdempotencyConflict`).
        Ok(_)
        | Err(
            crate::StoreError::DuplicateEventId { .. }
            | crate::StoreError::IdempotencyConflict { .. },
        ) => Ok(()),
        Err(e) => Err(e),
    }
}

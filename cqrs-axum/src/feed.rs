//! The live event feed: Server-Sent Events of every stream (`$all`) or of one stream, from a
//! position, resumable with `Last-Event-ID`, with bounded memory per client.
//!
//! How a client's feed runs:
//! 1. **Catch-up from the store**, in batches of [`BATCH`] (`read_all` for `$all`, `read_stream`
//!    for one stream), pulled only as fast as the client's connection takes them: a slow
//!    reader holds one batch, never more.
//! 2. When a read comes back short (the client is near the head), the feed **subscribes to the
//!    hub** (below) and reads the store until it has passed the last position the hub had sent
//!    when it subscribed. Nothing falls between the two: the hub records that position *before*
//!    it sends the event, and every position up to it is readable (the hub read it in order).
//! 3. **Live**: events come from the hub's broadcast channel (events already sent from the store
//!    are skipped by position or version).
//!
//! The **hub** is one task per service that follows `$all` from the store's head
//! (`EventStore::subscribe`) and broadcasts each event once, shared (`Arc`), into a bounded
//! channel of `feed_buffer` events: memory does not grow with clients or with their slowness. A
//! client that falls more than `feed_buffer` events behind the hub has been reading slower than
//! events are recorded: its feed ends with a final `lagged` event, and its `EventSource`
//! reconnects with `Last-Event-ID` and catches up from the store (step 1). The hub starts with
//! the first feed client and stops when the last one has gone (at the next event) or at
//! shutdown.
//!
//! Event ids: the global position in the `$all` feed, the stream version in a stream's feed.
//! Control events carry no id (so `Last-Event-ID` stays the last event delivered):
//! `lagged`, `shutdown` (the server is stopping; reconnect later) and `error` (the store
//! failed; reconnect later).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use eventweave_core::{EventStore, Position, RecordedEvent, StoreError, StreamId};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::{Mutex, broadcast, watch};

/// Events read from the store per round trip while a feed catches up.
pub const BATCH: usize = 256;

/// The live half of the feed, shared by every client.
pub(crate) struct Hub<S> {
    store: S,
    capacity: usize,
    live: Mutex<Option<Live>>,
    shutdown: watch::Receiver<bool>,
}

#[derive(Clone)]
struct Live {
    tx: broadcast::Sender<Arc<RecordedEvent>>,
    /// The position of the last event sent (or the head the hub started after).
    sent: Arc<AtomicU64>,
}

impl<S: EventStore> Hub<S> {
    pub fn new(store: S, capacity: usize, shutdown: watch::Receiver<bool>) -> Self {
        Hub {
            store,
            capacity: capacity.max(1),
            live: Mutex::new(None),
            shutdown,
        }
    }

    /// A receiver of live events and the position of the last event sent before it subscribed.
    async fn subscribe(
        self: &Arc<Self>,
    ) -> Result<Option<(broadcast::Receiver<Arc<RecordedEvent>>, u64)>, StoreError> {
        if *self.shutdown.borrow() {
            return Ok(None);
        }
        let mut live = self.live.lock().await;
        if live.is_none() {
            let head = self.store.head().await?;
            let started = Live {
                tx: broadcast::channel(self.capacity).0,
                sent: Arc::new(AtomicU64::new(head.0)),
            };
            tokio::spawn(Arc::clone(self).run(started.clone(), head));
            *live = Some(started);
        }
        let Some(running) = live.as_ref() else {
            return Ok(None);
        };
        let rx = running.tx.subscribe();
        // Read after subscribing: every event sent after this value is in `rx`.
        let sent = running.sent.load(Ordering::SeqCst);
        Ok(Some((rx, sent)))
    }

    /// Follows `$all` after `head` and broadcasts; ends at shutdown or when nobody listens.
    async fn run(self: Arc<Self>, live: Live, head: Position) {
        let mut subscription = self.store.subscribe(head.next());
        let mut shutdown = self.shutdown.clone();
        let mut pause = Pause::default();
        loop {
            let next = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                next = subscription.next() => next,
            };
            match next {
                Ok(event) => {
                    pause.reset();
                    // Recorded before sending: a client that subscribes after the send reads a
                    // position at least this one, and reads the event from the store.
                    live.sent.store(event.meta.position.0, Ordering::SeqCst);
                    if live.tx.send(Arc::new(event)).is_err() {
                        let mut current = self.live.lock().await;
                        if live.tx.receiver_count() == 0 {
                            *current = None;
                            return;
                        }
                    }
                }
                // The store failed (unavailable): the subscription stays where it was.
                Err(_) => pause.wait().await,
            }
        }
        // Shutdown: dropping the sender ends every client's live phase.
        *self.live.lock().await = None;
    }
}

/// A pause that doubles from 5 ms to 1 s, for reads that found nothing readable yet or failed.
#[derive(Default)]
struct Pause(u32);

impl Pause {
    fn reset(&mut self) {
        self.0 = 0;
    }

    async fn wait(&mut self) {
        let millis = (5u64 << self.0.min(8)).min(1000);
        self.0 += 1;
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }
}

/// Where a client's feed is.
enum Phase {
    /// Reading the store, not subscribed yet.
    CatchUp,
    /// Subscribed; reading the store past `target` (the hub's last position when subscribing).
    Joining {
        rx: broadcast::Receiver<Arc<RecordedEvent>>,
        target: u64,
    },
    /// Following the hub.
    Live {
        rx: broadcast::Receiver<Arc<RecordedEvent>>,
    },
    /// Finished after its final event.
    Done,
}

/// One client's feed.
pub(crate) struct Feed<S> {
    hub: Arc<Hub<S>>,
    stream: Option<StreamId>,
    /// The next position (`$all`) or version (one stream) to deliver.
    next: u64,
    phase: Phase,
    buffer: VecDeque<Arc<RecordedEvent>>,
    shutdown: watch::Receiver<bool>,
    pause: Pause,
}

/// An event as the feed sends it (the `data` of an SSE message).
#[derive(Serialize)]
struct FeedEvent<'a> {
    position: u64,
    stream: &'a str,
    version: u64,
    event_id: String,
    event_name: &'a str,
    event_version: u32,
    /// Microseconds since the Unix epoch.
    recorded_at: i64,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    metadata: &'a serde_json::Map<String, serde_json::Value>,
    // `payload` follows, written verbatim (it is JSON the store checked).
}

/// A control event's data.
#[derive(Serialize)]
struct Control<'a> {
    detail: &'a str,
    /// The id of the last event delivered (where `Last-Event-ID` resumes), if any.
    last_event_id: Option<u64>,
}

impl<S: EventStore> Feed<S> {
    /// A feed of `stream` (or of `$all`) from `from` (a position, or a version for a stream).
    pub fn new(hub: Arc<Hub<S>>, stream: Option<StreamId>, from: u64) -> Self {
        let shutdown = hub.shutdown.clone();
        Feed {
            hub,
            stream,
            next: from.max(1),
            phase: Phase::CatchUp,
            buffer: VecDeque::new(),
            shutdown,
            pause: Pause::default(),
        }
    }

    /// The SSE response.
    pub fn into_response(
        self,
        keep_alive: Duration,
    ) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
        let events = futures_util::stream::unfold(self, |mut feed| async move {
            let event = feed.step().await?;
            Some((Ok(event), feed))
        });
        Sse::new(events).keep_alive(KeepAlive::new().interval(keep_alive))
    }

    /// The key this feed orders and resumes by.
    fn key(&self, event: &RecordedEvent) -> u64 {
        match self.stream {
            None => event.meta.position.0,
            Some(_) => event.meta.version,
        }
    }

    fn last_delivered(&self) -> Option<u64> {
        (self.next > 1).then(|| self.next - 1)
    }

    fn control(&mut self, name: &str, detail: &str) -> SseEvent {
        self.phase = Phase::Done;
        let data = serde_json::to_string(&Control {
            detail,
            last_event_id: self.last_delivered(),
        })
        .unwrap_or_default();
        SseEvent::default().event(name).data(data)
    }

    fn message(&mut self, event: &RecordedEvent) -> SseEvent {
        let key = self.key(event);
        self.next = key + 1;
        let meta = &event.meta;
        let mut data = serde_json::to_string(&FeedEvent {
            position: meta.position.0,
            stream: meta.stream.as_str(),
            version: meta.version,
            event_id: meta.event_id.to_string(),
            event_name: &meta.event_name,
            event_version: meta.event_version,
            recorded_at: meta.recorded_at.unix_micros(),
            correlation_id: meta.correlation_id.map(|id| id.to_string()),
            causation_id: meta.causation_id.map(|id| id.to_string()),
            metadata: meta.metadata.as_map(),
        })
        .unwrap_or_default();
        // `{…}` becomes `{…,"payload":<payload>}`.
        data.pop();
        data.push_str(",\"payload\":");
        data.push_str(event.payload.as_str());
        data.push('}');
        SseEvent::default().id(key.to_string()).data(data)
    }

    /// Reads the next batch from the store at `self.next`.
    async fn read(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        let store = &self.hub.store;
        match &self.stream {
            None => store.read_all(Position(self.next), BATCH).await,
            Some(stream) => store.read_stream(stream, self.next, BATCH).await,
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The next SSE event to send, or `None` when the feed has ended.
    async fn step(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                if self.key(&event) >= self.next {
                    return Some(self.message(&event));
                }
                continue;
            }
            if self.stopping() && !matches!(self.phase, Phase::Done) {
                return Some(self.shutting_down());
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::CatchUp => match self.read().await {
                    Ok(batch) => {
                        if batch.len() < BATCH {
                            match self.hub.subscribe().await {
                                Ok(Some((rx, target))) => {
                                    self.phase = Phase::Joining { rx, target }
                                }
                                Ok(None) => return Some(self.shutting_down()),
                                Err(e) => return Some(self.store_failed(&e)),
                            }
                        } else {
                            self.phase = Phase::CatchUp;
                        }
                        self.buffer.extend(batch.into_iter().map(Arc::new));
                    }
                    Err(e) => return Some(self.store_failed(&e)),
                },
                Phase::Joining { rx, target } => match self.read().await {
                    Ok(batch) => {
                        let joined = match self.stream {
                            // Every position up to `target` is readable: done once past it.
                            None => {
                                let reached =
                                    batch.last().map_or(self.next, |e| e.meta.position.0 + 1);
                                reached > target
                            }
                            // The stream's events up to `target` were readable when subscribing:
                            // a short read after it has them all.
                            Some(_) => batch.len() < BATCH,
                        };
                        if batch.is_empty() && !joined {
                            // Before a position another transaction still holds: wait for it.
                            self.pause.wait().await;
                        } else {
                            self.pause.reset();
                        }
                        self.phase = if joined {
                            Phase::Live { rx }
                        } else {
                            Phase::Joining { rx, target }
                        };
                        self.buffer.extend(batch.into_iter().map(Arc::new));
                    }
                    Err(e) => return Some(self.store_failed(&e)),
                },
                Phase::Live { mut rx } => {
                    let received = tokio::select! {
                        _ = self.shutdown.wait_for(|stop| *stop) => None,
                        received = rx.recv() => Some(received),
                    };
                    let Some(received) = received else {
                        return Some(self.shutting_down());
                    };
                    match received {
                        Ok(event) => {
                            self.phase = Phase::Live { rx };
                            let wanted = match &self.stream {
                                None => true,
                                Some(stream) => event.meta.stream == *stream,
                            };
                            if wanted {
                                self.buffer.push_back(event);
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let detail = format!(
                                "this client read more slowly than events are recorded and fell {missed} events behind the live feed; reconnect with Last-Event-ID to catch up from the store"
                            );
                            return Some(self.control("lagged", &detail));
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            return Some(self.control(
                                "shutdown",
                                "the live feed stopped; reconnect later with Last-Event-ID",
                            ));
                        }
                    }
                }
            }
        }
    }

    fn shutting_down(&mut self) -> SseEvent {
        self.control(
            "shutdown",
            "the server is shutting down; reconnect later with Last-Event-ID",
        )
    }

    fn store_failed(&mut self, error: &StoreError) -> SseEvent {
        let detail = format!("reading the store failed: {error}; reconnect with Last-Event-ID");
        self.control("error", &detail)
    }
}

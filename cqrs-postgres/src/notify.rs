//! Wake-ups: local waiters are woken directly after a local commit; other processes through
//! PostgreSQL's LISTEN/NOTIFY on one dedicated connection per store.
//!
//! Why the NOTIFY is not sent inside the append transaction: PostgreSQL serialises the commits
//! of notifying transactions (they take a database-wide lock in `PreCommit_Notify` and keep it
//! through their commit record's flush), which defeats group commit. Measured on the benchmark
//! machine with pgbench, 8 clients inserting one row per transaction: 12,700 tps without NOTIFY,
//! 4,500 tps with `pg_notify` in the transaction. So a commit only marks the store *dirty*; the
//! notification connection then sends one `pg_notify(channel, '')` for every burst of commits
//! (at most one per `PostgresConfig::notify_interval`, 5 ms by default: a NOTIFY per commit
//! cost 2 to 7 % of single-client append throughput in the benchmark). A writer killed between its commit and that NOTIFY leaves
//! remote readers to find its events at their next poll (`PostgresConfig::poll_interval`).
//!
//! The same connection LISTENs, from the first time a reader waits on (a store that only
//! appends never receives its own notifications back). Notifications it sent itself (same
//! backend pid) are ignored: this process's waiters were already woken locally.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio::sync::{Notify, oneshot, watch};
use tokio_postgres::AsyncMessage;

use crate::connect::{ConnectError, Connector};

/// Longest pause between reconnection attempts of the notification connection.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Cheap to clone; clones share the connection and the waiters.
#[derive(Clone)]
pub(crate) struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    /// The shortest time between two NOTIFYs: commits in between share one.
    gap: Duration,
    channel: String,
    listen: String,
    /// Local waiters, and how many there are (so a commit skips the lock when there are none).
    waiters: Notify,
    waiting: AtomicUsize,
    /// Set by a commit, cleared by the NOTIFY that announces it.
    dirty: AtomicBool,
    /// Wakes the connection's task (a commit happened, or the store was dropped).
    kick: Notify,
    started: AtomicBool,
    stopped: AtomicBool,
    /// Set once a reader waited: the connection then LISTENs (again after reconnecting).
    wanted: AtomicBool,
    /// Whether the LISTEN is in place now.
    listening: watch::Sender<bool>,
}

impl Notifier {
    pub fn new(connector: Connector, gap: Duration, channel: String, listen: String) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                connector,
                gap,
                channel,
                listen,
                waiters: Notify::new(),
                waiting: AtomicUsize::new(0),
                dirty: AtomicBool::new(false),
                kick: Notify::new(),
                started: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                wanted: AtomicBool::new(false),
                listening: watch::Sender::new(false),
            }),
        }
    }

    /// A commit of this process: wakes local waiters now, and the other processes through a
    /// NOTIFY shortly after.
    pub fn committed(&self) {
        self.inner.wake_local();
        if !self.inner.dirty.swap(true, Ordering::AcqRel) {
            self.start();
            self.inner.kick.notify_one();
        }
    }

    /// Registers a waiter *now*: [`Registration::wait`] then returns at the next wake-up after
    /// this call (a local commit or a notification from another process), or after a timeout.
    pub fn register(&self) -> Registration<'_> {
        self.inner.waiting.fetch_add(1, Ordering::SeqCst);
        let mut notified = Box::pin(self.inner.waiters.notified());
        notified.as_mut().enable();
        Registration {
            notified,
            _waiting: Waiting(&self.inner.waiting),
        }
    }

    /// Starts the notification connection (once) and waits up to `patience` for its LISTEN to
    /// be in place. Returns whether it is.
    pub async fn listening(&self, patience: Duration) -> bool {
        if !self.inner.wanted.swap(true, Ordering::AcqRel) {
            self.inner.kick.notify_one();
        }
        self.start();
        let mut listening = self.inner.listening.subscribe();
        tokio::time::timeout(patience, listening.wait_for(|on| *on))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Ends the notification connection (the store was dropped).
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.kick.notify_one();
    }

    fn start(&self) {
        if !self.inner.started.load(Ordering::Relaxed)
            && !self.inner.started.swap(true, Ordering::AcqRel)
        {
            tokio::spawn(run(Arc::clone(&self.inner)));
        }
    }
}

/// A registered waiter (see [`Notifier::register`]).
pub(crate) struct Registration<'a> {
    notified: Pin<Box<Notified<'a>>>,
    _waiting: Waiting<'a>,
}

impl Registration<'_> {
    /// Waits for the next wake-up, at most `timeout`.
    pub async fn wait(self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notified).await;
    }
}

/// Counts a waiter for as long as it lives (also when its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inner {
    fn wake_local(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.waiters.notify_waiters();
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// The notification connection's task: connect, LISTEN, send NOTIFYs when dirty; reconnect
/// with backoff after a failure; end when the store is dropped.
async fn run(inner: Arc<Inner>) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(50);
    let mut backoff = FIRST_BACKOFF;
    while !inner.is_stopped() {
        let mut connected = false;
        let stopped = session(&inner, &mut connected).await.unwrap_or(false);
        inner.listening.send_replace(false);
        if connected {
            backoff = FIRST_BACKOFF;
        }
        if stopped || inner.is_stopped() {
            return;
        }
        let _ = tokio::time::timeout(backoff, inner.kick.notified()).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: `Ok(true)` when the store was dropped, `Ok(false)` or `Err` when the
/// connection failed (`connected` tells whether it was established at all).
async fn session(inner: &Arc<Inner>, connected: &mut bool) -> Result<bool, ConnectError> {
    let own_pid = Arc::new(AtomicI32::new(0));
    let (closed_tx, mut closed_rx) = oneshot::channel::<()>();
    let drive = |mut connection: crate::connect::Connection| {
        let inner = Arc::clone(inner);
        let own_pid = Arc::clone(&own_pid);
        tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let AsyncMessage::Notification(n) = message
                    && n.process_id() != own_pid.load(Ordering::SeqCst)
                {
                    inner.wake_local();
                }
            }
            let _ = closed_tx.send(());
        });
    };
    // A NOTIFY's transaction gets an id and a commit record, and with the server's default
    // `synchronous_commit` each one waited for its own WAL flush, beside the appends' flushes:
    // one more fsync per burst of commits. Nothing is lost with it off: a notification is
    // delivered at commit, from memory, and carries no data a crash could take back.
    let client = inner
        .connector
        .open_with("SET synchronous_commit = off", drive)
        .await?;
    *connected = true;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    own_pid.store(pid, Ordering::SeqCst);
    let notify = client.prepare("SELECT pg_notify($1, '')").await?;
    let mut listening = false;
    loop {
        if inner.is_stopped() {
            return Ok(true);
        }
        if !listening && inner.wanted.load(Ordering::Acquire) {
            client
                .batch_execute(&format!("LISTEN {}", inner.listen))
                .await?;
            listening = true;
            inner.listening.send_replace(true);
            // Notifications may have been missed while nobody listened: let waiters re-read.
            inner.wake_local();
        }
        if inner.dirty.swap(false, Ordering::AcqRel) {
            client.query(&notify, &[&inner.channel]).await?;
            tokio::time::sleep(inner.gap).await;
            continue;
        }
        tokio::select! {
            _ = inner.kick.notified() => {}
            _ = &mut closed_rx => return Ok(false),
        }
    }
}

//! A wake-up signal that costs nothing when nobody waits.
//!
//! `tokio::sync::Notify::notify_waiters` takes a lock on every call; appends and projection
//! updates happen far more often than anyone waits, so they first check a waiter count.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct Signal {
    notify: Notify,
    waiting: AtomicUsize,
}

impl Signal {
    /// Wakes every current waiter. Call it *after* publishing the change with `SeqCst`.
    pub fn wake_all(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// Waits for the next `wake_all`, unless `ready()` (checked after registering, so a change
    /// published with `SeqCst` between the check and the wait is never missed) already holds.
    pub fn wait_unless(
        &self,
        ready: impl FnOnce() -> bool,
    ) -> impl Future<Output = ()> + Send + '_ {
        let parked = Parked::new(&self.waiting);
        let mut notified = Box::pin(self.notify.notified());
        notified.as_mut().enable();
        let done = ready();
        async move {
            let _parked = parked;
            if !done {
                notified.await;
            }
        }
    }
}

/// Counts a parked waiter for as long as it lives (also when its future is dropped).
struct Parked<'a>(&'a AtomicUsize);

impl<'a> Parked<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Parked(count)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

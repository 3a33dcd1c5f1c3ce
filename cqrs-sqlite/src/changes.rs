//! Waking readers when events arrive: at once for appends through this store handle (and its
//! clones), by polling the file for appends of other processes or other handles.
//!
//! Other processes are found by polling `MAX(position)` every `poll_interval` (50 ms by default),
//! on a read connection. `PRAGMA data_version` is per connection and the readers are pooled;
//! `MAX(position)` is one B-tree descent and is the very question asked. Appends through the same
//! handle wake waiters at once (`tokio::sync::Notify`, registered before the check).

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventweave_core::Position;
use tokio::sync::Notify;

/// What this handle knows about the newest position, and who waits for a newer one.
#[derive(Default)]
pub(crate) struct Changes {
    /// The newest position this handle has seen committed (its own appends, or a head read).
    known_head: AtomicU64,
    appended: Notify,
}

impl Changes {
    /// Records that positions up to `head` are committed and wakes every waiter if that is new.
    pub fn committed(&self, head: Position) {
        let before = self.known_head.fetch_max(head.0, Ordering::SeqCst);
        if head.0 > before {
            self.appended.notify_waiters();
        }
    }

    /// Records a head read from the file (which may include other processes' appends).
    pub fn observed(&self, head: Position) {
        self.committed(head);
    }

    /// Resolves once a position after `after` is known to be committed: at once when this
    /// handle commits one, else when `read_head` (called every `interval`) reports one. A
    /// failing `read_head` resolves too, so the caller's next read reports the error.
    pub async fn wait_for<E>(
        &self,
        after: Position,
        interval: Duration,
        read_head: impl Fn() -> Result<Position, E>,
    ) {
        // Register before checking, so a commit between the check and the wait wakes us.
        let mut notified = pin!(self.appended.notified());
        notified.as_mut().enable();
        loop {
            if self.known_head.load(Ordering::SeqCst) > after.0 {
                return;
            }
            match read_head() {
                Ok(head) if head > after => {
                    self.observed(head);
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
            if tokio::time::timeout(interval, notified.as_mut())
                .await
                .is_ok()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(flavor = "current_thread")]
    async fn a_local_commit_wakes_a_waiter_at_once() {
        let changes = Arc::new(Changes::default());
        let waiter = {
            let changes = Arc::clone(&changes);
            tokio::spawn(async move {
                changes
                    .wait_for(Position(0), Duration::from_secs(3600), || {
                        Ok::<_, ()>(Position(0))
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        changes.committed(Position(1));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken without waiting for the poll interval")
            .unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn polling_finds_other_writers() {
        let changes = Changes::default();
        let polls = AtomicUsize::new(0);
        changes
            .wait_for(Position(5), Duration::from_millis(1), || {
                let n = polls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(Position(if n < 3 { 5 } else { 6 }))
            })
            .await;
        assert_eq!(
            polls.load(Ordering::SeqCst),
            4,
            "polled until the head moved"
        );
        assert_eq!(changes.known_head.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_already_known_head_resolves_without_reading() {
        let changes = Changes::default();
        changes.committed(Position(3));
        changes
            .wait_for(
                Position(2),
                Duration::from_secs(3600),
                || -> Result<Position, ()> { panic!("no read needed") },
            )
            .await;
    }
}

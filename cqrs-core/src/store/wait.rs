//! [`EmptyReads`]: how a reader waits after a `read_all` that returned nothing.
//!
//! Every reader that waits (`build()`, `Cqrs::catch_up`, `query_after`, the runner's catch-up,
//! subscriptions) paces itself with it: a wake-up from the store, then a pause doubling from 1 to
//! 50 ms. An empty or short read never means "caught up" (PostgreSQL stops before a position a
//! running transaction holds); readers compare with the head they read when they began.

use std::time::Duration;

use crate::ids::Position;
use crate::store::EventStore;

/// The longest pause [`EmptyReads`] adds between two empty reads.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Paces a reader whose reads come back empty.
///
/// An empty read does not mean that no event exists after the reader's position: PostgreSQL's
/// `read_all` stops before a position that a running transaction may still fill, with events
/// beyond it. `wait_for_events` may then resolve at once (events exist), so a reader that only
/// waited for it would spin on the store. After the first empty read of a streak, each wait
/// adds a pause that doubles from 1 ms up to 50 ms; a read that returns events ends the streak
/// ([`EmptyReads::reset`]).
#[derive(Debug, Default)]
pub(crate) struct EmptyReads {
    streak: u32,
}

impl EmptyReads {
    /// Waits before the next read from `after + 1`.
    pub async fn wait<S: EventStore>(&mut self, store: &S, after: Position) {
        store.wait_for_events(after).await;
        if self.streak > 0 {
            let pause = Duration::from_millis(1 << (self.streak - 1).min(6)).min(MAX_PAUSE);
            tokio::time::sleep(pause).await;
        }
        self.streak = self.streak.saturating_add(1);
    }

    /// A read returned events: the next empty one starts a new streak.
    pub fn reset(&mut self) {
        self.streak = 0;
    }
}

//! [`Progress`]: how far a catch-up or rebuild has come, for a callback (e.g. a progress bar).

use std::time::{Duration, Instant};

use crate::ids::Position;

/// A progress report of a projection catching up or rebuilding.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The projection.
    pub projection: &'static str,
    /// Events read so far in this catch-up (handled or not).
    pub done: u64,
    /// Events to read in total: up to the store's head when the catch-up started.
    pub total: u64,
    /// Position reached.
    pub position: Position,
    /// Events per second since the catch-up started.
    pub per_second: f64,
    /// Estimated time left at that rate (`None` before the first batch).
    pub eta: Option<Duration>,
    /// Whether the catch-up is complete (the last report has it set).
    pub finished: bool,
}

/// Called with each [`Progress`] report (once per batch, and once at the end).
pub type ProgressFn = std::sync::Arc<dyn Fn(&Progress) + Send + Sync>;

/// Counts one catch-up.
pub(crate) struct Meter {
    projection: &'static str,
    started: Instant,
    from: Position,
    target: Position,
}

impl Meter {
    pub fn new(projection: &'static str, from: Position, target: Position) -> Self {
        Meter {
            projection,
            started: Instant::now(),
            from,
            target,
        }
    }

    /// The report at `position` (positions can have holes, so `done` counts positions).
    pub fn report(&self, position: Position, finished: bool) -> Progress {
        let done = position.0.saturating_sub(self.from.0);
        let total = self.target.0.saturating_sub(self.from.0).max(done);
        let secs = self.started.elapsed().as_secs_f64();
        let per_second = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let eta = (per_second > 0.0 && done > 0)
            .then(|| Duration::from_secs_f64((total - done) as f64 / per_second));
        Progress {
            projection: self.projection,
            done,
            total,
            position,
            per_second,
            eta,
            finished,
        }
    }

    pub fn target(&self) -> Position {
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_the_start_position() {
        let meter = Meter::new("p", Position(10), Position(110));
        let report = meter.report(Position(60), false);
        assert_eq!((report.done, report.total), (50, 100));
        assert!(!report.finished);
        let end = meter.report(Position(130), true);
        assert_eq!((end.done, end.total), (120, 120));
        assert!(end.eta.is_none_or(|eta| eta.is_zero()));
    }
}

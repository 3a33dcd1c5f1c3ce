//! [`ProgressBar`]: a terminal progress bar (indicatif) fed by the framework's `Progress`
//! reports, for rebuilds here and for an application's own catch-ups
//! (`CqrsBuilder::on_progress`, `ProjectionRunner::on_progress`).
//!
//! indicatif is built without default features (no unicode-width tables, no wasm). The bar draws on
//! stderr only above a threshold of events, and keeps the last report for a summary line.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use eventweave_core::runner::Progress;
use indicatif::{ProgressDrawTarget, ProgressStyle};

/// A bar on stderr, drawn only when stderr is a terminal and the catch-up has more than a
/// threshold of events (a short one ends before anyone could read a bar); it always keeps the
/// last report for [`ProgressBar::summary`]. Share it (`Arc`) between the callback and the code
/// that prints the summary.
pub struct ProgressBar {
    label: String,
    min_events: u64,
    started: Instant,
    bar: indicatif::ProgressBar,
    last: Mutex<Option<Progress>>,
}

impl ProgressBar {
    /// A bar named `label`, drawn only for catch-ups of more than `min_events` events. The
    /// clock of the summary starts now.
    pub fn new(label: impl Into<String>, min_events: u64) -> Self {
        let label = label.into();
        let bar = indicatif::ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30.cyan/blue}] {pos}/{len} events {percent:>3}%  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-"),
        );
        bar.set_prefix(label.clone());
        ProgressBar {
            label,
            min_events,
            started: Instant::now(),
            bar,
            last: Mutex::new(None),
        }
    }

    /// The callback: moves the bar (drawn past the threshold) and finishes it on the last
    /// report.
    pub fn report(&self, progress: &Progress) {
        if progress.total > self.min_events {
            self.bar.set_length(progress.total);
            self.bar.set_position(progress.done.min(progress.total));
            if progress.finished {
                self.bar.finish();
            }
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress.clone());
    }

    /// One line: how many events were read, how fast. Without any report (nothing to read),
    /// says so.
    pub fn summary(&self) -> String {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some(p) if p.done > 0 => {
                let secs = self.started.elapsed().as_secs_f64();
                format!(
                    "{}: read {} stored events in {secs:.2} s ({:.0} events/s)",
                    self.label,
                    p.done,
                    p.done as f64 / secs.max(1e-9)
                )
            }
            _ => format!("{}: nothing to read", self.label),
        }
    }

    /// How long since the bar was made.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventweave_core::Position;

    fn progress(done: u64, total: u64, finished: bool) -> Progress {
        Progress {
            projection: "p",
            done,
            total,
            position: Position(done),
            per_second: 1000.0,
            eta: None,
            finished,
        }
    }

    #[test]
    fn the_summary_says_what_was_read() {
        let bar = ProgressBar::new("history", 1_000);
        assert_eq!(bar.summary(), "history: nothing to read");
        bar.report(&progress(11, 11, true));
        assert!(
            bar.summary()
                .starts_with("history: read 11 stored events in ")
        );
        let big = ProgressBar::new("big", 10);
        big.report(&progress(50, 100, false));
        assert_eq!(big.bar.length(), Some(100));
        assert_eq!(big.bar.position(), 50);
    }
}

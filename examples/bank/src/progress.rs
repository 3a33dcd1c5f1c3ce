//! A text progress bar for long catch-ups, drawn on stderr from `Progress` reports
//! (`CqrsBuilder::on_progress`, `ProjectionRunner::on_progress`), and a one-line summary.
//!
//! Hand-written on purpose: a bar is a few lines of formatting, not worth a dependency. It is
//! only drawn when a catch-up has more than a threshold of events to read: a short one ends
//! before anyone could read a bar, and would only leave noise in the terminal.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use eventweave_core::runner::Progress;

/// Cells of the bar.
const WIDTH: usize = 30;

/// Draws the reports of one catch-up and remembers the last one for [`ProgressBar::summary`].
/// Share it (`Arc`) between the callback and the code that prints the summary.
pub struct ProgressBar {
    label: &'static str,
    min_events: u64,
    started: Instant,
    last: Mutex<Option<Progress>>,
}

impl ProgressBar {
    /// A bar named `label`, drawn only for catch-ups of more than `min_events` events. The
    /// clock of the summary starts now.
    pub fn new(label: &'static str, min_events: u64) -> Self {
        ProgressBar {
            label,
            min_events,
            started: Instant::now(),
            last: Mutex::new(None),
        }
    }

    /// The callback: redraws the bar in place (`\r`) and ends its line on the last report.
    pub fn report(&self, progress: &Progress) {
        if progress.total > self.min_events {
            eprint!("\r{}", render(self.label, progress));
            if progress.finished {
                eprintln!();
            }
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress.clone());
    }

    /// One line for the transcript: how many events were read, how fast. Without any report
    /// (nothing to read), says so.
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
}

/// `label [#########---------]  2500/5000 events  50%  12345 events/s  ETA 0.2 s`
pub fn render(label: &str, p: &Progress) -> String {
    let fraction = if p.total == 0 {
        1.0
    } else {
        (p.done as f64 / p.total as f64).clamp(0.0, 1.0)
    };
    let filled = (fraction * WIDTH as f64).floor() as usize;
    let eta = match (p.finished, p.eta) {
        (true, _) => "done".to_owned(),
        (false, Some(eta)) => format!("ETA {}", duration(eta)),
        (false, None) => "ETA ?".to_owned(),
    };
    let width = p.total.to_string().len();
    format!(
        "{label} [{}{}] {:>width$}/{} events {:>3}%  {:.0} events/s  {eta:<12}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        p.done,
        p.total,
        (fraction * 100.0).floor() as u32,
        p.per_second,
    )
}

/// `0.4 s`, `12 s`, `3 min 05 s`.
fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if secs < 60.0 {
        format!("{secs:.0} s")
    } else {
        let whole = d.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventweave_core::Position;

    fn progress(done: u64, total: u64, eta: Option<Duration>, finished: bool) -> Progress {
        Progress {
            projection: "p",
            done,
            total,
            position: Position(done),
            per_second: 1000.0,
            eta,
            finished,
        }
    }

    #[test]
    fn the_bar_fills_with_the_events_read() {
        let half = render(
            "h",
            &progress(50, 100, Some(Duration::from_millis(50)), false),
        );
        assert!(
            half.starts_with(&format!(
                "h [{}{}]  50/100 events  50%",
                "#".repeat(15),
                "-".repeat(15)
            )),
            "{half}"
        );
        assert!(half.contains("1000 events/s  ETA 0.1 s"), "{half}");
        let full = render("h", &progress(100, 100, None, true));
        assert!(full.contains(&format!("[{}]", "#".repeat(WIDTH))), "{full}");
        assert!(full.contains("done"), "{full}");
        assert_eq!(duration(Duration::from_secs(185)), "3 min 05 s");
    }

    #[test]
    fn the_summary_says_what_was_read() {
        let bar = ProgressBar::new("history", 1_000);
        assert_eq!(bar.summary(), "history: nothing to read");
        bar.report(&progress(11, 11, None, true));
        assert!(
            bar.summary()
                .starts_with("history: read 11 stored events in ")
        );
    }
}

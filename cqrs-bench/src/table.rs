//! The printed table.

/// One line of the table: a workload, its rate, and optionally a baseline measured in the same
/// run (e.g. raw database inserts) with the target ratio.
#[derive(Clone, Debug)]
pub struct Row {
    /// What ran.
    pub workload: String,
    /// Events or commands per second (median of the rounds).
    pub rate: f64,
    /// Unit of `rate` (`commands/s`, `events/s`).
    pub unit: &'static str,
    /// A baseline measured in the same run, with its name.
    pub baseline: Option<(String, f64)>,
    /// The peer framework's rate on the same workload, measured in the same run, rounds
    /// alternating with ours (`None` where the peer has not been run).
    pub peer: Option<f64>,
    /// The target, in words (`>= 2,000,000/s`, `>= 90% of raw`).
    pub target: String,
}

impl Row {
    /// The row with `baseline` (a name and its rate, measured in the same run) beside it.
    pub fn with_baseline(mut self, baseline: Option<(String, f64)>) -> Row {
        self.baseline = baseline;
        self
    }
}

/// The median of some values (the mean of the middle two for an even count; 0 for none).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Prints the rows as a Markdown table (see [`format_table`]) to stdout.
pub fn print_table(rows: &[Row]) {
    print!("{}", format_table(rows));
}

/// The rows as a Markdown table: this framework, the peer (`cqrs-es`) and our ratio to it, then
/// the raw baseline and our share of it.
pub fn format_table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    out.push_str(
        "| workload | this framework | peer (cqrs-es) | vs peer | baseline (same run) | vs baseline | target |\n",
    );
    out.push_str("|---|---:|---:|---:|---|---:|---|\n");
    for row in rows {
        let (peer, versus_peer) = match row.peer {
            Some(peer) => (
                format!("{peer:.0} {}", row.unit),
                format!("{:.1}x", row.rate / peer),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let (baseline, ratio) = match &row.baseline {
            Some((name, rate)) => (
                format!("{name}: {rate:.0} {}", row.unit),
                format!("{:.0}%", 100.0 * row.rate / rate),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} {} | {peer} | {versus_peer} | {baseline} | {ratio} | {} |",
            row.workload, row.rate, row.unit, row.target
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}

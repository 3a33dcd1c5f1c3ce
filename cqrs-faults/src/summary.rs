//! Printing a run's figures: one line per scenario as it ends, then the table and the totals
//! that RELIABILITY.md records.

use std::time::Duration;

use crate::harness::Report;

/// One scenario's line (printed as soon as it ends).
pub fn print_one(report: &Report) {
    let verdict = verdict(report);
    println!(
        "   {} on {}: {verdict}; {} acknowledged, {} events, {} faults, {} bad inputs, {:.1} s",
        report.name,
        report.store,
        report.acknowledged,
        report.events,
        report.faults,
        report.bad_inputs,
        report.elapsed.as_secs_f64()
    );
    for note in &report.notes {
        println!("     note: {note}");
    }
    for failure in &report.failures {
        println!("     FAILED: {failure}");
    }
}

fn verdict(report: &Report) -> String {
    match (&report.skipped, report.failures.is_empty()) {
        (Some(why), _) => format!("skipped ({why})"),
        (None, true) => "passed".to_owned(),
        (None, false) => format!("FAILED ({} findings)", report.failures.len()),
    }
}

/// Prints the table and totals; returns whether any scenario failed.
pub fn print(reports: &[Report], elapsed: Duration) -> bool {
    println!();
    println!(
        "| scenario | store | acknowledged | uncertain: stored / absent | events | faults | bad inputs | client retries: unavailable / unknown / conflict / dropped | bus re-runs on conflict | seconds | result |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut total = Report::new("total", "");
    for r in reports {
        let result = match (&r.skipped, r.failures.len()) {
            (Some(_), _) => "skipped".to_owned(),
            (None, 0) => "passed".to_owned(),
            (None, n) => format!("FAILED ({n})"),
        };
        println!(
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} / {} / {} / {} | {} | {:.1} | {result} |",
            r.name,
            r.store,
            r.acknowledged,
            r.uncertain_stored,
            r.uncertain_absent,
            r.events,
            r.faults,
            r.bad_inputs,
            r.retries.unavailable,
            r.retries.outcome_unknown,
            r.retries.conflict,
            r.retries.dropped,
            r.retries.reruns,
            r.elapsed.as_secs_f64()
        );
        total.acknowledged += r.acknowledged;
        total.uncertain_stored += r.uncertain_stored;
        total.uncertain_absent += r.uncertain_absent;
        total.events += r.events;
        total.faults += r.faults;
        total.bad_inputs += r.bad_inputs;
        total.failures.extend(r.failures.iter().cloned());
    }
    let skipped = reports.iter().filter(|r| r.skipped.is_some()).count();
    let failed = reports
        .iter()
        .filter(|r| r.skipped.is_none() && !r.failures.is_empty())
        .count();
    println!();
    println!(
        "total: {} commands acknowledged (each found stored exactly once unless listed below), \
         {} uncertain ({} stored once, {} absent), {} events checked, {} faults injected, \
         {} hostile inputs; {} scenarios passed, {failed} failed, {skipped} skipped, in {:.0} s",
        total.acknowledged,
        total.uncertain_stored + total.uncertain_absent,
        total.uncertain_stored,
        total.uncertain_absent,
        total.events,
        total.faults,
        total.bad_inputs,
        reports.len() - failed - skipped,
        elapsed.as_secs_f64()
    );
    for r in reports.iter().filter(|r| !r.failures.is_empty()) {
        println!("{} on {}:", r.name, r.store);
        for failure in &r.failures {
            println!("  - {failure}");
        }
    }
    failed > 0
}

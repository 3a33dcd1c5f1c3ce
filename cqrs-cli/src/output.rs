//! What the commands print: styles (through `anstream`, which drops them when the output is not
//! a terminal, or `NO_COLOR` is set), events, timestamps.
//!
//! `anstream` and `anstyle` are the crates clap's `color` feature already builds; they are
//! TTY-aware and honour `NO_COLOR`. An event is printed with its metadata and its payload decoded
//! through the registered type (`EventRegistration::decode`: upcast, then JSON); times are RFC
//! 3339, formatted without a date crate.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use eventweave_core::{RecordedEvent, Timestamp, registry};

/// Names and headings.
pub const BOLD: Style = Style::new().bold();
/// Positions, versions, ids: secondary.
pub const DIM: Style = Style::new().dimmed();
/// Event names.
pub const EVENT: Style = AnsiColor::Yellow.on_default().bold();
/// Healthy states.
pub const GOOD: Style = AnsiColor::Green.on_default();
/// States that need a look.
pub const WARN: Style = AnsiColor::Yellow.on_default();
/// Failures.
pub const BAD: Style = AnsiColor::Red.on_default().bold();

/// `text` in `style` (the reset included).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// Writes `line` and a newline to stdout; a closed pipe (`| head`) ends the program quietly.
pub fn out(line: impl std::fmt::Display) {
    let mut stdout = anstream::stdout();
    if writeln!(stdout, "{line}").is_err() {
        std::process::exit(0);
    }
}

/// One event: a header line (position, stream and version, name and schema version, time), a
/// metadata line, and the payload decoded through its registered type and pretty printed.
pub fn event(event: &RecordedEvent) {
    let meta = &event.meta;
    out(format!(
        "{} {} {} {}",
        paint(DIM, format!("@{}", meta.position)),
        paint(BOLD, format!("{} v{}", meta.stream, meta.version)),
        paint(
            EVENT,
            format!("{} (v{})", meta.event_name, meta.event_version)
        ),
        paint(DIM, rfc3339(meta.recorded_at)),
    ));
    let mut ids = format!("  event {}", meta.event_id);
    if let Some(correlation) = meta.correlation_id {
        ids.push_str(&format!("  correlation {correlation}"));
    }
    if let Some(causation) = meta.causation_id {
        ids.push_str(&format!("  causation {causation}"));
    }
    out(paint(DIM, ids));
    if !meta.metadata.is_empty() {
        let metadata = serde_json::Value::Object(meta.metadata.as_map().clone());
        out(paint(DIM, format!("  metadata {metadata}")));
    }
    let payload = event.payload.as_str();
    let decoded = match registry::event(&meta.event_name) {
        Some(registration) => match (registration.decode)(meta.event_version, payload) {
            Ok(value) => Ok(value),
            Err(failure) => Err(format!(
                "does not decode as `{}`: {failure}",
                registration.type_name
            )),
        },
        None => serde_json::from_str(payload)
            .map_err(|e| format!("no registered type, and not JSON: {e}")),
    };
    match decoded {
        Ok(value) => {
            let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| payload.to_owned());
            for line in text.lines() {
                out(format!("  {line}"));
            }
        }
        Err(problem) => {
            out(format!("  {} {problem}", paint(BAD, "!")));
            out(format!("  {payload}"));
        }
    }
}

/// `2026-01-31T12:34:56.789012Z` (UTC, microseconds).
pub fn rfc3339(at: Timestamp) -> String {
    let micros = at.unix_micros();
    let secs = micros.div_euclid(1_000_000);
    let sub = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{sub:06}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (days are counted in 400-year eras of
/// 146,097 days, each starting on 1 March so the leap day comes last).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_in_utc() {
        let at = |micros| {
            rfc3339(Timestamp::from(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros),
            ))
        };
        assert_eq!(at(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(1_767_225_599_999_999), "2025-12-31T23:59:59.999999Z");
    }
}

//! Hostile inputs on every store (MemoryStore, SQLite, PostgreSQL): each case of
//! [`cases`] is appended (or read) through the `EventStore` trait, in a task of its own so a
//! panic is caught. The answer must be either a typed refusal (`retry() == Retry::Never`, not
//! `StoreError::Backend`) with nothing written, or success that reads back exactly (ids, names,
//! versions, payload and metadata as JSON values); refusal-only cases must be refused. After
//! every case the store must still take an ordinary append, and at the end `read_all` must read
//! everything back.

pub mod cases;

use std::time::Instant;

use eventweave_core::{
    EventStore, ExpectedVersion, MemoryStore, NewEvent, RecordedEvent, Retry, StoreError, StreamId,
};
use eventweave_sqlite::{SqliteConfig, SqliteStore};

use crate::harness::Report;
use crate::pg::{self, Pg, WRITERS};
use crate::scenarios::processes::TempFile;
use cases::{Allowed, Append, Read};

/// The size limit of the stores under test (small enough that the "above the limit" cases stay
/// cheap; the limit itself is tested, not its default).
const MAX_EVENT_BYTES: usize = 4 << 20;

/// The hostile inputs on every store; prints a table of each case's outcome per store.
pub async fn hostile_inputs(pg: Option<&Pg>) -> Vec<Report> {
    let mut outcomes: Vec<(&'static str, Vec<(String, String)>)> = Vec::new();
    let mut reports = Vec::new();
    let (report, table) =
        run_on("memory", MemoryStore::with_max_event_bytes(MAX_EVENT_BYTES)).await;
    reports.push(report);
    outcomes.push(("memory", table));
    let file = TempFile::new("hostile");
    let config = SqliteConfig::default().max_event_bytes(MAX_EVENT_BYTES);
    match SqliteStore::open_with(&file.0, config) {
        Ok(store) => {
            let (report, table) = run_on("sqlite", store).await;
            reports.push(report);
            outcomes.push(("sqlite", table));
        }
        Err(e) => reports.push(failed("sqlite", format!("open: {e}"))),
    }
    if let Some(pg) = pg {
        let schema = pg::schema("hostile");
        let config = pg
            .config(&schema, WRITERS, 4)
            .max_event_bytes(MAX_EVENT_BYTES);
        match eventweave_postgres::PostgresStore::open(config).await {
            Ok(store) => {
                let (report, table) = run_on("postgres", store).await;
                reports.push(report);
                outcomes.push(("postgres", table));
            }
            Err(e) => reports.push(failed("postgres", format!("open: {e}"))),
        }
    }
    print_table(&outcomes);
    reports
}

fn failed(store: &str, why: String) -> Report {
    let mut report = Report::new("hostile-inputs", store);
    report.failures.push(why);
    report
}

/// Prints one line per case: its outcome on each store.
fn print_table(outcomes: &[(&str, Vec<(String, String)>)]) {
    let Some((_, first)) = outcomes.first() else {
        return;
    };
    let stores: Vec<&str> = outcomes.iter().map(|(s, _)| *s).collect();
    println!("  hostile inputs: case | {}", stores.join(" | "));
    for (k, (case, _)) in first.iter().enumerate() {
        let cells: Vec<&str> = outcomes
            .iter()
            .map(|(_, table)| table.get(k).map_or("-", |(_, outcome)| outcome.as_str()))
            .collect();
        println!("    {case} | {}", cells.join(" | "));
    }
}

async fn run_on<S: EventStore>(name: &str, store: S) -> (Report, Vec<(String, String)>) {
    let started = Instant::now();
    let mut report = Report::new("hostile-inputs", name);
    let mut table = Vec::new();
    let existing_stream = StreamId::from("hostile-existing");
    let existing = match store
        .append(
            &existing_stream,
            ExpectedVersion::NoStream,
            vec![cases::event("{}")],
        )
        .await
    {
        Ok(events) => events[0].meta.event_id,
        Err(e) => return (failed(name, format!("the first append failed: {e}")), table),
    };
    for case in cases::appends(existing, &existing_stream, MAX_EVENT_BYTES) {
        report.bad_inputs += 1;
        let case_name = case.name.clone();
        let store_for_case = store.clone();
        let outcome = tokio::spawn(async move { try_append(&store_for_case, case).await }).await;
        let outcome = match outcome {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(problem)) => {
                report.failures.push(format!("{case_name}: {problem}"));
                format!("FAIL: {problem}")
            }
            Err(panic) => {
                report
                    .failures
                    .push(format!("{case_name}: the store panicked: {panic}"));
                "FAIL: panic".to_owned()
            }
        };
        if let Err(e) = control_append(&store).await {
            report
                .failures
                .push(format!("{case_name}: the store no longer appends: {e}"));
        }
        table.push((case_name, short(&outcome)));
    }
    for read in cases::reads() {
        report.bad_inputs += 1;
        let (case_name, outcome) = try_read(&store, read).await;
        if let Some(problem) = outcome.strip_prefix("FAIL: ") {
            report.failures.push(format!("{case_name}: {problem}"));
        }
        table.push((case_name, short(&outcome)));
    }
    match crate::checks::read_everything(&store, crate::harness::deadline()).await {
        Ok((events, _)) => report.events = events.len() as u64,
        Err(e) => report
            .failures
            .push(format!("read_all after the hostile inputs: {e}")),
    }
    report.elapsed = started.elapsed();
    (report, table)
}

/// An outcome cut to fit a table cell.
fn short(outcome: &str) -> String {
    let mut text: String = outcome.chars().take(160).collect();
    if text.len() < outcome.len() {
        text.push('…');
    }
    text.replace('\n', " ")
}

/// An ordinary append that must succeed after every case.
async fn control_append<S: EventStore>(store: &S) -> Result<(), StoreError> {
    store
        .append(
            &StreamId::from("hostile-control"),
            ExpectedVersion::Any,
            vec![cases::event(r#"{"ok":true}"#)],
        )
        .await
        .map(drop)
}

/// Whether `error` is a typed refusal: not retryable, not a bare backend failure. The variant
/// is named from `Debug`, so the suite keeps compiling when refusal variants are added or
/// reshaped; only the three back-end variants of the shared error API are matched.
fn typed_refusal(error: &StoreError) -> Result<String, String> {
    match error {
        StoreError::Backend(_) => return Err(format!("Backend error: {error}")),
        StoreError::Unavailable(_) => return Err(format!("Unavailable: {error}")),
        StoreError::OutcomeUnknown(_) => return Err(format!("OutcomeUnknown: {error}")),
        _ => {}
    }
    let debug = format!("{error:?}");
    let kind = debug
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("a typed error");
    if error.retry() != Retry::Never {
        return Err(format!("{kind} with retry() = {:?}", error.retry()));
    }
    Ok(format!("refused: {kind}"))
}

/// Appends one case: `Ok(outcome)` or `Err(the broken promise)`.
async fn try_append<S: EventStore>(store: &S, case: Append) -> Result<String, String> {
    let head = store.head().await.map_err(|e| format!("head(): {e}"))?;
    let sent = case.events.clone();
    match store.append(&case.stream, case.expected, case.events).await {
        Err(error) => {
            let refused = typed_refusal(&error)?;
            let after = store.head().await.map_err(|e| format!("head(): {e}"))?;
            if after != head {
                return Err(format!(
                    "{refused}, but the head moved from {head} to {after}"
                ));
            }
            if case.expected == ExpectedVersion::Any
                && let Ok(found) = store.read_stream(&case.stream, 0, 10).await
                && !found.is_empty()
            {
                return Err(format!(
                    "{refused}, but {} events were written",
                    found.len()
                ));
            }
            Ok(refused)
        }
        Ok(recorded) => {
            if case.allowed == Allowed::Refusal {
                return Err(format!("accepted ({} events stored)", recorded.len()));
            }
            if recorded.len() != sent.len() {
                return Err(format!(
                    "{} events sent, {} recorded",
                    sent.len(),
                    recorded.len()
                ));
            }
            if sent.is_empty() {
                return Ok("accepted (nothing to store)".to_owned());
            }
            let from = recorded[0].meta.version;
            let back = store
                .read_stream(&case.stream, from, sent.len())
                .await
                .map_err(|e| format!("accepted, but read_stream fails: {e}"))?;
            if back.len() != sent.len() {
                return Err(format!("accepted {}, read back {}", sent.len(), back.len()));
            }
            for (k, (sent, back)) in sent.iter().zip(&back).enumerate() {
                if let Some(diff) = differs(sent, back) {
                    return Err(format!("accepted, but event {k} reads back with {diff}"));
                }
            }
            Ok("accepted, reads back exactly".to_owned())
        }
    }
}

/// The first difference between what was sent and what reads back.
fn differs(sent: &NewEvent, back: &RecordedEvent) -> Option<String> {
    let meta = &back.meta;
    if meta.event_id != sent.event_id {
        return Some(format!("another id {}", meta.event_id));
    }
    if meta.event_name != sent.event_name {
        return Some(format!("another name ({} bytes)", meta.event_name.len()));
    }
    if meta.event_version != sent.event_version {
        return Some(format!("event version {}", meta.event_version));
    }
    if meta.correlation_id != sent.correlation_id || meta.causation_id != sent.causation_id {
        return Some("other correlation or causation ids".to_owned());
    }
    if !same_json(sent.payload.as_str(), back.payload.as_str()) {
        return Some(format!(
            "another payload: {}",
            short(&back.payload.as_str().chars().take(80).collect::<String>())
        ));
    }
    if sent.metadata.as_map() != meta.metadata.as_map() {
        return Some("other metadata".to_owned());
    }
    None
}

/// Equal as JSON values (stores may normalise formatting), or as text when either side does
/// not parse.
fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Runs one read: an answer or a typed refusal is fine; a backend failure or a panic is not.
async fn try_read<S: EventStore>(store: &S, read: Read) -> (String, String) {
    let store = store.clone();
    let (name, task) = match read {
        Read::Stream(name, stream, from, limit) => (
            name,
            tokio::spawn(async move {
                store
                    .read_stream(&stream, from, limit)
                    .await
                    .map(|events| events.len())
            }),
        ),
        Read::All(name, from, limit) => (
            name,
            tokio::spawn(
                async move { store.read_all(from, limit).await.map(|events| events.len()) },
            ),
        ),
    };
    let outcome = match task.await {
        Ok(Ok(n)) => format!("answered ({n} events)"),
        Ok(Err(error)) => match typed_refusal(&error) {
            Ok(refused) => refused,
            Err(problem) => format!("FAIL: {problem}"),
        },
        Err(panic) => format!("FAIL: the store panicked: {panic}"),
    };
    (name, outcome)
}

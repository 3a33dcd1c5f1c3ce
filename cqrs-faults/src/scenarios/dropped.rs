//! Callers that drop `execute` futures: each command's first attempt is dropped after a random
//! number of polls (wherever it is suspended, also between sending an append and reading its
//! reply), then the client retries with the same command id. Stores whose calls never suspend
//! (MemoryStore, SQLite: inline) finish in the first poll, so nothing is dropped there.
//! Every command must end acknowledged and stored once, on every store.

use std::sync::Arc;
use std::time::Instant;

use eventweave_core::{EventStore, MemoryStore};
use eventweave_sqlite::SqliteStore;

use crate::client::Attempt;
use crate::harness::{self, Load, Report, Sizes};
use crate::ledger::Ledger;
use crate::pg::{self, Pg, WRITERS};
use crate::scenarios::processes::TempFile;

/// Most polls of a first attempt before its future is dropped.
const DROP_WITHIN_POLLS: u32 = 6;

/// The scenario on MemoryStore, a SQLite file and (when there is one) the cluster.
pub async fn dropped_futures(pg: Option<&Pg>, sizes: &Sizes) -> Vec<Report> {
    let mut reports = vec![run_on("memory", MemoryStore::new(), sizes).await];
    let file = TempFile::new("dropped");
    reports.push(match SqliteStore::open(&file.0) {
        Ok(store) => run_on("sqlite", store, sizes).await,
        Err(e) => failed("sqlite", format!("open: {e}")),
    });
    if let Some(pg) = pg {
        let schema = pg::schema("dropped");
        reports.push(match pg.store(&schema, WRITERS, sizes.writers).await {
            Ok(store) => run_on("postgres", store, sizes).await,
            Err(e) => failed("postgres", e),
        });
    }
    reports
}

fn failed(store: &str, why: String) -> Report {
    let mut report = Report::new("dropped-futures", store);
    report.failures.push(why);
    report
}

async fn run_on<S: EventStore>(name: &str, store: S, sizes: &Sizes) -> Report {
    let started = Instant::now();
    let mut report = Report::new("dropped-futures", name);
    let app = match harness::app(&store).await {
        Ok(app) => app,
        Err(e) => return failed(name, e),
    };
    let ledger = Arc::new(Ledger::new());
    harness::open_vaults(&app, &ledger, sizes.vaults).await;
    let writers = 4;
    let load = Load::start(
        std::slice::from_ref(&app),
        &ledger,
        writers,
        sizes.vaults,
        Some(sizes.dropped / writers as u64),
        Attempt {
            drop_first_within_polls: Some(DROP_WITHIN_POLLS),
        },
    );
    load.join().await;
    let verdict = harness::check_store(&mut report, &store, &store, &ledger, &[app]).await;
    report.absorb(verdict, &ledger);
    report.faults = report.retries.dropped;
    // Every client retried until it was answered, so none may be left uncertain.
    if report.uncertain_stored + report.uncertain_absent > 0 {
        report.failures.push(format!(
            "{} commands ended without an answer",
            report.uncertain_stored + report.uncertain_absent
        ));
    }
    report.elapsed = started.elapsed();
    report
}

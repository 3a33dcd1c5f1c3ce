//! Faults between processes: worker processes contending on the same streams of one store
//! (SQLite file or PostgreSQL schema). The parent keeps a durable model (`SqliteSink` / `PgSink`)
//! running throughout and an application of its own, whose in-memory model must catch up with
//! the other processes' writes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use eventweave_core::runner::{ProjectionRunner, RunningProjection};
use eventweave_sqlite::{SqliteSink, SqliteStore};

use crate::checks;
use crate::domain::{SQLITE_TABLE, SqliteTotals, sqlite_totals};
use crate::harness::{self, Report, Rng, Sizes};
use crate::ledger::Ledger;
use crate::pg::{self, Pg, WRITERS};
use crate::scenarios::pg_server::{Durable, state_name};
use crate::worker::{self, Job, Target, Workers};

/// The store's files, removed at the end (passed or not).
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// A fresh path in the temporary directory.
    pub fn new(what: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!(
            "cqrs-faults-{what}-{}-{}.db",
            std::process::id(),
            eventweave_core::new_id().simple()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

/// The SQLite durable model, run by the parent.
pub(crate) struct SqliteModel {
    running: RunningProjection<SqliteSink<SqliteTotals>>,
    path: PathBuf,
}

impl SqliteModel {
    pub(crate) fn start(store: &SqliteStore) -> Result<SqliteModel, String> {
        let sink = SqliteSink::new(store, SqliteTotals).map_err(|e| format!("sink: {e}"))?;
        sink.unit()
            .execute(SQLITE_TABLE, [])
            .map_err(|e| format!("create the read model: {e}"))?;
        Ok(SqliteModel {
            running: ProjectionRunner::new(store.clone(), sink)
                .batch_size(500)
                .spawn(),
            path: store.path().to_owned(),
        })
    }

    pub(crate) async fn check(&self, verdict: &checks::Verdict, report: &mut Report) {
        if !verdict.complete {
            return;
        }
        if let Err(e) = self
            .running
            .wait_for(verdict.head, harness::deadline())
            .await
        {
            let status = self.running.status();
            report.failures.push(format!(
                "the SqliteSink model did not reach the head {} (checkpoint {}, state {}): {e}",
                verdict.head,
                status.checkpoint,
                state_name(&status.state)
            ));
            return;
        }
        report.check(match sqlite_totals(&self.path) {
            Ok(found) => checks::compare("the SqliteSink model", &found, &verdict.replay),
            Err(e) => Some(format!("cannot read the SqliteSink model: {e}")),
        });
    }
}

/// Worker processes on the same vaults of one SQLite file.
pub async fn sqlite_contention(sizes: &Sizes) -> Report {
    let started = Instant::now();
    let mut report = Report::new("sqlite-processes", "sqlite");
    let file = TempFile::new("contention");
    if let Err(e) = sqlite_contention_run(sizes, &file, &mut report).await {
        report.failures.push(e);
    }
    report.elapsed = started.elapsed();
    report
}

async fn sqlite_contention_run(
    sizes: &Sizes,
    file: &TempFile,
    report: &mut Report,
) -> Result<(), String> {
    let store = SqliteStore::open(&file.0).map_err(|e| format!("open: {e}"))?;
    let model = SqliteModel::start(&store)?;
    let app = harness::app(&store).await?;
    let ledger = Arc::new(Ledger::new());
    harness::open_vaults(&app, &ledger, sizes.vaults).await;
    let target = Target::Sqlite(file.0.clone());
    run_workers(sizes, &target, &ledger, report).await?;
    let fresh = SqliteStore::open(&file.0).map_err(|e| format!("reopen: {e}"))?;
    let verdict = harness::check_store(report, &store, &fresh, &ledger, &[app]).await;
    model.check(&verdict, report).await;
    report.absorb(verdict, &ledger);
    Ok(())
}

/// Worker processes on the same vaults of one PostgreSQL schema.
pub async fn pg_contention(pg: &Pg, sizes: &Sizes) -> Report {
    let started = Instant::now();
    let mut report = Report::new("pg-processes", "postgres");
    if let Err(e) = pg_contention_run(pg, sizes, &mut report).await {
        report.failures.push(e);
    }
    report.elapsed = started.elapsed();
    report
}

async fn pg_contention_run(pg: &Pg, sizes: &Sizes, report: &mut Report) -> Result<(), String> {
    let schema = pg::schema("processes");
    let store = pg.store(&schema, WRITERS, 4).await?;
    let durable = Durable::start(pg, &schema).await?;
    let app = harness::app(&store).await?;
    let ledger = Arc::new(Ledger::new());
    harness::open_vaults(&app, &ledger, sizes.vaults).await;
    let target = Target::Postgres {
        url: pg.url().to_owned(),
        schema,
    };
    run_workers(sizes, &target, &ledger, report).await?;
    crate::scenarios::pg_server::finish(pg, &store, &[app], &ledger, &durable, report).await
}

/// Runs `sizes.processes` workers to completion on `target` (half of them writing batches of
/// three deposits), their lines into `ledger`.
async fn run_workers(
    sizes: &Sizes,
    target: &Target,
    ledger: &Arc<Ledger>,
    report: &mut Report,
) -> Result<(), String> {
    let seed = Rng::seed();
    let mut workers = Workers::default();
    for k in 0..sizes.processes {
        workers.0.push(worker::spawn(&Job {
            target: target.clone(),
            vaults: sizes.vaults,
            commands: sizes.process_commands,
            seed: seed.wrapping_add(k as u64),
            parts: if k % 2 == 0 { 1 } else { 3 },
        })?);
    }
    let mut followers = Vec::new();
    for child in std::mem::take(&mut workers.0) {
        let ledger = ledger.clone();
        followers.push(tokio::task::spawn_blocking(move || {
            worker::follow(child, &ledger, None)
        }));
    }
    for (k, follower) in followers.into_iter().enumerate() {
        if !follower.await.unwrap_or(false) {
            report
                .failures
                .push(format!("worker process {k} did not finish its commands"));
        }
    }
    Ok(())
}

/// SQLite's own consistency check of the file.
pub(crate) fn integrity(path: &std::path::Path, report: &mut Report) {
    let check = eventweave_sqlite::rusqlite::Connection::open(path).and_then(|conn| {
        conn.query_row("PRAGMA integrity_check", [], |row| row.get::<_, String>(0))
    });
    match check {
        Ok(ok) if ok == "ok" => {}
        Ok(other) => report
            .failures
            .push(format!("integrity_check after SIGKILL: {other}")),
        Err(e) => report.failures.push(format!("integrity_check failed: {e}")),
    }
}

//! A writer process killed with `SIGKILL` in the middle of its batches, again and again: after a
//! random number (1–40) of acknowledged three-event batches, the parent kills it and checks the
//! store as a restarted process would see it (a fresh handle): every acknowledged batch whole and
//! once, the batch in flight whole or absent, never split. On SQLite the file must also pass
//! `PRAGMA integrity_check`; on PostgreSQL the killed session's transaction is rolled back or
//! committed by the server, and readers must step over what it left.

use std::sync::Arc;
use std::time::Instant;

use eventweave_core::{Cqrs, EventStore};
use eventweave_sqlite::SqliteStore;

use crate::checks;
use crate::harness::{self, Report, Rng, Sizes};
use crate::ledger::Ledger;
use crate::pg::{self, FRESH, Pg, WRITERS};
use crate::scenarios::pg_server::Durable;
use crate::scenarios::processes::{SqliteModel, TempFile, integrity};
use crate::worker::{self, Job, Target};

/// Starts a writer on `target`, lets it acknowledge 1–40 batches, kills it, and reads its lines.
async fn kill_one(
    target: &Target,
    sizes: &Sizes,
    rng: &mut Rng,
    ledger: &Arc<Ledger>,
) -> Result<(), String> {
    let kill_after = 1 + rng.below(40);
    let child = worker::spawn(&Job {
        target: target.clone(),
        vaults: sizes.vaults,
        commands: 1_000_000,
        seed: rng.next_u64(),
        // Batches of three events: a kill may land inside an append of several rows.
        parts: 3,
    })?;
    let ledger = ledger.clone();
    tokio::task::spawn_blocking(move || worker::follow(child, &ledger, Some(kill_after)))
        .await
        .map_err(|e| format!("follower: {e}"))?;
    Ok(())
}

/// Opens the vaults before the first writer starts.
async fn open<S: EventStore>(store: S, sizes: &Sizes, ledger: &Ledger) -> Result<(), String> {
    let app = Cqrs::builder(store)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    harness::open_vaults(&app, ledger, sizes.vaults).await;
    Ok(())
}

/// Holds the store to the ledger after kill `run`; `false` (with the findings reported) if it
/// failed, which ends the scenario.
async fn after_kill<S: EventStore>(
    store: &S,
    ledger: &Ledger,
    run: u32,
    report: &mut Report,
) -> bool {
    let verdict = checks::verify(store, ledger).await;
    if verdict.failures.is_empty() {
        return true;
    }
    report.failures.push(format!("after SIGKILL {run}:"));
    report.failures.extend(verdict.failures);
    false
}

/// `SIGKILL` of a SQLite writer, `sizes.sigkills` times on one file.
pub async fn sqlite_sigkill(sizes: &Sizes) -> Report {
    let started = Instant::now();
    let mut report = Report::new("sqlite-sigkill", "sqlite");
    let file = TempFile::new("sigkill");
    if let Err(e) = sqlite_run(sizes, &file, &mut report).await {
        report.failures.push(e);
    }
    report.elapsed = started.elapsed();
    report
}

async fn sqlite_run(sizes: &Sizes, file: &TempFile, report: &mut Report) -> Result<(), String> {
    let ledger = Arc::new(Ledger::new());
    let opened = SqliteStore::open(&file.0).map_err(|e| format!("open: {e}"))?;
    open(opened, sizes, &ledger).await?;
    let mut rng = Rng::new(Rng::seed());
    let target = Target::Sqlite(file.0.clone());
    for run in 0..sizes.sigkills {
        kill_one(&target, sizes, &mut rng, &ledger).await?;
        report.faults += 1;
        // What a restarted process sees: a fresh handle on the file.
        let store = SqliteStore::open(&file.0)
            .map_err(|e| format!("the file does not reopen after SIGKILL {run}: {e}"))?;
        if !after_kill(&store, &ledger, run, report).await {
            return Ok(());
        }
        integrity(&file.0, report);
    }
    // The last state, with the read models: a durable model catching up on the file, and a
    // fresh build.
    let store = SqliteStore::open(&file.0).map_err(|e| format!("reopen: {e}"))?;
    let model = SqliteModel::start(&store)?;
    let verdict = harness::check_store(report, &store, &store, &ledger, &[]).await;
    model.check(&verdict, report).await;
    report.absorb(verdict, &ledger);
    Ok(())
}

/// `SIGKILL` of a PostgreSQL writer, `sizes.sigkills` times on one schema, while a `PgSink`
/// follows.
pub async fn pg_sigkill(pg: &Pg, sizes: &Sizes) -> Report {
    let started = Instant::now();
    let mut report = Report::new("pg-sigkill", "postgres");
    if let Err(e) = pg_run(pg, sizes, &mut report).await {
        report.failures.push(e);
    }
    report.elapsed = started.elapsed();
    report
}

async fn pg_run(pg: &Pg, sizes: &Sizes, report: &mut Report) -> Result<(), String> {
    let schema = pg::schema("sigkill");
    let ledger = Arc::new(Ledger::new());
    let store = pg.store(&schema, WRITERS, 2).await?;
    let durable = Durable::start(pg, &schema).await?;
    open(store.clone(), sizes, &ledger).await?;
    let mut rng = Rng::new(Rng::seed());
    let target = Target::Postgres {
        url: pg.url().to_owned(),
        schema: schema.clone(),
    };
    for run in 0..sizes.sigkills {
        kill_one(&target, sizes, &mut rng, &ledger).await?;
        report.faults += 1;
        let fresh = pg.store(&schema, FRESH, 2).await?;
        if !after_kill(&fresh, &ledger, run, report).await {
            return Ok(());
        }
    }
    crate::scenarios::pg_server::finish(pg, &store, &[], &ledger, &durable, report).await
}

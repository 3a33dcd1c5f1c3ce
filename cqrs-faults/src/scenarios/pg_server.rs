//! Server-side faults under concurrent writers, on the suite's own cluster: restarts (fast, then
//! immediate), rounds of `pg_terminate_backend` on the writers' sessions, and a kill storm on
//! the sessions of a `PgSink`. A `PgSink` runner (on a store instance of its own, so its
//! sessions can be told apart) keeps the durable model throughout; the checks then hold the
//! store to the ledger and the in-memory and durable models to a replay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_test_cluster::Mode as Stop;
use eventweave_core::runner::{ProjectionRunner, RunnerState, RunningProjection};
use eventweave_core::{Cqrs, Position};
use eventweave_postgres::{PgSink, PostgresStore};

use crate::checks;
use crate::client::Attempt;
use crate::domain::{PgTotals, Totals};
use crate::harness::{self, Load, Report, Sizes};
use crate::ledger::Ledger;
use crate::pg::{self, FRESH, Pg, SINK, WRITERS};

/// Which fault a run of [`server_faults`] injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The server is restarted (fast, then immediate).
    Restart,
    /// The writers' sessions are terminated, round after round.
    TerminateWriters,
    /// The sink's sessions are terminated, again and again.
    SinkStorm,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Restart => "pg-restart",
            Fault::TerminateWriters => "pg-terminate",
            Fault::SinkStorm => "pg-sink-storm",
        }
    }
}

/// One scenario: load, `fault`, more load, checks.
pub async fn server_faults(pg: &Pg, sizes: &Sizes, fault: Fault) -> Report {
    let started = Instant::now();
    let mut report = Report::new(fault.name(), "postgres");
    if let Err(e) = run(pg, sizes, fault, &mut report).await {
        report.failures.push(e);
    }
    report.elapsed = started.elapsed();
    report
}

/// The durable model's runner, on its own store instance (sessions named [`SINK`]).
pub struct Durable {
    /// The runner.
    pub running: RunningProjection<PgSink<PgTotals>>,
    schema: String,
}

impl Durable {
    /// Creates the table and starts the runner.
    pub async fn start(pg: &Pg, schema: &str) -> Result<Durable, String> {
        pg.create_model(schema).await?;
        let store = pg.store(schema, SINK, 2).await?;
        let sink = PgSink::new(&store, PgTotals::new(schema));
        Ok(Durable {
            running: ProjectionRunner::new(store, sink).batch_size(500).spawn(),
            schema: schema.to_owned(),
        })
    }

    /// Waits for the model to reach `head` and reads it.
    pub async fn observe(&self, pg: &Pg, head: Position) -> Result<Totals, String> {
        if let Err(e) = self.running.wait_for(head, harness::deadline()).await {
            let status = self.running.status();
            return Err(format!(
                "the PgSink model did not reach the head {head} (checkpoint {}, state {}): {e}",
                status.checkpoint,
                state_name(&status.state)
            ));
        }
        pg.model(&self.schema).await
    }

    /// Waits for the model to reach the verdict's head and compares it with the replay.
    pub async fn check(&self, pg: &Pg, verdict: &checks::Verdict, report: &mut Report) {
        if !verdict.complete {
            return;
        }
        report.check(match self.observe(pg, verdict.head).await {
            Ok(found) => checks::compare("the PgSink model", &found, &verdict.replay),
            Err(e) => Some(e),
        });
    }
}

/// A runner state in a few words.
pub fn state_name(state: &RunnerState) -> String {
    match state {
        RunnerState::Failed(e) => format!("failed: {e}"),
        RunnerState::Retrying { attempts, error } => format!("retrying ({attempts}): {error}"),
        RunnerState::StoreUnavailable { error } => format!("store unavailable: {error}"),
        other => format!("{other:?}"),
    }
}

async fn run(pg: &Pg, sizes: &Sizes, fault: Fault, report: &mut Report) -> Result<(), String> {
    let schema = pg::schema(fault.name());
    let store = pg.store(&schema, WRITERS, sizes.writers).await?;
    let durable = Durable::start(pg, &schema).await?;
    // Two applications on one store: their caches go stale against each other, so commands
    // also meet conflicts (and, on PostgreSQL, rolled-back holes) while the faults hit.
    let apps = vec![harness::app(&store).await?, harness::app(&store).await?];
    let ledger = Arc::new(Ledger::new());
    harness::open_vaults(&apps[0], &ledger, sizes.vaults).await;
    let load = Load::start(
        &apps,
        &ledger,
        sizes.writers,
        sizes.vaults,
        None,
        Attempt::default(),
    );
    tokio::time::sleep(sizes.phase).await;
    let injected = inject(pg, sizes, fault, &mut report.notes).await;
    tokio::time::sleep(sizes.phase).await;
    load.finish().await;
    report.faults = injected?;
    finish(pg, &store, &apps, &ledger, &durable, report).await
}

/// Injects `fault`; returns how many faults (restarts, rounds, kills) it made.
async fn inject(
    pg: &Pg,
    sizes: &Sizes,
    fault: Fault,
    notes: &mut Vec<String>,
) -> Result<u64, String> {
    match fault {
        Fault::Restart => {
            pg.restart(Stop::Fast).await?;
            tokio::time::sleep(sizes.phase).await;
            pg.restart(Stop::Immediate).await?;
            Ok(2)
        }
        Fault::TerminateWriters => {
            let admin = pg.admin().await?;
            let pause = sizes.phase / 4;
            let mut sessions = 0;
            for _ in 0..sizes.terminate_rounds {
                sessions += pg.terminate(&admin, WRITERS).await?;
                tokio::time::sleep(pause).await;
            }
            notes.push(format!(
                "{} rounds of pg_terminate_backend ended {sessions} writer sessions",
                sizes.terminate_rounds
            ));
            Ok(u64::from(sizes.terminate_rounds))
        }
        Fault::SinkStorm => {
            let admin = pg.admin().await?;
            let mut sessions = 0;
            for k in 0..sizes.sink_kills {
                sessions += pg.terminate(&admin, SINK).await?;
                // Irregular pauses, so kills land in every phase of a batch.
                let pause = 50 + (u64::from(k) * 7_919) % 400;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            notes.push(format!(
                "{} kills ended {sessions} sink sessions",
                sizes.sink_kills
            ));
            Ok(u64::from(sizes.sink_kills))
        }
    }
}

/// The checks of one PostgreSQL scenario.
pub async fn finish(
    pg: &Pg,
    store: &PostgresStore,
    apps: &[Cqrs<PostgresStore>],
    ledger: &Ledger,
    durable: &Durable,
    report: &mut Report,
) -> Result<(), String> {
    let fresh = pg.store(store.config().schema_name(), FRESH, 2).await?;
    let verdict = harness::check_store(report, store, &fresh, ledger, apps).await;
    durable.check(pg, &verdict, report).await;
    report.absorb(verdict, ledger);
    Ok(())
}

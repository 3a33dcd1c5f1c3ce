//! The stray transaction: a foreign session holds `BEGIN; SELECT pg_current_xact_id();` open
//! (an xid that keeps the cluster's `xmin` back) while commands run and conflicts leave
//! rolled-back holes. With the transaction still open: nothing is skipped, `read_all` reaches
//! the head, `Cqrs::build()` of a fresh application reaches the head, and the live in-memory and
//! `PgSink` models keep up.

use std::sync::Arc;
use std::time::Instant;

use crate::client::Attempt;
use crate::harness::{self, Load, Report, Sizes};
use crate::ledger::Ledger;
use crate::pg::{self, Pg, WRITERS};
use crate::scenarios::pg_server::{Durable, finish};

/// Runs the scenario on the suite's cluster.
pub async fn stray_transaction(pg: &Pg, sizes: &Sizes) -> Report {
    let started = Instant::now();
    let mut report = Report::new("pg-stray-transaction", "postgres");
    if let Err(e) = run(pg, sizes, &mut report).await {
        report.failures.push(e);
    }
    report.elapsed = started.elapsed();
    report
}

async fn run(pg: &Pg, sizes: &Sizes, report: &mut Report) -> Result<(), String> {
    let schema = pg::schema("stray");
    let store = pg.store(&schema, WRITERS, sizes.writers).await?;
    let durable = Durable::start(pg, &schema).await?;
    // Two applications on few vaults: stale caches meet the unique (stream, version) index, and
    // each such conflict rolls back after drawing a position.
    let apps = vec![harness::app(&store).await?, harness::app(&store).await?];
    let ledger = Arc::new(Ledger::new());
    let vaults = 3;
    harness::open_vaults(&apps[0], &ledger, vaults).await;

    let stray = pg.admin().await?;
    let xid: String = stray
        .simple_query("BEGIN; SELECT pg_current_xact_id()::text")
        .await
        .map_err(|e| format!("the stray transaction did not start: {e}"))?
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default();
    report.faults = 1;
    println!("  a foreign transaction holds xid {xid}");

    let load = Load::start(
        &apps,
        &ledger,
        sizes.writers,
        vaults,
        None,
        Attempt::default(),
    );
    tokio::time::sleep(sizes.stray_phase).await;
    load.finish().await;

    // Everything is checked while the foreign transaction is still open.
    let checked = finish(pg, &store, &apps, &ledger, &durable, report).await;
    let events = report.events;
    let head = cqrs_core::EventStore::head(&store)
        .await
        .map_err(|e| e.to_string())?;
    let holes = head.0.saturating_sub(events);
    report
        .notes
        .push(format!("{holes} rolled-back holes below head {head}"));
    if holes == 0 {
        report.failures.push(
            "no conflict left a rolled-back hole: the scenario did not test what it is for".into(),
        );
    }
    stray
        .simple_query("ROLLBACK")
        .await
        .map_err(|e| format!("the stray transaction did not end: {e}"))?;
    checked
}

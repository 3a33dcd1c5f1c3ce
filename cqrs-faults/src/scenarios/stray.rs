//! The stray transaction: a foreign session holds `BEGIN; SELECT pg_current_xact_id();` open
//! (an xid that keeps the cluster's `xmin` back) while commands run and conflicts leave
//! rolled-back holes. With the transaction still open: nothing is skipped, `read_all` reaches
//! the head, `Cqrs::build()` of a fresh application reaches the head, and the live in-memory and
//! `PgSink` models keep up.

use std::sync::Arc;
use std::time::Instant;

use eventweave_core::EventStore;

use crate::checks;
use crate::client::Attempt;
use crate::domain::AllTotals;
use crate::harness::{self, Load, Report, Sizes};
use crate::ledger::Ledger;
use crate::pg::{self, FRESH, Pg, WRITERS};
use crate::scenarios::pg_server::Durable;

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
    report
        .notes
        .push(format!("a foreign transaction held xid {xid} throughout"));

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

    // Everything a reader can see is observed while the foreign transaction is still open…
    let head = store.head().await.map_err(|e| format!("head(): {e}"))?;
    // A new process's view: a store handle that has seen none of the holes.
    let fresh = pg.store(&schema, FRESH, 2).await?;
    let observing = Instant::now();
    let read_open = checks::read_everything(&store, harness::deadline())
        .await
        .err();
    // Side by side, so a reader that is stuck costs one deadline, not four.
    let in_memory = |app: &eventweave_core::Cqrs<eventweave_postgres::PostgresStore>| {
        let app = app.clone();
        async move {
            app.query_after(head, AllTotals)
                .await
                .map_err(|e| format!("did not reach the head {head}: {e}"))
        }
    };
    let (first, second, fresh, sink) = tokio::join!(
        in_memory(&apps[0]),
        in_memory(&apps[1]),
        harness::fresh_totals(&fresh),
        durable.observe(pg, head),
    );
    report.notes.push(format!(
        "with it open, the readers and models took {:.1} s to reach the head",
        observing.elapsed().as_secs_f64()
    ));
    let observed = [
        ("the in-memory model of writer app 0", first),
        ("the in-memory model of writer app 1", second),
        ("a fresh Cqrs::build()", fresh),
        ("the PgSink model", sink),
    ];
    stray
        .simple_query("ROLLBACK")
        .await
        .map_err(|e| format!("the stray transaction did not end: {e}"))?;

    // … and compared with a replay once it has ended (no command ran meanwhile).
    if let Some(e) = read_open {
        report
            .failures
            .push(format!("with the foreign transaction open: {e}"));
    }
    let verdict = checks::verify(&store, &ledger).await;
    for (what, found) in observed {
        report.check(match found {
            Ok(found) if verdict.complete => checks::compare(
                &format!("{what}, with the foreign transaction open,"),
                &found,
                &verdict.replay,
            ),
            Ok(_) => None,
            Err(e) => Some(format!("{what}, with the foreign transaction open: {e}")),
        });
    }
    let holes = head.0.saturating_sub(verdict.events);
    report.absorb(verdict, &ledger);
    report
        .notes
        .push(format!("{holes} rolled-back holes below head {head}"));
    if holes == 0 {
        report.failures.push(
            "no conflict left a rolled-back hole: the scenario did not test what it is for".into(),
        );
    }
    Ok(())
}

//! Live lag while the server is disturbed the way production servers are: another application
//! instance's refused appends leave rolled-back holes all the time, and a session somewhere on
//! the server holds a transaction open (an idle-in-transaction client, a batch job, a
//! migration), which holds PostgreSQL's `xmin` back for as long as it stays open.
//!
//! `cargo run -p cqrs-bench --release -- --stray` runs two rows of the same workload one after
//! the other: the baseline (holes, no stray transaction) and the disturbed run (holes and a
//! stray transaction held open for the whole run, 60 s at 2,000 commands/s). Both check that
//! every command's event reached the projection exactly once; the disturbed run also checks
//! that `Cqrs::build()` of a fresh instance reaches the head while the stray transaction is
//! still open. `--medium` runs 3 s each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bank::{Balances, TotalHoldings};
use eventweave_core::{Cqrs, EventStore, ExpectedVersion, Position, StoreError};
use eventweave_postgres::{PostgresConfig, PostgresStore};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::Row;
use crate::postgres::URL_VAR;
use crate::read_side::{Disturbance, LagSink, Sizes, lag_disturbed, ms};

/// A session of its own that holds a transaction id until it runs `COMMIT`.
pub async fn hold_transaction(url: &str) -> Client {
    let client = crate::postgres::connect(url).await;
    client
        .batch_execute("BEGIN; SELECT pg_current_xact_id();")
        .await
        .expect("begin the stray transaction");
    client
}

/// Another application instance refusing appends in the background (see [`refuse_opens`]).
pub struct Refusals {
    task: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

impl Refusals {
    /// Stops the refusals and returns how many appends were refused.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task {
            task.await.expect("the refusing task ends cleanly");
        }
        self.refused.load(Ordering::SeqCst)
    }
}

/// Starts `per_sec` appends per second, from a store instance of its own on `schema`, that
/// create account streams which already exist (the bank's `account-{id}` for ids below
/// `accounts`): each draws a position and is refused by the unique (stream, version)
/// constraint, leaving a rolled-back hole. Nothing when `per_sec` is 0.
pub async fn refuse_opens(url: &str, schema: &str, per_sec: u64, accounts: u64) -> Refusals {
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    if per_sec == 0 {
        return Refusals {
            task: None,
            stop,
            refused,
        };
    }
    let store = PostgresStore::open(PostgresConfig::new(url).schema(schema).pool_size(1))
        .await
        .expect("open the refusing instance's store");
    let task = tokio::spawn({
        let (stop, refused) = (Arc::clone(&stop), Arc::clone(&refused));
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec as f64));
            let mut k = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let stream = format!("account-{}", k % accounts).into();
                k += 1;
                let event = crate::read_side::stored("bench.refused", "{}".to_owned());
                match store
                    .append(&stream, ExpectedVersion::NoStream, vec![event])
                    .await
                {
                    Err(StoreError::Conflict { .. }) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    other => panic!("the account exists, so the append is refused: {other:?}"),
                }
            }
        }
    });
    Refusals {
        task: Some(task),
        stop,
        refused,
    }
}

/// A fresh application instance on `schema` builds (catching its in-memory balances up) and
/// must have reached `head`, with every one of the `deposits` (of 1 each) counted.
pub async fn check_build(url: &str, schema: &str, head: Position, deposits: u64) {
    let store = PostgresStore::open(PostgresConfig::new(url).schema(schema).pool_size(2))
        .await
        .expect("open a fresh instance's store");
    let app = Cqrs::builder(store)
        .projection(Balances::default())
        .build()
        .await
        .expect("the application builds");
    assert!(
        app.position() >= head,
        "build() returned at {:?}, below the head {head:?}",
        app.position()
    );
    assert_eq!(
        app.query(TotalHoldings).await.expect("total holdings"),
        deposits,
        "every deposit counted once"
    );
}

/// The two rows (baseline, then with a stray transaction), each `duration` long at 2,000
/// commands/s with 20 refused appends per second.
pub async fn run(duration: Duration) -> Vec<Row> {
    let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.trim().is_empty()) else {
        eprintln!("SKIPPED: stray-transaction rows: {URL_VAR} is not set");
        return Vec::new();
    };
    let sizes = Sizes {
        lag_duration: duration,
        ..Sizes::FULL
    };
    let mut rows = Vec::new();
    for stray_transaction in [false, true] {
        let disturbance = Disturbance {
            refused_per_sec: 20,
            stray_transaction,
        };
        let lag = lag_disturbed(&url, sizes, LagSink::Memory, disturbance).await;
        let what = if stray_transaction {
            "holes + a stray transaction open throughout"
        } else {
            "holes, no stray transaction (baseline)"
        };
        rows.push(Row {
            workload: format!(
                "(pg) live lag at {}/s for {} s, {what}: {} refused appends; MemorySink, runner on \
                 a 2nd store: p50 {}, p99 {}, max {}; {} resent after conflicts",
                sizes.lag_rate,
                duration.as_secs(),
                lag.refused,
                ms(lag.p50),
                ms(lag.p99),
                ms(lag.max),
                lag.resent,
            ),
            rate: lag.rate,
            unit: "commands/s",
            baseline: None,
            peer: None,
            target: "p99 < 50 ms".to_owned(),
        });
    }
    rows
}

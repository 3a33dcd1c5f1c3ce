//! SQLite workloads: sequential bank commands through `Cqrs::execute` on a `SqliteStore` in a
//! temporary file, beside raw single-row insert transactions into a table of the same shape with
//! the same pragmas, measured in the same run (the two alternate round by round); and the
//! catch-up rate of a projection reading the stored events at start-up, beside a raw `SELECT`.

use std::time::{Duration, Instant};

use bank::{AccountId, GetBalance};
use eventweave_core::{EventStore, Position, Timestamp, new_id};
use eventweave_sqlite::rusqlite::{Connection, TransactionBehavior};
use eventweave_sqlite::{Durability, SqliteConfig, SqliteStore};

/// One workload's sizes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Accounts.
    pub accounts: u64,
    /// Commands per account (one open, the rest deposits).
    pub commands_per_account: u64,
}

impl Sizes {
    /// The sizes the issue sets: 200 accounts × 20 commands.
    pub const FULL: Sizes = Sizes {
        accounts: 200,
        commands_per_account: 20,
    };
    /// The `synchronous=FULL` run: smaller, since every commit waits for the disk.
    pub const FULL_SYNC: Sizes = Sizes {
        accounts: 50,
        commands_per_account: 20,
    };
    /// Tiny sizes for `cargo test`.
    pub const QUICK: Sizes = Sizes {
        accounts: 5,
        commands_per_account: 4,
    };

    fn commands(self) -> u64 {
        self.accounts * self.commands_per_account
    }
}

/// A number of operations and how long they took.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// Commands, inserts or events.
    pub count: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

fn config(durability: Durability) -> SqliteConfig {
    SqliteConfig::new().durability(durability)
}

/// Sequential commands: each account opened, then deposited into, one command after the other.
/// Returns the run and the store, for the catch-up workload.
pub async fn commands(sizes: Sizes, durability: Durability) -> (Run, SqliteStore) {
    let store = SqliteStore::temporary_with(config(durability)).expect("a temporary store");
    let app = crate::memory::bank_app(store.clone()).await;
    let deposits = sizes.commands_per_account - 1;
    let elapsed = crate::memory::open_and_deposit(&app, sizes.accounts, deposits).await;
    let balance = app
        .query_after(
            app.position(),
            GetBalance {
                account: AccountId(sizes.accounts - 1),
            },
        )
        .await
        .expect("the balances projection answers");
    assert_eq!(balance, Some(deposits), "a deposit was lost or duplicated");
    assert_eq!(
        store.head().await.expect("head"),
        Position(sizes.commands()),
        "one event per command is stored"
    );
    (
        Run {
            count: sizes.commands(),
            elapsed,
        },
        store,
    )
}

/// The baseline: the same number of single-row insert transactions, written with rusqlite
/// straight into the `events` table of a fresh store file (so the same table and indexes),
/// on a connection with the same pragmas (WAL, the same `synchronous`).
pub fn raw_inserts(sizes: Sizes, durability: Durability) -> Run {
    let store = SqliteStore::temporary_with(config(durability)).expect("a temporary store");
    let mut conn = Connection::open(store.path()).expect("a raw connection");
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", durability.pragma_value())
        .unwrap();
    let deposits = sizes.commands_per_account - 1;
    let started = Instant::now();
    for id in 0..sizes.accounts {
        let stream = format!("account-{id}");
        for version in 1..=sizes.commands_per_account {
            let (name, payload) = if version == 1 {
                ("account.opened", r#"{"owner":""}"#)
            } else {
                ("account.deposited", r#"{"amount":1}"#)
            };
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .unwrap();
            tx.prepare_cached(
                "INSERT INTO events (event_id, stream, version, event_name, event_version, \
                 payload, metadata, correlation_id, causation_id, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, NULL, ?6, ?7, ?8)",
            )
            .unwrap()
            .execute((
                &new_id().as_bytes()[..],
                stream.as_str(),
                version as i64,
                name,
                payload,
                &new_id().as_bytes()[..],
                &new_id().as_bytes()[..],
                Timestamp::now().unix_micros(),
            ))
            .unwrap();
            tx.commit().unwrap();
        }
    }
    let elapsed = started.elapsed();
    let rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE event_name = 'account.deposited'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        rows as u64,
        sizes.accounts * deposits,
        "every insert is stored"
    );
    Run {
        count: sizes.commands(),
        elapsed,
    }
}

/// A new application on a filled store: its `build()` reads every event and folds it into the
/// balances projection (what a restart costs).
pub async fn catch_up(store: &SqliteStore, sizes: Sizes) -> Run {
    let started = Instant::now();
    let app = crate::memory::bank_app(store.clone()).await;
    let elapsed = started.elapsed();
    assert_eq!(
        app.position(),
        Position(sizes.commands()),
        "every event is applied"
    );
    let balance = app
        .query(GetBalance {
            account: AccountId(0),
        })
        .await
        .unwrap();
    assert_eq!(balance, Some(sizes.commands_per_account - 1));
    Run {
        count: sizes.commands(),
        elapsed,
    }
}

/// The baseline of the catch-up: one raw `SELECT` of every column of every row, in position
/// order, copying the text columns out.
pub fn raw_select(store: &SqliteStore) -> Run {
    let conn = Connection::open(store.path()).expect("a raw connection");
    let started = Instant::now();
    let mut statement = conn
        .prepare(
            "SELECT position, stream, version, event_name, event_id, event_version, payload, \
             metadata, correlation_id, causation_id, recorded_at FROM events ORDER BY position",
        )
        .unwrap();
    let mut rows = statement.query([]).unwrap();
    let mut count = 0;
    let mut bytes = 0;
    while let Some(row) = rows.next().unwrap() {
        let stream: String = row.get(1).unwrap();
        let name: String = row.get(3).unwrap();
        let payload: String = row.get(6).unwrap();
        bytes += stream.len() + name.len() + payload.len();
        count += 1;
    }
    let elapsed = started.elapsed();
    assert!(bytes > 0);
    Run { count, elapsed }
}

/// Commands and their raw baseline, alternating round by round (and which goes first, so
/// neither always meets a warmer cache or disk); the catch-up workloads run on each filled
/// store when `catch_up_rates` is given. Returns the medians.
async fn commands_beside_raw(
    mode: crate::Mode,
    sizes: Sizes,
    durability: Durability,
    mut catch_up_rates: Option<(&mut Vec<f64>, &mut Vec<f64>)>,
) -> (f64, f64) {
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 0..mode.rounds() {
        if round % 2 == 1 {
            raw.push(raw_inserts(sizes, durability).rate());
        }
        let (run, store) = commands(sizes, durability).await;
        ours.push(run.rate());
        if let Some((caught_up, selected)) = catch_up_rates.as_mut() {
            caught_up.push(catch_up(&store, sizes).await.rate());
            selected.push(raw_select(&store).rate());
        }
        drop(store);
        if round % 2 == 0 {
            raw.push(raw_inserts(sizes, durability).rate());
        }
    }
    (crate::median(&mut ours), crate::median(&mut raw))
}

/// Runs the workloads and returns their rows: commands with `synchronous=NORMAL` (the
/// default) and `FULL` (a smaller run: each commit waits for the disk), each beside its raw
/// baseline, and the start-up catch-up beside a raw `SELECT`.
pub async fn run(mode: crate::Mode) -> Vec<crate::Row> {
    let (sizes, full_sizes) = match mode {
        crate::Mode::Full => (Sizes::FULL, Sizes::FULL_SYNC),
        crate::Mode::Quick => (Sizes::QUICK, Sizes::QUICK),
    };
    let (mut caught_up, mut selected) = (Vec::new(), Vec::new());
    let normal = commands_beside_raw(
        mode,
        sizes,
        Durability::Normal,
        Some((&mut caught_up, &mut selected)),
    )
    .await;
    let full = commands_beside_raw(mode, full_sizes, Durability::Full, None).await;
    let row = |sizes: Sizes, sync: &str, (ours, raw): (f64, f64)| crate::Row {
        workload: format!(
            "(c) sqlite: {} accounts x {} commands, synchronous={sync}",
            sizes.accounts, sizes.commands_per_account
        ),
        rate: ours,
        unit: "commands/s",
        baseline: Some(("raw 1-row insert transactions".to_owned(), raw)),
        peer: None,
        target: ">= 80% of raw".to_owned(),
    };
    vec![
        row(sizes, "NORMAL", normal),
        row(full_sizes, "FULL", full),
        crate::Row {
            workload: format!(
                "(c) sqlite: catch-up of {} events into Balances at build()",
                sizes.commands()
            ),
            rate: crate::median(&mut caught_up),
            unit: "events/s",
            baseline: Some((
                "raw SELECT of the rows".to_owned(),
                crate::median(&mut selected),
            )),
            peer: None,
            target: "-".to_owned(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn quick_mode_runs_and_checks_its_results() {
        let (run, store) = commands(Sizes::QUICK, Durability::Normal).await;
        assert_eq!(run.count, 20);
        assert_eq!(catch_up(&store, Sizes::QUICK).await.count, 20);
        assert_eq!(raw_select(&store).count, 20);
        assert_eq!(raw_inserts(Sizes::QUICK, Durability::Full).count, 20);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn quick_table_has_every_row_with_a_baseline() {
        let rows = run(crate::Mode::Quick).await;
        assert_eq!(rows.len(), 3);
        assert!(rows[1].workload.contains("FULL"), "{rows:?}");
        for row in &rows {
            assert!(row.rate > 0.0, "{row:?}");
            assert!(
                row.baseline.as_ref().is_some_and(|(_, rate)| *rate > 0.0),
                "{row:?}"
            );
        }
    }
}

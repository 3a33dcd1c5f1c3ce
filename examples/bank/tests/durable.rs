//! The example binary keeps the bank in a SQLite file: a second run starts from the first
//! run's events, and the balances table (a durable projection in the same file) holds every
//! event exactly once across runs. `--memory` forgets everything.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use eventweave_core::EventStore;
use eventweave_core::runner::Checkpoints;
use eventweave_sqlite::SqliteStore;

/// Runs the example on `db`; returns stdout and stderr.
fn bank(db: &Path, args: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(args)
        .env("BANK_DB", db)
        .env_remove("BANK_STORE")
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        output.status.success(),
        "the example failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

fn remove(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = db.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// A database path of this test process, removed now and when dropped.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("bank-example-{name}-{}.db", std::process::id()));
        remove(&path);
        TempDb(path)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        remove(&self.0);
    }
}

/// The SQL balances table of `db` equals the balances computed from its stored events, and the
/// projection's checkpoint is the store's head (nothing left to apply, nothing applied twice).
async fn assert_table_matches_events(db: &Path) {
    let store = SqliteStore::open(db).unwrap();
    let reader = store.reader();
    let table = bank::balances::accounts(&reader).await.unwrap();
    assert_eq!(table, common::balances_from_events(&store).await);
    assert_eq!(
        store.load_checkpoint("balances").await.unwrap(),
        store.head().await.unwrap()
    );
    assert_eq!(
        bank::balances::total(&reader).await.unwrap(),
        table.iter().map(|a| a.balance).sum::<u64>()
    );
}

#[tokio::test]
async fn a_second_run_continues_from_the_first_runs_events() {
    let db = TempDb::new("runs");
    let db = &db.0;
    let (first, _) = bank(db, &[]);
    assert!(first.contains("none: a new bank"), "{first}");
    assert!(
        first.contains("account-history (in memory): nothing to read"),
        "{first}"
    );
    assert!(
        first.contains("Money check: 0 held before this run + 8200"),
        "{first}"
    );
    assert!(
        first.contains("? balance of account 1 -> Some(4500)"),
        "{first}"
    );
    assert!(first.contains("? total holdings -> 8200"), "{first}");
    assert_table_matches_events(db).await;

    let (second, _) = bank(db, &[]);
    // Discovery: every projection of the program, with its checkpoint and lag.
    assert!(
        second.contains("    balances             durable    checkpoint     18  lag      0"),
        "{second}"
    );
    // The transfer process manager resumes at its checkpoint too.
    assert!(
        second.contains("    transfer             durable    checkpoint     18  lag      0"),
        "{second}"
    );
    assert!(
        second.contains("    account-history      in memory  checkpoint      0  lag     18"),
        "{second}"
    );
    // The in-memory history replays everything; the balances table resumes at its checkpoint.
    assert!(
        second.contains("account-history (in memory): read 18 stored events"),
        "{second}"
    );
    assert!(
        second.contains("balances (SQL table): nothing to read"),
        "{second}"
    );
    assert!(
        second.contains("18 events found; the history replayed them, the balances table holds them (checkpoint 18)."),
        "{second}"
    );
    assert!(
        second.contains("      1  Ada        4500  open"),
        "{second}"
    );
    assert!(second.contains("    total holdings: 8200"), "{second}");
    assert!(second.contains("`account-1` already exists"), "{second}");
    assert!(
        second.contains("Money check: 8200 held before this run"),
        "{second}"
    );
    // Exactly once across restarts: the second run's table still equals the events' sums.
    assert_table_matches_events(db).await;
}

#[tokio::test]
async fn seeded_deposits_show_progress_and_are_counted_once() {
    let db = TempDb::new("seed");
    let db = &db.0;
    let (first, quiet) = bank(db, &[]);
    assert!(first.contains("none: a new bank"), "{first}");
    assert!(
        !quiet.contains("events/s"),
        "no bar for a short catch-up: {quiet}"
    );

    let (seeded, bars) = bank(db, &["--seed", "3000"]);
    assert!(
        seeded.contains("Seeded 3000 deposits of 1 into account 1000"),
        "{seeded}"
    );
    // 3,000 deposits and the seed account's opening, on top of the first run's 18 events
    // (11 account events, 7 records of the transfer process manager's instances).
    assert!(
        seeded.contains("account-history (in memory): read 3019 stored events"),
        "{seeded}"
    );
    assert!(
        seeded.contains("balances (SQL table): read 3001 stored events"),
        "{seeded}"
    );
    assert!(
        seeded.contains("   1000  Seed       3000  open"),
        "{seeded}"
    );
    // The bars (eventweave-cli's, indicatif) are drawn only on a terminal: stderr is a pipe
    // here, so logs get the summary lines above and no bar (eventweave-cli tests the bar).
    for bar in ["account-history (in memory) [", "balances (SQL table) ["] {
        assert!(!bars.contains(bar), "{bars}");
    }
    assert_table_matches_events(db).await;

    let (again, _) = bank(db, &[]);
    assert!(
        again.contains("balances (SQL table): nothing to read"),
        "{again}"
    );
    assert_table_matches_events(db).await;
}

#[test]
fn memory_mode_writes_no_file() {
    let db = TempDb::new("memory");
    let (in_memory, _) = bank(&db.0, &["--memory"]);
    assert!(in_memory.contains("none: a new bank"), "{in_memory}");
    assert!(
        in_memory.contains("Money check: 0 held before this run + 8200"),
        "{in_memory}"
    );
    assert!(!db.0.exists(), "--memory writes no file");
}

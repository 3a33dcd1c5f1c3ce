//! The example binary keeps the bank in a SQLite file: a second run starts from the first
//! run's events. `--memory` forgets everything.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bank(db: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(args)
        .env("BANK_DB", db)
        .env_remove("BANK_STORE")
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "the example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn remove(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = db.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn a_second_run_continues_from_the_first_runs_events() {
    let db: PathBuf = std::env::temp_dir().join(format!("bank-example-{}.db", std::process::id()));
    remove(&db);
    let first = bank(&db, &[]);
    assert!(first.contains("none: a new bank"), "{first}");
    assert!(
        first.contains("Money check: 0 held before this run + 8200"),
        "{first}"
    );

    let second = bank(&db, &[]);
    remove(&db);
    assert!(
        second.contains("11 events found; the projections replayed them at start-up."),
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

    let in_memory = bank(&db, &["--memory"]);
    assert!(in_memory.contains("none: a new bank"), "{in_memory}");
    assert!(!db.exists(), "--memory writes no file");
}

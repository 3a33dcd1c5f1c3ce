//! The short mode of the fault suite, inside `cargo test` (so CI runs it): every scenario at a
//! small size, PostgreSQL ones on a throwaway cluster the suite starts itself (reported as
//! skipped where no PostgreSQL binaries are installed). It runs the suite's binary, because the
//! multi-process scenarios re-execute it as their workers.

use std::process::Command;

#[test]
fn the_short_fault_campaign_loses_nothing() {
    let output = Command::new(env!("CARGO_BIN_EXE_cqrs-faults"))
        .arg("short")
        .output()
        .expect("the suite's binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(stdout.contains("total:"), "the suite printed no summary");
    assert!(
        output.status.success(),
        "the short fault campaign found broken promises (see the table and the list above): {}",
        stdout
            .lines()
            .filter(|line| line.starts_with("total:"))
            .collect::<String>()
    );
}

//! The benchmark binary's arguments: `--help` prints the modes instead of running the suite,
//! and a misspelt flag is refused instead of silently running everything.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cqrs-bench"))
        .args(args)
        .env_remove("CQRS_POSTGRES_URL")
        .output()
        .expect("run cqrs-bench")
}

#[test]
fn help_lists_the_modes_and_runs_nothing() {
    for flag in ["--help", "-h"] {
        let out = bench(&[flag]);
        assert!(out.status.success(), "{flag}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for mode in [
            "--memory",
            "--curve",
            "--segments",
            "--dcb",
            "--catch-up",
            "--quick",
        ] {
            assert!(
                text.contains(mode),
                "{flag} does not mention {mode}:\n{text}"
            );
        }
        // A run of the suite prints a table; the help must not.
        assert!(
            !text.contains("| workload"),
            "{flag} ran something:\n{text}"
        );
    }
}

#[test]
fn an_unknown_flag_is_refused_with_its_name() {
    let out = bench(&["--quick", "--curv"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown argument `--curv`"), "{err}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.is_empty(), "it ran something:\n{printed}");
}

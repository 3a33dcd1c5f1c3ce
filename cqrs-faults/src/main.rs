//! `cqrs-faults full | short [--only a,b]`: runs the fault-injection suite and prints its
//! figures; exits with 1 if any check failed. `cqrs-faults worker …` is a worker process the
//! suite starts itself.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("worker") => {
            return match cqrs_faults::worker::main(&args[1..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            };
        }
        Some("full") => cqrs_faults::Mode::Full,
        Some("short") => cqrs_faults::Mode::Short,
        _ => {
            eprintln!(
                "usage: cqrs-faults full|short [--only {}]",
                cqrs_faults::SCENARIOS.join(",")
            );
            return ExitCode::from(2);
        }
    };
    let only: Vec<String> = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("--only"), Some(list)) => list.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    if let Some(unknown) = only
        .iter()
        .find(|o| !cqrs_faults::SCENARIOS.contains(&o.as_str()))
    {
        eprintln!("unknown scenario `{unknown}`");
        return ExitCode::from(2);
    }
    let started = std::time::Instant::now();
    let reports = cqrs_faults::run(mode, &only);
    let failed = cqrs_faults::summary::print(&reports, started.elapsed());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

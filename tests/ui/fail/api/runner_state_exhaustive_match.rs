// `RunnerState` may gain states: a match outside `eventweave-core` needs a wildcard arm.
use eventweave_core::runner::RunnerState;

fn describe(state: &RunnerState) -> &'static str {
    match state {
        RunnerState::Standby => "standby",
        RunnerState::CatchingUp => "catching up",
        RunnerState::Live => "live",
        RunnerState::Retrying { .. } => "retrying",
        RunnerState::StoreUnavailable { .. } => "store unavailable",
        RunnerState::Failed(_) => "failed",
        RunnerState::Stopped => "stopped",
    }
}

fn main() {
    let _ = describe;
}

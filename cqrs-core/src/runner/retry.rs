//! How a runner waits before trying again: [`RetryPolicy`] (tries per event, exponential delays
//! with a cap), [`OnFailure`] (what happens after the last try), and the jitter that keeps many
//! runners from retrying a recovering database in step.

use std::time::Duration;

/// How often a failing event is retried, and how long the runner waits between tries.
///
/// The same delays pace a runner through an outage of its store or its sink's storage (a lost
/// connection, a database restarting): the first retry waits `first_delay`, every further
/// failure doubles the wait up to `max_delay`, and the next success starts again from
/// `first_delay`. Outages are not counted toward `max_attempts`; they never park an event nor
/// stop the runner. Each wait is shortened by a random part of up to half its length, so runners
/// that lost their database together do not all come back in the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per event before [`OnFailure`] applies (at least 1; default 5).
    pub max_attempts: u32,
    /// Wait before the second try (default 100 ms); it doubles on each further try…
    pub first_delay: Duration,
    /// …up to this (default 10 s).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` failed tries in a row (1 = after the first), before jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let doubling = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.first_delay
            .saturating_mul(doubling)
            .min(self.max_delay)
    }

    /// [`RetryPolicy::delay`] shortened by a random part of up to half of it.
    pub(crate) fn jittered(&self, failures: u32) -> Duration {
        let delay = self.delay(failures);
        // 53 random bits (the low bits of a UUIDv7 are random) as a fraction in [0, 1).
        let random =
            (crate::new_id().as_u128() as u64 & ((1 << 53) - 1)) as f64 / (1u64 << 53) as f64;
        delay.mul_f64(1.0 - random / 2.0)
    }
}

/// What the runner does with an event whose handler still fails after every retry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFailure {
    /// Stop at the event, with the error in the status, until
    /// [`RunningProjection::restart`](crate::runner::RunningProjection::restart) or a rebuild
    /// (the default: nothing is skipped).
    #[default]
    Stop,
    /// Record the event as parked (with the error) and go on with the next one.
    Park,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_jitter_only_shortens_by_half() {
        let policy = RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let delays: Vec<u128> = (1..=6).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(1));
        for failures in 1..=6 {
            for _ in 0..100 {
                let jittered = policy.jittered(failures);
                let delay = policy.delay(failures);
                assert!(jittered <= delay && jittered >= delay / 2, "{jittered:?}");
            }
        }
    }
}

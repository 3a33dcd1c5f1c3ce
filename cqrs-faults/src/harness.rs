//! What every scenario shares: the run's sizes, the report of one scenario, the writers that put
//! load on a store, and the read-model checks after the load.
//!
//! The in-memory models are checked twice: the writers' own, caught up with `query_after(head)`,
//! and a fresh `Cqrs::build()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventweave_core::{Cqrs, EventStore, Position};
use tokio::task::JoinSet;

use crate::checks::{self, Verdict};
use crate::client::{self, Attempt, Ended};
use crate::domain::{AllTotals, Deposit, MemoryTotals, Open, VaultId};
use crate::ledger::{Entry, Ledger, Retries};

/// How long, in milliseconds, the checks wait for a reader or a read model to reach the head
/// (set once per run from its [`Mode`]).
static DEADLINE_MS: AtomicU64 = AtomicU64::new(60_000);

/// How long the checks wait for a reader or a read model to reach the head.
pub fn deadline() -> Duration {
    Duration::from_millis(DEADLINE_MS.load(Ordering::Relaxed))
}

/// Sets [`deadline`] for the run.
pub fn set_deadline(deadline: Duration) {
    DEADLINE_MS.store(deadline.as_millis() as u64, Ordering::Relaxed);
}

/// The short run (inside `cargo test`) or the full one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A few seconds per scenario.
    Short,
    /// The recorded campaign (RELIABILITY.md).
    Full,
}

/// How much load and how many faults a run injects.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Concurrent writer tasks in the in-process PostgreSQL scenarios.
    pub writers: usize,
    /// Vaults (streams) the writers deposit into.
    pub vaults: u64,
    /// Load before, between and after faults.
    pub phase: Duration,
    /// Rounds of `pg_terminate_backend` on the store's sessions.
    pub terminate_rounds: u32,
    /// Kills of the sink's sessions.
    pub sink_kills: u32,
    /// Worker processes in the contention scenarios.
    pub processes: usize,
    /// Commands per worker process in the contention scenarios.
    pub process_commands: u64,
    /// SIGKILLs of a SQLite writer.
    pub sigkills: u32,
    /// Commands per store whose first attempt's future is dropped.
    pub dropped: u64,
    /// Load while a foreign transaction holds an xid.
    pub stray_phase: Duration,
    /// How long the checks wait for a reader or read model to reach the head.
    pub deadline: Duration,
}

impl Mode {
    /// The sizes of this mode.
    pub fn sizes(self) -> Sizes {
        match self {
            Mode::Short => Sizes {
                writers: 4,
                vaults: 10,
                phase: Duration::from_millis(1_500),
                terminate_rounds: 3,
                sink_kills: 4,
                processes: 3,
                process_commands: 150,
                sigkills: 5,
                dropped: 150,
                stray_phase: Duration::from_secs(1),
                deadline: Duration::from_secs(30),
            },
            Mode::Full => Sizes {
                writers: 8,
                vaults: 10,
                phase: Duration::from_secs(12),
                terminate_rounds: 10,
                sink_kills: 20,
                processes: 4,
                process_commands: 3_000,
                sigkills: 20,
                dropped: 2_000,
                stray_phase: Duration::from_secs(10),
                deadline: Duration::from_secs(60),
            },
        }
    }
}

/// What one scenario did and found.
#[derive(Debug, Default)]
pub struct Report {
    /// The scenario.
    pub name: String,
    /// The store(s) it ran on.
    pub store: String,
    /// Commands acknowledged (each verified stored exactly once).
    pub acknowledged: u64,
    /// Commands whose client gave up without an answer and that turned out stored (once).
    pub uncertain_stored: u64,
    /// … and that turned out not stored.
    pub uncertain_absent: u64,
    /// Events in the store at the end.
    pub events: u64,
    /// Faults injected.
    pub faults: u64,
    /// Hostile inputs tried.
    pub bad_inputs: u64,
    /// Retries of the clients, by cause.
    pub retries: Retries,
    /// Broken promises; empty when the scenario passed.
    pub failures: Vec<String>,
    /// What else it observed (printed with the summary).
    pub notes: Vec<String>,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

impl Report {
    /// An empty report of `name` on `store`.
    pub fn new(name: &str, store: &str) -> Self {
        Report {
            name: name.to_owned(),
            store: store.to_owned(),
            ..Report::default()
        }
    }

    /// A scenario that could not run.
    pub fn skipped(name: &str, store: &str, why: String) -> Self {
        Report {
            skipped: Some(why),
            ..Report::new(name, store)
        }
    }

    /// Takes in the checks' verdict and the ledger's counts.
    pub fn absorb(&mut self, verdict: Verdict, ledger: &Ledger) {
        self.acknowledged += verdict.acknowledged;
        self.uncertain_stored += verdict.uncertain_stored;
        self.uncertain_absent += verdict.uncertain_absent;
        self.events += verdict.events;
        self.failures.extend(verdict.failures);
        let retries = ledger.retries();
        self.retries.unavailable += retries.unavailable;
        self.retries.outcome_unknown += retries.outcome_unknown;
        self.retries.conflict += retries.conflict;
        self.retries.dropped += retries.dropped;
        self.retries.reruns += retries.reruns;
        self.retries.never_after_unknown += retries.never_after_unknown;
    }

    /// Adds a failure if `problem` is one.
    pub fn check(&mut self, problem: Option<String>) {
        self.failures.extend(problem);
    }
}

/// A small deterministic generator (xorshift), seeded per writer.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A random seed for a run.
    pub fn seed() -> u64 {
        eventweave_core::new_id().as_u128() as u64
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Opens vaults `0..count` through `app` (before any fault is injected).
pub async fn open_vaults<S: EventStore>(app: &Cqrs<S>, ledger: &Ledger, count: u64) {
    for k in 0..count {
        let vault = VaultId(k);
        let entry = Entry::one(vault.stream().to_string(), 0);
        client::run(
            app,
            ledger,
            Open { vault },
            entry,
            Attempt::default(),
            client::silent,
        )
        .await;
    }
}

/// Writer tasks depositing into vaults until told to stop.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl Load {
    /// Starts `writers` tasks over `apps` (round robin), each depositing random amounts into
    /// random vaults of `0..vaults` until [`Load::finish`], or `limit` commands each.
    pub fn start<S: EventStore>(
        apps: &[Cqrs<S>],
        ledger: &Arc<Ledger>,
        writers: usize,
        vaults: u64,
        limit: Option<u64>,
        attempt: Attempt,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        let seed = Rng::seed();
        for w in 0..writers {
            let app = apps[w % apps.len()].clone();
            let ledger = ledger.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                let mut rng = Rng::new(seed.wrapping_add(w as u64));
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| sent < l) {
                    sent += 1;
                    let vault = VaultId(rng.below(vaults));
                    let amount = 1 + rng.below(1_000);
                    let entry = Entry::one(vault.stream().to_string(), amount);
                    let ended = client::run(
                        &app,
                        &ledger,
                        Deposit { vault, amount },
                        entry,
                        attempt,
                        client::silent,
                    )
                    .await;
                    if matches!(ended, Ended::Refused(_)) {
                        // Not expected under these faults; the checks report it. Pause so a
                        // store that refuses everything does not spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            });
        }
        Load { stop, tasks }
    }

    /// Stops the writers (each finishes its current command, retries included) and waits.
    pub async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(result) = self.tasks.join_next().await {
            if let Err(e) = result {
                eprintln!("a writer task failed: {e}");
            }
        }
    }

    /// Waits until every writer has sent its `limit` commands.
    pub async fn join(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(e) = result {
                eprintln!("a writer task failed: {e}");
            }
        }
    }
}

/// The checks of the events and of the in-memory read models: the live applications' own
/// projections (caught up to the head) and that of a fresh `Cqrs::build()` on `fresh`, a
/// handle opened for the purpose where the store allows it (as a new process would open one:
/// nothing remembered from the load, such as the holes a PostgreSQL handle has seen).
pub async fn check_store<S: EventStore>(
    report: &mut Report,
    store: &S,
    fresh: &S,
    ledger: &Ledger,
    live: &[Cqrs<S>],
) -> Verdict {
    let started = Instant::now();
    let verdict = checks::verify(store, ledger).await;
    if !verdict.complete {
        // Nothing to compare the models with; the verdict says why.
        return verdict;
    }
    for (k, app) in live.iter().enumerate() {
        let found = app.query_after(verdict.head, AllTotals).await;
        report.check(match found {
            Ok(found) => checks::compare(
                &format!("the in-memory model of writer app {k}"),
                &found,
                &verdict.replay,
            ),
            Err(e) => Some(format!(
                "the in-memory model of writer app {k} did not reach the head {}: {e}",
                verdict.head
            )),
        });
    }
    let building = Instant::now();
    report.check(fresh_build(fresh, &verdict.replay, verdict.head).await);
    report.notes.push(format!(
        "a fresh Cqrs::build() read {} events up to position {} ({} positions never filled) in {:.1} s",
        verdict.events,
        verdict.head,
        verdict.head.0.saturating_sub(verdict.events),
        building.elapsed().as_secs_f64()
    ));
    if started.elapsed() > Duration::from_secs(30) {
        eprintln!("  (checks took {:?})", started.elapsed());
    }
    verdict
}

/// A fresh application on `store` (as a new process would build one): its in-memory model must
/// equal the replay once `build()` returns.
pub async fn fresh_build<S: EventStore>(
    store: &S,
    replay: &crate::domain::Totals,
    head: Position,
) -> Option<String> {
    match fresh_totals(store).await {
        Ok(found) => checks::compare(
            &format!("a fresh Cqrs::build() (head {head})"),
            &found,
            replay,
        ),
        Err(e) => Some(e),
    }
}

/// What the in-memory model of a fresh application holds when `Cqrs::build()` returns.
pub async fn fresh_totals<S: EventStore>(store: &S) -> Result<crate::domain::Totals, String> {
    let build = Cqrs::builder(store.clone())
        .projection(MemoryTotals::default())
        .query_timeout(deadline())
        .build();
    let app = match tokio::time::timeout(deadline(), build).await {
        Err(_) => {
            return Err(format!(
                "Cqrs::build() of a fresh application did not return within {:?}",
                deadline()
            ));
        }
        Ok(Err(e)) => return Err(format!("Cqrs::build() failed: {e}")),
        Ok(Ok(app)) => app,
    };
    // `query` (not `query_after`): what build() itself caught up to.
    app.query(AllTotals)
        .await
        .map_err(|e| format!("query on a fresh application failed: {e}"))
}

/// An application on `store` with the in-memory model attached.
pub async fn app<S: EventStore>(store: &S) -> Result<Cqrs<S>, String> {
    Cqrs::builder(store.clone())
        .projection(MemoryTotals::default())
        .query_timeout(deadline())
        .max_retries(20)
        .build()
        .await
        .map_err(|e| format!("Cqrs::build() failed: {e}"))
}

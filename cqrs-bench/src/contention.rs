//! Contention inside one process (issue 14, part 3), each "after" beside its "before" in the
//! same run, the two alternating round by round (which goes first alternates too):
//!
//! - **One hot account**: 64 client tasks deposit 1 into the *same* account, on the in-memory
//!   store and on PostgreSQL. After: commands on one aggregate id take turns
//!   (`eventweave_core`'s `cache.rs`). Before: the same binary with
//!   `CqrsBuilder::__without_turns`, the old behaviour (a command that finds the account's state
//!   taken by another replays the stream, decides on it, loses its append and retries). A
//!   third variant sends the same commands from one client, one after the other: the ceiling of
//!   an aggregate whose commands run one at a time. Rows give commands/s, p50/p99 latency per
//!   command (from the call to its outcome, queueing included), the retries
//!   (`CommandOutcome::attempts - 1`, summed) and the replays (`read_stream` calls, counted by
//!   a wrapper around the store that every variant has).
//! - **A stalling projection beside a fast one**: 8 client tasks deposit into their own
//!   accounts, with the bank's `Balances` and a projection that stalls 1 ms every 1,024 events
//!   (a flush, a pause), while one more task asks `Balances` for a balance about every
//!   millisecond (latency samples, not load). After:
//!   each projection has its own lock (`read_side.rs`). Before: `__coupled_projections`, every
//!   projection and query under one lock, as it was. Rows give commands/s, and queries/s with
//!   their p99.
//!
//! Everything runs on a 2-worker tokio runtime of its own (the machine has two cores): in
//! memory a command never waits for I/O, so only worker threads make commands overlap. Every
//! run checks its result (balances equal the deposits).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bank::{Account, AccountId, Balances, Deposit, GetBalance, Limits, OpenAccount};
use eventweave_core::{
    Cqrs, CqrsBuilder, EventRef, EventStore, MemoryStore, Projection, ProjectionError,
    RecordedEvent, StoreError, StreamId, new_id,
};
use eventweave_postgres::{PostgresConfig, PostgresStore};

/// Concurrent clients on the one account (the figure).
pub const CLIENTS: u64 = 64;

/// Clients of the stalling-projection workload, each on its own account.
const WRITERS: u64 = 8;

/// Rounds per variant (fewer than the suite's 7: the "before" of the hot account replays
/// the stream on every conflict and takes long).
fn rounds(mode: crate::Mode) -> usize {
    match mode {
        crate::Mode::Full => 5,
        crate::Mode::Quick => 1,
    }
}

/// One measured run.
#[derive(Clone, Debug, Default)]
struct Measured {
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// Commands decided again after a conflict (each retry counts).
    retries: u64,
    /// Replays of the account's stream (`read_stream` calls).
    replays: u64,
}

/// A store that counts `read_stream` calls (each one a replay of an aggregate) and otherwise
/// hands everything to `inner`.
#[derive(Clone)]
struct Counting<S> {
    inner: S,
    replays: Arc<AtomicU64>,
}

impl<S: EventStore> EventStore for Counting<S> {
    eventweave_core::forward_event_store!(
        inner: append, read_all, head, read_event, wait_for_events, load_snapshot, save_snapshot
    );

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.replays.fetch_add(1, Ordering::Relaxed);
        self.inner.read_stream(stream, from_version, limit).await
    }
}

/// Which way the hot account is driven.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    /// `CLIENTS` tasks, turns per id (now).
    Turns,
    /// `CLIENTS` tasks without turns (before).
    NoTurns,
    /// One task sending every command in turn: the ceiling of a serialised aggregate.
    OneClient,
}

/// The bank with `Balances`, retries enough for the old behaviour never to give up.
fn bank<S: EventStore>(store: S) -> CqrsBuilder<S> {
    Cqrs::builder(store)
        .projection(Balances::default())
        .service(Limits {
            max_withdrawal: u64::MAX,
        })
        .max_retries(1_000_000)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// `clients` tasks deposit 1 into account 1, `per_client` times each.
async fn hot_account<S: EventStore>(
    app: &Cqrs<Counting<S>>,
    clients: u64,
    per_client: u64,
) -> Measured {
    let account = AccountId(1);
    app.execute(OpenAccount {
        account,
        owner: String::new(),
    })
    .await
    .expect("open");
    let replays_before = app.store().replays.load(Ordering::Relaxed);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client as usize);
                let mut retries = 0;
                for _ in 0..per_client {
                    let sent = Instant::now();
                    let outcome = app
                        .execute(Deposit { account, amount: 1 })
                        .await
                        .expect("deposit");
                    latencies.push(sent.elapsed());
                    retries += u64::from(outcome.attempts - 1);
                }
                (latencies, retries)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut retries = 0;
    for task in tasks {
        let (l, r) = task.await.expect("client");
        latencies.extend(l);
        retries += r;
    }
    let elapsed = started.elapsed();
    let replays = app.store().replays.load(Ordering::Relaxed) - replays_before;
    let (state, _) = app.load::<Account>(&account).await.expect("load");
    assert_eq!(state.balance(), clients * per_client, "a deposit was lost");
    latencies.sort();
    Measured {
        rate: (clients * per_client) as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        retries,
        replays,
    }
}

/// One run of `variant` on a fresh application over `store`.
async fn hot_run<S: EventStore>(store: S, variant: Variant, commands: u64) -> Measured {
    let store = Counting {
        inner: store,
        replays: Arc::default(),
    };
    let builder = bank(store);
    let builder = match variant {
        Variant::NoTurns => builder.__without_turns(),
        Variant::Turns | Variant::OneClient => builder,
    };
    let app = builder.build().await.expect("the bank's wiring");
    match variant {
        Variant::OneClient => hot_account(&app, 1, commands).await,
        Variant::Turns | Variant::NoTurns => hot_account(&app, CLIENTS, commands / CLIENTS).await,
    }
}

/// The three variants in an order that rotates with `round`.
fn variants(round: usize) -> [Variant; 3] {
    let all = [Variant::Turns, Variant::NoTurns, Variant::OneClient];
    [all[round % 3], all[(round + 1) % 3], all[(round + 2) % 3]]
}

/// Medians of the rounds (rate, p50, p99, retries each taken on its own).
fn medians(runs: &[Measured]) -> Measured {
    let median_of =
        |f: &dyn Fn(&Measured) -> f64| crate::median(&mut runs.iter().map(f).collect::<Vec<_>>());
    Measured {
        rate: median_of(&|m| m.rate),
        p50: Duration::from_secs_f64(median_of(&|m| m.p50.as_secs_f64())),
        p99: Duration::from_secs_f64(median_of(&|m| m.p99.as_secs_f64())),
        retries: median_of(&|m| m.retries as f64) as u64,
        replays: median_of(&|m| m.replays as f64) as u64,
    }
}

fn describe(m: &Measured) -> String {
    format!(
        "p50 {:.1} us, p99 {:.1} us, {} retries, {} replays",
        m.p50.as_secs_f64() * 1e6,
        m.p99.as_secs_f64() * 1e6,
        m.retries,
        m.replays
    )
}

/// The rounds of every variant, by variant.
#[derive(Default)]
struct HotRuns {
    turns: Vec<Measured>,
    no_turns: Vec<Measured>,
    one_client: Vec<Measured>,
}

impl HotRuns {
    fn push(&mut self, variant: Variant, run: Measured) {
        match variant {
            Variant::Turns => self.turns.push(run),
            Variant::NoTurns => self.no_turns.push(run),
            Variant::OneClient => self.one_client.push(run),
        }
    }

    fn rows(&self, store: &str, commands: u64) -> Vec<crate::Row> {
        let (turns, no_turns, one) = (
            medians(&self.turns),
            medians(&self.no_turns),
            medians(&self.one_client),
        );
        let per_client = commands / CLIENTS;
        let row =
            |workload: String, m: &Measured, baseline: (&str, f64), target: &str| crate::Row {
                workload,
                rate: m.rate,
                unit: "commands/s",
                baseline: Some((baseline.0.to_owned(), baseline.1)),
                peer: None,
                target: target.to_owned(),
            };
        vec![
            row(
                format!(
                    "(contention) {store}: {CLIENTS} clients x {per_client} deposits on 1 account, \
                     turns per id: {}; before (no turns): {}",
                    describe(&turns),
                    describe(&no_turns)
                ),
                &turns,
                ("before: no turns per id", no_turns.rate),
                "0 retries; faster than before",
            ),
            row(
                format!(
                    "(contention) {store}: the same {commands} deposits from 1 client: {}",
                    describe(&one)
                ),
                &turns,
                ("1 client, one after the other", one.rate),
                "-",
            ),
        ]
    }
}

/// The hot account in memory, the variants alternating.
async fn hot_memory(mode: crate::Mode) -> Vec<crate::Row> {
    let commands = match mode {
        crate::Mode::Full => CLIENTS * 50,
        crate::Mode::Quick => CLIENTS * 3,
    };
    let mut runs = HotRuns::default();
    for round in 0..rounds(mode) {
        for variant in variants(round) {
            runs.push(
                variant,
                hot_run(MemoryStore::new(), variant, commands).await,
            );
        }
    }
    runs.rows("memory", commands)
}

/// The hot account on PostgreSQL (a fresh schema per run), the variants alternating.
async fn hot_postgres(mode: crate::Mode) -> Vec<crate::Row> {
    let Some(url) = std::env::var(crate::postgres::URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: contention rows on PostgreSQL: CQRS_POSTGRES_URL is not set");
        return Vec::new();
    };
    let commands = match mode {
        crate::Mode::Full => CLIENTS * 5,
        crate::Mode::Quick => CLIENTS,
    };
    let mut runs = HotRuns::default();
    for round in 0..rounds(mode) {
        for variant in variants(round) {
            let schema = format!("cqrs_bench_hot_{}", new_id().simple());
            let store =
                PostgresStore::open(PostgresConfig::new(&url).schema(&schema).pool_size(16))
                    .await
                    .expect("open the store");
            runs.push(variant, hot_run(store, variant, commands).await);
            let admin = crate::postgres::connect(&url).await;
            admin
                .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await
                .expect("drop the benchmark schema");
        }
    }
    runs.rows("PostgreSQL", commands)
}

/// A projection that stalls its thread for [`STALL`] every [`STALL_EVERY`] events.
#[derive(Default)]
struct Stalling {
    seen: u64,
}

const STALL: Duration = Duration::from_millis(1);
const STALL_EVERY: u64 = 1024;

impl Projection for Stalling {
    const NAME: &'static str = "bench-stalling";
    const EVENTS: &'static [&'static str] = &["account.deposited"];
    fn handle(&mut self, _: EventRef<'_>) -> Result<(), ProjectionError> {
        self.seen += 1;
        if self.seen.is_multiple_of(STALL_EVERY) {
            std::thread::sleep(STALL);
        }
        Ok(())
    }
}

/// One run of the stalling-projection workload: commands/s, query latency.
#[derive(Clone, Copy, Debug, Default)]
struct Coupling {
    commands: f64,
    query_p50: Duration,
    query_p99: Duration,
}

async fn stalling(coupled: bool, per_writer: u64) -> Coupling {
    let builder = bank(MemoryStore::new()).projection(Stalling::default());
    let builder = if coupled {
        builder.__coupled_projections()
    } else {
        builder
    };
    let app = builder.build().await.expect("the bank's wiring");
    for id in 0..WRITERS {
        app.execute(OpenAccount {
            account: AccountId(id),
            owner: String::new(),
        })
        .await
        .expect("open");
    }
    let done = Arc::new(AtomicBool::new(false));
    let querier = {
        let app = app.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let balance = app
                    .query(GetBalance {
                        account: AccountId(0),
                    })
                    .await
                    .expect("query");
                latencies.push(asked.elapsed());
                assert!(balance.is_some());
                // About a thousand samples a second: the querier measures, it does not load.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies
        })
    };
    let written = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            let app = app.clone();
            let written = Arc::clone(&written);
            tokio::spawn(async move {
                for _ in 0..per_writer {
                    app.execute(Deposit {
                        account: AccountId(id),
                        amount: 1,
                    })
                    .await
                    .expect("deposit");
                    written.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut latencies = querier.await.expect("querier");
    let head = app.store().head().await.expect("head");
    for id in 0..WRITERS {
        let balance = app
            .query_after(
                head,
                GetBalance {
                    account: AccountId(id),
                },
            )
            .await
            .expect("query");
        assert_eq!(balance, Some(per_writer), "a deposit was lost");
    }
    latencies.sort();
    Coupling {
        commands: written.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        query_p50: percentile(&latencies, 0.5),
        query_p99: percentile(&latencies, 0.99),
    }
}

async fn coupling_rows(mode: crate::Mode) -> Vec<crate::Row> {
    let per_writer = match mode {
        crate::Mode::Full => 20_000,
        crate::Mode::Quick => 300,
    };
    let (mut after, mut before) = (Vec::new(), Vec::new());
    for round in 0..rounds(mode) {
        for coupled in [round % 2 == 1, round % 2 == 0] {
            let run = stalling(coupled, per_writer).await;
            if coupled { &mut before } else { &mut after }.push(run);
        }
    }
    let median_of = |runs: &[Coupling], f: fn(&Coupling) -> f64| {
        crate::median(&mut runs.iter().map(f).collect::<Vec<_>>())
    };
    let p99 = |runs: &[Coupling]| median_of(runs, |c| c.query_p99.as_secs_f64()) * 1e6;
    let p50 = |runs: &[Coupling]| median_of(runs, |c| c.query_p50.as_secs_f64()) * 1e6;
    let workload = format!(
        "{WRITERS} writers x {per_writer} deposits, Balances + a projection stalling {} ms \
         every {STALL_EVERY} events, 1 task querying Balances",
        STALL.as_millis()
    );
    vec![
        crate::Row {
            workload: format!("(coupling) memory: commands; {workload}"),
            rate: median_of(&after, |c| c.commands),
            unit: "commands/s",
            baseline: Some((
                "before: one lock for all".to_owned(),
                median_of(&before, |c| c.commands),
            )),
            peer: None,
            target: "faster than before".to_owned(),
        },
        crate::Row {
            workload: format!(
                "(coupling) memory: query latency on Balances meanwhile, p99 (us); p50 {:.1} us, \
                 before {:.1} us",
                p50(&after),
                p50(&before)
            ),
            rate: p99(&after),
            unit: "us",
            baseline: Some(("before: one lock for all".to_owned(), p99(&before))),
            peer: None,
            target: "p99 below the stall".to_owned(),
        },
    ]
}

/// Every contention row (`cargo run -p cqrs-bench --release -- --contention`), on a 2-worker
/// runtime of its own.
pub fn run(mode: crate::Mode) -> Vec<crate::Row> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut rows = hot_memory(mode).await;
        rows.extend(hot_postgres(mode).await);
        rows.extend(coupling_rows(mode).await);
        rows
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_contention_rows_run_and_check_their_results() {
        let rows = run(crate::Mode::Quick);
        assert!(rows.len() >= 4);
        assert!(rows.iter().all(|r| r.rate > 0.0));
    }

    #[test]
    fn percentiles_pick_the_right_sample() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }
}

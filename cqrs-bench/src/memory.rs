//! In-memory workloads: the public `Cqrs::execute` path with the bank domain of the example and
//! its balances projection attached, on `MemoryStore`.

use std::time::{Duration, Instant};

use bank::{AccountId, Balances, Deposit, GetBalance, Limits, OpenAccount};
use eventweave_core::{Cqrs, EventStore, MemoryStore};

/// One workload's sizes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Accounts in the many-accounts workload.
    pub accounts: u64,
    /// Commands per account (one open, the rest deposits).
    pub commands_per_account: u64,
    /// Deposits in the one-long-stream workload.
    pub long_stream: u64,
}

impl Sizes {
    /// The sizes the issue sets: 2,000 × 20 and 1 × 5,000.
    pub const FULL: Sizes = Sizes {
        accounts: 2_000,
        commands_per_account: 20,
        long_stream: 5_000,
    };
    /// Tiny sizes for `cargo test`.
    pub const QUICK: Sizes = Sizes {
        accounts: 20,
        commands_per_account: 5,
        long_stream: 50,
    };
}

/// One measured run.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// Commands executed.
    pub commands: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// Commands per second.
    pub fn rate(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }
}

/// The bank of the example over `store`, with its balances projection attached.
pub async fn bank_app<S: EventStore>(store: S) -> Cqrs<S> {
    Cqrs::builder(store)
        .projection(Balances::default())
        .service(Limits {
            max_withdrawal: u64::MAX,
        })
        .build()
        .await
        .expect("the bank wiring is valid")
}

/// Opens accounts `0..accounts` and deposits 1 into each `deposits` times, one command after
/// the other; returns the wall time.
pub async fn open_and_deposit<S: EventStore>(
    app: &Cqrs<S>,
    accounts: u64,
    deposits: u64,
) -> Duration {
    let started = Instant::now();
    for id in 0..accounts {
        let account = AccountId(id);
        app.execute(OpenAccount {
            account,
            owner: String::new(),
        })
        .await
        .expect("open");
        for _ in 0..deposits {
            app.execute(Deposit { account, amount: 1 })
                .await
                .expect("deposit");
        }
    }
    started.elapsed()
}

/// (a) Many accounts, each opened then deposited into, one command after the other.
pub async fn many_accounts(sizes: Sizes) -> Run {
    let app = bank_app(MemoryStore::new()).await;
    let deposits = sizes.commands_per_account - 1;
    let elapsed = open_and_deposit(&app, sizes.accounts, deposits).await;
    check_balance(&app, AccountId(sizes.accounts - 1), deposits).await;
    Run {
        commands: sizes.accounts * sizes.commands_per_account,
        elapsed,
    }
}

/// (b) One account with a long stream: the cost per command must not grow with its length.
/// Returns the whole run and the rates of its first and last tenths.
pub async fn long_stream(sizes: Sizes) -> (Run, f64, f64) {
    let app = bank_app(MemoryStore::new()).await;
    let account = AccountId(1);
    app.execute(OpenAccount {
        account,
        owner: String::new(),
    })
    .await
    .expect("open");
    let tenth = (sizes.long_stream / 10).max(1);
    let mut tenths = Vec::with_capacity(10);
    let started = Instant::now();
    let mut lap = started;
    for i in 1..=sizes.long_stream {
        app.execute(Deposit { account, amount: 1 })
            .await
            .expect("deposit");
        if i % tenth == 0 {
            tenths.push(lap.elapsed());
            lap = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    check_balance(&app, account, sizes.long_stream).await;
    let rate = |d: &Duration| tenth as f64 / d.as_secs_f64();
    let first = tenths.first().map_or(0.0, rate);
    let last = tenths.last().map_or(0.0, rate);
    (
        Run {
            commands: sizes.long_stream,
            elapsed,
        },
        first,
        last,
    )
}

async fn check_balance(app: &Cqrs<MemoryStore>, account: AccountId, expected: u64) {
    let balance = app
        .query_after(app.position(), GetBalance { account })
        .await
        .expect("the balances projection answers");
    assert_eq!(
        balance,
        Some(expected),
        "the workload lost or duplicated a deposit"
    );
}

/// Another framework running workloads (a) and (b) with the same bank domain, the same
/// commands and the same sizes, so the suite can put it beside ours. Each run must check its
/// final balance, as ours do, so a wrong run cannot report a number.
///
/// The peer itself (`cqrs-es`) is a dev-dependency of this crate, so its implementation lives
/// in the bench target (`cargo bench -p cqrs-bench --bench suite`) and the quick test.
pub trait MemoryPeer {
    /// (a) `sizes.accounts` accounts, each opened then deposited into
    /// `sizes.commands_per_account - 1` times.
    fn many_accounts(&self, sizes: Sizes) -> impl Future<Output = Run>;
    /// (b) One account opened, then `sizes.long_stream` deposits (only those are timed).
    fn long_stream(&self, sizes: Sizes) -> impl Future<Output = Run>;
}

/// No peer: only our own rows.
struct NoPeer;

impl MemoryPeer for NoPeer {
    async fn many_accounts(&self, _: Sizes) -> Run {
        unreachable!("never called")
    }
    async fn long_stream(&self, _: Sizes) -> Run {
        unreachable!("never called")
    }
}

/// Runs workloads (a) and (b) and returns their rows.
pub async fn run(mode: crate::Mode) -> Vec<crate::Row> {
    run_with(mode, None::<&NoPeer>).await
}

/// Runs workloads (a) and (b), ours and the peer's alternating run by run within each round
/// (which goes first alternates too), and returns the rows with the peer's medians beside ours.
pub async fn run_against(mode: crate::Mode, peer: &impl MemoryPeer) -> Vec<crate::Row> {
    run_with(mode, Some(peer)).await
}

async fn run_with<P: MemoryPeer>(mode: crate::Mode, peer: Option<&P>) -> Vec<crate::Row> {
    let sizes = match mode {
        crate::Mode::Full => Sizes::FULL,
        crate::Mode::Quick => Sizes::QUICK,
    };
    let (mut many, mut long, mut first, mut last) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut peer_many, mut peer_long) = (Vec::new(), Vec::new());
    let (mut raw_many, mut raw_long) = (Vec::new(), Vec::new());
    for round in 0..mode.rounds() {
        // The hand-written baseline, in the same rounds (crate::raw_memory).
        raw_many.push(crate::raw_memory::many_accounts(sizes).rate());
        raw_long.push(crate::raw_memory::long_stream(sizes).rate());
        let peer_first = round % 2 == 1;
        if let Some(peer) = peer
            && peer_first
        {
            peer_many.push(peer.many_accounts(sizes).await.rate());
        }
        many.push(many_accounts(sizes).await.rate());
        if let Some(peer) = peer
            && !peer_first
        {
            peer_many.push(peer.many_accounts(sizes).await.rate());
        }
        if let Some(peer) = peer
            && peer_first
        {
            peer_long.push(peer.long_stream(sizes).await.rate());
        }
        let (run, f, l) = long_stream(sizes).await;
        long.push(run.rate());
        first.push(f);
        last.push(l);
        if let Some(peer) = peer
            && !peer_first
        {
            peer_long.push(peer.long_stream(sizes).await.rate());
        }
    }
    let with_peer = peer.is_some();
    let row = |workload: String, rate: f64, peer: Option<f64>, target: &str| crate::Row {
        workload,
        rate,
        unit: "commands/s",
        baseline: None,
        peer,
        target: target.to_owned(),
    };
    let by_hand = |rates: &mut Vec<f64>| Some(("by hand".to_owned(), crate::median(rates)));
    vec![
        row(
            format!(
                "(a) memory: {} accounts x {} commands",
                sizes.accounts, sizes.commands_per_account
            ),
            crate::median(&mut many),
            with_peer.then(|| crate::median(&mut peer_many)),
            if with_peer {
                ">= 2,000,000/s; >= 70% of by hand; >= 10x the peer"
            } else {
                ">= 2,000,000/s; >= 70% of by hand"
            },
        )
        .with_baseline(by_hand(&mut raw_many)),
        row(
            format!("(b) memory: 1 account x {} deposits", sizes.long_stream),
            crate::median(&mut long),
            with_peer.then(|| crate::median(&mut peer_long)),
            if with_peer {
                ">= 1,000,000/s; >= 70% of by hand; >= 500x the peer"
            } else {
                ">= 1,000,000/s; >= 70% of by hand"
            },
        )
        .with_baseline(by_hand(&mut raw_long)),
        row(
            "(b) first tenth of that stream".to_owned(),
            crate::median(&mut first),
            None,
            "no slower than the last tenth",
        ),
        row(
            "(b) last tenth of that stream".to_owned(),
            crate::median(&mut last),
            None,
            "-",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn quick_mode_runs_and_checks_its_results() {
        let run = many_accounts(Sizes::QUICK).await;
        assert_eq!(run.commands, 100);
        let (run, first, last) = long_stream(Sizes::QUICK).await;
        assert_eq!(run.commands, 50);
        assert!(first > 0.0 && last > 0.0);
    }

    /// Every command's future is boxed; above 1,032 bytes glibc serves it outside its
    /// per-thread cache, which cost about 700 instructions per command (BENCHMARKS.md).
    #[tokio::test(flavor = "current_thread")]
    async fn command_futures_fit_the_allocators_thread_cache() {
        let app = bank_app(MemoryStore::new()).await;
        let account = AccountId(1);
        let sizes = [
            app.__command_future_size(OpenAccount {
                account,
                owner: String::new(),
            }),
            app.__command_future_size(Deposit { account, amount: 1 }),
        ];
        eprintln!("command future sizes: {sizes:?}");
        assert!(sizes.iter().all(|&size| size <= 1032), "{sizes:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn quick_table_has_every_row() {
        let rows = run(crate::Mode::Quick).await;
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.rate > 0.0));
    }
}

//! Quick mode of the side-by-side suite inside `cargo test`: both frameworks run workloads (a)
//! and (b) at tiny sizes and check their results (no timing claims), the read-side rows (with
//! the peer's catch-up, workload (h)) run at tiny sizes and check theirs, and the peer's domain
//! keeps the bank's business rules.

#[path = "../benches/peer/mod.rs"]
mod peer;

use cqrs_bench::Mode;
use cqrs_bench::memory::{self, MemoryPeer, Sizes};
use cqrs_es::mem_store::MemStore;
use cqrs_es::{AggregateError, CqrsFramework};
use peer::bank::{EsAccount, EsBalances, EsCommand, EsError, EsLimits};
use peer::memory::EsMemory;

#[tokio::test(flavor = "current_thread")]
async fn the_peer_runs_the_quick_workloads_and_checks_its_balances() {
    let run = EsMemory.many_accounts(Sizes::QUICK).await;
    assert_eq!(run.commands, 100);
    let run = EsMemory.long_stream(Sizes::QUICK).await;
    assert_eq!(run.commands, 50);
}

#[tokio::test(flavor = "current_thread")]
async fn the_quick_side_by_side_table_has_both_columns() {
    let rows = memory::run_against(Mode::Quick, &EsMemory).await;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.rate > 0.0));
    for row in &rows[..2] {
        assert!(row.peer.is_some_and(|p| p > 0.0), "{}", row.workload);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_peer_keeps_the_banks_rules() {
    let balances = EsBalances::default();
    let app = CqrsFramework::<EsAccount, MemStore<EsAccount>>::new(
        MemStore::default(),
        vec![Box::new(balances.clone())],
        EsLimits {
            max_withdrawal: 100,
        },
    );
    let rejected = async |command: EsCommand| match app.execute("7", command).await {
        Err(AggregateError::UserError(e)) => e,
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert_eq!(
        rejected(EsCommand::Deposit { amount: 1 }).await,
        EsError::NotOpen
    );
    assert_eq!(rejected(EsCommand::Close).await, EsError::NotOpen);
    app.execute("7", EsCommand::Open { owner: "a".into() })
        .await
        .unwrap();
    assert_eq!(
        rejected(EsCommand::Open { owner: "a".into() }).await,
        EsError::AlreadyOpen
    );
    assert_eq!(
        rejected(EsCommand::Deposit { amount: 0 }).await,
        EsError::ZeroAmount
    );
    app.execute("7", EsCommand::Deposit { amount: 150 })
        .await
        .unwrap();
    assert_eq!(
        rejected(EsCommand::Withdraw { amount: 101 }).await,
        EsError::OverLimit
    );
    assert_eq!(rejected(EsCommand::Close).await, EsError::NotEmpty);
    app.execute("7", EsCommand::Withdraw { amount: 100 })
        .await
        .unwrap();
    assert_eq!(
        rejected(EsCommand::Withdraw { amount: 51 }).await,
        EsError::InsufficientFunds
    );
    app.execute("7", EsCommand::Withdraw { amount: 50 })
        .await
        .unwrap();
    app.execute("7", EsCommand::Close).await.unwrap();
    assert_eq!(
        rejected(EsCommand::Deposit { amount: 1 }).await,
        EsError::Closed
    );
    assert_eq!(balances.balance("7"), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_runs_the_quick_postgres_workloads_and_checks_its_balances() {
    use cqrs_bench::postgres::{PostgresPeer, Sizes, URL_VAR};
    let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) else {
        eprintln!("SKIPPED: the peer's PostgreSQL quick run: {URL_VAR} is not set");
        return;
    };
    // `round` asserts the balances itself.
    let r = peer::postgres::EsPostgres.round(&url, Sizes::QUICK).await;
    for (name, rate) in [
        ("one", r.one),
        ("many", r.many),
        ("long_stream", r.long_stream),
    ] {
        assert!(rate.is_finite() && rate > 0.0, "{name}: {rate}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_read_side_rows_run_quick_and_check_their_results() {
    use cqrs_bench::read_side;
    // Each workload asserts its own result (sums, tables, every event projected once).
    let rows = read_side::run_against(Mode::Quick, false, &peer::read_side::EsReplay).await;
    let with_pg = std::env::var(cqrs_bench::postgres::URL_VAR).is_ok_and(|u| !u.is_empty());
    assert_eq!(rows.len(), if with_pg { 7 } else { 1 }, "{rows:?}");
    assert!(rows.iter().all(|r| r.rate > 0.0), "{rows:?}");
    if with_pg {
        for row in &rows[..2] {
            assert!(row.peer.is_some_and(|p| p > 0.0), "{}", row.workload);
        }
    }
}

/// The dynamic consistency boundary rows run in quick mode (each checks that every seat was
/// taken exactly once) and report both rows with their baselines.
#[test]
fn the_dcb_rows_run_quick_and_check_their_seats() {
    let rows = cqrs_bench::dcb_memory::run(cqrs_bench::Mode::Quick);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.rate > 0.0 && r.baseline.is_some()));
    assert!(
        rows[1].workload.contains("conflict rate"),
        "{}",
        rows[1].workload
    );
}

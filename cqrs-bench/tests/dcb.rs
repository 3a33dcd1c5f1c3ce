//! The dcb workloads at tiny sizes inside `cargo test`: every race ends with exactly the
//! capacity booked and every seat once (the workloads check it), and each row has a rate. The
//! PostgreSQL rows run when `CQRS_POSTGRES_URL` is set.

use cqrs_bench::Mode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_dcb_rows_check_their_races() {
    let rows = cqrs_bench::dcb::run(Mode::Quick).await;
    let postgres = std::env::var("CQRS_POSTGRES_URL").is_ok_and(|u| !u.is_empty());
    assert_eq!(rows.len(), if postgres { 8 } else { 2 });
    assert!(rows.iter().all(|r| r.rate > 0.0), "{rows:?}");
}

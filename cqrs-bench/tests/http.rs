//! The HTTP workload at tiny sizes inside `cargo test`: it runs, and its balance checks pass
//! (no timing claims). On PostgreSQL only with `CQRS_POSTGRES_URL`.

#[test]
fn the_http_workload_runs_and_checks_its_balances() {
    let rows = cqrs_bench::http::run(cqrs_bench::Mode::Quick);
    assert!(rows.len() >= 2);
    assert!(rows.iter().all(|r| r.rate > 0.0));
}

//! Workload (h) on the peer: `cqrs-es`'s `QueryReplay::replay_all` streaming every event of
//! the account aggregate from postgres-es's `PostgresEventRepository` into the balances query,
//! on the same accounts and amounts as our catch-up rows (`cqrs_bench::read_side::fill`).
//!
//! The events are written straight into the peer's `events` table with one server-side
//! `INSERT … SELECT` (untimed), in the shape postgres-es writes them (serde's encoding of
//! `EsEvent`, sequence from 1); each run gets a schema of its own, dropped afterwards.

use std::time::Instant;

use cqrs_bench::read_side::{CatchUpPeer, Run, amount};
use cqrs_es::persist::QueryReplay;
use postgres_es::PostgresEventRepository;
use sqlx::postgres::PgPoolOptions;

use super::bank::{EsAccount, EsBalances};
use super::postgres::create_tables;

/// `cqrs-es` with `postgres-es`.
pub struct EsReplay;

impl CatchUpPeer for EsReplay {
    async fn catch_up(&self, url: &str, events: u64, per_stream: u64) -> Run {
        assert_eq!(events % per_stream, 0, "whole streams only");
        let streams = events / per_stream;
        let schema = format!("cqrs_es_replay_{}", eventweave_core::new_id().simple());
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .expect("connect the peer's pool");
        create_tables(&pool, &schema).await;
        // Deposit j = sequence - 1 of account k carries `amount(k, j)` = 1 + (k + j) % 7.
        sqlx::Executor::execute(
            &pool,
            &*format!(
                "INSERT INTO {schema}.events
                 SELECT 'account', k::text, s,
                        CASE WHEN s = 1 THEN 'account.opened' ELSE 'account.deposited' END, '1',
                        CASE WHEN s = 1 THEN '{{\"Opened\":{{\"owner\":\"\"}}}}'::json
                             ELSE json_build_object('Deposited',
                                      json_build_object('amount', 1 + (k + s - 1) % 7)) END,
                        '{{}}'::json
                 FROM generate_series(0, {last}) AS k, generate_series(1, {per_stream}) AS s",
                last = streams - 1
            ),
        )
        .await
        .expect("fill the peer's events table");
        sqlx::Executor::execute(&pool, &*format!("ANALYZE {schema}.events"))
            .await
            .expect("analyze");

        let balances = EsBalances::default();
        let started = Instant::now();
        let repo = PostgresEventRepository::new(pool.clone())
            .with_tables(&format!("{schema}.events"), &format!("{schema}.snapshots"));
        let mut replay = QueryReplay::<_, _, EsAccount>::new(repo, balances.clone());
        replay.use_error_handler(Box::new(|e| panic!("the peer's replay failed: {e}")));
        replay.replay_all().await.expect("the peer replays");
        let elapsed = started.elapsed();

        for k in 0..streams {
            let expected: u64 = (1..per_stream).map(|j| amount(k, j)).sum();
            assert_eq!(
                balances.balance(&k.to_string()),
                Some(expected),
                "the peer's balance of account {k}"
            );
        }
        sqlx::Executor::execute(&pool, &*format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drop the peer's schema");
        pool.close().await;
        Run { events, elapsed }
    }
}

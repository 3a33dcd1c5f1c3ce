//! Workloads (c), (d) and (e) on the peer: `CqrsFramework` on postgres-es's
//! `PersistedEventStore` over `PostgresEventRepository` (a `sqlx` pool), with the balances query
//! attached. Each round gets a schema of its own holding the tables postgres-es expects (its
//! `events` table and its `snapshots` table, which the event store does not use), dropped
//! afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_bench::postgres::{PeerRound, PostgresPeer, Sizes};
use cqrs_es::CqrsFramework;
use cqrs_es::persist::PersistedEventStore;
use postgres_es::{PostgresCqrs, PostgresEventRepository};
use sqlx::postgres::PgPoolOptions;

use super::bank::{EsAccount, EsBalances, EsCommand, EsLimits};

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Opens each account, then deposits `commands_per_account - 1` times into it.
async fn drive_accounts(app: Arc<PostgresCqrs<EsAccount>>, accounts: Vec<u64>, per_account: u64) {
    for id in accounts {
        let account = id.to_string();
        app.execute(
            &account,
            EsCommand::Open {
                owner: String::new(),
            },
        )
        .await
        .expect("open");
        for _ in 1..per_account {
            app.execute(&account, EsCommand::Deposit { amount: 1 })
                .await
                .expect("deposit");
        }
    }
}

fn check_balance(balances: &EsBalances, account: u64, expected: u64) {
    assert_eq!(
        balances.balance(&account.to_string()),
        Some(expected),
        "the peer lost or duplicated a deposit on account {account}"
    );
}

/// Creates `schema` holding the tables postgres-es expects (its `events` table, and its
/// `snapshots` table, which the event store does not use).
pub async fn create_tables(pool: &sqlx::PgPool, schema: &str) {
    sqlx::Executor::execute(
        pool,
        &*format!(
            "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.events (
             aggregate_type text NOT NULL,
             aggregate_id text NOT NULL,
             sequence bigint CHECK (sequence >= 0) NOT NULL,
             event_type text NOT NULL,
             event_version text NOT NULL,
             payload json NOT NULL,
             metadata json NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, sequence)
         );
         CREATE TABLE {schema}.snapshots (
             aggregate_type text NOT NULL,
             aggregate_id text NOT NULL,
             last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
             current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
             payload json NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
         );"
        ),
    )
    .await
    .expect("create the peer's tables");
}

/// `cqrs-es` with `postgres-es`.
pub struct EsPostgres;

impl PostgresPeer for EsPostgres {
    async fn round(&self, url: &str, sizes: Sizes) -> PeerRound {
        let schema = format!("cqrs_es_peer_{}", eventweave_core::new_id().simple());
        let pool = PgPoolOptions::new()
            .max_connections(sizes.clients as u32)
            .connect(url)
            .await
            .expect("connect the peer's pool");
        create_tables(&pool, &schema).await;
        let repo = PostgresEventRepository::new(pool.clone())
            .with_tables(&format!("{schema}.events"), &format!("{schema}.snapshots"));
        let balances = EsBalances::default();
        let app = Arc::new(CqrsFramework::new(
            PersistedEventStore::new_event_store(repo),
            vec![Box::new(balances.clone())],
            EsLimits {
                max_withdrawal: u64::MAX,
            },
        ));
        let commands = sizes.accounts * sizes.commands_per_account;
        let mut r = PeerRound::default();

        // (c) One client.
        let started = Instant::now();
        drive_accounts(
            Arc::clone(&app),
            (0..sizes.accounts).collect(),
            sizes.commands_per_account,
        )
        .await;
        r.one = rate(commands, started.elapsed());
        for id in [0, sizes.accounts - 1] {
            check_balance(&balances, id, sizes.commands_per_account - 1);
        }

        // (e) One long stream (its open counts as one of its commands, as on our side).
        let long = 2_000_000;
        let started = Instant::now();
        drive_accounts(Arc::clone(&app), vec![long], sizes.long_stream).await;
        r.long_stream = rate(sizes.long_stream, started.elapsed());
        check_balance(&balances, long, sizes.long_stream - 1);

        // (d) `clients` clients, each on its own accounts.
        let first = 1_000_000;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..sizes.clients {
            let mine = (0..sizes.accounts)
                .filter(|id| id % sizes.clients == k)
                .map(|id| first + id)
                .collect();
            tasks.spawn(drive_accounts(
                Arc::clone(&app),
                mine,
                sizes.commands_per_account,
            ));
        }
        tasks.join_all().await;
        r.many = rate(commands, started.elapsed());
        for id in [first, first + sizes.accounts - 1] {
            check_balance(&balances, id, sizes.commands_per_account - 1);
        }

        drop(app);
        sqlx::Executor::execute(&pool, &*format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drop the peer's schema");
        pool.close().await;
        r
    }
}

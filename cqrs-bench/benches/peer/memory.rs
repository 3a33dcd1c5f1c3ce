//! Workloads (a) and (b) on the peer: `CqrsFramework` on `MemStore`, with the balances query
//! attached (the role our `Balances` projection plays on our side).

use std::time::Instant;

use cqrs_bench::memory::{MemoryPeer, Run, Sizes};
use cqrs_es::CqrsFramework;
use cqrs_es::mem_store::MemStore;

use super::bank::{EsAccount, EsBalances, EsCommand, EsLimits};

/// The peer's wiring of the bank, as `bank_app` wires ours.
fn bank_app() -> (CqrsFramework<EsAccount, MemStore<EsAccount>>, EsBalances) {
    let balances = EsBalances::default();
    let app = CqrsFramework::new(
        MemStore::default(),
        vec![Box::new(balances.clone())],
        EsLimits {
            max_withdrawal: u64::MAX,
        },
    );
    (app, balances)
}

fn check_balance(balances: &EsBalances, account: &str, expected: u64) {
    assert_eq!(
        balances.balance(account),
        Some(expected),
        "the peer lost or duplicated a deposit"
    );
}

/// `cqrs-es` with its in-memory store.
pub struct EsMemory;

impl MemoryPeer for EsMemory {
    async fn many_accounts(&self, sizes: Sizes) -> Run {
        let (app, balances) = bank_app();
        let deposits = sizes.commands_per_account - 1;
        let started = Instant::now();
        for id in 0..sizes.accounts {
            let account = id.to_string();
            app.execute(
                &account,
                EsCommand::Open {
                    owner: String::new(),
                },
            )
            .await
            .expect("open");
            for _ in 0..deposits {
                app.execute(&account, EsCommand::Deposit { amount: 1 })
                    .await
                    .expect("deposit");
            }
        }
        let elapsed = started.elapsed();
        check_balance(&balances, &(sizes.accounts - 1).to_string(), deposits);
        Run {
            commands: sizes.accounts * sizes.commands_per_account,
            elapsed,
        }
    }

    async fn long_stream(&self, sizes: Sizes) -> Run {
        let (app, balances) = bank_app();
        let account = "1";
        app.execute(
            account,
            EsCommand::Open {
                owner: String::new(),
            },
        )
        .await
        .expect("open");
        let started = Instant::now();
        for _ in 0..sizes.long_stream {
            app.execute(account, EsCommand::Deposit { amount: 1 })
                .await
                .expect("deposit");
        }
        let elapsed = started.elapsed();
        check_balance(&balances, account, sizes.long_stream);
        Run {
            commands: sizes.long_stream,
            elapsed,
        }
    }
}

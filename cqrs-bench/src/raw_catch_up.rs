//! The baseline of the start-up catch-up from PostgreSQL into memory (issue 14, part 4): one
//! streamed `SELECT` of the stored events in position order, each row decoded into the same map
//! the bank's in-memory `Balances` projection keeps (account id → `AccountSummary`), by hand:
//! the account id parsed from the stream name, the payload parsed with serde_json into the bank's
//! event type. No envelopes, no registry, no ordering checks, no gap-free protocol. It connects
//! as the store does (`crate::postgres::connect`: the same URL, `sslmode` and TLS stack), so with
//! the default `prefer` both decrypt the rows and neither does with `?sslmode=disable`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bank::{AccountId, AccountOpened, MoneyDeposited, balances::AccountSummary};
use futures_util::StreamExt;

use crate::read_side::{Filled, Run};

/// Reads every event of the store in `schema` with one streamed `SELECT` and folds it into a
/// balances map; checked against what was filled. Also returns the CPU time its backend ran
/// meanwhile (zero unless PostgreSQL runs on this machine).
pub async fn raw_catch_up(url: &str, schema: &str, filled: &Filled) -> (Run, Duration) {
    let client = crate::postgres::connect(url).await;
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("the raw session's backend")
        .get(0);
    let server = crate::cpu::backends_cpu(&[backend]);
    let started = Instant::now();
    let statement = client
        .prepare(&format!(
            "SELECT stream, event_name, payload::text FROM \"{schema}\".events ORDER BY position"
        ))
        .await
        .expect("prepare the raw catch-up");
    let rows = client
        .query_raw(&statement, std::iter::empty::<&str>())
        .await
        .expect("the raw catch-up query");
    let mut rows = std::pin::pin!(rows);
    let mut balances: HashMap<AccountId, AccountSummary> = HashMap::new();
    let mut events = 0;
    while let Some(row) = rows.next().await {
        let row = row.expect("a row");
        events += 1;
        let stream: &str = row.get(0);
        let Some(account) = stream
            .strip_prefix("account-")
            .and_then(|id| id.parse().ok())
            .map(AccountId)
        else {
            continue;
        };
        match row.get::<_, &str>(1) {
            "account.opened" => {
                let opened: AccountOpened = serde_json::from_str(row.get(2)).expect("an opening");
                balances.insert(
                    account,
                    AccountSummary {
                        account,
                        owner: opened.owner,
                        balance: 0,
                        open: true,
                    },
                );
            }
            "account.deposited" => {
                let deposited: MoneyDeposited =
                    serde_json::from_str(row.get(2)).expect("a deposit");
                if let Some(line) = balances.get_mut(&account) {
                    line.balance += deposited.amount;
                }
            }
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    let server = crate::cpu::backends_cpu(&[backend]).saturating_sub(server);
    assert_eq!(events, filled.events, "every event read");
    for (k, sum) in filled.sums.iter().enumerate() {
        let found = balances.get(&AccountId(k as u64)).map(|line| line.balance);
        assert_eq!(found, Some(*sum), "balance of account {k}");
    }
    (Run { events, elapsed }, server)
}

//! Crash safety: a process appending batches is killed with SIGKILL at random moments, twenty
//! times. Every batch it acknowledged must be stored whole, and no batch may be stored in part.
//!
//! The test re-executes its own binary (`std::env::current_exe()`) to run the child half, an
//! ignored test selected by name, with an environment variable naming the schema. The child
//! prints `ACK <batch> <size>` after each acknowledged append; the parent kills it after a
//! random number of acknowledgements.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eventweave_core::testing::conformance::event;
use eventweave_core::{EventStore, ExpectedVersion, StreamId};
use eventweave_postgres::{PostgresConfig, PostgresStore};

/// Names the schema the child appends to; its presence selects the child role.
const CHILD_SCHEMA: &str = "CQRS_POSTGRES_SIGKILL_SCHEMA";
/// The round number, which keeps batch ids of different children apart.
const CHILD_ROUND: &str = "CQRS_POSTGRES_SIGKILL_ROUND";
const ROUNDS: u64 = 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
#[ignore = "the child half of `acknowledged_batches_survive_sigkill_whole`; it runs until killed"]
fn sigkill_child_appends_until_killed() {
    let (Ok(schema), Some(url)) = (std::env::var(CHILD_SCHEMA), common::url()) else {
        eventweave_core::testing::report_skip(
            "sigkill_child_appends_until_killed",
            &format!("only runs as the child of the SIGKILL test ({CHILD_SCHEMA} is not set)"),
        );
        return;
    };
    let round: u64 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    runtime().block_on(async {
        let store = PostgresStore::open(PostgresConfig::new(url).schema(schema).pool_size(1))
            .await
            .unwrap();
        let mut out = std::io::stdout();
        for n in 0.. {
            let batch = round * 1_000_000 + n;
            // Sizes up to a few hundred events widen the window in which a kill lands mid-append.
            let size = 1 + common::random_u64() % 300;
            let events = (0..size)
                .map(|k| event(&format!(r#"{{"batch":{batch},"size":{size},"k":{k}}}"#)))
                .collect();
            let stream = StreamId::from(format!("sigkill-{round}-{}", n % 3));
            store
                .append(&stream, ExpectedVersion::Any, events)
                .await
                .unwrap();
            writeln!(out, "ACK {batch} {size}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn acknowledged_batches_survive_sigkill_whole() {
    let Some(url) = common::url_or_skip("acknowledged_batches_survive_sigkill_whole") else {
        return;
    };
    let rt = runtime();
    let config = rt.block_on(common::fresh_config(&url));
    let schema = config.schema_name().to_owned();
    // Migrate once up front, so every child starts on a ready schema.
    drop(rt.block_on(PostgresStore::open(config)).unwrap());
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut acked: HashMap<u64, u64> = HashMap::new();
    for round in 0..ROUNDS {
        let kill_after = 1 + common::random_u64() % 12;
        let mut child = Command::new(&exe)
            .args([
                "sigkill_child_appends_until_killed",
                "--exact",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_SCHEMA, &schema)
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut count = 0;
        for line in lines {
            let line = line.unwrap();
            let Some(ack) = line.strip_prefix("ACK ") else {
                continue;
            };
            let (batch, size) = ack.split_once(' ').unwrap();
            acked.insert(batch.parse().unwrap(), size.parse().unwrap());
            count += 1;
            if count == kill_after {
                // Sometimes at once, sometimes a moment later: in or between appends.
                std::thread::sleep(Duration::from_micros(common::random_u64() % 3000));
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        child.wait().unwrap();
        assert_eq!(
            count, kill_after,
            "round {round}: the child stopped acknowledging early"
        );
    }
    // A killed writer's transaction may still be open on the server (until its backend notices
    // the dropped connection) and may even commit after the kill, and other tests'
    // transactions hold the horizon back, so `read_all` rightly stops at a hole until every
    // transaction that could fill it has ended. Count what is committed and what `read_all`
    // returns until the two agree (within a bound), then check the batches.
    let (stored, seen) = rt.block_on(async {
        let store = PostgresStore::open(PostgresConfig::new(&url).schema(&schema))
            .await
            .unwrap();
        let client = common::raw_client(&url).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = client
                .query(
                    &format!(
                        "SELECT (payload->>'batch')::int8, (payload->>'size')::int8, count(*)
                         FROM \"{schema}\".events GROUP BY 1, 2"
                    ),
                    &[],
                )
                .await
                .unwrap();
            let stored: HashMap<u64, (u64, u64)> = rows
                .iter()
                .map(|r| {
                    let batch: i64 = r.get(0);
                    let (size, count): (i64, i64) = (r.get(1), r.get(2));
                    (batch as u64, (size as u64, count as u64))
                })
                .collect();
            let seen = store
                .read_all(eventweave_core::Position::ZERO, 100_000)
                .await
                .unwrap()
                .len() as u64;
            let total: u64 = stored.values().map(|(_, count)| count).sum();
            if seen == total || Instant::now() > deadline {
                break (stored, seen);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for (batch, size) in &acked {
        assert_eq!(
            stored.get(batch),
            Some(&(*size, *size)),
            "acknowledged batch {batch} ({size} events) is stored whole"
        );
    }
    for (batch, (size, count)) in &stored {
        assert_eq!(size, count, "batch {batch} is stored whole or not at all");
    }
    let unacknowledged = stored.len() - acked.len();
    eprintln!(
        "{ROUNDS} kills in {:?}: {} acknowledged batches whole, {unacknowledged} committed but unacknowledged, none partial",
        started.elapsed(),
        acked.len()
    );
    let total: u64 = stored.values().map(|(_, count)| count).sum();
    assert_eq!(
        seen, total,
        "read_all sees every stored event once its holes are decided"
    );
    rt.block_on(common::drop_schema(&url, &schema));
}

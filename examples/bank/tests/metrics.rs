//! The bank's Prometheus endpoint (`--metrics`, feature `metrics`): scraped over HTTP after a
//! few commands, its counters must equal the commands executed and the events appended, and
//! the projection gauges must say the balances table is caught up.
//!
//! Run with `cargo test -p bank --features metrics --test metrics` (`.ci/run` does).

#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bank::{AccountId, Deposit, Limits, OpenAccount, Withdraw};
use eventweave_core::runner::ProjectionRunner;
use eventweave_core::{CommandError, Cqrs, EventStore};
use eventweave_sqlite::{SqliteSink, SqliteStore};

const WAIT: Duration = Duration::from_secs(20);

/// A port nobody listens on now (the exporter binds it right after).
fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One sample of the text exposition format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// `GET /metrics`, parsed.
fn scrape(address: SocketAddr) -> Vec<Sample> {
    let mut stream = TcpStream::connect(address).expect("the exporter listens");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("`name value`");
            let (name, labels) = match key.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (key, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("label=\"value\"");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap_or(f64::NAN),
            }
        })
        .collect()
}

/// The value of `name` with exactly these labels, if exported.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
}

/// The sum of `name` over all its label sets.
fn total(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// In this process: the exporter of `bank::metrics`, a SQLite bank and its balances table, a
/// known set of commands, then exact figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_equal_the_commands_executed() {
    let address = free_address();
    let metrics = bank::metrics::serve(Some(&address.to_string())).unwrap();
    assert_eq!(metrics.address(), Some(address));
    let store = SqliteStore::temporary().unwrap();
    let app = Cqrs::builder(store.clone())
        .service(Limits {
            max_withdrawal: 100,
        })
        .build()
        .await
        .unwrap();
    let sink = SqliteSink::new(&store, bank::BalancesTable).unwrap();
    sink.setup(bank::balances::CREATE_TABLE).await.unwrap();
    let balances = ProjectionRunner::new(store.clone(), sink).spawn();

    for id in 1..=3 {
        let owner = format!("owner {id}");
        let account = AccountId(id);
        app.execute(OpenAccount { account, owner }).await.unwrap();
    }
    for _ in 0..5 {
        let deposit = Deposit {
            account: AccountId(1),
            amount: 10,
        };
        app.execute(deposit).await.unwrap();
    }
    let over_limit = Withdraw {
        account: AccountId(1),
        amount: 1_000,
    };
    let err = app.execute(over_limit).await.unwrap_err();
    assert!(matches!(err, CommandError::Rejected(_)), "{err:?}");
    let nowhere = Deposit {
        account: AccountId(9),
        amount: 1,
    };
    let err = app.execute(nowhere).await.unwrap_err();
    assert!(matches!(err, CommandError::NotFound { .. }), "{err:?}");
    let head = store.head().await.unwrap();
    assert_eq!(head.0, 8, "3 openings and 5 deposits");
    balances.wait_for(head, WAIT).await.unwrap();

    // After its last batch the lag in seconds is that batch's age; the runner sets both gauges
    // to 0 at its next read that finds nothing new: scrape until it has.
    let started = Instant::now();
    let lag = [("projection", "balances")];
    let samples = loop {
        let samples = scrape(address);
        let events = value(&samples, "eventweave_projection_lag_events", &lag);
        let seconds = value(&samples, "eventweave_projection_lag_seconds", &lag);
        if (events, seconds) == (Some(0.0), Some(0.0)) {
            break samples;
        }
        assert!(started.elapsed() < WAIT, "lag never reached 0: {samples:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    balances.stop().await;

    let commands = |command, outcome| {
        let labels = [
            ("aggregate", "account"),
            ("command", command),
            ("outcome", outcome),
        ];
        value(&samples, "eventweave_commands_total", &labels)
    };
    assert_eq!(commands("OpenAccount", "ok"), Some(3.0));
    assert_eq!(commands("Deposit", "ok"), Some(5.0));
    assert_eq!(commands("Withdraw", "rejected"), Some(1.0));
    assert_eq!(commands("Deposit", "not_found"), Some(1.0));
    assert_eq!(total(&samples, "eventweave_commands_total"), 10.0);
    // One latency observation per command.
    let latency = |command| {
        let labels = [("aggregate", "account"), ("command", command)];
        value(
            &samples,
            "eventweave_command_duration_seconds_count",
            &labels,
        )
    };
    assert_eq!(latency("OpenAccount"), Some(3.0));
    assert_eq!(latency("Deposit"), Some(6.0));
    assert_eq!(latency("Withdraw"), Some(1.0));
    let sqlite = [("store", "sqlite")];
    assert_eq!(
        value(&samples, "eventweave_events_appended_total", &sqlite),
        Some(8.0)
    );
    assert_eq!(
        value(
            &samples,
            "eventweave_append_duration_seconds_count",
            &sqlite
        ),
        Some(8.0)
    );
    // No conflicts with one writer; the update commands hit the cache, so nothing was loaded
    // except the deposit to the unknown account.
    assert_eq!(total(&samples, "eventweave_command_conflicts_total"), 0.0);
    let account = [("aggregate", "account")];
    assert_eq!(
        value(&samples, "eventweave_load_duration_seconds_count", &account),
        Some(1.0)
    );
    // The balances table handled every event, and is not behind.
    let balances = [("projection", "balances")];
    assert_eq!(
        value(&samples, "eventweave_events_projected_total", &balances),
        Some(8.0)
    );
    assert!(
        value(
            &samples,
            "eventweave_projection_batch_duration_seconds_count",
            &balances
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(total(&samples, "eventweave_events_parked_total"), 0.0);
}

/// The real binary with `--memory --metrics ADDR`: once its transcript is done (it then waits
/// for stdin), the endpoint answers with the transcript's commands.
#[test]
fn the_bank_binary_serves_its_metrics_while_it_waits() {
    let address = free_address();
    let mut bank = Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(["--memory", "--metrics", &address.to_string()])
        .env_remove("BANK_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the example starts");
    let stdin = bank.stdin.take().unwrap();
    let mut transcript = String::new();
    for line in BufReader::new(bank.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        transcript.push_str(&line);
        transcript.push('\n');
        if line.contains("press Enter") {
            break;
        }
    }
    assert!(
        transcript.contains(&format!("http://{address}/metrics")),
        "{transcript}"
    );
    let samples = scrape(address);
    drop(stdin);
    let status = bank.wait().unwrap();
    assert!(status.success(), "{status:?}\n{transcript}");

    // Every command the transcript sent typed (`> Name {`) is counted under its name.
    let mut sent: BTreeMap<String, f64> = BTreeMap::new();
    for line in transcript.lines() {
        if let Some(rest) = line.strip_prefix("> ")
            && let Some((name, _)) = rest.split_once(" {")
            && name.starts_with(|c: char| c.is_ascii_uppercase())
        {
            *sent.entry(name.to_owned()).or_default() += 1.0;
        }
    }
    assert!(sent.len() >= 3, "{transcript}");
    for (name, count) in &sent {
        let counted: f64 = samples
            .iter()
            .filter(|s| s.name == "eventweave_commands_total")
            .filter(|s| s.labels.get("command") == Some(name))
            .map(|s| s.value)
            .sum();
        // Untyped dispatch and the transfer process manager run commands of the same names.
        assert!(counted >= *count, "{name}: sent {count}, counted {counted}");
    }
    let appended = value(
        &samples,
        "eventweave_events_appended_total",
        &[("store", "memory")],
    );
    assert!(appended.is_some_and(|n| n > 0.0), "{samples:?}");
    for projection in ["balances", "transfer"] {
        let lag = value(
            &samples,
            "eventweave_projection_lag_events",
            &[("projection", projection)],
        );
        assert!(lag.is_some(), "no lag gauge for {projection}: {samples:?}");
    }
    let issued = total(&samples, "eventweave_process_commands_total");
    assert!(issued >= 1.0, "the transcript runs transfers: {samples:?}");
}

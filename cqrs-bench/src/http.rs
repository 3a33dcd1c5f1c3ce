//! The HTTP workload (issue 13): 64 concurrent keep-alive clients depositing on distinct
//! accounts through the bank's HTTP service (`bank::serve`: `POST /commands/Deposit`, by
//! name), against the same deposits run in process (`Cqrs::execute`, 64 tasks) in the same
//! round, on the in-memory store and on PostgreSQL.
//!
//! Server and load generator share one 2-worker tokio runtime of this process (the machine has
//! two cores; both sides compete for them, as they would on one host). The load generator is
//! hyper's HTTP/1.1 client connection API: one TCP connection per client, requests sent one
//! after the other on it (keep-alive, no pipelining), each response read in full before the
//! next request.
//!
//! Every phase checks its result: each account's balance must equal its deposits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bank::{Account, AccountId, Deposit, OpenAccount};
use bytes::Bytes;
use eventweave_core::{Cqrs, EventStore, MemoryStore, Router, new_id};
use eventweave_postgres::{PostgresConfig, PostgresStore};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Concurrent clients (the issue's figure).
pub const CLIENTS: u64 = 64;

/// Connections of the PostgreSQL store's command pool in this workload.
pub const PG_POOL: usize = 16;

/// Deposits per client per phase.
fn deposits(mode: crate::Mode, postgres: bool) -> u64 {
    match (mode, postgres) {
        (crate::Mode::Quick, _) => 3,
        (crate::Mode::Full, false) => 1000,
        (crate::Mode::Full, true) => 150,
    }
}

/// One round's rates, commands per second.
#[derive(Clone, Copy, Debug, Default)]
pub struct Round {
    /// `Cqrs::execute`, 64 tasks.
    pub execute: f64,
    /// `Router::dispatch_with` (name + JSON), 64 tasks.
    pub dispatch: f64,
    /// HTTP, 64 keep-alive clients.
    pub http: f64,
}

/// Opens `accounts` in process.
async fn open<S: EventStore>(app: &Cqrs<S>, accounts: std::ops::Range<u64>) {
    for id in accounts {
        app.execute(OpenAccount {
            account: AccountId(id),
            owner: String::new(),
        })
        .await
        .expect("open");
    }
}

/// Checks that every account of `accounts` holds `expected`.
async fn check<S: EventStore>(app: &Cqrs<S>, accounts: std::ops::Range<u64>, expected: u64) {
    for id in accounts {
        let (account, _) = app.load::<Account>(&AccountId(id)).await.expect("load");
        assert_eq!(account.balance(), expected, "account {id} lost a deposit");
    }
}

/// 64 tasks, each depositing `n` times into its own account from `first`, through `run`.
async fn in_process<S, F, Fut>(app: &Cqrs<S>, first: u64, n: u64, run: F) -> Duration
where
    S: EventStore,
    F: Fn(Cqrs<S>, u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(run(app.clone(), first + c)))
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let elapsed = started.elapsed();
    check(app, first..first + CLIENTS, n).await;
    elapsed
}

/// 64 keep-alive connections, each depositing `n` times into its own account from `first`.
async fn over_http<S: EventStore>(app: &Cqrs<S>, addr: SocketAddr, first: u64, n: u64) -> Duration {
    let mut senders = Vec::new();
    for _ in 0..CLIENTS {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        senders.push(sender);
    }
    let host = addr.to_string();
    let started = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(c, mut sender)| {
            let host = host.clone();
            let body = Bytes::from(format!(r#"{{"account":{},"amount":1}}"#, first + c as u64));
            tokio::spawn(async move {
                for _ in 0..n {
                    let request = hyper::Request::post("/commands/Deposit")
                        .header("host", &host)
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .expect("request");
                    sender.ready().await.expect("ready");
                    let response = sender.send_request(request).await.expect("response");
                    let status = response.status();
                    let body = response.into_body().collect().await.expect("body");
                    assert_eq!(status, 200, "{:?}", body.to_bytes());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    let elapsed = started.elapsed();
    check(app, first..first + CLIENTS, n).await;
    elapsed
}

/// One round on `app`: the three phases, in an order that rotates with `round` so that none
/// always runs on a warmer (or more loaded) machine.
async fn round_on<S: EventStore>(app: Cqrs<S>, n: u64, round: usize) -> Round {
    let api = bank::serve::api(app.clone()).expect("the bank's routes");
    let server = bank::serve::spawn(TcpListener::bind("127.0.0.1:0").await.expect("bind"), api)
        .expect("serve");
    let router = Router::new(app.clone())
        .aggregate::<Account>()
        .expect("routes");
    let router = std::sync::Arc::new(router);
    let (execute_first, dispatch_first, http_first) = (0, 10_000, 20_000);
    for first in [execute_first, dispatch_first, http_first] {
        open(&app, first..first + CLIENTS).await;
    }
    let rate = |d: Duration| (CLIENTS * n) as f64 / d.as_secs_f64();
    let mut result = Round::default();
    for phase in (0..3).map(|k| (round + k) % 3) {
        match phase {
            0 => {
                let d = in_process(&app, execute_first, n, |app, id| async move {
                    for _ in 0..n {
                        app.execute(Deposit {
                            account: AccountId(id),
                            amount: 1,
                        })
                        .await
                        .expect("deposit");
                    }
                })
                .await;
                result.execute = rate(d);
            }
            1 => {
                let d = in_process(&app, dispatch_first, n, |_, id| {
                    let router = std::sync::Arc::clone(&router);
                    async move {
                        let body = format!(r#"{{"account":{id},"amount":1}}"#);
                        for _ in 0..n {
                            router.dispatch("Deposit", &body).await.expect("dispatch");
                        }
                    }
                })
                .await;
                result.dispatch = rate(d);
            }
            _ => {
                let d = over_http(&app, server.addr, http_first, n).await;
                result.http = rate(d);
            }
        }
    }
    server.stop().await.expect("the server stops");
    result
}

/// The rounds on the in-memory store (with the bank's in-memory balances attached, as the
/// other in-memory rows).
pub async fn memory_rounds(mode: crate::Mode) -> Vec<Round> {
    let mut rounds = Vec::new();
    for i in 0..mode.rounds() {
        let app = crate::memory::bank_app(MemoryStore::new()).await;
        rounds.push(round_on(app, deposits(mode, false), i).await);
    }
    rounds
}

/// The rounds on PostgreSQL (a fresh schema each), or none without `CQRS_POSTGRES_URL`.
pub async fn postgres_rounds(mode: crate::Mode) -> Vec<Round> {
    let Some(url) = std::env::var("CQRS_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: HTTP rows on PostgreSQL: CQRS_POSTGRES_URL is not set");
        return Vec::new();
    };
    let mut rounds = Vec::new();
    for i in 0..mode.rounds() {
        let schema = format!("cqrs_bench_http_{}", new_id().simple());
        let store =
            PostgresStore::open(PostgresConfig::new(&url).schema(&schema).pool_size(PG_POOL))
                .await
                .expect("open the store");
        let app = crate::memory::bank_app(store).await;
        rounds.push(round_on(app, deposits(mode, true), i).await);
        let admin = crate::postgres::connect(&url).await;
        admin
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .expect("drop the benchmark schema");
    }
    rounds
}

fn rows(store: &str, rounds: &[Round]) -> Vec<crate::Row> {
    if rounds.is_empty() {
        return Vec::new();
    }
    let median =
        |f: fn(&Round) -> f64| crate::median(&mut rounds.iter().map(f).collect::<Vec<_>>());
    let (execute, dispatch, http) = (
        median(|r| r.execute),
        median(|r| r.dispatch),
        median(|r| r.http),
    );
    let target = if store == "memory" { 50 } else { 90 };
    vec![
        crate::Row {
            workload: format!("(http) {store}: by name in process, {CLIENTS} tasks"),
            rate: dispatch,
            unit: "commands/s",
            baseline: Some(("execute, 64 tasks".to_owned(), execute)),
            peer: None,
            target: "-".to_owned(),
        },
        crate::Row {
            workload: format!("(http) {store}: HTTP, {CLIENTS} keep-alive clients"),
            rate: http,
            unit: "commands/s",
            baseline: Some(("execute, 64 tasks".to_owned(), execute)),
            peer: None,
            target: format!(">= {target}% of execute"),
        },
    ]
}

/// Both stores' rows (`cargo run -p cqrs-bench --release -- --http`). Runs on a 2-worker
/// runtime of its own (server and clients need more than the binary's current-thread one).
pub fn run(mode: crate::Mode) -> Vec<crate::Row> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let memory = memory_rounds(mode).await;
        let postgres = postgres_rounds(mode).await;
        let mut all = rows("memory", &memory);
        all.extend(rows("PostgreSQL", &postgres));
        all
    })
}

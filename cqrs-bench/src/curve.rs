//! The group-commit curve (issue 14, part 1): 1 to 128 concurrent clients, each sending bank
//! commands on its own account for a fixed time, through `Cqrs::execute` on PostgreSQL with
//! group commit, the same without it (`PostgresConfig::group_commit(false)`), and raw
//! single-row insert transactions beside them, all in the same run.
//!
//! `cargo run -p cqrs-bench --release -- --curve` (3 rounds of 1.5 s per point and system; the
//! rates are medians of the rounds, the latencies percentiles of every command of every round).
//! `CQRS_CURVE_CLIENTS=1,64` measures only those client counts and `CQRS_CURVE_ROUNDS=9` sets
//! the rounds (for a closer look at one point; the table's targets need 1, 8 and 64).
//! `CQRS_CURVE_APPEND_STATEMENTS=3` runs the grouped store with that many append statements
//! instead of its default; `CQRS_CURVE_SYSTEMS=grouped` measures only the systems named
//! (`grouped`, `alone`, `raw`), say for a profiler watching the server.
//!
//! Each system has a schema of its own, so that one system's commits never wake or feed the
//! other's notification listener or read side while it is measured. Beside the rates, each
//! point shows the CPU time per command of this process and of every local `postgres` process
//! (backends, WAL writer, checkpointer: read from `/proc`, so only when the server runs on this
//! machine): where a point is bound by the machine's cores, that says whose work it is.
//!
//! Each client opens its account, then deposits until the time is up; every command's latency
//! is recorded. The raw clients insert deposit-shaped rows into a table of the store's shape,
//! one autocommit `INSERT` per row. PostgreSQL allows 100 connections here, shared with other
//! work, so the raw clients use at most [`RAW_CONNECTIONS`] connections: beyond that, clients
//! share them (tokio-postgres pipelines their statements, each still its own transaction). The
//! two stores use the default pool of 8 connections. Points and systems alternate, and which
//! system goes first rotates, so a slower moment of the machine weighs on all alike; before each
//! measured sample the same system runs unmeasured for a fifth of its time. Each run checks
//! every account's final balance.
//!
//! The same curve on SQLite ([`run_sqlite`]): the bank on a `SqliteStore` in a temporary file
//! with group commit and without it (`SqliteConfig::group_commit(false)`), beside raw
//! single-row `BEGIN IMMEDIATE` insert transactions into a fresh store's `events` table on one
//! rusqlite connection shared by the raw clients (SQLite has one writer). It runs on a 2-worker
//! runtime: SQLite calls run inline on the calling task, so only appends on another worker find
//! the write turn taken and queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::sync::Mutex;

use bank::{AccountId, Deposit, OpenAccount};
use eventweave_core::{Cqrs, EventStore, Timestamp, new_id};
use eventweave_postgres::{PostgresConfig, PostgresStore};
use eventweave_sqlite::rusqlite::{Connection, TransactionBehavior};
use eventweave_sqlite::{SqliteConfig, SqliteStore};
use tokio::task::JoinSet;

use crate::cpu::Cpu;
use crate::postgres::{Raw, URL_VAR, app, connect, create_raw_table};

/// The client counts of the curve.
pub const CLIENTS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// Before each measured sample, the same system runs unmeasured for this part of the sample's
/// time (a fifth), so that a point does not pay for the load of the point measured before it
/// (the 1-client point follows the 128-client one, and moved with its place in the rotation).
const WARM_UP_PART: u32 = 5;

/// The most connections the raw baseline opens.
pub const RAW_CONNECTIONS: usize = 32;

/// One system at one client count: the rate and the latencies.
#[derive(Clone, Debug, Default)]
pub struct Point {
    /// Commands (or raw transactions) per second, median of the rounds.
    pub rate: f64,
    /// Median latency of one command, over every round.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// CPU time of this process per command, over every round.
    pub client_cpu: Duration,
    /// CPU time of the local `postgres` processes per command, over every round (zero when the
    /// server is not on this machine, and for SQLite).
    pub server_cpu: Duration,
}

/// The three systems at each of [`CLIENTS`].
#[derive(Clone, Debug, Default)]
pub struct Curve {
    /// `Cqrs::execute` with group commit (the default).
    pub grouped: Vec<Point>,
    /// `Cqrs::execute` with `group_commit(false)`.
    pub alone: Vec<Point>,
    /// Raw single-row insert transactions.
    pub raw: Vec<Point>,
}

/// What one timed run measured.
struct Sample {
    count: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    client_cpu: Duration,
    server_cpu: Duration,
}

/// The CPU time run while measuring `sample`, charged to it.
fn charge(since: Cpu, mut sample: Sample) -> Sample {
    let cpu = since.since();
    sample.client_cpu = cpu.client;
    sample.server_cpu = cpu.server;
    sample
}

/// Account ids unique across the run.
static NEXT_ACCOUNT: AtomicU64 = AtomicU64::new(5_000_000);

/// `clients` clients sending commands through `app` for `time`.
async fn commands<S: EventStore>(app: &Cqrs<S>, clients: usize, time: Duration) -> Sample {
    let accounts: Vec<u64> = (0..clients)
        .map(|_| NEXT_ACCOUNT.fetch_add(1, Ordering::Relaxed))
        .collect();
    let started = Instant::now();
    let deadline = started + time;
    let mut tasks = JoinSet::new();
    for &id in &accounts {
        let app = app.clone();
        tasks.spawn(async move {
            let account = AccountId(id);
            let mut latencies = Vec::new();
            let sent = Instant::now();
            app.execute(OpenAccount {
                account,
                owner: String::new(),
            })
            .await
            .expect("open");
            latencies.push(sent.elapsed());
            while Instant::now() < deadline {
                let sent = Instant::now();
                app.execute(Deposit { account, amount: 1 })
                    .await
                    .expect("deposit");
                latencies.push(sent.elapsed());
            }
            latencies
        });
    }
    let latencies: Vec<Duration> = tasks.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    // Every account holds one deposit per command after its opening.
    let mut deposits = latencies.len() as u64 - clients as u64;
    for &id in &accounts {
        let (account, _) = app
            .load::<bank::Account>(&AccountId(id))
            .await
            .expect("the account loads");
        deposits -= account.balance();
    }
    assert_eq!(deposits, 0, "a deposit was lost or duplicated");
    Sample {
        count: latencies.len() as u64,
        elapsed,
        latencies,
        client_cpu: Duration::ZERO,
        server_cpu: Duration::ZERO,
    }
}

/// `clients` raw clients inserting rows for `time`, over at most [`RAW_CONNECTIONS`]
/// connections.
async fn raw(connections: &[Arc<Raw>], clients: usize, time: Duration) -> Sample {
    let started = Instant::now();
    let deadline = started + time;
    let mut tasks = JoinSet::new();
    for k in 0..clients {
        let raw = Arc::clone(&connections[k % connections.len()]);
        let tag = NEXT_ACCOUNT.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let sent = Instant::now();
                raw.inserts_from(tag, i, 1).await;
                latencies.push(sent.elapsed());
                i += 1;
            }
            latencies
        });
    }
    let latencies: Vec<Duration> = tasks.join_all().await.into_iter().flatten().collect();
    Sample {
        count: latencies.len() as u64,
        elapsed: started.elapsed(),
        latencies,
        client_cpu: Duration::ZERO,
        server_cpu: Duration::ZERO,
    }
}

/// `clients` raw clients inserting rows into SQLite for `time`, one single-row `BEGIN
/// IMMEDIATE` transaction each, on one connection (taken in turn).
async fn raw_sqlite(conn: &Arc<Mutex<Connection>>, clients: usize, time: Duration) -> Sample {
    let started = Instant::now();
    let deadline = started + time;
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let conn = Arc::clone(conn);
        let tag = NEXT_ACCOUNT.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut version = 0i64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                version += 1;
                raw_sqlite_insert(&conn, tag, version);
                latencies.push(sent.elapsed());
                // As an async command does between its appends: let the other clients run.
                tokio::task::yield_now().await;
            }
            latencies
        });
    }
    let latencies: Vec<Duration> = tasks.join_all().await.into_iter().flatten().collect();
    Sample {
        count: latencies.len() as u64,
        elapsed: started.elapsed(),
        latencies,
        client_cpu: Duration::ZERO,
        server_cpu: Duration::ZERO,
    }
}

/// One deposit-shaped row of stream `account-<tag>` at `version`, in its own transaction.
fn raw_sqlite_insert(conn: &Mutex<Connection>, tag: u64, version: i64) {
    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("begin");
    tx.prepare_cached(
        "INSERT INTO events (event_id, stream, version, event_name, event_version, \
         payload, metadata, correlation_id, causation_id, recorded_at) \
         VALUES (?1, ?2, ?3, 'account.deposited', 1, '{\"amount\":1}', NULL, ?4, ?5, ?6)",
    )
    .expect("prepare the raw insert")
    .execute((
        &new_id().as_bytes()[..],
        format!("account-{tag}"),
        version,
        &new_id().as_bytes()[..],
        &new_id().as_bytes()[..],
        Timestamp::now().unix_micros(),
    ))
    .expect("raw insert");
    tx.commit().expect("commit");
}

/// The percentile `p` (0 to 1) of sorted latencies.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

/// The point of several rounds' samples.
fn point(samples: Vec<Sample>) -> Point {
    if samples.is_empty() {
        return Point::default(); // a system not measured (`CQRS_CURVE_SYSTEMS`)
    }
    let mut rates: Vec<f64> = samples
        .iter()
        .map(|s| s.count as f64 / s.elapsed.as_secs_f64())
        .collect();
    let count: u64 = samples.iter().map(|s| s.count).sum::<u64>().max(1);
    let per_command = |total: Duration| total / u32::try_from(count).unwrap_or(u32::MAX);
    let client_cpu = per_command(samples.iter().map(|s| s.client_cpu).sum());
    let server_cpu = per_command(samples.iter().map(|s| s.server_cpu).sum());
    let mut all: Vec<Duration> = samples.into_iter().flat_map(|s| s.latencies).collect();
    all.sort_unstable();
    Point {
        rate: crate::median(&mut rates),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        client_cpu,
        server_cpu,
    }
}

/// The client counts measured in `mode`, or those of `CQRS_CURVE_CLIENTS` (say `1,8,64`).
///
/// # Panics
///
/// On a `CQRS_CURVE_CLIENTS` that is not a comma-separated list of positive counts.
pub fn clients(mode: crate::Mode) -> Vec<usize> {
    if let Ok(list) = std::env::var(CLIENTS_VAR) {
        return parse_clients(&list).unwrap_or_else(|| {
            panic!("{CLIENTS_VAR}={list:?}: expected positive client counts, e.g. 1,8,64")
        });
    }
    match mode {
        crate::Mode::Full => CLIENTS.to_vec(),
        crate::Mode::Quick => vec![1, 4],
    }
}

/// The variable that chooses the client counts.
pub const CLIENTS_VAR: &str = "CQRS_CURVE_CLIENTS";

/// The variable that sets the rounds per point.
pub const ROUNDS_VAR: &str = "CQRS_CURVE_ROUNDS";

/// The variable that sets the grouped PostgreSQL store's
/// [`append_statements`](PostgresConfig::append_statements) (unset: the store's default), for
/// trying other values on a given machine.
pub const APPEND_STATEMENTS_VAR: &str = "CQRS_CURVE_APPEND_STATEMENTS";

/// The grouped store's configuration: `config`, with `CQRS_CURVE_APPEND_STATEMENTS` applied.
///
/// # Panics
///
/// On a `CQRS_CURVE_APPEND_STATEMENTS` that is not a positive number.
fn with_append_statements(config: PostgresConfig) -> PostgresConfig {
    match std::env::var(APPEND_STATEMENTS_VAR) {
        Ok(n) => config.append_statements(parse_positive(&n).unwrap_or_else(|| {
            panic!("{APPEND_STATEMENTS_VAR}={n:?}: expected a positive number")
        })),
        Err(_) => config,
    }
}

/// `n` as a positive count; `None` otherwise.
fn parse_positive(n: &str) -> Option<usize> {
    n.trim().parse().ok().filter(|&n: &usize| n > 0)
}

/// The variable that chooses the systems measured (`grouped`, `alone`, `raw`, comma-separated;
/// unset: all three): one system alone is what a profiler attached to the server should see.
pub const SYSTEMS_VAR: &str = "CQRS_CURVE_SYSTEMS";

/// Which of the three systems (grouped, without grouping, raw) to measure.
///
/// # Panics
///
/// On a `CQRS_CURVE_SYSTEMS` that names no system or an unknown one.
fn systems() -> [bool; 3] {
    match std::env::var(SYSTEMS_VAR) {
        Ok(list) => parse_systems(&list).unwrap_or_else(|| {
            panic!("{SYSTEMS_VAR}={list:?}: expected some of grouped,alone,raw")
        }),
        Err(_) => [true; 3],
    }
}

/// `grouped,raw` as the systems' flags; `None` for an unknown name or an empty list.
fn parse_systems(list: &str) -> Option<[bool; 3]> {
    let mut chosen = [false; 3];
    for name in list.split(',') {
        let k = ["grouped", "alone", "raw"]
            .iter()
            .position(|&known| known == name.trim())?;
        chosen[k] = true;
    }
    chosen.contains(&true).then_some(chosen)
}

/// `1,8,64` as counts; `None` if any is not a positive number or the list is empty.
fn parse_clients(list: &str) -> Option<Vec<usize>> {
    let counts: Vec<usize> = list.split(',').map(parse_positive).collect::<Option<_>>()?;
    (!counts.is_empty()).then_some(counts)
}

/// The rounds and the time per point and system in `mode` (`CQRS_CURVE_ROUNDS` overrides the
/// rounds).
///
/// # Panics
///
/// On a `CQRS_CURVE_ROUNDS` that is not a positive number.
fn rounds_and_time(mode: crate::Mode) -> (usize, Duration) {
    let (rounds, time) = match mode {
        crate::Mode::Full => (3, Duration::from_millis(1_500)),
        crate::Mode::Quick => (1, Duration::from_millis(30)),
    };
    let rounds = match std::env::var(ROUNDS_VAR) {
        Ok(n) => parse_positive(&n)
            .unwrap_or_else(|| panic!("{ROUNDS_VAR}={n:?}: expected a positive number")),
        Err(_) => rounds,
    };
    (rounds, time)
}

/// Measures the curve; `None`, after a printed line, without `CQRS_POSTGRES_URL`.
pub async fn run(mode: crate::Mode) -> Option<Curve> {
    let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) else {
        eprintln!("SKIPPED: the group-commit curve: {URL_VAR} is not set");
        return None;
    };
    let (rounds, time) = rounds_and_time(mode);
    let clients = clients(mode);
    // A schema per system: see the module docs.
    let id = new_id().simple();
    let schemas = [0, 1, 2].map(|k| format!("cqrs_curve_{id}_{k}"));
    let grouped = app(PostgresStore::open(with_append_statements(
        PostgresConfig::new(&url).schema(&schemas[0]),
    ))
    .await
    .expect("open"))
    .await;
    let alone = app(PostgresStore::open(
        PostgresConfig::new(&url)
            .schema(&schemas[1])
            .group_commit(false),
    )
    .await
    .expect("open"))
    .await;
    let admin = connect(&url).await;
    admin
        .batch_execute(&format!("CREATE SCHEMA \"{}\"", schemas[2]))
        .await
        .expect("create the raw table's schema");
    let table = create_raw_table(&admin, &schemas[2]).await;
    let mut connections = Vec::new();
    for _ in 0..RAW_CONNECTIONS.min(*clients.iter().max().unwrap_or(&1)) {
        connections.push(Arc::new(Raw::connect(&url, &table).await));
    }
    let measured = systems();
    let mut samples: Vec<[Vec<Sample>; 3]> = clients.iter().map(|_| Default::default()).collect();
    for round in 0..rounds {
        for (i, &n) in clients.iter().enumerate() {
            for k in 0..3 {
                let system = (round + i + k) % 3;
                if !measured[system] {
                    continue;
                }
                let measure = async |time| match system {
                    0 => commands(&grouped, n, time).await,
                    1 => commands(&alone, n, time).await,
                    _ => raw(&connections[..n.min(RAW_CONNECTIONS)], n, time).await,
                };
                measure(time / WARM_UP_PART).await;
                let cpu = Cpu::now();
                let sample = charge(cpu, measure(time).await);
                samples[i][system].push(sample);
            }
        }
    }
    let mut curve = Curve::default();
    for [g, a, r] in samples {
        curve.grouped.push(point(g));
        curve.alone.push(point(a));
        curve.raw.push(point(r));
    }
    drop((grouped, alone, connections));
    for schema in &schemas {
        admin
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .expect("drop the curve's schemas");
    }
    Some(curve)
}

/// Measures the SQLite curve (on the runtime it is called on: give it worker threads).
pub async fn run_sqlite(mode: crate::Mode) -> Curve {
    let (rounds, time) = rounds_and_time(mode);
    let clients = clients(mode);
    let open = |config: SqliteConfig| SqliteStore::temporary_with(config).expect("a store");
    let grouped = crate::memory::bank_app(open(SqliteConfig::new())).await;
    let alone = crate::memory::bank_app(open(SqliteConfig::new().group_commit(false))).await;
    // The raw table: the `events` table of a fresh store file, on a connection with the
    // store's pragmas (WAL, `synchronous=NORMAL`, the defaults).
    let raw_store = open(SqliteConfig::new());
    let conn = Connection::open(raw_store.path()).expect("a raw connection");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("WAL");
    conn.pragma_update(
        None,
        "synchronous",
        SqliteConfig::new().durability.pragma_value(),
    )
    .expect("synchronous");
    let conn = Arc::new(Mutex::new(conn));
    let measured = systems();
    let mut samples: Vec<[Vec<Sample>; 3]> = clients.iter().map(|_| Default::default()).collect();
    for round in 0..rounds {
        for (i, &n) in clients.iter().enumerate() {
            for k in 0..3 {
                let system = (round + i + k) % 3;
                if !measured[system] {
                    continue;
                }
                let measure = async |time| match system {
                    0 => commands(&grouped, n, time).await,
                    1 => commands(&alone, n, time).await,
                    _ => raw_sqlite(&conn, n, time).await,
                };
                measure(time / WARM_UP_PART).await;
                let cpu = Cpu::now();
                let sample = charge(cpu, measure(time).await);
                samples[i][system].push(sample);
            }
        }
    }
    let mut curve = Curve::default();
    for [g, a, r] in samples {
        curve.grouped.push(point(g));
        curve.alone.push(point(a));
        curve.raw.push(point(r));
    }
    drop((grouped, alone, conn, raw_store));
    curve
}

/// The curve as a Markdown table, then the targets, met or missed.
///
/// The CPU columns are microseconds per command: this process's, then the local `postgres`
/// processes' (0 for SQLite, which runs in this process, and for a server elsewhere).
pub fn format(curve: &Curve, clients: &[usize]) -> String {
    use std::fmt::Write as _;
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    let cpu = |p: &Point| {
        format!(
            "{:.0} + {:.0}",
            p.client_cpu.as_secs_f64() * 1e6,
            p.server_cpu.as_secs_f64() * 1e6
        )
    };
    let mut out = String::from(
        "| clients | grouped: commands/s | p50 ms | p99 ms | CPU us/cmd | without grouping: commands/s | p50 ms | p99 ms | CPU us/cmd | raw insert tx/s | p50 ms | p99 ms | CPU us/tx |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    // A point of a system not measured (`CQRS_CURVE_SYSTEMS`) has no commands: its cells are `-`.
    let cells = |p: &Point| {
        if p.rate > 0.0 {
            format!("{:.0} | {} | {} | {}", p.rate, ms(p.p50), ms(p.p99), cpu(p))
        } else {
            "- | - | - | -".to_owned()
        }
    };
    for (i, n) in clients.iter().enumerate() {
        let (g, a, r) = (&curve.grouped[i], &curve.alone[i], &curve.raw[i]);
        let _ = writeln!(out, "| {n} | {} | {} | {} |", cells(g), cells(a), cells(r));
    }
    let at = |n: usize| clients.iter().position(|&c| c == n);
    let all_measured = [&curve.grouped, &curve.alone, &curve.raw]
        .iter()
        .all(|points| points.iter().all(|p| p.rate > 0.0));
    if let (Some(i1), Some(i8), Some(i64), true) = (at(1), at(8), at(64), all_measured) {
        let verdict = |ok: bool| if ok { "met" } else { "missed" };
        let vs_raw = curve.grouped[i64].rate / curve.raw[i8].rate;
        let vs_alone = curve.grouped[i64].rate / curve.alone[i8].rate;
        let one = curve.grouped[i1].rate / curve.alone[i1].rate;
        let _ = writeln!(
            out,
            "\n- 64 clients grouped / raw at 8 clients: {vs_raw:.2}x (target >= 3x: {})",
            verdict(vs_raw >= 3.0)
        );
        let _ = writeln!(
            out,
            "- 64 clients grouped / without grouping at 8 clients: {vs_alone:.2}x (target >= 3x: {})",
            verdict(vs_alone >= 3.0)
        );
        let _ = writeln!(
            out,
            "- 1 client grouped / without grouping: {:.1}% (target within 5%: {})",
            100.0 * one,
            verdict(one >= 0.95)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_latencies() {
        let ms = Duration::from_millis;
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 0.5), ms(51));
        assert_eq!(percentile(&sorted, 0.99), ms(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn the_table_states_each_target() {
        let p = |rate| Point {
            rate,
            p50: Duration::from_millis(1),
            p99: Duration::from_millis(2),
            client_cpu: Duration::from_micros(30),
            server_cpu: Duration::from_micros(70),
        };
        let curve = Curve {
            grouped: vec![p(100.0), p(1_000.0), p(4_000.0)],
            alone: vec![p(100.0), p(1_000.0), p(1_000.0)],
            raw: vec![p(110.0), p(1_500.0), p(1_500.0)],
        };
        let text = format(&curve, &[1, 8, 64]);
        assert!(
            text.contains("| 64 | 4000 | 1.00 | 2.00 | 30 + 70 | 1000 |"),
            "{text}"
        );
        assert!(
            text.contains("raw at 8 clients: 2.67x (target >= 3x: missed)"),
            "{text}"
        );
        assert!(
            text.contains("without grouping at 8 clients: 4.00x (target >= 3x: met)"),
            "{text}"
        );
        assert!(text.contains("100.0% (target within 5%: met)"), "{text}");
    }

    #[test]
    fn systems_parse_or_are_refused() {
        assert_eq!(parse_systems("grouped"), Some([true, false, false]));
        assert_eq!(parse_systems("raw, alone"), Some([false, true, true]));
        assert_eq!(parse_systems(""), None);
        assert_eq!(parse_systems("grouped,fast"), None);
    }

    #[test]
    fn a_system_not_measured_prints_dashes_and_no_targets() {
        let p = |rate| Point {
            rate,
            ..Point::default()
        };
        let curve = Curve {
            grouped: vec![p(100.0), p(1_000.0), p(4_000.0)],
            alone: vec![Point::default(); 3],
            raw: vec![Point::default(); 3],
        };
        let text = format(&curve, &[1, 8, 64]);
        assert!(
            text.contains("| 64 | 4000 | 0.00 | 0.00 | 0 + 0 | - | - | - | - | - | - | - | - |"),
            "{text}"
        );
        assert!(!text.contains("target"), "{text}");
    }

    #[test]
    fn client_counts_parse_or_are_refused() {
        assert_eq!(parse_clients("1,8,64"), Some(vec![1, 8, 64]));
        assert_eq!(parse_clients(" 2 , 4"), Some(vec![2, 4]));
        assert_eq!(parse_clients(""), None);
        assert_eq!(parse_clients("1,0"), None);
        assert_eq!(parse_clients("1,x"), None);
        assert_eq!(parse_positive(" 3 "), Some(3));
        assert_eq!(parse_positive("0"), None);
        assert_eq!(parse_positive("-1"), None);
    }

    #[test]
    fn cpu_per_command_is_the_rounds_total_over_their_commands() {
        let sample = |count, cpu| Sample {
            count,
            elapsed: Duration::from_secs(1),
            latencies: vec![Duration::from_millis(1)],
            client_cpu: Duration::from_micros(cpu),
            server_cpu: Duration::from_micros(2 * cpu),
        };
        let p = point(vec![sample(100, 1_000), sample(300, 7_000)]);
        assert_eq!(p.client_cpu, Duration::from_micros(20));
        assert_eq!(p.server_cpu, Duration::from_micros(40));
        assert_eq!(p.rate, 200.0);
    }
}

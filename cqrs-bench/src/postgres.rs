//! PostgreSQL workloads: the bank domain through `Cqrs::execute` on `PostgresStore`, beside raw
//! baselines measured in the same run with tokio-postgres on a table of the same shape (same
//! columns, same unique indexes), one single-row insert per transaction.
//!
//! Each round runs on a fresh schema (dropped afterwards) and alternates raw and framework
//! workloads, so drift of the machine during a run hits both alike. Needs `CQRS_POSTGRES_URL`;
//! without it the workloads are skipped with a printed line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bank::{Account, AccountId, Deposit, Limits, OpenAccount};
use eventweave_core::{
    Cqrs, EventStore, ExpectedVersion, NewEvent, Payload, Position, StreamId, UserMetadata, Uuid,
    new_id,
};
use eventweave_postgres::{PostgresConfig, PostgresStore};
use tokio::task::JoinSet;
use tokio_postgres::{Client, Statement};

/// The variable naming the database.
pub const URL_VAR: &str = "CQRS_POSTGRES_URL";

/// One run's sizes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Accounts in the many-accounts workloads.
    pub accounts: u64,
    /// Commands per account (one open, the rest deposits).
    pub commands_per_account: u64,
    /// Concurrent clients in the concurrent workloads.
    pub clients: u64,
    /// Commands on the one long stream.
    pub long_stream: u64,
    /// Events per append in the batch workload.
    pub batch_events: usize,
    /// Appends in the batch workload.
    pub batches: usize,
    /// Events per `read_all` in the catch-up workload.
    pub read_batch: usize,
}

impl Sizes {
    /// The sizes the issue sets.
    pub const FULL: Sizes = Sizes {
        accounts: 200,
        commands_per_account: 20,
        clients: 8,
        long_stream: 1_000,
        batch_events: 1_000,
        batches: 50,
        read_batch: 1_000,
    };
    /// Tiny sizes for `cargo test`.
    pub const QUICK: Sizes = Sizes {
        accounts: 16,
        commands_per_account: 3,
        clients: 8,
        long_stream: 20,
        batch_events: 100,
        batches: 3,
        read_batch: 50,
    };

    fn commands(&self) -> u64 {
        self.accounts * self.commands_per_account
    }
}

/// The rates of one round.
#[derive(Clone, Copy, Debug, Default)]
pub struct Round {
    /// Raw single-row insert transactions, one client.
    pub raw_one: f64,
    /// Commands, one client.
    pub cqrs_one: f64,
    /// Raw single-row insert transactions, `clients` clients.
    pub raw_many: f64,
    /// Commands, `clients` clients on distinct accounts.
    pub cqrs_many: f64,
    /// Commands on one long stream.
    pub long_stream: f64,
    /// Events appended in batches.
    pub batch_append: f64,
    /// The same rows in raw multi-row inserts, one statement per batch.
    pub raw_batch: f64,
    /// Events read by `read_all` from position 0.
    pub read_all: f64,
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

pub(crate) async fn connect(url: &str) -> Client {
    // As the store connects (`PostgresConfig::connect`): the same `sslmode` decision and TLS
    // stack, so a raw baseline and the store encrypt alike (with the default `prefer`, both do
    // when the server offers TLS) and the rows compare SQL, not encryption.
    PostgresConfig::new(url)
        .connect()
        .await
        .expect("connect to the benchmark database")
}

/// A table of the store's shape (columns, primary key, unique constraints) for raw inserts.
pub(crate) async fn create_raw_table(client: &Client, schema: &str) -> String {
    let table = format!("\"{schema}\".raw_events");
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (
                position bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
                stream text NOT NULL,
                version bigint NOT NULL,
                event_id uuid NOT NULL UNIQUE,
                event_name text NOT NULL,
                event_version integer NOT NULL,
                payload jsonb NOT NULL,
                metadata jsonb,
                correlation_id uuid,
                causation_id uuid,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (stream, version)
            )"
        ))
        .await
        .expect("create the raw table");
    table
}

/// A raw connection with its insert statement prepared.
pub(crate) struct Raw {
    client: Client,
    insert: Statement,
}

impl Raw {
    pub(crate) async fn connect(url: &str, table: &str) -> Raw {
        let client = connect(url).await;
        let insert = client
            .prepare(&format!(
                "INSERT INTO {table} (stream, version, event_id, event_name, event_version, payload,
                                      metadata, correlation_id, causation_id)
                 VALUES ($1, $2, $3, 'account.deposited', 1, $4::text::jsonb, NULL, $5, $6)"
            ))
            .await
            .expect("prepare the raw insert");
        Raw { client, insert }
    }

    /// `count` single-row insert transactions of a deposit-shaped row, on streams tagged `tag`
    /// (20 rows per stream, like the accounts).
    async fn inserts(&self, tag: u64, count: u64) {
        self.inserts_from(tag, 0, count).await;
    }

    /// As [`Raw::inserts`], rows `first..first + count` of the streams tagged `tag`.
    pub(crate) async fn inserts_from(&self, tag: u64, first: u64, count: u64) {
        for i in first..first + count {
            let stream = format!("account-{tag}-{}", i / 20);
            let version = (i % 20) as i64 + 1;
            let id = new_id();
            self.client
                .execute(
                    &self.insert,
                    &[&stream, &version, &id, &r#"{"amount":1}"#, &id, &id],
                )
                .await
                .expect("raw insert");
        }
    }
}

/// The baseline of batch appends: one multi-row `INSERT … SELECT … FROM unnest(…)` per batch
/// (one array per column, as the store sends them) into the raw table, its own implicit
/// transaction, nothing returned.
struct RawBatch {
    insert: Statement,
}

impl RawBatch {
    async fn prepare(client: &Client, table: &str) -> RawBatch {
        let insert = client
            .prepare(&format!(
                "INSERT INTO {table} (stream, version, event_id, event_name, event_version, payload,
                                      metadata, correlation_id, causation_id)
                 SELECT $1::text, e.ord, e.id, e.name, e.v, e.payload::jsonb, NULL, e.corr, e.caus
                 FROM unnest($2::uuid[], $3::text[], $4::int4[], $5::text[], $6::uuid[], $7::uuid[])
                      WITH ORDINALITY AS e(id, name, v, payload, corr, caus, ord)"
            ))
            .await
            .expect("prepare the raw batch insert");
        RawBatch { insert }
    }

    /// Inserts `events` as versions 1, 2, … of `stream`; the rows inserted.
    async fn insert(&self, client: &Client, stream: &str, events: &[NewEvent]) -> u64 {
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let names: Vec<&str> = events.iter().map(|e| e.event_name.as_ref()).collect();
        let versions: Vec<i32> = events.iter().map(|e| e.event_version as i32).collect();
        let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
        let correlations: Vec<Option<Uuid>> = events.iter().map(|e| e.correlation_id).collect();
        let causations: Vec<Option<Uuid>> = events.iter().map(|e| e.causation_id).collect();
        client
            .execute(
                &self.insert,
                &[
                    &stream,
                    &ids,
                    &names,
                    &versions,
                    &payloads,
                    &correlations,
                    &causations,
                ],
            )
            .await
            .expect("raw batch insert")
    }
}

pub(crate) async fn app(store: PostgresStore) -> Cqrs<PostgresStore> {
    Cqrs::builder(store)
        .service(Limits {
            max_withdrawal: u64::MAX,
        })
        .build()
        .await
        .expect("the bank wiring is valid")
}

/// Opens each account, then deposits `commands_per_account - 1` times into it.
async fn drive_accounts(app: Cqrs<PostgresStore>, accounts: Vec<u64>, commands_per_account: u64) {
    for id in accounts {
        let account = AccountId(id);
        app.execute(OpenAccount {
            account,
            owner: String::new(),
        })
        .await
        .expect("open");
        for _ in 1..commands_per_account {
            app.execute(Deposit { account, amount: 1 })
                .await
                .expect("deposit");
        }
    }
}

async fn check_balance(app: &Cqrs<PostgresStore>, id: u64, expected: u64) {
    let (account, version) = app
        .load::<Account>(&AccountId(id))
        .await
        .expect("the account loads");
    assert_eq!(
        (account.balance(), version),
        (expected, expected + 1),
        "account {id} lost or duplicated a deposit"
    );
}

fn deposit_event(amount: u64) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: "account.deposited".into(),
        event_version: 1,
        payload: Payload::from_json(format!(r#"{{"amount":{amount}}}"#)),
        correlation_id: Some(new_id()),
        causation_id: Some(new_id()),
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

/// One round of every workload on a fresh schema.
pub async fn round(url: &str, sizes: Sizes) -> Round {
    let schema = format!("cqrs_bench_{}", new_id().simple());
    let admin = connect(url).await;
    let store = PostgresStore::open(
        PostgresConfig::new(url)
            .schema(&schema)
            .pool_size(sizes.clients as usize),
    )
    .await
    .expect("open the store");
    let raw_table = create_raw_table(&admin, &schema).await;
    let commands = sizes.commands();
    let mut r = Round::default();
    // Raw and framework runs alternate (account by account, or one account per client for the
    // concurrent workloads), so that a slower moment of the machine (fsync latency on a VM
    // varies) weighs on both alike.
    let chunks: Vec<Vec<u64>> = (0..sizes.accounts)
        .collect::<Vec<_>>()
        .chunks(sizes.clients as usize)
        .map(<[u64]>::to_vec)
        .collect();

    // One client, and one long stream in slices in between: the aggregate cache keeps a
    // command's cost independent of its stream's length. They alternate account by account
    // and take turns going first (whichever ran first after the others measured a few per
    // cent faster, and coarser alternation left a bias of that size).
    let app_one = app(store.clone()).await;
    let raw_one = Raw::connect(url, &raw_table).await;
    let long = AccountId(2_000_000);
    let (mut raw_time, mut cqrs_time, mut long_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let singles: Vec<Vec<u64>> = (0..sizes.accounts).map(|a| vec![a]).collect();
    let slice = |c: usize| c as u64 * sizes.long_stream / singles.len() as u64;
    for (c, accounts) in singles.iter().enumerate() {
        for step in (0..3).map(|k| (c + k) % 3) {
            let started = Instant::now();
            match step {
                0 => {
                    let rows = accounts.len() as u64 * sizes.commands_per_account;
                    raw_one.inserts(c as u64, rows).await;
                    raw_time += started.elapsed();
                }
                1 => {
                    let accounts = accounts.clone();
                    drive_accounts(app_one.clone(), accounts, sizes.commands_per_account).await;
                    cqrs_time += started.elapsed();
                }
                _ => {
                    for n in slice(c)..slice(c + 1) {
                        if n == 0 {
                            let owner = String::new();
                            let open = OpenAccount {
                                account: long,
                                owner,
                            };
                            app_one.execute(open).await.expect("open");
                        } else {
                            let deposit = Deposit {
                                account: long,
                                amount: 1,
                            };
                            app_one.execute(deposit).await.expect("deposit");
                        }
                    }
                    long_time += started.elapsed();
                }
            }
        }
    }
    r.raw_one = rate(commands, raw_time);
    r.long_stream = rate(sizes.long_stream, long_time);
    check_balance(&app_one, long.0, sizes.long_stream - 1).await;
    r.cqrs_one = rate(commands, cqrs_time);
    for id in [0, sizes.accounts - 1] {
        check_balance(&app_one, id, sizes.commands_per_account - 1).await;
    }

    // Many clients, each on its own accounts (and its own raw connection).
    let mut raw_clients = Vec::new();
    for _ in 0..sizes.clients {
        raw_clients.push(Arc::new(Raw::connect(url, &raw_table).await));
    }
    let app_many = app(store.clone()).await;
    let first = 1_000_000;
    let (mut raw_time, mut cqrs_time) = (Duration::ZERO, Duration::ZERO);
    for (c, accounts) in chunks.iter().enumerate() {
        for raw_turn in [c % 2 == 0, c % 2 == 1] {
            let started = Instant::now();
            let mut tasks = JoinSet::new();
            if raw_turn {
                for (k, client) in raw_clients.iter().enumerate() {
                    let client = Arc::clone(client);
                    let mine = accounts
                        .iter()
                        .filter(|id| *id % sizes.clients == k as u64)
                        .count() as u64;
                    let tag = 1_000 * (1 + k as u64) + c as u64;
                    tasks.spawn(async move {
                        client.inserts(tag, mine * sizes.commands_per_account).await;
                    });
                }
                tasks.join_all().await;
                raw_time += started.elapsed();
            } else {
                for k in 0..sizes.clients {
                    let mine = accounts
                        .iter()
                        .filter(|id| *id % sizes.clients == k)
                        .map(|id| first + id)
                        .collect();
                    let app = app_many.clone();
                    tasks.spawn(drive_accounts(app, mine, sizes.commands_per_account));
                }
                tasks.join_all().await;
                cqrs_time += started.elapsed();
            }
        }
    }
    r.raw_many = rate(commands, raw_time);
    r.cqrs_many = rate(commands, cqrs_time);
    for id in [first, first + sizes.accounts - 1] {
        check_balance(&app_many, id, sizes.commands_per_account - 1).await;
    }

    // Batches of events, one append each, alternating batch by batch (and which goes first)
    // with a raw multi-row insert of the same rows into the raw table.
    let batches: Vec<Vec<NewEvent>> = (0..sizes.batches)
        .map(|_| (0..sizes.batch_events).map(|_| deposit_event(1)).collect())
        .collect();
    let raw_batch = RawBatch::prepare(&admin, &raw_table).await;
    let (mut ours_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
    for (i, batch) in batches.into_iter().enumerate() {
        for ours in [i % 2 == 0, i % 2 == 1] {
            let events = batch.clone();
            let stream = StreamId::from(format!("batch-{i}"));
            let started = Instant::now();
            if ours {
                let recorded = store
                    .append(&stream, ExpectedVersion::NoStream, events)
                    .await
                    .expect("batch append");
                assert_eq!(recorded.len(), sizes.batch_events);
                ours_time += started.elapsed();
            } else {
                let inserted = raw_batch.insert(&admin, stream.as_str(), &events).await;
                assert_eq!(inserted, sizes.batch_events as u64);
                raw_time += started.elapsed();
            }
        }
    }
    let appended = (sizes.batches * sizes.batch_events) as u64;
    r.batch_append = rate(appended, ours_time);
    r.raw_batch = rate(appended, raw_time);

    // Catch-up: everything from position 0, in batches.
    let total: i64 = admin
        .query_one(&format!("SELECT count(*) FROM \"{schema}\".events"), &[])
        .await
        .expect("count")
        .get(0);
    let started = Instant::now();
    let mut from = Position::ZERO;
    let mut read = 0u64;
    loop {
        let batch = store
            .read_all(from, sizes.read_batch)
            .await
            .expect("read_all");
        let Some(last) = batch.last() else { break };
        from = last.meta.position.next();
        read += batch.len() as u64;
    }
    r.read_all = rate(read, started.elapsed());
    assert_eq!(read, total as u64, "read_all returned every stored event");

    drop((app_one, app_many, store));
    admin
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .expect("drop the benchmark schema");
    r
}

/// The rates of one round of the peer (`cqrs-es` with `postgres-es`) on workloads (c), (d)
/// and (e).
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerRound {
    /// Commands, one client.
    pub one: f64,
    /// Commands, `clients` clients on distinct accounts.
    pub many: f64,
    /// Commands on one long stream.
    pub long_stream: f64,
}

/// Another framework running the PostgreSQL workloads (c), (d) and (e) with the bank domain:
/// the same commands and sizes as [`round`], its result checked, in a schema of its own.
///
/// The peer itself is a dev-dependency of this crate, so its implementation lives in the bench
/// target (`cargo bench -p cqrs-bench --bench suite`).
pub trait PostgresPeer {
    /// One round of the three workloads on the database at `url`.
    fn round(&self, url: &str, sizes: Sizes) -> impl Future<Output = PeerRound>;
}

/// No peer: only our own rows.
struct NoPeer;

impl PostgresPeer for NoPeer {
    async fn round(&self, _: &str, _: Sizes) -> PeerRound {
        unreachable!("never called")
    }
}

/// Runs every workload `mode.rounds()` times and returns the rows (medians); none, after a
/// printed line, without `CQRS_POSTGRES_URL`.
pub async fn run(mode: crate::Mode) -> Vec<crate::Row> {
    run_with(mode, None::<&NoPeer>).await
}

/// As [`run`], with the peer's round after ours in even rounds and before it in odd ones, and
/// the peer's medians beside ours on (c), (d) and (e).
pub async fn run_against(mode: crate::Mode, peer: &impl PostgresPeer) -> Vec<crate::Row> {
    run_with(mode, Some(peer)).await
}

async fn run_with<P: PostgresPeer>(mode: crate::Mode, peer: Option<&P>) -> Vec<crate::Row> {
    let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) else {
        eprintln!("SKIPPED: PostgreSQL benchmarks: {URL_VAR} is not set");
        return Vec::new();
    };
    let sizes = match mode {
        crate::Mode::Full => Sizes::FULL,
        crate::Mode::Quick => Sizes::QUICK,
    };
    let (mut rounds, mut peer_rounds) = (Vec::new(), Vec::new());
    for i in 0..mode.rounds() {
        if let Some(peer) = peer
            && i % 2 == 1
        {
            peer_rounds.push(peer.round(&url, sizes).await);
        }
        rounds.push(round(&url, sizes).await);
        if let Some(peer) = peer
            && i % 2 == 0
        {
            peer_rounds.push(peer.round(&url, sizes).await);
        }
    }
    let peer_median = |f: fn(&PeerRound) -> f64| {
        peer.map(|_| crate::median(&mut peer_rounds.iter().map(f).collect::<Vec<_>>()))
    };
    let with_peer = |target: &str, vs_peer: &str| {
        if peer.is_some() {
            format!("{target}; {vs_peer}")
        } else {
            target.to_owned()
        }
    };
    let median_of =
        |f: fn(&Round) -> f64| crate::median(&mut rounds.iter().map(f).collect::<Vec<_>>());
    let row = |workload: String,
               rate: f64,
               unit: &'static str,
               baseline: Option<(String, f64)>,
               peer: Option<f64>,
               target: String| {
        crate::Row {
            workload,
            rate,
            unit,
            baseline,
            peer,
            target,
        }
    };
    let one = median_of(|r| r.cqrs_one);
    vec![
        row(
            format!(
                "(pg) {} accounts x {} commands, 1 client",
                sizes.accounts, sizes.commands_per_account
            ),
            one,
            "commands/s",
            Some(("raw insert tx, 1 client".into(), median_of(|r| r.raw_one))),
            peer_median(|r| r.one),
            with_peer(">= 90% of raw", ">= 3x the peer"),
        ),
        row(
            format!("(pg) same, {} clients on distinct accounts", sizes.clients),
            median_of(|r| r.cqrs_many),
            "commands/s",
            Some((
                format!("raw insert tx, {} clients", sizes.clients),
                median_of(|r| r.raw_many),
            )),
            peer_median(|r| r.many),
            ">= 85% of raw".to_owned(),
        ),
        row(
            format!("(pg) 1 stream x {} commands", sizes.long_stream),
            median_of(|r| r.long_stream),
            "commands/s",
            Some(("the 1-client row above".into(), one)),
            peer_median(|r| r.long_stream),
            with_peer(">= 100% of the 1-client row", ">= 10x the peer"),
        ),
        row(
            format!(
                "(pg) batch append, {} events per append",
                sizes.batch_events
            ),
            median_of(|r| r.batch_append),
            "events/s",
            Some((
                "raw multi-row insert of the same rows".into(),
                median_of(|r| r.raw_batch),
            )),
            None,
            ">= 80% of raw and >= 150,000/s".to_owned(),
        ),
        row(
            format!("(pg) read_all catch-up, {} per read", sizes.read_batch),
            median_of(|r| r.read_all),
            "events/s",
            None,
            None,
            ">= 200,000/s".to_owned(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn quick_mode_runs_and_checks_its_results() {
        let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) else {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: quick_mode_runs_and_checks_its_results: {URL_VAR} is not set"
            );
            return;
        };
        // `round` asserts balances, versions and the read-all count itself.
        let r = round(&url, Sizes::QUICK).await;
        for (name, rate) in [
            ("raw_one", r.raw_one),
            ("cqrs_one", r.cqrs_one),
            ("raw_many", r.raw_many),
            ("cqrs_many", r.cqrs_many),
            ("long_stream", r.long_stream),
            ("batch_append", r.batch_append),
            ("raw_batch", r.raw_batch),
            ("read_all", r.read_all),
        ] {
            assert!(rate.is_finite() && rate > 0.0, "{name}: {rate}");
        }
        let rows = run(crate::Mode::Quick).await;
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|row| row.rate > 0.0));
    }
}

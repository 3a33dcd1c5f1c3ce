//! Read-side workloads: how fast projections catch up with stored events, how fast an
//! exactly-once SQL projection applies them, and how long a live projection lags behind
//! commands.
//!
//! - **Catch-up (PostgreSQL → memory)**: a fresh schema is pre-filled with batch appends (bank
//!   accounts: one `account.opened`, then deposits of known amounts), then timed twice, in
//!   alternating rounds: a [`ProjectionRunner`] with a [`MemorySink`] over [`Sums`] (a durable
//!   projection without a unit) from `spawn` until `wait_for(head)`, and the start-up path,
//!   `Cqrs::builder(store).projection(Balances).build()`. Both results are checked against the
//!   appended amounts.
//! - **Exactly-once SQL projections**: one upsert per event, batches of 512, each batch one
//!   transaction with the checkpoint ([`PgSink`] on PostgreSQL, [`SqliteSink`] on SQLite); the
//!   table is checked afterwards.
//! - **Live lag**: commands paced at a steady rate (open loop: each command is a task started
//!   on schedule, whatever the latency of the ones before) through `Cqrs::execute` on one
//!   `PostgresStore`, while a runner over a *second* `PostgresStore` (as another process would
//!   be: it hears of commits through `LISTEN`/`NOTIFY` only) follows live. The lag of an event
//!   is the time from the moment its command's `execute` returned (the commit, acknowledged)
//!   to the moment the projection had it (see [`LagSink`]).
//!
//! PostgreSQL rows need `CQRS_POSTGRES_URL` (skipped with a printed line without it); the SQLite
//! row runs on a temporary file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bank::{AccountId, Balances, Deposit, GetBalance, Limits, MoneyDeposited, TotalHoldings};
use eventweave_core::runner::{MemorySink, ProjectionRunner};
use eventweave_core::{
    CommandError, Cqrs, EventMeta, EventStore, ExpectedVersion, NewEvent, Payload, Position,
    StreamId, UserMetadata, new_id, projection,
};
use eventweave_postgres::{PgSink, PgTx, PostgresConfig, PostgresStore, params};
use eventweave_sqlite::{SqliteSink, SqliteStore, SqliteTx, rusqlite};
use tokio::task::JoinSet;
use tokio_postgres::types::ToSql;

use crate::cpu::{backends_cpu, thread_cpu};
use crate::postgres::URL_VAR;

/// How the read-side rows are measured, for the table's heading.
pub const ROUNDS: &str = "read-side rows: catch-up median of 3 rounds on one pre-filled \
     schema (1 in quick mode), the others one run each";

/// One run's sizes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Events pre-filled for the catch-up rows.
    pub catch_up_events: u64,
    /// Timed catch-up rounds on the pre-filled store (median reported).
    pub catch_up_rounds: usize,
    /// Events pre-filled for the exactly-once SQL rows.
    pub sql_events: u64,
    /// Events per stream (and per batch append) when pre-filling.
    pub per_stream: u64,
    /// Events per `apply` of the SQL sinks (and per read of every runner).
    pub batch: usize,
    /// Commands per second in the lag rows.
    pub lag_rate: u64,
    /// How long the lag rows drive commands.
    pub lag_duration: Duration,
    /// Accounts the lag rows' commands deposit into (round robin).
    pub lag_accounts: u64,
}

impl Sizes {
    /// The sizes the issue sets: 1,000,000 events caught up, 200,000 through the SQL sinks,
    /// 2,000 commands/s for 10 s.
    pub const FULL: Sizes = Sizes {
        catch_up_events: 1_000_000,
        catch_up_rounds: 3,
        sql_events: 200_000,
        per_stream: 1_000,
        batch: 512,
        lag_rate: 2_000,
        lag_duration: Duration::from_secs(10),
        lag_accounts: 200,
    };
    /// Tiny sizes for `cargo test`.
    pub const QUICK: Sizes = Sizes {
        catch_up_events: 2_000,
        catch_up_rounds: 1,
        sql_events: 2_000,
        per_stream: 100,
        batch: 512,
        lag_rate: 500,
        lag_duration: Duration::from_secs(1),
        lag_accounts: 20,
    };

    /// Medium sizes for a busy machine (a tenth of the events, 3 s of lag): `--medium`.
    pub const MEDIUM: Sizes = Sizes {
        catch_up_events: 100_000,
        catch_up_rounds: 3,
        sql_events: 20_000,
        per_stream: 1_000,
        batch: 512,
        lag_rate: 2_000,
        lag_duration: Duration::from_secs(3),
        lag_accounts: 200,
    };
}

/// The stream of pre-filled account `k`.
fn stream_of(k: u64) -> StreamId {
    StreamId::from(format!("account-{k}"))
}

/// The amount of the `j`-th deposit (from 1) into account `k`: 1 to 7, so a lost or doubled
/// event changes the sums.
pub fn amount(k: u64, j: u64) -> u64 {
    1 + (k + j) % 7
}

/// A new event of `name` with `payload` (JSON) and fresh ids.
pub(crate) fn stored(name: &'static str, payload: String) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: name.into(),
        event_version: 1,
        payload: Payload::from_json(payload),
        correlation_id: Some(new_id()),
        causation_id: Some(new_id()),
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

/// What a pre-filled store holds: per account, the sum of its deposits, and the head.
#[derive(Debug)]
pub struct Filled {
    /// The sum of the deposits of account `k`, at index `k`.
    pub sums: Vec<u64>,
    /// Events appended.
    pub events: u64,
    /// Deposit events appended.
    pub deposits: u64,
    /// The store's head after the fill.
    pub head: Position,
}

/// Appends `events` events in batches, one stream (`account-k`) per batch append of
/// `per_stream` events: an `account.opened`, then deposits of [`amount`]s.
pub async fn fill<S: EventStore>(store: &S, events: u64, per_stream: u64) -> Filled {
    let mut sums = Vec::new();
    let mut appended = 0;
    let mut deposits = 0;
    for k in 0..events.div_ceil(per_stream) {
        let len = per_stream.min(events - appended);
        let mut batch = Vec::with_capacity(len as usize);
        batch.push(stored("account.opened", r#"{"owner":""}"#.to_owned()));
        let mut sum = 0;
        for j in 1..len {
            sum += amount(k, j);
            batch.push(stored(
                "account.deposited",
                format!(r#"{{"amount":{}}}"#, amount(k, j)),
            ));
        }
        store
            .append(&stream_of(k), ExpectedVersion::NoStream, batch)
            .await
            .expect("pre-fill append");
        sums.push(sum);
        appended += len;
        deposits += len - 1;
    }
    let head = store.head().await.expect("head");
    Filled {
        sums,
        events: appended,
        deposits,
        head,
    }
}

/// Deposits per account stream, summed in memory: a durable projection with no unit of work
/// (its handler is `async`), so it runs under a [`MemorySink`].
#[derive(Default)]
pub struct Sums {
    /// Per stream, the sum of its deposits.
    pub by_stream: HashMap<StreamId, u64>,
    /// Deposits handled.
    pub deposits: u64,
}

#[projection(name = "bench_sums")]
impl Sums {
    async fn on_deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta) {
        *self.by_stream.entry(meta.stream.clone()).or_default() += e.amount;
        self.deposits += 1;
    }
}

impl Sums {
    /// Panics unless the sums are those appended.
    pub fn check(&self, filled: &Filled) {
        assert_eq!(self.deposits, filled.deposits, "every deposit handled once");
        for (k, sum) in filled.sums.iter().enumerate() {
            let found = self.by_stream.get(&stream_of(k as u64)).copied();
            assert_eq!(found.unwrap_or(0), *sum, "sum of account {k}");
        }
    }
}

/// One event rate: a count and the time it took.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// Events.
    pub events: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// A [`ProjectionRunner`] with a [`MemorySink`] over [`Sums`], from `spawn` until its
/// checkpoint reaches the head; checked.
pub async fn runner_catch_up<S: EventStore>(store: &S, filled: &Filled, batch: usize) -> Run {
    let started = Instant::now();
    let running = ProjectionRunner::new(store.clone(), MemorySink::new(Sums::default()))
        .batch_size(batch)
        .spawn();
    running
        .wait_for(filled.head, Duration::from_secs(600))
        .await
        .expect("the runner catches up");
    let elapsed = started.elapsed();
    let sink = running.stop().await;
    sink.projection().check(filled);
    Run {
        events: filled.events,
        elapsed,
    }
}

/// The start-up path: `Cqrs::builder(store).projection(Balances).build()` folds every stored
/// event into the bank's balances before it returns; checked.
pub async fn build_catch_up<S: EventStore>(store: &S, filled: &Filled) -> Run {
    let started = Instant::now();
    let app = Cqrs::builder(store.clone())
        .projection(Balances::default())
        .build()
        .await
        .expect("the application builds");
    let elapsed = started.elapsed();
    assert_eq!(app.position(), filled.head, "every event applied");
    let total: u64 = filled.sums.iter().sum();
    assert_eq!(app.query(TotalHoldings).await.unwrap(), total);
    let last = filled.sums.len() as u64 - 1;
    let balance = app
        .query(GetBalance {
            account: AccountId(last),
        })
        .await
        .unwrap();
    assert_eq!(balance, Some(filled.sums[last as usize]));
    Run {
        events: filled.events,
        elapsed,
    }
}

/// The sums of [`Sums`] in a PostgreSQL table, one upsert per deposit through the batch's
/// transaction ([`PgTx`]): exactly once under a [`PgSink`]. The upserts are staged
/// ([`PgTx::stage`], sent pipelined before the checkpoint moves) unless [`awaited`](Self::awaited).
pub struct PgSums {
    upsert: String,
    staged: bool,
}

impl PgSums {
    /// Creates the table `sums` in `schema` of the database at `url` (empty) and a projection
    /// writing to it, staging its upserts.
    pub async fn create(url: &str, schema: &str) -> PgSums {
        let admin = crate::postgres::connect(url).await;
        admin
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS \"{schema}\".sums \
                 (stream text PRIMARY KEY, total bigint NOT NULL, events bigint NOT NULL)"
            ))
            .await
            .expect("create the sums table");
        PgSums {
            upsert: format!(
                "INSERT INTO \"{schema}\".sums AS s (stream, total, events) VALUES ($1, $2, 1) \
                 ON CONFLICT (stream) DO UPDATE SET total = s.total + $2, events = s.events + 1"
            ),
            staged: true,
        }
    }

    /// The same projection awaiting each upsert (one round trip per event).
    pub fn awaited(self) -> PgSums {
        PgSums {
            staged: false,
            ..self
        }
    }
}

#[projection(name = "bench_pg_sums")]
impl PgSums {
    async fn on_deposited(
        &mut self,
        e: &MoneyDeposited,
        meta: &EventMeta,
        db: &PgTx,
    ) -> Result<(), tokio_postgres::Error> {
        let total = e.amount as i64;
        if self.staged {
            db.stage(&self.upsert, params![meta.stream.to_string(), total]);
            Ok(())
        } else {
            db.execute(&self.upsert, &[&meta.stream.as_str(), &total])
                .await
                .map(drop)
        }
    }
}

/// Panics unless `table` (columns `stream`, `total`, `events`) holds the appended sums.
async fn check_pg_table(url: &str, table: &str, filled: &Filled) {
    let client = crate::postgres::connect(url).await;
    let rows = client
        .query(&format!("SELECT stream, total, events FROM {table}"), &[])
        .await
        .expect("read the sums table");
    let mut events = 0;
    let mut found = HashMap::new();
    for row in rows {
        let (stream, total, n): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        events += n as u64;
        found.insert(stream, total as u64);
    }
    assert_eq!(
        events, filled.deposits,
        "every deposit applied exactly once"
    );
    for (k, sum) in filled.sums.iter().enumerate() {
        let stream = stream_of(k as u64);
        assert_eq!(found.get(stream.as_str()), Some(sum), "sum of account {k}");
    }
}

/// The same sums in a SQLite table, through [`SqliteTx`]: exactly once under a
/// [`SqliteSink`].
pub struct SqliteSums;

const SQLITE_UPSERT: &str = "INSERT INTO sums (stream, total, events) VALUES (?1, ?2, 1) \
     ON CONFLICT (stream) DO UPDATE SET total = total + excluded.total, events = events + 1";

#[projection(name = "bench_sqlite_sums")]
impl SqliteSums {
    fn on_deposited(
        &mut self,
        e: &MoneyDeposited,
        meta: &EventMeta,
        db: &SqliteTx,
    ) -> Result<(), rusqlite::Error> {
        db.execute(SQLITE_UPSERT, (meta.stream.as_str(), e.amount as i64))
            .map(drop)
    }
}

/// A [`PgSink`] over [`PgSums`] (upserts staged, or awaited) on a fresh schema pre-filled with
/// `sizes.sql_events` events, from `spawn` until its checkpoint reaches the head, beside the
/// baseline ([`pg_raw_upserts`], pipelined when the upserts are staged, run before and after
/// it; the mean of the two is returned); every table is checked.
pub async fn pg_sink(url: &str, sizes: Sizes, staged: bool) -> (Run, Run) {
    let (store, schema) = fresh_store(url, 4).await;
    let filled = fill(&store, sizes.sql_events, sizes.per_stream).await;
    let before = pg_raw_upserts(url, &store, &schema, &filled, sizes.batch, staged).await;
    let projection = PgSums::create(url, &schema).await;
    let projection = if staged {
        projection
    } else {
        projection.awaited()
    };
    let started = Instant::now();
    let running = ProjectionRunner::new(store.clone(), PgSink::new(&store, projection))
        .batch_size(sizes.batch)
        .spawn();
    running
        .wait_for(filled.head, Duration::from_secs(600))
        .await
        .expect("the PgSink catches up");
    let elapsed = started.elapsed();
    running.stop().await;
    check_pg_table(url, &format!("\"{schema}\".sums"), &filled).await;
    let after = pg_raw_upserts(url, &store, &schema, &filled, sizes.batch, staged).await;
    drop_schema(url, store, &schema).await;
    let sink = Run {
        events: filled.events,
        elapsed,
    };
    (
        sink,
        Run {
            events: filled.events,
            elapsed: (before.elapsed + after.elapsed) / 2,
        },
    )
}

/// The baseline of the PgSink rows: the same reads (`read_all`, `batch` events each) and the
/// same upserts (each deposit decoded, one upsert per event) by hand with tokio-postgres, one
/// transaction per batch, into a fresh table `raw_sums`; no runner, no checkpoint, no fence.
/// The upserts are awaited in turn, or, `pipelined`, polled together after the batch is
/// decoded (as `PgSink` sends staged statements). Checked.
pub async fn pg_raw_upserts(
    url: &str,
    store: &PostgresStore,
    schema: &str,
    filled: &Filled,
    batch: usize,
    pipelined: bool,
) -> Run {
    let mut client = crate::postgres::connect(url).await;
    let table = format!("\"{schema}\".raw_sums");
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} \
             (stream text PRIMARY KEY, total bigint NOT NULL, events bigint NOT NULL)"
        ))
        .await
        .expect("create the raw table");
    let upsert = client
        .prepare(&format!(
            "INSERT INTO {table} AS s (stream, total, events) VALUES ($1, $2, 1) \
             ON CONFLICT (stream) DO UPDATE SET total = s.total + $2, events = s.events + 1"
        ))
        .await
        .expect("prepare the upsert");
    let started = Instant::now();
    let mut from = Position(1);
    loop {
        let events = store.read_all(from, batch).await.expect("read_all");
        let Some(last) = events.last() else { break };
        from = last.meta.position.next();
        let tx = client.transaction().await.expect("begin");
        let mut rows = Vec::with_capacity(events.len());
        for event in &events {
            let deposit = eventweave_core::EventRef::stored(event).decode::<MoneyDeposited>();
            if let Some(deposit) = deposit.expect("a deposit decodes") {
                let total = deposit.amount as i64;
                if pipelined {
                    rows.push((event.meta.stream.as_str(), total));
                } else {
                    tx.execute(&upsert, &[&event.meta.stream.as_str(), &total])
                        .await
                        .expect("upsert");
                }
            }
        }
        let params: Vec<[&(dyn ToSql + Sync); 2]> = rows
            .iter()
            .map(|(stream, total)| [stream as &(dyn ToSql + Sync), total])
            .collect();
        let upserts = params.iter().map(|p| tx.execute(&upsert, p));
        for done in futures_util::future::join_all(upserts).await {
            done.expect("upsert");
        }
        tx.commit().await.expect("commit");
    }
    let elapsed = started.elapsed();
    check_pg_table(url, &table, filled).await;
    Run {
        events: filled.events,
        elapsed,
    }
}

/// A [`SqliteSink`] over [`SqliteSums`] on a temporary store pre-filled with
/// `sizes.sql_events` events, from `spawn` until its checkpoint reaches the head; checked.
pub async fn sqlite_sink(sizes: Sizes) -> Run {
    let store = SqliteStore::temporary().expect("a temporary store");
    let filled = fill(&store, sizes.sql_events, sizes.per_stream).await;
    let sink = SqliteSink::new(&store, SqliteSums).expect("the sink opens");
    sink.unit()
        .execute(
            "CREATE TABLE sums (stream TEXT PRIMARY KEY, total INTEGER NOT NULL, \
             events INTEGER NOT NULL)",
            [],
        )
        .expect("create the sums table");
    let started = Instant::now();
    let running = ProjectionRunner::new(store.clone(), sink)
        .batch_size(sizes.batch)
        .spawn();
    running
        .wait_for(filled.head, Duration::from_secs(600))
        .await
        .expect("the SqliteSink catches up");
    let elapsed = started.elapsed();
    let sink = running.stop().await;
    let mut events = 0;
    let mut found = HashMap::new();
    sink.unit().with(|conn| {
        let mut statement = conn
            .prepare("SELECT stream, total, events FROM sums")
            .unwrap();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let (stream, total, n): (String, i64, i64) = (
                row.get(0).unwrap(),
                row.get(1).unwrap(),
                row.get(2).unwrap(),
            );
            events += n as u64;
            found.insert(stream, total as u64);
        }
    });
    assert_eq!(
        events, filled.deposits,
        "every deposit applied exactly once"
    );
    for (k, sum) in filled.sums.iter().enumerate() {
        let stream = stream_of(k as u64);
        assert_eq!(found.get(stream.as_str()), Some(sum), "sum of account {k}");
    }
    Run {
        events: filled.events,
        elapsed,
    }
}

async fn fresh_store(url: &str, pool: usize) -> (PostgresStore, String) {
    let schema = format!("cqrs_bench_read_{}", new_id().simple());
    let store = PostgresStore::open(PostgresConfig::new(url).schema(&schema).pool_size(pool))
        .await
        .expect("open the store");
    (store, schema)
}

async fn drop_schema(url: &str, store: PostgresStore, schema: &str) {
    drop(store);
    crate::postgres::connect(url)
        .await
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .expect("drop the benchmark schema");
}

/// What follows the commands live in the lag rows, and when an event counts as projected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LagSink {
    /// A [`MemorySink`] whose handler records `Instant::now()` per event: the event is
    /// projected when its handler ran (the state is visible to queries at once).
    Memory,
    /// A [`PgSink`] upserting one row per event: the event is projected when the runner
    /// published a checkpoint at or past it, i.e. after its batch's transaction committed
    /// (read-your-writes: what `wait_for` waits for).
    Pg,
}

/// The handled time of each deposit, by position (the lag rows' memory projection).
#[derive(Clone, Default)]
pub struct LagProbe {
    /// `(position, when the handler ran)`, in handling order.
    pub handled: Arc<Mutex<Vec<(u64, Instant)>>>,
}

#[projection(name = "bench_lag_probe")]
impl LagProbe {
    async fn on_deposited(&mut self, _: &MoneyDeposited, meta: &EventMeta) {
        let now = Instant::now();
        self.handled.lock().unwrap().push((meta.position.0, now));
    }
}

/// The result of one lag run.
#[derive(Clone, Copy, Debug)]
pub struct Lag {
    /// Appends refused by another instance during the run (each left a hole).
    pub refused: u64,
    /// Commands that returned (one event each).
    pub commands: u64,
    /// Commands sent again by the client after the framework gave up on conflicts (many
    /// commands on one account in flight when the machine falls behind the open loop). The
    /// lag is measured from the call that succeeded; the command time includes every try.
    pub resent: u64,
    /// Commands per second achieved: commands over the time from the first start to the last
    /// return.
    pub rate: f64,
    /// Median lag.
    pub p50: Duration,
    /// 99th percentile lag.
    pub p99: Duration,
    /// Largest lag.
    pub max: Duration,
    /// Events the projection had before their command's `execute` returned (counted as lag 0).
    pub early: u64,
    /// Median time of a command (`execute` call to return).
    pub command_p50: Duration,
    /// 99th percentile of the time from the `execute` call (before the commit, so an upper
    /// bound of the lag from the commit) to the projection.
    pub p99_from_call: Duration,
}

/// The `q`-quantile (0..=1) of sorted durations, nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What else happens on the server during a lag run (see `stray.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disturbance {
    /// Refused appends per second by another application instance (an `Open` of an account
    /// that exists): each draws a position and rolls back, leaving a hole.
    pub refused_per_sec: u64,
    /// A session of its own holds a transaction id open for the whole run (`BEGIN; SELECT
    /// pg_current_xact_id();`), holding the server's `xmin` back.
    pub stray_transaction: bool,
}

/// Drives deposits at `sizes.lag_rate` per second for `sizes.lag_duration` through
/// `Cqrs::execute` on one store, while a runner on a second store of the same schema follows
/// live; returns the lag of every event from its command's return to its projection.
pub async fn lag(url: &str, sizes: Sizes, sink: LagSink) -> Lag {
    lag_disturbed(url, sizes, sink, Disturbance::default()).await
}

/// [`lag`] with `disturbance` on the server while the commands run. With a stray transaction,
/// `Cqrs::build()` on a fresh store is also checked to reach the head before it ends.
pub async fn lag_disturbed(
    url: &str,
    sizes: Sizes,
    sink: LagSink,
    disturbance: Disturbance,
) -> Lag {
    let (writer, schema) = fresh_store(url, 8).await;
    let app = Cqrs::builder(writer.clone())
        .service(Limits {
            max_withdrawal: u64::MAX,
        })
        .build()
        .await
        .expect("the bank wiring is valid");
    for id in 0..sizes.lag_accounts {
        app.execute(bank::OpenAccount {
            account: AccountId(id),
            owner: String::new(),
        })
        .await
        .expect("open");
    }
    // The reader: another store on the same schema, as in another process (no in-process
    // wake-up from the writer: it hears of commits through NOTIFY, or its poll).
    let reader = PostgresStore::open(PostgresConfig::new(url).schema(&schema).pool_size(4))
        .await
        .expect("open the reading store");
    let probe = LagProbe::default();
    let checkpoints: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let (memory, pg) = match sink {
        LagSink::Memory => {
            let runner = ProjectionRunner::new(reader.clone(), MemorySink::new(probe.clone()));
            (Some(runner.batch_size(sizes.batch).spawn()), None)
        }
        LagSink::Pg => {
            let projection = PgSums::create(url, &schema).await;
            let runner = ProjectionRunner::new(reader.clone(), PgSink::new(&reader, projection));
            (None, Some(Arc::new(runner.batch_size(sizes.batch).spawn())))
        }
    };
    let opened = writer.head().await.expect("head");
    let wait = Duration::from_secs(30);
    match (&memory, &pg) {
        (Some(running), _) => running.wait_for(opened, wait).await.unwrap(),
        (_, Some(running)) => running.wait_for(opened, wait).await.unwrap(),
        _ => unreachable!(),
    }
    // With a PgSink, a watcher records when each checkpoint was published.
    let watcher = pg.as_ref().map(|running| {
        let running = Arc::clone(running);
        let checkpoints = Arc::clone(&checkpoints);
        tokio::spawn(async move {
            let mut seen = running.checkpoint();
            loop {
                if running
                    .wait_for(seen.next(), Duration::from_secs(1))
                    .await
                    .is_ok()
                {
                    seen = running.checkpoint();
                    checkpoints.lock().unwrap().push((seen.0, Instant::now()));
                }
            }
        })
    });

    let stray = match disturbance.stray_transaction {
        true => Some(crate::stray::hold_transaction(url).await),
        false => None,
    };
    let refusals = crate::stray::refuse_opens(
        url,
        &schema,
        disturbance.refused_per_sec,
        sizes.lag_accounts,
    )
    .await;

    // Open loop: command n starts at n / rate seconds, on its own task, whatever the latency
    // of the commands before it (a tick of 1 ms starts those due).
    let total = sizes.lag_rate * sizes.lag_duration.as_millis() as u64 / 1_000;
    let returned: Arc<Mutex<Vec<(u64, Instant, Duration)>>> = Arc::default();
    let resent = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let started = Instant::now();
    let mut issued = 0;
    // More than 5 s of commands in flight means the machine cannot sustain the rate: the
    // backlog would only grow (and conflicts with it), so say so instead of running on.
    let overloaded = (sizes.lag_rate * 5) as usize;
    while issued < total {
        tick.tick().await;
        while let Some(done) = tasks.try_join_next() {
            done.expect("a deposit task");
        }
        assert!(
            tasks.len() <= overloaded,
            "overloaded: {} deposits in flight after {:.1} s at {}/s; this machine (or its \
             current load) cannot sustain the rate, so no lag figure is measured",
            tasks.len(),
            started.elapsed().as_secs_f64(),
            sizes.lag_rate,
        );
        let due = (started.elapsed().as_secs_f64() * sizes.lag_rate as f64) as u64;
        while issued < due.min(total) {
            let app = app.clone();
            let returned = Arc::clone(&returned);
            let account = AccountId(issued % sizes.lag_accounts);
            let resent = Arc::clone(&resent);
            tasks.spawn(async move {
                let called = Instant::now();
                let outcome = loop {
                    match app.execute(Deposit { account, amount: 1 }).await {
                        Ok(outcome) => break outcome,
                        Err(CommandError::Conflict { .. }) => {
                            resent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(other) => panic!("deposit: {other}"),
                    }
                };
                let now = Instant::now();
                returned
                    .lock()
                    .unwrap()
                    .push((outcome.position().0, now, now - called));
            });
            issued += 1;
        }
    }
    tasks.join_all().await;
    let finished = Instant::now();
    let refused = refusals.stop().await;
    let head = writer.head().await.expect("head");
    let projected: HashMap<u64, Instant> = match (memory, pg) {
        (Some(running), _) => {
            running
                .wait_for(head, wait)
                .await
                .expect("the runner follows");
            running.stop().await;
            let handled = probe.handled.lock().unwrap().clone();
            let map: HashMap<u64, Instant> = handled.iter().copied().collect();
            assert_eq!(map.len(), handled.len(), "every deposit handled once");
            map
        }
        (_, Some(running)) => {
            running
                .wait_for(head, wait)
                .await
                .expect("the runner follows");
            let watcher = watcher.expect("a watcher");
            watcher.abort();
            let _ = watcher.await;
            let running = Arc::try_unwrap(running).ok().expect("the watcher ended");
            running.stop().await;
            let published = checkpoints.lock().unwrap().clone();
            let returned = returned.lock().unwrap();
            returned
                .iter()
                .map(|(position, _, _)| {
                    let at = published
                        .iter()
                        .find(|(c, _)| c >= position)
                        .map(|(_, at)| *at)
                        .expect("a checkpoint at or past every event was published");
                    (*position, at)
                })
                .collect()
        }
        _ => unreachable!(),
    };
    let returned = returned.lock().unwrap().clone();
    assert_eq!(returned.len() as u64, total, "every command returned");
    if sink == LagSink::Memory {
        assert_eq!(projected.len() as u64, total, "every deposit projected");
    } else {
        check_pg_lag_table(url, &schema, total).await;
    }
    let mut lags = Vec::with_capacity(returned.len());
    let mut commands = Vec::with_capacity(returned.len());
    let mut from_call = Vec::with_capacity(returned.len());
    let mut early = 0;
    for (position, at, took) in &returned {
        let projected = projected[position];
        if projected < *at {
            early += 1;
        }
        lags.push(projected.saturating_duration_since(*at));
        from_call.push(projected.saturating_duration_since(*at - *took));
        commands.push(*took);
    }
    lags.sort();
    commands.sort();
    from_call.sort();
    if let Some(stray) = stray {
        // Still open: a fresh application instance's start-up must reach the head.
        crate::stray::check_build(url, &schema, head, total).await;
        stray
            .batch_execute("COMMIT")
            .await
            .expect("end the stray transaction");
    }
    drop((app, reader));
    drop_schema(url, writer, &schema).await;
    Lag {
        refused,
        commands: total,
        resent: resent.load(Ordering::Relaxed),
        rate: total as f64 / (finished - started).as_secs_f64(),
        p50: quantile(&lags, 0.5),
        p99: quantile(&lags, 0.99),
        max: quantile(&lags, 1.0),
        early,
        command_p50: quantile(&commands, 0.5),
        p99_from_call: quantile(&from_call, 0.99),
    }
}

/// Panics unless the lag run's `sums` table counted each of the `deposits` once.
async fn check_pg_lag_table(url: &str, schema: &str, deposits: u64) {
    let client = crate::postgres::connect(url).await;
    let row = client
        .query_one(
            &format!("SELECT sum(events)::bigint, sum(total)::bigint FROM \"{schema}\".sums"),
            &[],
        )
        .await
        .expect("read the sums table");
    let (events, total): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (events as u64, total as u64),
        (deposits, deposits),
        "every deposit applied once"
    );
}

/// Another framework catching up with the same events into an in-memory read model (workload
/// (h)): it fills a store of its own with what [`fill`] appends (accounts `0..`, an open, then
/// deposits of [`amount`]s; `events` is a multiple of `per_stream`), then times its replay of
/// every event into its balances and checks them.
///
/// The peer is a dev-dependency of this crate, so its implementation lives in the bench target.
pub trait CatchUpPeer {
    /// One timed catch-up of `events` events on the database at `url`.
    fn catch_up(&self, url: &str, events: u64, per_stream: u64) -> impl Future<Output = Run>;
}

/// No peer: only our own rows.
struct NoPeer;

impl CatchUpPeer for NoPeer {
    async fn catch_up(&self, _: &str, _: u64, _: u64) -> Run {
        unreachable!("never called")
    }
}

fn sizes_of(mode: crate::Mode, medium: bool) -> Sizes {
    match (mode, medium) {
        (crate::Mode::Quick, _) => Sizes::QUICK,
        (crate::Mode::Full, true) => Sizes::MEDIUM,
        (crate::Mode::Full, false) => Sizes::FULL,
    }
}

/// A duration in milliseconds, one decimal.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Runs the read-side workloads and returns their rows (the PostgreSQL ones only with
/// `CQRS_POSTGRES_URL`). `medium` picks [`Sizes::MEDIUM`] in full mode.
pub async fn run(mode: crate::Mode, medium: bool) -> Vec<crate::Row> {
    run_with(mode, medium, None::<&NoPeer>).await
}

/// As [`run`], with the peer's catch-up of the same events beside our two catch-up rows (one
/// peer run per round, between ours).
pub async fn run_against(
    mode: crate::Mode,
    medium: bool,
    peer: &impl CatchUpPeer,
) -> Vec<crate::Row> {
    run_with(mode, medium, Some(peer)).await
}

async fn run_with<P: CatchUpPeer>(
    mode: crate::Mode,
    medium: bool,
    peer: Option<&P>,
) -> Vec<crate::Row> {
    let sizes = sizes_of(mode, medium);
    let mut rows = Vec::new();
    let row = |workload: String, rate: f64, unit, peer, target: &str| crate::Row {
        workload,
        rate,
        unit,
        baseline: None,
        peer,
        target: target.to_owned(),
    };
    let base_row = |workload: String, rate: f64, baseline, target: &str| crate::Row {
        workload,
        rate,
        unit: "events/s",
        baseline: Some(baseline),
        peer: None,
        target: target.to_owned(),
    };
    let url = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty());
    if let Some(url) = &url {
        rows.extend(catch_up_rows(url, sizes, peer).await);
        for staged in [false, true] {
            let (pg, raw) = pg_sink(url, sizes, staged).await;
            let (how, raw_how) = if staged {
                ("upserts staged", "raw pipelined upserts")
            } else {
                ("upserts awaited", "raw upserts")
            };
            rows.push(base_row(
                format!(
                    "(pg) exactly-once SQL projection: PgSink, 1 upsert per event ({how}), {} events, batch {}",
                    pg.events, sizes.batch
                ),
                pg.rate(),
                (format!("{raw_how}, 1 tx per batch (mean of 2)"), raw.rate()),
                ">= 20,000/s",
            ));
        }
    } else {
        eprintln!("SKIPPED: PostgreSQL read-side benchmarks: {URL_VAR} is not set");
    }
    let lite = sqlite_sink(sizes).await;
    rows.push(row(
        format!(
            "(sqlite) exactly-once SQL projection: SqliteSink, 1 upsert per event, {} events, batch {}",
            lite.events, sizes.batch
        ),
        lite.rate(),
        "events/s",
        None,
        "-",
    ));
    if let Some(url) = &url {
        for sink in [LagSink::Memory, LagSink::Pg] {
            let lag = lag(url, sizes, sink).await;
            let what = match sink {
                LagSink::Memory => "MemorySink, lag to the handler",
                LagSink::Pg => "PgSink, lag to the batch's commit",
            };
            rows.push(row(
                format!(
                    "(pg) live lag at {}/s for {} s ({what}; runner on a 2nd store, NOTIFY): \
                     p50 {}, p99 {}, max {}; from the call p99 {}; command p50 {}; {} early; {} resent after conflicts",
                    sizes.lag_rate,
                    sizes.lag_duration.as_secs(),
                    ms(lag.p50),
                    ms(lag.p99),
                    ms(lag.max),
                    ms(lag.p99_from_call),
                    ms(lag.command_p50),
                    lag.early,
                    lag.resent
                ),
                lag.rate,
                "commands/s",
                None,
                "p99 < 50 ms at 2,000/s",
            ));
        }
    }
    rows
}

/// Only the catch-up rows from PostgreSQL (`cqrs-bench --catch-up`; empty without
/// `CQRS_POSTGRES_URL`): the runner, `build()` and the raw streamed SELECT, in the same rounds.
pub async fn catch_up_only(mode: crate::Mode, medium: bool) -> Vec<crate::Row> {
    let sizes = sizes_of(mode, medium);
    match std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
        Some(url) => catch_up_rows(&url, sizes, None::<&NoPeer>).await,
        None => {
            eprintln!("SKIPPED: PostgreSQL catch-up benchmarks: {URL_VAR} is not set");
            Vec::new()
        }
    }
}

/// `url` with `application_name` set to `name` (a URI or a keyword/value connection string).
fn with_application_name(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
}

/// The backends of the sessions named `name` now.
async fn backends_of(monitor: &tokio_postgres::Client, name: &str) -> Vec<i32> {
    monitor
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .expect("list the store's backends")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The catch-up rows: one pre-filled schema, the paths alternating round by round.
async fn catch_up_rows<P: CatchUpPeer>(
    url: &str,
    sizes: Sizes,
    peer: Option<&P>,
) -> Vec<crate::Row> {
    let row = |workload: String, rate: f64, unit, peer, target: &str| crate::Row {
        workload,
        rate,
        unit,
        baseline: None,
        peer,
        target: target.to_owned(),
    };
    let mut rows = Vec::new();
    // The store's sessions carry a name of their own, so their backends' CPU time can be read.
    let name = format!("cqrs_bench_catch_up_{}", new_id().simple());
    let (store, schema) = fresh_store(&with_application_name(url, &name), 4).await;
    let monitor = crate::postgres::connect(url).await;
    let filled = fill(&store, sizes.catch_up_events, sizes.per_stream).await;
    let (mut runner, mut build, mut peers) = (Vec::new(), Vec::new(), Vec::new());
    let mut raw = Vec::new();
    // This thread's CPU time in each path: on a loaded machine the rates move with who gets
    // the cores, the client's CPU per event much less.
    let (mut build_cpu, mut raw_cpu) = (Duration::ZERO, Duration::ZERO);
    // And the server's: the backends' CPU time in each path (PostgreSQL on this machine).
    let (mut build_server, mut raw_server) = (Duration::ZERO, Duration::ZERO);
    for round in 0..sizes.catch_up_rounds {
        if round % 2 == 1 {
            let server = backends_cpu(&backends_of(&monitor, &name).await);
            let cpu = thread_cpu();
            build.push(build_catch_up(&store, &filled).await.rate());
            build_cpu += thread_cpu().saturating_sub(cpu);
            let after = backends_cpu(&backends_of(&monitor, &name).await);
            build_server += after.saturating_sub(server);
        }
        let cpu = thread_cpu();
        let (raw_run, server) = crate::raw_catch_up::raw_catch_up(url, &schema, &filled).await;
        raw_cpu += thread_cpu().saturating_sub(cpu);
        raw_server += server;
        raw.push(raw_run.rate());
        runner.push(runner_catch_up(&store, &filled, sizes.batch).await.rate());
        if let Some(peer) = peer {
            let run = peer.catch_up(url, filled.events, sizes.per_stream).await;
            peers.push(run.rate());
        }
        if round % 2 == 0 {
            let server = backends_cpu(&backends_of(&monitor, &name).await);
            let cpu = thread_cpu();
            build.push(build_catch_up(&store, &filled).await.rate());
            build_cpu += thread_cpu().saturating_sub(cpu);
            let after = backends_cpu(&backends_of(&monitor, &name).await);
            build_server += after.saturating_sub(server);
        }
    }
    let per_event = |cpu: Duration| {
        cpu.as_nanos() as f64 / (filled.events * sizes.catch_up_rounds as u64) as f64
    };
    eprintln!(
        "catch-up client CPU per event (this thread, its connections' tasks included): \
         build() {:.0} ns, raw streamed SELECT {:.0} ns ({:.2}x)",
        per_event(build_cpu),
        per_event(raw_cpu),
        per_event(build_cpu) / per_event(raw_cpu)
    );
    if !raw_server.is_zero() {
        eprintln!(
            "catch-up server CPU per event (the sessions' backends, PostgreSQL on this \
             machine): build() {:.0} ns, raw streamed SELECT {:.0} ns ({:.2}x)",
            per_event(build_server),
            per_event(raw_server),
            per_event(build_server) / per_event(raw_server)
        );
    }
    drop(monitor);
    drop_schema(url, store, &schema).await;
    let peer_rate = peer.map(|_| crate::median(&mut peers));
    rows.push(row(
        format!(
            "(pg) catch-up of {} events: ProjectionRunner + MemorySink (sums per stream), batch {}",
            filled.events, sizes.batch
        ),
        crate::median(&mut runner),
        "events/s",
        peer_rate,
        ">= 200,000/s",
    ));
    rows.push(
        row(
            format!(
                "(pg) catch-up of {} events: Cqrs::builder().projection(Balances).build()",
                filled.events
            ),
            crate::median(&mut build),
            "events/s",
            peer_rate,
            ">= 80% of raw, >= 1,000,000/s, >= 3x the peer",
        )
        .with_baseline(Some((
            "raw streamed SELECT into the same map".to_owned(),
            crate::median(&mut raw),
        ))),
    );
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventweave_core::MemoryStore;

    #[tokio::test(flavor = "current_thread")]
    async fn catch_up_over_memory_checks_its_sums() {
        let store = MemoryStore::new();
        let filled = fill(&store, 1_050, 100).await;
        assert_eq!((filled.events, filled.deposits), (1_050, 1_050 - 11));
        assert_eq!(filled.head, Position(1_050));
        assert_eq!(runner_catch_up(&store, &filled, 64).await.events, 1_050);
        assert_eq!(build_catch_up(&store, &filled).await.events, 1_050);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_sqlite_sink_row_checks_its_table() {
        assert_eq!(sqlite_sink(Sizes::QUICK).await.events, 2_000);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&d, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&d, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}

//! Segmented durable projections (issue 14 part 2): the awaited-`PgSink` workload (one upsert
//! awaited per event, so one round trip per event bounds it) run by 1 segment and by 4
//! segments (4 runner tasks in this process, `SegmentedRunner` with `LocalLease`), 7 rounds each
//! alternating on one pre-filled schema. Target: 4 segments at least 3x one.
//!
//! Each round empties the read model, sets the projection back to the layout 1 at position 0
//! and, for 4 segments, splits it with `resegment` (nothing to catch up at 0) before the
//! clock starts; the clock stops when every segment's checkpoint is at the head. The table is
//! checked after every round (each deposit applied exactly once).
//!
//! Beside the rates, the row gives each layout's CPU time per event (this process + every
//! local `postgres` process) and the cores it kept busy on average: on a machine whose server
//! shares the benchmark's cores, 4 segments can only beat 1 by the cores 1 left idle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bank::MoneyDeposited;
use eventweave_core::runner::{
    Checkpoints, LocalLease, ResegmentOptions, Segment, SegmentedRunner, layout_key, resegment,
    stream_hash,
};
use eventweave_core::{EventMeta, EventStore, Position, new_id, projection};
use eventweave_postgres::{PgSink, PgTx, PostgresConfig, PostgresStore};

use crate::cpu::Cpu;
use crate::postgres::URL_VAR;
use crate::read_side::{Filled, Run, fill};
use crate::{Mode, Row, median};

/// The name of the benchmark's projection.
const NAME: &str = "bench_pg_segment_sums";

/// Per stream, the sum and count of its deposits, one upsert awaited per event (the
/// awaited `PgSums` of the read-side rows, under its own name and table).
pub struct SegmentSums {
    upsert: String,
}

impl SegmentSums {
    fn new(schema: &str) -> SegmentSums {
        SegmentSums {
            upsert: format!(
                "INSERT INTO \"{schema}\".segment_sums AS s (stream, total, events) \
                 VALUES ($1, $2, 1) \
                 ON CONFLICT (stream) DO UPDATE SET total = s.total + $2, events = s.events + 1"
            ),
        }
    }
}

#[projection(name = "bench_pg_segment_sums")]
impl SegmentSums {
    async fn on_deposited(
        &mut self,
        e: &MoneyDeposited,
        meta: &EventMeta,
        db: &PgTx,
    ) -> Result<(), tokio_postgres::Error> {
        db.execute(&self.upsert, &[&meta.stream.as_str(), &(e.amount as i64)])
            .await
            .map(drop)
    }
}

/// Events pre-filled (in streams of [`PER_STREAM`]) and rounds per layout.
fn sizes(mode: Mode) -> (u64, usize) {
    match mode {
        Mode::Full => (20_000, 7),
        Mode::Quick => (1_000, 1),
    }
}

/// Events per stream: enough streams that 4 segments get similar shares.
const PER_STREAM: u64 = 100;
/// Events read per round trip and applied per transaction, as in the PgSink rows.
const BATCH: usize = 512;

/// The rows: 4 segments beside 1 (the baseline), medians of alternating rounds. `None`
/// without `CQRS_POSTGRES_URL`.
pub async fn run(mode: Mode) -> Option<Vec<Row>> {
    let url = std::env::var(URL_VAR).ok()?;
    let (events, rounds) = sizes(mode);
    let schema = format!("cqrs_bench_segments_{}", new_id().simple());
    let config = PostgresConfig::new(&url)
        .schema(&schema)
        .pool_size(2)
        .sink_pool_size(8);
    let store = PostgresStore::open(config).await.expect("open the store");
    let filled = fill(&store, events, PER_STREAM).await;
    crate::postgres::connect(&url)
        .await
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".segment_sums \
             (stream text PRIMARY KEY, total bigint NOT NULL, events bigint NOT NULL)"
        ))
        .await
        .expect("create the read model");
    let shares = shares(&store, &filled, 4).await;
    let (mut one, mut four) = (Rounds::default(), Rounds::default());
    for _ in 0..rounds {
        one.push(round(&url, &store, &schema, &filled, 1).await);
        four.push(round(&url, &store, &schema, &filled, 4).await);
    }
    let cpu = format!("{}; {}", one.cpu("1 segment"), four.cpu("4 segments"));
    let (one, four) = (median(&mut one.rates), median(&mut four.rates));
    drop(store);
    crate::postgres::connect(&url)
        .await
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .expect("drop the benchmark schema");
    let row = Row {
        workload: format!(
            "(pg) segmented PgSink, 1 upsert awaited per event: 4 segments (4 tasks, events per \
             segment {shares:?}) vs 1, {} events, batch {BATCH}; {cpu}",
            filled.events
        ),
        rate: four,
        unit: "events/s",
        baseline: None,
        peer: None,
        target: ">= 3x 1 segment".to_owned(),
    }
    .with_baseline(Some(("1 segment, same workload".to_owned(), one)));
    Some(vec![row])
}

/// The rounds of one layout: their rates, and the CPU time and wall clock of all of them.
#[derive(Default)]
struct Rounds {
    rates: Vec<f64>,
    events: u64,
    elapsed: Duration,
    client: Duration,
    server: Duration,
}

impl Rounds {
    fn push(&mut self, (run, cpu): (Run, Cpu)) {
        self.rates.push(run.rate());
        self.events += run.events;
        self.elapsed += run.elapsed;
        self.client += cpu.client;
        self.server += cpu.server;
    }

    /// `<name>: <client> + <server> us CPU/event, <n> cores busy`.
    fn cpu(&self, name: &str) -> String {
        let per_event = |d: Duration| d.as_secs_f64() * 1e6 / self.events.max(1) as f64;
        let cpu = Cpu {
            client: self.client,
            server: self.server,
        };
        format!(
            "{name}: {:.0} + {:.0} us CPU/event (bench + postgres), {:.2} cores busy",
            per_event(self.client),
            per_event(self.server),
            cpu.cores(self.elapsed)
        )
    }
}

/// Events each of `count` segments applies.
async fn shares(store: &PostgresStore, filled: &Filled, count: u32) -> Vec<u64> {
    let mut shares = vec![0; count as usize];
    let events = store
        .read_all(Position(1), filled.events as usize)
        .await
        .expect("read the events");
    for event in events {
        let segment = stream_hash(event.meta.stream.as_str()) % u64::from(count);
        shares[segment as usize] += 1;
    }
    shares
}

/// One timed catch-up of the whole store by `count` segments from position 0, and the CPU time
/// it took; checked.
async fn round(
    url: &str,
    store: &PostgresStore,
    schema: &str,
    filled: &Filled,
    count: u32,
) -> (Run, Cpu) {
    let client = crate::postgres::connect(url).await;
    client
        .batch_execute(&format!("TRUNCATE \"{schema}\".segment_sums"))
        .await
        .expect("empty the read model");
    store
        .save_checkpoint(NAME, Position::ZERO)
        .await
        .expect("reset the checkpoint");
    store
        .save_checkpoint(&layout_key(NAME), Position(1))
        .await
        .expect("reset the layout");
    let sink = |segment: Segment| PgSink::new(store, SegmentSums::new(schema)).segment(segment);
    if count > 1 {
        let at = resegment(store, &LocalLease, sink, count, ResegmentOptions::default())
            .await
            .expect("split");
        assert_eq!(at, Position::ZERO);
    }
    let cpu = Cpu::now();
    let started = Instant::now();
    let running = SegmentedRunner::new(store.clone(), count, sink)
        .batch_size(BATCH)
        .start()
        .await
        .expect("start the segments");
    running
        .wait_for(filled.head, Duration::from_secs(600))
        .await
        .expect("the segments catch up");
    let elapsed = started.elapsed();
    let cpu = cpu.since();
    running.stop().await;
    // Every deposit applied exactly once.
    let rows = client
        .query(
            &format!("SELECT stream, total, events FROM \"{schema}\".segment_sums"),
            &[],
        )
        .await
        .expect("read the read model");
    let found: HashMap<String, (i64, i64)> = rows
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let events: i64 = found.values().map(|(_, n)| n).sum();
    assert_eq!(events as u64, filled.deposits, "every deposit applied once");
    for (k, sum) in filled.sums.iter().enumerate() {
        let total = found.get(&format!("account-{k}")).map_or(0, |(t, _)| *t);
        assert_eq!(total as u64, *sum, "sum of account {k}");
    }
    let run = Run {
        events: filled.events,
        elapsed,
    };
    (run, cpu)
}

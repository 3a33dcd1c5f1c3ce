//! How fast a `SqliteSink` catches up: a projection doing one upsert per event, run by a
//! `ProjectionRunner` in batches of 512 over a store pre-filled with `EVENTS` events (default
//! 50,000), beside a baseline doing the same upserts with bare rusqlite (same batches, one
//! transaction each, no runner, no checkpoint, no savepoints).
//!
//! ```text
//! cargo run --release -p eventweave-sqlite --example sink_catch_up
//! EVENTS=200000 cargo run --release -p eventweave-sqlite --example sink_catch_up
//! ```
//!
//! One run, indicative only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventweave_core::runner::{DurableProjection, ProjectionRunner};
use eventweave_core::{
    EventStore, ExpectedVersion, NewEvent, Payload, Position, ProjectionError, ProjectionFailure,
    RecordedEvent, StreamId, UserMetadata, new_id,
};
use eventweave_sqlite::{SqliteSink, SqliteStore, SqliteTx, rusqlite};

const BATCH: usize = 512;
const UPSERT: &str = "INSERT INTO balances (stream, total) VALUES (?1, ?2)
     ON CONFLICT (stream) DO UPDATE SET total = total + excluded.total";

struct Balances;

impl DurableProjection<SqliteTx> for Balances {
    const NAME: &'static str = "balances";
    const EVENTS: &'static [&'static str] = &["bench.added"];

    async fn handle(
        &mut self,
        db: &SqliteTx,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        db.execute(
            UPSERT,
            (event.meta.stream.as_str(), event.meta.version as i64),
        )
        .map_err(|e| {
            ProjectionError::new(Self::NAME, event, ProjectionFailure::Handler(Arc::new(e)))
        })?;
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50_000);
    let store = SqliteStore::temporary()?;
    for k in 0..events.div_ceil(500) {
        let stream = StreamId::from(format!("account-{}", k % 100));
        let batch = (0..500.min(events - k * 500))
            .map(|i| NewEvent {
                event_id: new_id(),
                event_name: "bench.added".into(),
                event_version: 1,
                payload: Payload::from_json(format!(r#"{{"n":{i}}}"#)),
                correlation_id: None,
                causation_id: None,
                metadata: UserMetadata::empty(),
                tags: eventweave_core::Tags::empty(),
            })
            .collect();
        store.append(&stream, ExpectedVersion::Any, batch).await?;
    }
    let head = store.head().await?;
    let create =
        "CREATE TABLE IF NOT EXISTS balances (stream TEXT PRIMARY KEY, total INTEGER NOT NULL)";

    let sink = SqliteSink::new(&store, Balances)?;
    sink.unit().execute(create, [])?;
    let started = Instant::now();
    let running = ProjectionRunner::new(store.clone(), sink)
        .batch_size(BATCH)
        .spawn();
    running.wait_for(head, Duration::from_secs(600)).await?;
    let sink_time = started.elapsed();
    running.stop().await;

    // Baseline: the same reads and upserts, by hand.
    let conn = rusqlite::Connection::open(store.path())?;
    // The store's default durability (`Durability::Normal`), as the sink's connection has.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "DROP TABLE balances; CREATE TABLE balances (stream TEXT PRIMARY KEY, total INTEGER NOT NULL)",
    )?;
    let started = Instant::now();
    let mut from = Position(1);
    loop {
        let batch = store.read_all(from, BATCH).await?;
        let Some(last) = batch.last() else { break };
        from = last.meta.position.next();
        let tx = conn.unchecked_transaction()?;
        for event in &batch {
            tx.prepare_cached(UPSERT)?
                .execute((event.meta.stream.as_str(), event.meta.version as i64))?;
        }
        tx.commit()?;
    }
    let raw_time = started.elapsed();

    let rate = |t: Duration| events as f64 / t.as_secs_f64();
    println!("{events} events, batches of {BATCH}, one upsert per event");
    println!(
        "SqliteSink + ProjectionRunner: {:>9.0} events/s ({:.3} s)",
        rate(sink_time),
        sink_time.as_secs_f64()
    );
    println!(
        "bare rusqlite baseline:        {:>9.0} events/s ({:.3} s)",
        rate(raw_time),
        raw_time.as_secs_f64()
    );
    Ok(())
}

//! `PgSink` under a storm of killed sessions: every session of the test's store (found by its
//! `application_name`) is terminated with `pg_terminate_backend` again and again while a runner
//! catches up with 6,000 events, with `max_attempts = 1` and `OnFailure::Park`. A lost
//! connection is an outage, not a failure of the event being handled: nothing may be parked,
//! the runner must end `Live`, and the read model must equal a clean replay (exactly once).
//! Skipped, saying so, without `CQRS_POSTGRES_URL`.
//!
//! It also checks that `PgSink` reports a connection lost inside a handler as
//! `StoreError::Unavailable` (an outage the runner retries without counting), with the store's
//! sessions terminated 20–120 ms after the runner last made progress. Gating each kill on
//! progress keeps the storm from starving the runner on a loaded machine (with a fixed period,
//! reconnecting could take longer than the gap, and the test measured the machine's load
//! instead of the sink's recovery); the storm ends after 60 s at the latest.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::read_model::{self, Model, Totals, append_added, expected};
use eventweave_core::runner::{Checkpoints, OnFailure, ProjectionRunner, RetryPolicy, RunnerState};
use eventweave_postgres::{PgSink, PostgresStore};

struct Stormed;
impl Model for Stormed {
    const NAME: &'static str = "totals_stormed";
    const TABLE: &'static str = "totals_stormed";
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_sessions_park_nothing_and_the_read_model_equals_a_replay() {
    let Some(url) =
        common::url_or_skip("killed_sessions_park_nothing_and_the_read_model_equals_a_replay")
    else {
        return;
    };
    // Our own application name, so the storm kills this test's sessions and no others.
    let application = format!("cqrs_storm_{:08x}", common::random_u64() as u32);
    let separator = if url.contains('?') { '&' } else { '?' };
    let config =
        common::fresh_config(&format!("{url}{separator}application_name={application}")).await;
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config)
        .await
        .expect("open a fresh store");
    let client = common::raw_client(&url).await;
    read_model::create_tables::<Stormed>(&client, &schema).await;
    let (appended, head) = append_added(&store, 6_000, 7, 5).await;

    let projection = Totals::<Stormed>::new(&schema);
    let knobs = Arc::clone(&projection.knobs);
    // Shared with the storm, which watches the checkpoint.
    let running = Arc::new(
        ProjectionRunner::new(store.clone(), PgSink::new(&store, projection))
            .batch_size(8)
            .retry(RetryPolicy {
                max_attempts: 1,
                first_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(50),
            })
            .on_failure(OnFailure::Park)
            .spawn(),
    );

    let calm = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let storm = {
        let (calm, kills) = (Arc::clone(&calm), Arc::clone(&kills));
        let watched = Arc::clone(&running);
        let checkpoint = move || watched.checkpoint();
        tokio::spawn(async move {
            let killer = common::raw_client(&url).await;
            let mut round = 0u64;
            let started = std::time::Instant::now();
            let mut last = checkpoint();
            while !calm.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
                // Wait until the runner has committed something since the last kill.
                if checkpoint() == last {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let killed = killer
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                        &[&application],
                    )
                    .await
                    .expect("terminate the store's sessions");
                kills.fetch_add(killed.len() as u64, Ordering::SeqCst);
                last = checkpoint();
                round += 1;
                // Irregular gaps (20–120 ms), so kills land at every step of a batch (a batch
                // of 8 takes a few milliseconds) and batches still commit between them.
                tokio::time::sleep(Duration::from_millis(20 + (round * 7919) % 101)).await;
            }
        })
    };
    let reached = running.wait_for(head, Duration::from_secs(120)).await;
    calm.store(true, Ordering::SeqCst);
    storm.await.unwrap();
    if let Err(e) = reached {
        panic!("{e}; runner: {:?}", running.status());
    }
    let kills = kills.load(Ordering::SeqCst);
    let calls = knobs.calls.load(Ordering::SeqCst);
    println!("{kills} sessions killed; {calls} handler calls for 6000 events");
    assert!(
        kills >= 10,
        "only {kills} sessions killed: the storm missed the catch-up"
    );

    let state = read_model::wait_live(&running).await;
    assert!(matches!(state, RunnerState::Live), "{state:?}");
    let status = running.status();
    assert_eq!(status.parked, 0);
    assert!(store.parked_events(Stormed::NAME).await.unwrap().is_empty());
    assert_eq!(store.load_checkpoint(Stormed::NAME).await.unwrap(), head);
    assert_eq!(
        read_model::table::<Stormed>(&client, &schema).await,
        expected(&appended)
    );
    let Ok(running) = Arc::try_unwrap(running) else {
        panic!("the storm task has ended and dropped its handle");
    };
    running.stop().await;
    common::drop_schema(&common::url().unwrap(), &schema).await;
}

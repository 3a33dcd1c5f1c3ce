//! The connection pools: projections cannot starve commands, waiting for a connection and
//! opening one are bounded, and the server bounds a session left idle inside a transaction.
//!
//! Cases: a projection batch holding its connection does not block an append with `pool_size(1)`;
//! an exhausted pool answers `Unavailable` after the acquire timeout; a server that accepts and
//! never answers fails `open` within the connect timeout; a session left idle in its append
//! transaction is ended by the server and readers move past its hole.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventweave_core::runner::{DurableProjection, ProjectionSink};
use eventweave_core::{
    EventStore, ExpectedVersion, NewEvent, Payload, Position, ProjectionError, RecordedEvent,
    StoreError, StreamId, UserMetadata, new_id,
};
use eventweave_postgres::{OpenError, PgSink, PgTx, PostgresConfig, PostgresStore};
use tokio::sync::Notify;

fn event(name: &'static str) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: name.into(),
        event_version: 1,
        payload: Payload::from_json("{}".to_owned()),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: eventweave_core::Tags::empty(),
    }
}

/// A projection whose handler waits, inside its batch transaction, until released.
struct Stuck {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl DurableProjection<PgTx> for Stuck {
    const NAME: &'static str = "pool_stuck";
    const EVENTS: &'static [&'static str] = &["pool.opened"];

    async fn handle(&mut self, _db: &PgTx, _event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_holding_its_connection_does_not_block_appends() {
    let Some(url) = common::url_or_skip("a_sink_holding_its_connection_does_not_block_appends")
    else {
        return;
    };
    let store = PostgresStore::open(common::fresh_config(&url).await.pool_size(1))
        .await
        .unwrap();
    let stream = StreamId::from("pool-1");
    let first = store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![event("pool.opened")],
        )
        .await
        .unwrap();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let mut sink = PgSink::new(
        &store,
        Stuck {
            entered: Arc::clone(&entered),
            release: Arc::clone(&release),
        },
    );
    sink.checkpoint().await.unwrap();
    let batch = tokio::spawn(async move {
        let through = first[0].meta.position;
        sink.apply(&first, through).await
    });
    entered.notified().await;
    // The sink's batch holds a connection inside its transaction; the only command
    // connection is still free.
    let appended = tokio::time::timeout(
        Duration::from_secs(10),
        store.append(
            &stream,
            ExpectedVersion::Exact(1),
            vec![event("pool.opened")],
        ),
    )
    .await
    .expect("an append completes while a projection batch holds its connection")
    .unwrap();
    assert_eq!(appended[0].meta.version, 2);
    release.notify_one();
    batch.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_gives_up_after_the_acquire_timeout() {
    let Some(url) = common::url_or_skip("an_exhausted_pool_gives_up_after_the_acquire_timeout")
    else {
        return;
    };
    let config = common::fresh_config(&url)
        .await
        .pool_size(1)
        .acquire_timeout(Duration::from_millis(300));
    let store = PostgresStore::open(config).await.unwrap();
    // The only connection, held inside an open append transaction.
    let held = store
        .__begin_append(
            &StreamId::from("pool-held"),
            ExpectedVersion::Any,
            vec![event("pool.opened")],
        )
        .await
        .unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        store.append(
            &StreamId::from("pool-2"),
            ExpectedVersion::Any,
            vec![event("pool.opened")],
        ),
    )
    .await
    .expect("the append returns instead of waiting forever");
    let waited = started.elapsed();
    match result {
        Err(StoreError::Unavailable(e)) => {
            let message = e.to_string();
            assert!(message.contains("commands pool"), "{message}");
            assert!(message.contains("300ms"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    held.commit().await.unwrap();
    // The connection is back: the next append gets it.
    store
        .append(
            &StreamId::from("pool-2"),
            ExpectedVersion::Any,
            vec![event("pool.opened")],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_within_the_connect_timeout() {
    // Accepts TCP connections and never says a word: the kernel completes the handshake, the
    // startup message goes unanswered.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = PostgresConfig::new(format!(
        "postgres://postgres@127.0.0.1:{port}/test?sslmode=disable"
    ))
    .connect_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), PostgresStore::open(config))
        .await
        .expect("open returns instead of waiting forever");
    let waited = started.elapsed();
    match result {
        Err(OpenError::Connect(e)) => {
            let message = e.to_string();
            assert!(message.contains("connect timeout of 500ms"), "{message}");
        }
        Err(other) => panic!("expected OpenError::Connect, got {other:?}"),
        Ok(_) => panic!("opened a store on a silent server"),
    }
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_ends_a_session_left_idle_in_its_append_transaction() {
    let Some(url) =
        common::url_or_skip("the_server_ends_a_session_left_idle_in_its_append_transaction")
    else {
        return;
    };
    let config = common::fresh_config(&url)
        .await
        .idle_in_transaction_timeout(Duration::from_secs(1));
    let store = PostgresStore::open(config).await.unwrap();
    // A writer stuck inside its append transaction: its position is drawn, not committed.
    let stuck = store
        .__begin_append(
            &StreamId::from("idle-1"),
            ExpectedVersion::Any,
            vec![event("pool.opened")],
        )
        .await
        .unwrap();
    let hole = stuck.recorded()[0].meta.position;
    let after = store
        .append(
            &StreamId::from("idle-2"),
            ExpectedVersion::Any,
            vec![event("pool.opened")],
        )
        .await
        .unwrap();
    // While the writer's transaction lives, readers stop at its hole.
    assert!(
        store
            .read_all(Position::ZERO, 10)
            .await
            .unwrap()
            .iter()
            .all(|e| e.meta.position < hole)
    );
    // The server ends the session after the idle timeout; the hole becomes permanent and the
    // reader moves past it.
    let started = Instant::now();
    let resumed = loop {
        let read = store.read_all(Position::ZERO, 10).await.unwrap();
        if read
            .iter()
            .any(|e| e.meta.event_id == after[0].meta.event_id)
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the reader is still stopped at the hole of the idle transaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(resumed < Duration::from_secs(5), "{resumed:?}");
    // The stuck writer finds out when it tries to commit.
    assert!(stuck.commit().await.is_err());
    let read = store.read_all(Position::ZERO, 10).await.unwrap();
    assert!(read.iter().all(|e| e.meta.position != hole));
}

//! Each class of failure produced for real, and what a caller can do about it:
//! - an append whose reply is lost (a proxy cuts the connection after the server committed):
//!   `OutcomeUnknown`; the event is stored; the command sent again with the same command id
//!   returns the stored outcome, and with another body under that id `CommandIdReused`;
//! - a server that cannot be reached after its backend was terminated: `Unavailable`, and the
//!   next call after it comes back works;
//! - a backend terminated while a read or an append waits: the server's `FATAL` with SQLSTATE
//!   57P01 in the message, `Unavailable` for the read and `OutcomeUnknown` for the append;
//! - a permanent SQL error (a CHECK constraint): `Backend` with its SQLSTATE, `Retry::Never`;
//! - a statement stalled behind another session's lock past `statement_timeout`: `Unavailable`
//!   with SQLSTATE 57014, nothing written.
//!
//! Each test uses its own schema (and its own proxy); all are skipped without
//! `CQRS_POSTGRES_URL`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::proxy::Proxy;
use eventweave_core::testing::conformance::event;
use eventweave_core::testing::domain::{Add, Counter, Open};
use eventweave_core::{
    CommandContext, CommandError, Cqrs, EventStore, ExpectedVersion, Mismatch, NewEvent, Retry,
    StoreError, StreamId, new_id,
};
use eventweave_postgres::{PostgresConfig, PostgresStore, SslMode};

/// The database's address, from the test URL.
fn upstream(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the error tests need a TCP database URL, got {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = if host == "localhost" {
        "127.0.0.1".into()
    } else {
        host
    };
    format!("{host}:{port}").parse().unwrap()
}

/// A store on a fresh schema reached through a new proxy; also the same schema reached directly.
async fn behind_proxy(url: &str) -> (Proxy, PostgresStore, PostgresStore, String) {
    let proxy = Proxy::start(upstream(url)).await;
    let direct = common::fresh_config(url).await.pool_size(2);
    let schema = direct.schema_name().to_owned();
    // Plain TCP: the proxy recognises a request by its bytes, which TLS (the default `prefer`
    // against a server that offers it) would hide.
    let proxied = PostgresConfig::new(proxy.url(url))
        .ssl_mode(SslMode::Disable)
        .schema(schema.clone())
        .pool_size(1);
    let store = PostgresStore::open(proxied).await.unwrap();
    let direct = PostgresStore::open(direct).await.unwrap();
    (proxy, store, direct, schema)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_outcome_unknown_and_a_retry_with_the_command_id_returns_it() {
    let Some(url) = common::url_or_skip("lost_reply") else {
        return;
    };
    let (proxy, store, direct, schema) = behind_proxy(&url).await;
    let app = Cqrs::builder(store).build().await.unwrap();
    let id = common::random_u64() & 0xffff_ffff;
    app.execute(Open { id }).await.unwrap();
    let command_id = new_id();
    let context = || CommandContext::new().with_command_id(command_id);

    // The payload `{"n":987654321}` marks the append's request on the wire.
    proxy.cut_after_reply_to(b"987654321");
    let lost = app
        .execute_with(Add { id, n: 987_654_321 }, context())
        .await
        .unwrap_err();
    assert!(
        matches!(lost, CommandError::Store(StoreError::OutcomeUnknown(_))),
        "{lost:?}"
    );
    assert_eq!(lost.retry(), Retry::SameIds);
    tokio::time::timeout(Duration::from_secs(5), proxy.wait_for_cut())
        .await
        .expect("the proxy cut the connection after the reply");

    let stream = StreamId::from(format!("counter-{id}"));
    let stored = direct.read_stream(&stream, 1, 10).await.unwrap();
    assert_eq!(stored.len(), 2, "the append was in fact committed");

    let again = app
        .execute_with(Add { id, n: 987_654_321 }, context())
        .await
        .expect("the same command id returns the stored outcome");
    assert_eq!(again.version, 2);
    assert_eq!(again.events[0].meta.event_id, stored[1].meta.event_id);
    match app.execute_with(Add { id, n: 12 }, context()).await {
        Err(CommandError::CommandIdReused {
            mismatch: Mismatch::EventField { index: 0, .. },
            ..
        }) => {}
        other => panic!("another amount under the same command id: {other:?}"),
    }
    let (state, version) = app.load::<Counter>(&id).await.unwrap();
    assert_eq!((state.total, version), (987_654_321, 2), "recorded once");
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable_and_the_next_call_after_it_works() {
    let Some(url) = common::url_or_skip("unreachable") else {
        return;
    };
    let (proxy, store, _direct, schema) = behind_proxy(&url).await;
    let s = StreamId::from("reachable");
    store
        .append(&s, ExpectedVersion::NoStream, vec![event("1")])
        .await
        .unwrap();
    proxy.refuse_connections(true);
    terminate_idle(&url, &schema).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let failed = store.read_stream(&s, 1, 10).await.unwrap_err();
    assert!(matches!(failed, StoreError::Unavailable(_)), "{failed:?}");
    assert_eq!(failed.retry(), Retry::Safe);
    let refused = store
        .append(&s, ExpectedVersion::Exact(1), vec![event("2")])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::Unavailable(_)),
        "a connection that never came up wrote nothing: {refused:?}"
    );
    proxy.refuse_connections(false);
    assert_eq!(store.read_stream(&s, 1, 10).await.unwrap().len(), 1);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_terminated_mid_request_says_57p01() {
    let Some(url) = common::url_or_skip("terminated") else {
        return;
    };
    let config = common::fresh_config(&url).await.pool_size(1);
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config).await.unwrap();
    let s = StreamId::from("terminated");
    store
        .append(&s, ExpectedVersion::NoStream, vec![event("1")])
        .await
        .unwrap();
    let locker = common::raw_client(&url).await;
    lock_events_table(&locker, &schema).await;

    let reader = {
        let (store, s) = (store.clone(), s.clone());
        tokio::spawn(async move { store.read_stream(&s, 1, 10).await })
    };
    terminate_when_waiting(&url, &schema).await;
    let read = reader.await.unwrap().unwrap_err();
    assert!(matches!(read, StoreError::Unavailable(_)), "{read:?}");
    assert!(read.to_string().contains("(code 57P01)"), "{read}");

    // A new connection (its statements prepared) before the table is locked again, so the
    // append itself is what waits.
    locker.batch_execute("ROLLBACK").await.unwrap();
    // The pool may hand out the terminated connection once more before its task has seen the
    // socket close: that read fails `Unavailable` (nothing was sent) and the next one reconnects.
    let mut read = store.read_stream(&s, 1, 10).await;
    for _ in 0..100 {
        match read {
            Err(StoreError::Unavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                read = store.read_stream(&s, 1, 10).await;
            }
            _ => break,
        }
    }
    assert_eq!(read.unwrap().len(), 1);
    lock_events_table(&locker, &schema).await;
    let batch = vec![event("2")];
    let appender = {
        let (store, s, batch) = (store.clone(), s.clone(), batch.clone());
        tokio::spawn(async move { store.append(&s, ExpectedVersion::Exact(1), batch).await })
    };
    terminate_when_waiting(&url, &schema).await;
    let append = appender.await.unwrap().unwrap_err();
    assert!(
        matches!(append, StoreError::OutcomeUnknown(_)),
        "{append:?}"
    );
    assert!(append.to_string().contains("(code 57P01)"), "{append}");
    locker.batch_execute("ROLLBACK").await.unwrap();

    // Retried with the same ids, the append goes in once.
    store
        .append(&s, ExpectedVersion::Exact(1), batch.clone())
        .await
        .unwrap();
    let retried = store
        .append(&s, ExpectedVersion::Exact(1), batch)
        .await
        .unwrap();
    assert_eq!(retried[0].meta.version, 2);
    assert_eq!(store.read_stream(&s, 1, 10).await.unwrap().len(), 2);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_sql_error_is_backend_with_its_sqlstate() {
    let Some(url) = common::url_or_skip("permanent") else {
        return;
    };
    let config = common::fresh_config(&url).await;
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config).await.unwrap();
    let admin = common::raw_client(&url).await;
    admin
        .batch_execute(&format!(
            "ALTER TABLE {}.events ADD CONSTRAINT no_forbidden CHECK (event_name <> 'forbidden')",
            common::quote(&schema)
        ))
        .await
        .unwrap();
    let s = StreamId::from("checked");
    let forbidden = NewEvent {
        event_name: "forbidden".into(),
        ..event("1")
    };
    let refused = store
        .append(&s, ExpectedVersion::NoStream, vec![forbidden])
        .await
        .unwrap_err();
    match &refused {
        StoreError::Backend(e) => {
            assert_eq!(e.code(), Some("23514"));
            assert!(e.message().contains("no_forbidden"), "{refused}");
        }
        other => panic!("want Backend, got {other:?}"),
    }
    assert_eq!(refused.retry(), Retry::Never);
    assert!(refused.to_string().contains("(code 23514)"), "{refused}");
    store
        .append(&s, ExpectedVersion::NoStream, vec![event("2")])
        .await
        .expect("other appends still go in");
    common::drop_schema(&url, &schema).await;
}

/// A statement stalled behind another session's lock is cancelled by the server after
/// `statement_timeout`: each append (several at once, so some go as one group) and a read get
/// `Unavailable` with SQLSTATE 57014, nothing is written, and the same appends go in once the
/// lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_stalled_behind_a_lock_times_out_as_unavailable_and_writes_nothing() {
    let Some(url) = common::url_or_skip("statement_timeout") else {
        return;
    };
    let config = common::fresh_config(&url)
        .await
        .pool_size(2)
        .statement_timeout(Duration::from_millis(300));
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config).await.unwrap();
    let first = StreamId::from("stalled");
    store
        .append(&first, ExpectedVersion::NoStream, vec![event("0")])
        .await
        .unwrap();

    // Another session holds the events table's strongest lock in an open transaction.
    let locker = common::raw_client(&url).await;
    lock_events_table(&locker, &schema).await;

    let started = std::time::Instant::now();
    let mut appends = tokio::task::JoinSet::new();
    for k in 0..6 {
        let store = store.clone();
        appends.spawn(async move {
            let stream = StreamId::from(format!("stalled-{k}"));
            store
                .append(
                    &stream,
                    ExpectedVersion::NoStream,
                    vec![event(&k.to_string())],
                )
                .await
        });
    }
    let timed_out = |result: Result<Vec<eventweave_core::RecordedEvent>, StoreError>| match result {
        Err(StoreError::Unavailable(e)) => assert_eq!(e.code(), Some("57014"), "{e}"),
        other => panic!("expected the statement to be cancelled: {other:?}"),
    };
    // Without the timeout the appends would wait for the lock: bound the wait so that a
    // regression fails here instead of hanging.
    let results = tokio::time::timeout(Duration::from_secs(20), appends.join_all())
        .await
        .expect("the stalled appends were cancelled, not left waiting for the lock");
    for result in results {
        timed_out(result);
    }
    timed_out(store.read_stream(&first, 1, 10).await);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cancelled after about the timeout, not after the lock: {:?}",
        started.elapsed()
    );

    locker.batch_execute("ROLLBACK").await.unwrap();
    for k in 0..6 {
        let stream = StreamId::from(format!("stalled-{k}"));
        assert!(
            store.read_stream(&stream, 1, 10).await.unwrap().is_empty(),
            "a cancelled append wrote nothing"
        );
        store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event(&k.to_string())],
            )
            .await
            .expect("the same append goes in once the lock is gone");
    }
    assert_eq!(store.read_stream(&first, 1, 10).await.unwrap().len(), 1);
    common::drop_schema(&url, &schema).await;
}

/// Opens a transaction on `locker` that holds the schema's events table in `ACCESS EXCLUSIVE`
/// mode (every read and append of the store waits) until `ROLLBACK`.
async fn lock_events_table(locker: &tokio_postgres::Client, schema: &str) {
    locker
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {}.events IN ACCESS EXCLUSIVE MODE",
            common::quote(schema)
        ))
        .await
        .unwrap();
}

/// Terminates the idle sessions whose last statement names the schema (the store's pool).
async fn terminate_idle(url: &str, schema: &str) {
    let admin = common::raw_client(url).await;
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND state = 'idle' AND query LIKE '%' || $1 || '%'",
            &[&schema],
        )
        .await
        .unwrap();
}

/// Waits (bounded) until a session of the store waits for the lock on its schema's table, then
/// terminates it.
async fn terminate_when_waiting(url: &str, schema: &str) {
    let admin = common::raw_client(url).await;
    for _ in 0..500 {
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'",
                &[&schema],
            )
            .await
            .unwrap();
        if !rows.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no session of the store waited for the lock within 5 s");
}

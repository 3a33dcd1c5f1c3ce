//! Opening stores: migrations that are safe when processes start at once, configurable and
//! safely quoted names, a schema newer than the code, configuration and connection errors.
//!
//! Cases: concurrent opens migrate once, quoted names, a schema newer than the code is refused, bad
//! configurations are typed errors.

mod common;

use eventweave_core::testing::conformance::event;
use eventweave_core::{EventStore, ExpectedVersion, Position, StreamId};
use eventweave_postgres::{OpenError, PostgresConfig, PostgresStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opened_at_once_migrate_the_schema_exactly_once() {
    let Some(url) = common::url_or_skip("stores_opened_at_once_migrate_the_schema_exactly_once")
    else {
        return;
    };
    let config = common::fresh_config(&url).await.pool_size(1);
    let schema = config.schema_name().to_owned();
    let opening: Vec<_> = (0..6)
        .map(|_| tokio::spawn(PostgresStore::open(config.clone())))
        .collect();
    let mut stores = Vec::new();
    for open in opening {
        stores.push(open.await.unwrap().expect("every concurrent open succeeds"));
    }
    let client = common::raw_client(&url).await;
    let versions: Vec<i32> = client
        .query(
            &format!(
                "SELECT version FROM {}.schema_migrations ORDER BY version",
                common::quote(&schema)
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<i32> = (1..=PostgresStore::schema_version()).collect();
    assert_eq!(versions, want, "each migration recorded once");
    // Every instance works on the one schema.
    for (i, store) in stores.iter().enumerate() {
        store
            .append(
                &StreamId::from("shared"),
                ExpectedVersion::Exact(i as u64),
                vec![event("1")],
            )
            .await
            .unwrap();
    }
    let read = stores[0]
        .read_stream(&StreamId::from("shared"), 1, 100)
        .await
        .unwrap();
    assert_eq!(read.len(), stores.len());
    drop(stores);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_quotes_and_spaces_are_quoted_everywhere() {
    let Some(url) = common::url_or_skip("names_with_quotes_and_spaces_are_quoted_everywhere")
    else {
        return;
    };
    let schema = format!("{} it's \"Q\"; --", common::schema_name());
    let config = PostgresConfig::new(&url)
        .schema(&schema)
        .events_table("My \"Events\"")
        .migrations_table("applied; DROP TABLE x")
        .pool_size(2);
    let store = PostgresStore::open(config.clone()).await.unwrap();
    let s = StreamId::from("s");
    let written = store
        .append(&s, ExpectedVersion::NoStream, vec![event("1"), event("2")])
        .await
        .unwrap();
    assert_eq!(store.read_stream(&s, 1, 10).await.unwrap().len(), 2);
    assert_eq!(store.read_all(Position::ZERO, 10).await.unwrap().len(), 2);
    assert_eq!(store.head().await.unwrap(), written[1].meta.position);
    // Reopening finds the data and has nothing to migrate.
    drop(store);
    let reopened = PostgresStore::open(config).await.unwrap();
    let read = reopened.read_stream(&s, 1, 10).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.meta.event_id).collect::<Vec<_>>(),
        written.iter().map(|e| e.meta.event_id).collect::<Vec<_>>()
    );
    let client = common::raw_client(&url).await;
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename IN ($2, $3)",
            &[&schema, &"My \"Events\"", &"applied; DROP TABLE x"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 2, "both tables exist under their exact names");
    drop(reopened);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_migrated_by_a_newer_version_is_refused() {
    let Some(url) = common::url_or_skip("a_schema_migrated_by_a_newer_version_is_refused") else {
        return;
    };
    let config = common::fresh_config(&url).await;
    let schema = config.schema_name().to_owned();
    drop(PostgresStore::open(config.clone()).await.unwrap());
    let client = common::raw_client(&url).await;
    client
        .execute(
            &format!(
                "INSERT INTO {}.schema_migrations (version, description) VALUES (999, 'from the future')",
                common::quote(&schema)
            ),
            &[],
        )
        .await
        .unwrap();
    match PostgresStore::open(config).await {
        Err(OpenError::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (999, PostgresStore::schema_version()));
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("expected SchemaTooNew, the store opened"),
    }
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_and_unreachable_servers_are_typed_errors() {
    let Some(url) =
        common::url_or_skip("bad_configurations_and_unreachable_servers_are_typed_errors")
    else {
        return;
    };
    let open = |config: PostgresConfig| async move { PostgresStore::open(config).await.err() };
    assert!(matches!(
        open(PostgresConfig::new(&url).schema("")).await,
        Some(OpenError::Config(_))
    ));
    assert!(matches!(
        open(PostgresConfig::new(&url).events_table("x".repeat(64))).await,
        Some(OpenError::Config(_))
    ));
    assert!(matches!(
        open(PostgresConfig::new("postgres://host:notaport/db")).await,
        Some(OpenError::ConnectionString(_))
    ));
    // Port 1 on the loopback interface: nothing listens there.
    let refused = open(PostgresConfig::new("postgres://postgres@127.0.0.1:1/test")).await;
    assert!(
        matches!(refused, Some(OpenError::Connect(_))),
        "{refused:?}"
    );
}

/// `PostgresConfig::connect` opens a session as the store's are: TLS as `sslmode` decides (the
/// shared test server offers it, so `prefer` encrypts and `disable` does not), the store's
/// session settings applied; bad strings and unreachable servers are the same typed errors as
/// opening a store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_from_the_config_is_set_up_as_the_stores() {
    let Some(url) = common::url_or_skip("a_session_opened_from_the_config_is_set_up_as_the_stores")
    else {
        return;
    };
    let base = url.split('?').next().unwrap().to_owned();
    let session = |mode: &'static str| {
        let base = base.clone();
        async move {
            let client = PostgresConfig::new(format!("{base}?sslmode={mode}"))
                .idle_in_transaction_timeout(std::time::Duration::from_secs(7))
                .connect()
                .await
                .unwrap();
            let row = client
                .query_one(
                    "SELECT ssl, current_setting('idle_in_transaction_session_timeout')
                     FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap();
            (row.get::<_, bool>(0), row.get::<_, String>(1))
        }
    };
    let server_offers_tls = {
        let client = common::raw_client(&url).await;
        let on: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
        on == "on"
    };
    assert_eq!(session("disable").await, (false, "7s".to_owned()));
    assert_eq!(
        session("prefer").await,
        (server_offers_tls, "7s".to_owned())
    );
    assert!(matches!(
        PostgresConfig::new("postgres://host:notaport/db")
            .connect()
            .await,
        Err(OpenError::ConnectionString(_))
    ));
    let refused = PostgresConfig::new("postgres://postgres@127.0.0.1:1/test")
        .connect()
        .await;
    assert!(matches!(refused, Err(OpenError::Connect(_))), "{refused:?}");
}

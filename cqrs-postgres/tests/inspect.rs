//! `InspectStore` on PostgreSQL: the shared cases on a fresh schema, with quoted names.

mod common;

use eventweave_postgres::PostgresStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_streams_with_counts_in_pages() {
    let Some(url) = common::url_or_skip("lists_streams_with_counts_in_pages") else {
        return;
    };
    let config = common::fresh_config(&url)
        .await
        .events_table("Inspected \"events\"");
    let schema = config.schema_name().to_owned();
    let store = PostgresStore::open(config).await.unwrap();
    eventweave_core::testing::inspect::list_streams_cases(&store).await;
    drop(store);
    common::drop_schema(&url, &schema).await;
}

//! `InspectStore` on SQLite: the shared cases on a temporary file.

use eventweave_sqlite::SqliteStore;

#[tokio::test]
async fn lists_streams_with_counts_in_pages() {
    let store = SqliteStore::temporary().unwrap();
    eventweave_core::testing::inspect::list_streams_cases(&store).await;
}

//! Upcasting on PostgreSQL: the stored rows of every older version of an event (the JSON
//! fixtures in `tests/fixtures/upcast`), written through the store's own append on a fresh
//! schema, load as current events. Skipped without `CQRS_POSTGRES_URL`.

mod common;

use eventweave_core::Cqrs;

#[path = "../../tests/fixtures/upcast/domain.rs"]
mod domain;

use domain::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_rows_of_every_version_load_as_current_events() {
    if common::url_or_skip("stored_rows_of_every_version_load_as_current_events").is_none() {
        return;
    }
    let store = common::open_fresh(None).await;
    append_fixtures(&store).await;
    let app = Cqrs::builder(store).build().await.unwrap();
    check_fixture_wallets(&app).await;
}

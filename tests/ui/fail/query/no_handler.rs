// Guarantee 6: a query with no handler does not compile when sent through the typed query bus.
use eventweave_core::prelude::*;

#[derive(Query)]
#[query(response = u64)]
pub struct CountOpenings;

async fn run(app: Cqrs<MemoryStore>) {
    let _ = app.query(CountOpenings).await;
}

fn main() {
    let _ = run;
}

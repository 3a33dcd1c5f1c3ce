// A `#[query]` method must return the query's declared response type.
use eventweave_core::prelude::*;

#[derive(Query)]
#[query(response = Option<u64>)]
pub struct CountOpenings;

#[derive(Default)]
pub struct Openings {
    count: u64,
}

#[projection]
impl Openings {
    #[query]
    fn count(&self, _: &CountOpenings) -> u64 {
        self.count
    }
}

fn main() {}

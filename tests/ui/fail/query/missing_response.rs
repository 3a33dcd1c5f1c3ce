// A query without `#[query(response = …)]`.
use eventweave_core::prelude::*;

#[derive(Query)]
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

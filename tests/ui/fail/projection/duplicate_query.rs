// Two `#[query]` methods for one query: the error is at the second.
use eventweave_core::prelude::*;

#[derive(Query)]
#[query(response = u64)]
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

    #[query]
    fn count_again(&self, _: &CountOpenings) -> u64 {
        self.count
    }
}

fn main() {}

// A `#[query]` method only reads the projection.
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
    fn count(&mut self, _: &CountOpenings) -> u64 {
        self.count += 1;
        self.count
    }
}

fn main() {}

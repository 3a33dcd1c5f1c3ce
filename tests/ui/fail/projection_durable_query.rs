// A durable read model is queried from its database, not through `#[query]`.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Query)]
#[query(response = u64)]
pub struct CountOpenings;

pub struct SqlTx;

#[derive(Default)]
pub struct Openings {
    count: u64,
}

#[projection]
impl Openings {
    fn on_opened(&mut self, _: &Opened, db: &SqlTx) {
        let _ = db;
        self.count += 1;
    }

    #[query]
    fn count(&self, _: &CountOpenings) -> u64 {
        self.count
    }
}

fn main() {}

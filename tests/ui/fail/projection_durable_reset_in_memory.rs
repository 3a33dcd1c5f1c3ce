// `#[reset]` belongs to durable projections: an in-memory one starts empty at every start.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Default)]
pub struct Openings {
    count: u64,
}

#[projection]
impl Openings {
    fn on_opened(&mut self, _: &Opened) {
        self.count += 1;
    }

    #[reset]
    fn clear(&mut self) {
        self.count = 0;
    }
}

fn main() {}

// Two handlers for one event type in a projection: the error is at the second.
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

    fn count_again(&mut self, _: &Opened) {
        self.count += 1;
    }
}

fn main() {}

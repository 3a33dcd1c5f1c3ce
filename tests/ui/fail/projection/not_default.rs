// A discoverable projection needs `Default`.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

pub struct Openings {
    count: u64,
}

#[projection(name = "openings")]
impl Openings {
    fn on_opened(&mut self, _: &Opened) {
        self.count += 1;
    }
}

fn main() {}

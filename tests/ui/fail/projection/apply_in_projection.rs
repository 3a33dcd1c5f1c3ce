// `#[apply]` belongs in an aggregate; projection handlers need no attribute.
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
    #[apply]
    fn on_opened(&mut self, _: &Opened) {
        self.count += 1;
    }
}

fn main() {}

// A projection's event handler returns `()` or `Result<(), E>`.
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
    fn on_opened(&mut self, _: &Opened) -> u64 {
        self.count += 1;
        self.count
    }
}

fn main() {}

// A projection's handler takes a command instead of an event: projections see events only.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Command)]
#[command(aggregate = Door)]
pub struct Open {
    #[id]
    pub id: u64,
}

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {
    #[handle]
    fn open(_: &Open) -> Opened {
        Opened
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

#[derive(Default)]
pub struct Openings {
    count: u64,
}

#[projection]
impl Openings {
    fn on_open(&mut self, _: &Open) {
        self.count += 1;
    }
}

fn main() {}

// Guarantee 4: an `#[apply]` method that takes its event by value.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Command, Clone)]
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
    fn open(_: Open) -> Opened {
        Opened
    }

    #[apply]
    fn opened(&mut self, event: Opened) {
        let _ = event;
    }
}

fn main() {}

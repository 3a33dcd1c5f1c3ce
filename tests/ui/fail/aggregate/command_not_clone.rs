// A handler that takes a command that is not `Clone` by value.
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
    fn open(_: Open) -> Opened {
        Opened
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}

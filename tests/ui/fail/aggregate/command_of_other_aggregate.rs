// A handler for a command whose `#[command(aggregate = …)]` names another aggregate.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Command, Clone)]
#[command(aggregate = Window)]
pub struct Open {
    #[id]
    pub id: u64,
}

#[derive(Default)]
pub struct Window;

#[aggregate(id = u64)]
impl Window {}

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

// Guarantee 3: a handler that returns an event its aggregate has no `#[apply]` for does not
// compile; the error is at the return type.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Slammed")]
pub struct Slammed;

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
    fn open(_: Open) -> Slammed {
        Slammed
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}

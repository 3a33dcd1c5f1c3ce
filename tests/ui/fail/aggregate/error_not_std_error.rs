// A handler whose error type does not implement `std::error::Error`.
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

#[derive(Debug)]
pub struct Locked;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {
    #[handle]
    fn open(_: Open) -> Result<Opened, Locked> {
        Err(Locked)
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}

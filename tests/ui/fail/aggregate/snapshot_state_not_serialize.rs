// `snapshot_every` needs a state that serde can (de)serialize: one error, on the attribute's value.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
struct Opened;

#[derive(Command)]
#[command(aggregate = Door)]
struct Open {
    #[id]
    id: u64,
}

#[derive(Default)]
struct Door;

#[aggregate(id = u64, snapshot_every = 100)]
impl Door {
    #[handle]
    fn open(cmd: &Open) -> Result<Opened, std::convert::Infallible> {
        let _ = cmd;
        Ok(Opened)
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}

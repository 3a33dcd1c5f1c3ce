// Guarantee 1: executing a command that no aggregate handles does not compile, and the error
// names the aggregate that lacks a handler.
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

#[derive(Command)]
#[command(aggregate = Door)]
pub struct Slam {
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

async fn run(app: Cqrs<MemoryStore>) {
    let _ = app.execute(Slam { id: 1 }).await;
}

fn main() {
    let _ = run;
}

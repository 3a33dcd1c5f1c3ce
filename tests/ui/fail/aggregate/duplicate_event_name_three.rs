// Guarantee 5 with several clashes: every event whose stored name an earlier event of the
// aggregate already has is reported, each on its own type, naming the first event with it.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.changed")]
pub struct Opened;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.locked")]
pub struct Locked;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.changed")]
pub struct Closed;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.changed")]
pub struct Slammed;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.locked")]
pub struct Bolted;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {
    #[apply]
    fn opened(&mut self, _: &Opened) {}

    #[apply]
    fn locked(&mut self, _: &Locked) {}

    #[apply]
    fn closed(&mut self, _: &Closed) {}

    #[apply]
    fn slammed(&mut self, _: &Slammed) {}

    #[apply]
    fn bolted(&mut self, _: &Bolted) {}
}

fn main() {}

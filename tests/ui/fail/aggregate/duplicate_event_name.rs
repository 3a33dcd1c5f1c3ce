// Guarantee 5: two events of one aggregate with the same stored name do not compile.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.changed")]
pub struct Opened;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.changed")]
pub struct Closed;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {
    #[apply]
    fn opened(&mut self, _: &Opened) {}

    #[apply]
    fn closed(&mut self, _: &Closed) {}
}

fn main() {}

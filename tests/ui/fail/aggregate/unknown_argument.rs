// An argument that `#[aggregate]` does not know.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64, stream = "door")]
impl Door {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}

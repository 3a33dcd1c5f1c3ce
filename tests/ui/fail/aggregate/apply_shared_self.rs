// Guarantee 4: an `#[apply]` method that cannot change the state.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {
    #[apply]
    fn opened(&self, _: &Opened) {}
}

fn main() {}

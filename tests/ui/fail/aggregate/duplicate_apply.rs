// One `#[apply]` method per event type: the error is at the second.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Default)]
pub struct Door {
    opened: u32,
}

#[aggregate(id = u64)]
impl Door {
    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.opened += 1;
    }

    #[apply]
    fn opened_again(&mut self, _: &Opened) {}
}

fn main() {}

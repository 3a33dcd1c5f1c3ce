// Guarantee 4: an `#[apply]` method that returns something.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Default)]
pub struct Door {
    open: bool,
}

#[aggregate(id = u64)]
impl Door {
    #[apply]
    fn opened(&mut self, _: &Opened) -> bool {
        self.open = true;
        self.open
    }
}

fn main() {}

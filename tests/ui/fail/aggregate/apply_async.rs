// An `#[apply]` method cannot be `async`.
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
    async fn opened(&mut self, _: &Opened) {}
}

fn main() {}

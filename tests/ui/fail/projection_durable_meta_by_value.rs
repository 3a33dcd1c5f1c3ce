// The metadata is borrowed (`meta: &EventMeta`); taken by value it is not mistaken for a unit
// of work, so the projection stays in memory and the error is about the metadata.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Default)]
pub struct Openings {
    count: u64,
}

#[projection]
impl Openings {
    fn on_opened(&mut self, _: &Opened, meta: EventMeta) {
        let _ = meta;
        self.count += 1;
    }
}

fn main() {}

// The optional last parameter of a projection's event handler is `&EventMeta`.
use cqrs_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
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

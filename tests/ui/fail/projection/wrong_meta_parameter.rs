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
    fn on_opened(&mut self, _: &Opened, by: &str) {
        let _ = by;
        self.count += 1;
    }
}

fn main() {}

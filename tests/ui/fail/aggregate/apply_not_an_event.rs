// Guarantee 4: an `#[apply]` method whose parameter is not an event.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

/// Forgot `#[derive(Event)]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}

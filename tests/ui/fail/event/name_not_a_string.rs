// The stored name is a string literal.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = door_opened)]
pub struct Opened;

fn main() {
    let _ = Opened::NAME;
}

// Schema versions start at 1.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 0)]
pub struct Opened;

fn main() {
    assert_eq!(Opened::NAME, "door.opened");
}

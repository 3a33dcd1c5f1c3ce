// Each argument is given once, also across several `#[event(…)]` attributes.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened")]
#[event(name = "door.open")]
pub struct Opened;

fn main() {
    assert_eq!(Opened::NAME, "door.opened");
}

// `#[tag]` on an `Option` field whose inner type is not a `TagValue`: the error names the
// inner type.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Room {
    pub floor: u32,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.moved")]
pub struct Moved {
    #[tag]
    pub room: Option<Room>,
}

fn main() {}

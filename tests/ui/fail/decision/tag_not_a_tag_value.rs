// `#[tag]` on a field whose type has no stable text form (`TagValue`).
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Seats {
    pub taken: u32,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.seats_counted")]
pub struct SeatsCounted {
    #[tag]
    pub seats: Seats,
}

fn main() {}

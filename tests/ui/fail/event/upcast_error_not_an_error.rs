// A fallible upcaster's error implements `std::error::Error` (a `String` does not).
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 2)]
#[upcast(from = 1, with = v1_to_v2)]
pub struct Opened {
    pub by: String,
}

fn v1_to_v2(v1: serde_json::Value) -> Result<serde_json::Value, String> {
    Ok(v1)
}

fn main() {}

// One upcaster per older version.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 2)]
#[upcast(from = 1, with = v1_to_v2)]
#[upcast(from = 1, with = v1_to_v2_again)]
pub struct Opened {
    pub by: String,
}

fn v1_to_v2(v1: serde_json::Value) -> serde_json::Value {
    v1
}

fn v1_to_v2_again(v1: serde_json::Value) -> serde_json::Value {
    v1
}

fn main() {}

// Version 3 needs an upcaster from version 1 and one from version 2: the one from 2 is missing.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 3)]
#[upcast(from = 1, with = v1_to_v2)]
pub struct Opened {
    pub by: String,
}

fn v1_to_v2(v1: serde_json::Value) -> serde_json::Value {
    v1
}

// No upcaster at all: every older version is listed.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.closed", version = 5)]
#[upcast(from = 3, with = v1_to_v2)]
pub struct Closed;

fn main() {}

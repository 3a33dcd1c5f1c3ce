// An upcaster reads an older version: from 1 to `version - 1`.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 3)]
#[upcast(from = 0, with = same)]
#[upcast(from = 1, with = same)]
#[upcast(from = 2, with = same)]
#[upcast(from = 3, with = same)]
pub struct Opened {
    pub by: String,
}

// Version 1 (the default) has no older version.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.closed")]
#[upcast(from = 1, with = same)]
pub struct Closed;

// Both arguments are needed.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.locked", version = 2)]
#[upcast(from = 1)]
#[upcast(with = same, into = 2)]
pub struct Locked;

fn same(v: serde_json::Value) -> serde_json::Value {
    v
}

fn main() {}

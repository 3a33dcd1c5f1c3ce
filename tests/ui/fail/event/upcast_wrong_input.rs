// An upcaster takes the older payload by value, as JSON or as a type that implements
// `Deserialize`.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 3)]
#[upcast(from = 1, with = by_reference)]
#[upcast(from = 2, with = not_deserializable)]
pub struct Opened {
    pub by: String,
}

fn by_reference(v1: &serde_json::Value) -> serde_json::Value {
    v1.clone()
}

pub struct OpenedV2 {
    pub by: String,
}

fn not_deserializable(v2: OpenedV2) -> Opened {
    Opened { by: v2.by }
}

fn main() {}

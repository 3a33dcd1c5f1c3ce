// A typed older version returned by an upcaster implements `UpcastPayload`.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 3)]
#[upcast(from = 1, with = v1_to_v2)]
#[upcast(from = 2, with = v2_to_v3)]
pub struct Opened {
    pub by: String,
}

#[derive(Serialize, Deserialize)]
pub struct OpenedV2 {
    pub by: String,
}

fn v1_to_v2(_: serde_json::Value) -> OpenedV2 {
    OpenedV2 { by: String::new() }
}

fn v2_to_v3(v2: OpenedV2) -> Opened {
    Opened { by: v2.by }
}

fn main() {}

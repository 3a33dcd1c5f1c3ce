// An upcaster returns the next version's payload.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 2)]
#[upcast(from = 1, with = forgets_to_return)]
pub struct Opened {
    pub by: String,
}

fn forgets_to_return(mut v1: serde_json::Value) {
    v1["by"] = "nobody".into();
}

fn main() {}

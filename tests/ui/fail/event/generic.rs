// An event type cannot be generic: it is stored under one name.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Changed")]
pub struct Changed<T> {
    pub value: T,
}

fn main() {}

// An event's stored name is written out: a default taken from the type's name would orphan
// the stored events when the type is renamed.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened;

fn main() {}

// A command without an `#[id]` field.
use eventweave_core::prelude::*;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {}

#[derive(Command)]
#[command(aggregate = Door)]
pub struct Open {
    pub id: u64,
}

fn main() {}

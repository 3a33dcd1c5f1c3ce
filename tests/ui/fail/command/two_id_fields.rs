// A command with two `#[id]` fields: the error is at the second.
use eventweave_core::prelude::*;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {}

#[derive(Command)]
#[command(aggregate = Door)]
pub struct Open {
    #[id]
    pub id: u64,
    #[id]
    pub other: u64,
}

fn main() {}

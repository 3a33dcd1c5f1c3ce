// A command is a struct; `#[aggregate]` generates the enum of an aggregate's commands.
use eventweave_core::prelude::*;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {}

#[derive(Command)]
#[command(aggregate = Door)]
pub enum Orders {
    Open { id: u64 },
}

fn main() {}

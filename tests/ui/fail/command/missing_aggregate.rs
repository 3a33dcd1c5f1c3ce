// A command without `#[command(aggregate = …)]`.
use eventweave_core::prelude::*;

#[derive(Command)]
pub struct Open {
    #[id]
    pub id: u64,
}

fn main() {}

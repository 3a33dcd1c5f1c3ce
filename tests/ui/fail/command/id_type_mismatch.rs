// The `#[id]` field's type is not the aggregate's `id` type: the error is at the field.
use eventweave_core::prelude::*;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Door {}

#[derive(Command)]
#[command(aggregate = Door)]
pub struct Open {
    #[id]
    pub door: String,
}

fn main() {}

// An event cannot be a union.
use eventweave_core::prelude::*;

#[derive(Event)]
#[event(name = "Bits")]
pub union Bits {
    pub a: u32,
    pub b: f32,
}

fn main() {}

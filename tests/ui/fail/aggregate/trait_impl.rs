// `#[aggregate]` on a trait impl.
use eventweave_core::prelude::*;

#[derive(Default)]
pub struct Door;

#[aggregate(id = u64)]
impl Clone for Door {
    fn clone(&self) -> Self {
        Door
    }
}

fn main() {}

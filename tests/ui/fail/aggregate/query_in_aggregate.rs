// `#[query]` belongs in a projection.
use eventweave_core::prelude::*;

#[derive(Query)]
#[query(response = bool)]
pub struct IsOpen;

#[derive(Default)]
pub struct Door {
    open: bool,
}

#[aggregate(id = u64)]
impl Door {
    #[query]
    fn is_open(&self, _: &IsOpen) -> bool {
        self.open
    }
}

fn main() {}

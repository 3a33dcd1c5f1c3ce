// `#[handle]` and `#[apply]` belong in an aggregate, not in a process manager.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Ordered")]
pub struct Ordered;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Paid")]
pub struct Paid;

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Checkout;

#[process_manager]
impl Checkout {
    #[apply]
    fn on_ordered(&mut self, _: &Ordered) {}
}

fn main() {}

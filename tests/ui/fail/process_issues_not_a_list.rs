// `issues` takes a bracketed list of command types.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Ordered")]
pub struct Ordered;

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Checkout;

#[process_manager(issues = Ordered)]
impl Checkout {
    fn on_ordered(&mut self, _: &Ordered) {}
}

fn main() {}

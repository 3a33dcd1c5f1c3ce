// A process manager's state is stored as JSON: without `Serialize`, one error, on the type.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Ordered")]
pub struct Ordered;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Paid")]
pub struct Paid;

#[derive(Default, Clone, Deserialize)]
pub struct Checkout;

#[process_manager]
impl Checkout {
    fn on_ordered(&mut self, _: &Ordered) {}
}

fn main() {}

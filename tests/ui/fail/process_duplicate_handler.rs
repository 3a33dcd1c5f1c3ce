// One handler per event type in a process manager: the second is the error.
use eventweave_core::prelude::*;
use eventweave_core::process::Issue;
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
    fn on_ordered(&mut self, _: &Ordered) {}

    fn on_ordered_again(&mut self, _: &Ordered) -> Option<Issue> {
        None
    }
}

fn main() {}

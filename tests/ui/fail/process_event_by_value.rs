// A process manager's event handler takes the event by shared reference.
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
    fn on_ordered(&mut self, e: Ordered) {
        let _ = e;
    }
}

fn main() {}

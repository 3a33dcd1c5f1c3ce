// An event handler returns issues (or a `Result` of them), not anything else.
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
    fn on_ordered(&mut self, _: &Ordered) -> u32 {
        1
    }
}

fn main() {}

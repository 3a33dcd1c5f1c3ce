// `Issue::command` takes a command that an aggregate or a decision handles: a plain
// serializable struct is refused, with the message of `Issuable`.
use eventweave_core::prelude::*;
use eventweave_core::process::Issue;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Ordered")]
pub struct Ordered;

#[derive(Serialize, Deserialize)]
pub struct ShipOrder {
    pub order: u64,
}

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Checkout;

#[process_manager]
impl Checkout {
    fn on_ordered(&mut self, _: &Ordered) -> Issue {
        Issue::command(ShipOrder { order: 1 })
    }
}

fn main() {}

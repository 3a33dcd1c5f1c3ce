// A process manager has one `#[on_rejected]` method.
use eventweave_core::prelude::*;
use eventweave_core::process::{Issue, Rejection};
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

    #[on_rejected]
    fn compensate(&mut self, _: &Rejection) {}

    #[on_rejected]
    fn compensate_again(&mut self, _: &Rejection) -> Vec<Issue> {
        Vec::new()
    }
}

fn main() {}

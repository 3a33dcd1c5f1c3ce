// A process manager's handler takes a command instead of an event: process managers react to
// events and issue commands.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Paid")]
pub struct Paid;

#[derive(Command)]
#[command(aggregate = Order)]
pub struct Ship {
    #[id]
    pub id: u64,
}

#[derive(Default)]
pub struct Order;

#[aggregate(id = u64)]
impl Order {
    #[handle]
    fn ship(_: &Ship) -> Paid {
        Paid
    }

    #[apply]
    fn paid(&mut self, _: &Paid) {}
}

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Shipping;

#[process_manager]
impl Shipping {
    fn on_ship(&mut self, _: &Ship) {}
}

fn main() {}

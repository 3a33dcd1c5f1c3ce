// `#[process_manager]`: every handler form (with and without metadata, each return type, a
// `Result`), the compensation, a non-handler method, and `crate = …` through a facade.
#![deny(warnings)]

mod facade {
    pub use eventweave_core as cqrs;
}

use std::time::Duration;

use facade::cqrs::process::{Issue, ProcessManager, Rejection};
use facade::cqrs::{Command, Event, EventMeta, aggregate, process_manager};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Ordered")]
pub struct Ordered;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Paid")]
pub struct Paid;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Due")]
pub struct Due;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Shipped")]
pub struct Shipped;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Lost")]
pub struct Lost;

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
#[command(aggregate = Parcel)]
pub struct Ship {
    #[id]
    pub parcel: u64,
}

#[derive(Default)]
pub struct Parcel;

#[aggregate(id = u64)]
impl Parcel {
    #[handle]
    fn ship(_: &Ship) -> Shipped {
        Shipped
    }

    #[apply]
    fn shipped(&mut self, _: &Shipped) {}
}

#[derive(Debug)]
pub struct Lost2;

impl std::fmt::Display for Lost2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("lost")
    }
}

impl std::error::Error for Lost2 {}

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Delivery {
    paid: bool,
    stream: String,
}

#[process_manager(name = "delivery", crate = "crate::facade::cqrs")]
impl Delivery {
    fn on_ordered(&mut self, _: &Ordered, meta: &EventMeta) -> Issue {
        self.stream = meta.stream.to_string();
        Issue::deadline(Duration::from_secs(60), Due)
    }

    fn on_paid(&mut self, _: &Paid) -> Vec<Issue> {
        self.paid = true;
        vec![self.ship()]
    }

    fn on_due(&mut self, _: &Due) -> Option<Issue> {
        (!self.paid).then(|| self.ship())
    }

    fn on_shipped(&mut self, _: &Shipped) {}

    fn on_lost(&mut self, _: &Lost) -> Result<Option<Issue>, Lost2> {
        Err(Lost2)
    }

    #[on_rejected]
    fn retry(&mut self, rejection: &Rejection) -> Vec<Issue> {
        rejection.command::<Ship>().into_iter().map(Issue::command).collect()
    }

    fn ship(&self) -> Issue {
        Issue::command(Ship { parcel: 1 })
    }
}

fn main() {
    assert_eq!(<Delivery as ProcessManager>::NAME, "delivery");
    assert_eq!(<Delivery as ProcessManager>::EVENTS.len(), 5);
}

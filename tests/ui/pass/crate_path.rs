// `crate = …` on every macro: the runtime reached through a facade module.
mod facade {
    pub use eventweave_core as cqrs;
}

use facade::cqrs::{Command, Event, Query, aggregate, projection};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Lit", crate = "crate::facade::cqrs")]
pub struct Lit;

#[derive(Command, Clone)]
#[command(aggregate = Lamp, crate = crate::facade::cqrs)]
pub struct Light {
    #[id]
    pub lamp: u64,
}

#[derive(Query)]
#[query(response = bool, crate = "crate::facade::cqrs")]
pub struct IsLit;

#[derive(Default)]
pub struct Lamp;

#[aggregate(id = u64, crate = "crate::facade::cqrs")]
impl Lamp {
    #[handle]
    fn light(_: &Light) -> Lit {
        Lit
    }

    #[apply]
    fn lit(&mut self, _: &Lit) {}
}

#[derive(Default)]
pub struct LampState(bool);

#[projection(crate = "crate::facade::cqrs")]
impl LampState {
    fn on_lit(&mut self, _: &Lit) {
        self.0 = true;
    }

    #[query]
    fn is_lit(&self, _: &IsLit) -> bool {
        self.0
    }
}

fn main() {
    use facade::cqrs::{Aggregate, EventSet};
    assert_eq!(<Lamp as Aggregate>::NAME, "lamp");
    assert_eq!(LampEvent::NAMES, ["Lit"]);
}

// `snapshot_version` alone takes no snapshots: it needs `snapshot_every`; `snapshot_every = 0` is refused.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
struct Opened;

#[derive(Default, Serialize, Deserialize)]
struct Door;

#[aggregate(id = u64, snapshot_version = 2)]
impl Door {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

#[derive(Default, Serialize, Deserialize)]
struct Gate;

#[aggregate(id = u64, snapshot_every = 0)]
impl Gate {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}

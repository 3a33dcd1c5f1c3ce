// After the event, the metadata and the unit of work, a handler takes nothing else.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

pub struct SqlTx;

#[derive(Default)]
pub struct Openings;

#[projection]
impl Openings {
    async fn on_opened(&mut self, _: &Opened, meta: &EventMeta, db: &SqlTx, by: &str) {
        let _ = (meta, db, by);
    }
}

fn main() {}

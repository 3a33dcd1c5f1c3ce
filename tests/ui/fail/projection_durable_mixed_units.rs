// Every method of a durable projection borrows the same unit of work.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Closed")]
pub struct Closed;

pub struct SqlTx;
pub struct OtherTx;

#[derive(Default)]
pub struct Openings;

#[projection]
impl Openings {
    async fn on_opened(&mut self, _: &Opened, db: &SqlTx) {
        let _ = db;
    }

    fn on_closed(&mut self, _: &Closed, meta: &EventMeta, db: &OtherTx) {
        let _ = (meta, db);
    }
}

fn main() {}

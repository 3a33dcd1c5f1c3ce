// The unit of work is borrowed by shared reference: `db: &SqlTx`, not `&mut`.
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
    fn on_opened(&mut self, _: &Opened, meta: &EventMeta, db: &mut SqlTx) {
        let _ = (meta, db);
    }
}

fn main() {}

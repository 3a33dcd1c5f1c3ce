// The unit of work is borrowed: `db: &SqlTx`.
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
    async fn on_opened(&mut self, _: &Opened, db: SqlTx) {
        let _ = db;
    }
}

fn main() {}

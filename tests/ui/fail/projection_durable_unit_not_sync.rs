// The unit of work is lent to handlers on a runner task: it must be `Sync`.
use std::cell::RefCell;

use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

pub struct SqlTx {
    statements: RefCell<Vec<String>>,
}

#[derive(Default)]
pub struct Openings;

#[projection]
impl Openings {
    fn on_opened(&mut self, _: &Opened, db: &SqlTx) {
        db.statements.borrow_mut().push("insert".into());
    }
}

fn main() {}

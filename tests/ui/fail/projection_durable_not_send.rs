// A durable projection's handler runs on a runner task: its future must be `Send`.
use std::rc::Rc;

use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened;

#[derive(Default)]
pub struct Openings {
    count: u64,
}

#[projection]
impl Openings {
    async fn on_opened(&mut self, _: &Opened) {
        let shared = Rc::new(1);
        std::future::ready(()).await;
        self.count += *shared;
    }
}

fn main() {}

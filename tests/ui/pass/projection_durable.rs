// Durable projections: one over a unit of work (`db: &Tx`, sync and async handlers, metadata,
// a fallible `#[reset]`), one over every unit (async handlers only), and one through
// `crate = …`. Lints of a strict user crate stay quiet on the generated code.
#![deny(warnings, clippy::all, clippy::pedantic)]

use std::sync::Mutex;

use eventweave_core::prelude::*;
use eventweave_core::runner::DurableProjection;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
pub struct Opened {
    pub owner: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Closed")]
pub struct Closed;

/// A unit of work: the generated code only sees its name.
pub struct Tx {
    rows: Mutex<Vec<String>>,
}

impl Tx {
    async fn insert(&self, row: String) -> Result<(), std::io::Error> {
        self.rows
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .push(row);
        Ok(())
    }
}

pub struct Owners;

#[projection(name = "owners")]
impl Owners {
    async fn on_opened(
        &mut self,
        e: &Opened,
        meta: &EventMeta,
        db: &Tx,
    ) -> Result<(), std::io::Error> {
        db.insert(format!("{} {}", meta.stream, e.owner)).await
    }

    fn on_closed(&mut self, _: &Closed, db: &Tx) {
        let _ = db;
    }

    #[reset]
    async fn truncate(&mut self, db: &Tx) -> Result<(), std::io::Error> {
        db.insert("truncate".into()).await
    }
}

#[derive(Default)]
pub struct Counter {
    opened: u64,
}

#[projection]
impl Counter {
    async fn on_opened(&mut self, _: &Opened) {
        self.opened += 1;
    }

    #[reset]
    fn reset(&mut self) {
        self.opened = 0;
    }
}

mod facade {
    pub use eventweave_core as cqrs;
}

pub struct Closings;

#[facade::cqrs::projection(crate = "crate::facade::cqrs")]
impl Closings {
    async fn on_closed(&mut self, _: &Closed, db: &Tx) {
        let _ = db;
    }
}

fn assert_durable<P: DurableProjection<U>, U: ?Sized + Sync>() {}

fn main() {
    assert_durable::<Owners, Tx>();
    assert_durable::<Closings, Tx>();
    assert_durable::<Counter, ()>();
    assert_durable::<Counter, Tx>();
    assert_durable::<Counter, str>();
    assert_eq!(
        <Owners as DurableProjection<Tx>>::EVENTS,
        ["Opened", "Closed"]
    );
    assert_eq!(<Counter as DurableProjection>::NAME, "counter");
    assert_eq!(Counter::default().opened, 0);
}

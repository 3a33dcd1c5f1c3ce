// An aggregate with no methods and a projection with no handler still compile: the generated
// enums are empty and every match over them is exhaustive.
use eventweave_core::prelude::*;
use eventweave_core::{CommandSet, EventSet};

#[derive(Default)]
pub struct Nothing;

#[aggregate(id = String)]
impl Nothing {}

#[derive(Default)]
pub struct Silence;

#[projection]
impl Silence {
    pub fn helper(&self) -> u8 {
        0
    }
}

fn main() {
    assert!(NothingEvent::NAMES.is_empty());
    assert!(NothingCommand::NAMES.is_empty());
    assert_eq!(<Nothing as Aggregate>::NAME, "nothing");
    assert!(NothingCommand::from_json("Anything", "{}").is_err());
    assert!(NothingEvent::decode("anything", 1, "{}").is_err());
    assert_eq!(<Silence as Projection>::NAME, "silence");
    assert!(<Silence as Projection>::EVENTS.is_empty());
    assert_eq!(Silence.helper(), 0);
}

// `#[tag]` on a field of a tuple variant of an enum event: a tag is named after its field.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.changed")]
pub enum CourseChanged {
    Renamed { #[tag] course: String, name: String },
    Closed(#[tag] String),
}

fn main() {}

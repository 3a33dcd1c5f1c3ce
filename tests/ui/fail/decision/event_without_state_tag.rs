// A decision state folds an event that carries none of the tags the state is read by: the
// query would never select it.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.defined")]
pub struct CourseDefined {
    #[tag]
    pub course: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.renamed")]
pub struct CourseRenamed {
    pub name: String,
}

#[derive(Default)]
pub struct CourseSeats;

#[decision_state(tags = [course])]
impl CourseSeats {
    #[apply]
    fn defined(&mut self, _: &CourseDefined) {}

    #[apply]
    fn renamed(&mut self, _: &CourseRenamed) {}
}

fn main() {}

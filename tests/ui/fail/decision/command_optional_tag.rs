// A decision's command cannot fill a state's tag with an `Option`.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.subscribed")]
pub struct Subscribed {
    #[tag]
    pub course: String,
}

#[derive(Default)]
pub struct CourseSeats;

#[decision_state(tags = [course])]
impl CourseSeats {
    #[apply]
    fn subscribed(&mut self, _: &Subscribed) {}
}

#[derive(Command)]
#[command(decision = Courses)]
pub struct Subscribe {
    #[tag]
    pub course: Option<String>,
}

pub struct Courses;

#[decision]
impl Courses {
    #[handle]
    fn subscribe(cmd: &Subscribe, _: &CourseSeats) -> Subscribed {
        Subscribed {
            course: cmd.course.clone().unwrap_or_default(),
        }
    }
}

fn main() {}

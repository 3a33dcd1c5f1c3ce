// A decision's command fills a state's tag with a field of another type than the events'.
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
    pub course: u64,
}

pub struct Courses;

#[decision]
impl Courses {
    #[handle]
    fn subscribe(cmd: &Subscribe, seats: &CourseSeats) -> Subscribed {
        let _ = seats;
        Subscribed { course: cmd.course.to_string() }
    }
}

fn main() {}

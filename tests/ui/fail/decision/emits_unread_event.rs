// A decision emits an event that none of its states reads back: the next decision could not
// see it (here the event lacks the `course` tag its state is read by).
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.subscribed")]
pub struct Subscribed {
    #[tag]
    pub course: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.waitlisted")]
pub struct Waitlisted {
    pub student: String,
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
    pub course: String,
    pub student: String,
}

pub struct Courses;

#[decision]
impl Courses {
    #[handle]
    fn subscribe(cmd: &Subscribe, seats: &CourseSeats) -> Option<Waitlisted> {
        let _ = seats;
        Some(Waitlisted { student: cmd.student.clone() })
    }
}

fn main() {}

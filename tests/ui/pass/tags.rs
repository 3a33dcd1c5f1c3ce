// Tags from `Option` fields (none when `None`) and from enum events (the variant's fields),
// checked at run time; a decision state folding such events.
use eventweave_core::prelude::*;
use eventweave_core::{Tag, Tags};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "pass.tags.assigned")]
pub struct Assigned {
    #[tag]
    pub course: String,
    #[tag(key = "room")]
    pub room_number: Option<u32>,
    #[tag]
    pub mentor: std::option::Option<String>,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "pass.tags.course_changed")]
pub enum CourseChanged {
    Renamed {
        #[tag]
        course: String,
        name: String,
    },
    Moved {
        #[tag]
        course: String,
        #[tag]
        room: Option<u32>,
    },
    Nothing,
}

#[derive(Default)]
pub struct CourseState {
    pub changes: u32,
}

#[decision_state(tags = [course])]
impl CourseState {
    #[apply]
    fn assigned(&mut self, _: &Assigned) {
        self.changes += 1;
    }
    #[apply]
    fn changed(&mut self, _: &CourseChanged) {
        self.changes += 1;
    }
}

fn tags(list: &[&str]) -> Tags {
    Tags::new(list.iter().map(|t| Tag::parse(t).unwrap()))
}

fn main() {
    let full = Assigned {
        course: "c1".into(),
        room_number: Some(7),
        mentor: Some("ada".into()),
    };
    assert_eq!(full.tags().unwrap(), tags(&["course:c1", "room:7", "mentor:ada"]));
    let bare = Assigned {
        course: "c1".into(),
        room_number: None,
        mentor: None,
    };
    assert_eq!(bare.tags().unwrap(), tags(&["course:c1"]));
    let renamed = CourseChanged::Renamed {
        course: "c2".into(),
        name: "Algebra".into(),
    };
    assert_eq!(renamed.tags().unwrap(), tags(&["course:c2"]));
    let moved = CourseChanged::Moved {
        course: "c3".into(),
        room: Some(4),
    };
    assert_eq!(moved.tags().unwrap(), tags(&["course:c3", "room:4"]));
    assert_eq!(CourseChanged::Nothing.tags().unwrap(), Tags::empty());
    let keys: Vec<&str> = <CourseChanged as Event>::TAG_FIELDS.iter().map(|f| f.key).collect();
    assert_eq!(keys, ["course", "course", "room"]);
    let types: Vec<&str> = <Assigned as Event>::TAG_FIELDS.iter().map(|f| f.ty).collect();
    assert_eq!(types, ["String", "u32", "String"], "an `Option`'s inner type");
}

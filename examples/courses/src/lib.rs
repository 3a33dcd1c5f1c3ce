//! Course subscriptions, the example of the Dynamic Consistency Boundary specification
//! (dcb.events): courses have a capacity that may change, students subscribe to courses, a
//! course never takes more students than its capacity and a student takes at most
//! [`MAX_COURSES_PER_STUDENT`] courses.
//!
//! With aggregates, "a course is not over-booked" and "a student takes at most 3 courses"
//! are two consistency boundaries that a subscription must respect at once: the course and the
//! student would have to be one aggregate (a god-aggregate of everything), or a process
//! manager would book the seat and compensate when the student's limit is hit. Here one
//! [`Courses`] decision reads exactly what a subscription depends on, two small states:
//! [`CourseSeats`] (the course's events, by its `course` tag) and [`StudentCourses`] (the
//! student's subscriptions, by its `student` tag), and appends only if neither changed since
//! it read them. Subscriptions to other courses by other students never conflict with it.
//!
//! The functions are generic over the store, so the same domain runs on `MemoryStore` in the
//! tests and on SQLite or PostgreSQL.

use std::collections::BTreeSet;
use std::fmt;

use eventweave_core::TagValue;
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

/// The most courses one student may take.
pub const MAX_COURSES_PER_STUDENT: usize = 3;

/// Identifies a course (`"c-101"`). Its tag text is the id itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CourseId(pub String);

/// Identifies a student.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StudentId(pub String);

impl TagValue for CourseId {
    fn tag_text(&self) -> String {
        self.0.clone()
    }
}

impl TagValue for StudentId {
    fn tag_text(&self) -> String {
        self.0.clone()
    }
}

impl fmt::Display for CourseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for StudentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A course was defined with a capacity.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.defined")]
pub struct CourseDefined {
    /// The course.
    #[tag]
    pub course: CourseId,
    /// How many students it takes.
    pub capacity: u32,
}

/// A course's capacity changed.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.capacity_changed")]
pub struct CourseCapacityChanged {
    /// The course.
    #[tag]
    pub course: CourseId,
    /// The new capacity.
    pub capacity: u32,
}

/// A student subscribed to a course: tagged with both, so both states read it.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "course.student_subscribed")]
pub struct StudentSubscribed {
    /// The course.
    #[tag]
    pub course: CourseId,
    /// The student.
    #[tag]
    pub student: StudentId,
}

/// Defines a course.
#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(decision = Courses)]
pub struct DefineCourse {
    /// The course.
    #[tag]
    pub course: CourseId,
    /// Its capacity.
    pub capacity: u32,
}

/// Changes a course's capacity.
#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(decision = Courses)]
pub struct ChangeCourseCapacity {
    /// The course.
    #[tag]
    pub course: CourseId,
    /// The new capacity.
    pub capacity: u32,
}

/// Subscribes a student to a course.
#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(decision = Courses)]
pub struct SubscribeStudent {
    /// The course.
    #[tag]
    pub course: CourseId,
    /// The student.
    #[tag]
    pub student: StudentId,
}

/// Why a course command is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CourseError {
    /// The course is already defined.
    #[error("course {0} already exists")]
    AlreadyDefined(CourseId),
    /// No such course.
    #[error("course {0} does not exist")]
    NoSuchCourse(CourseId),
    /// The capacity is the one it has.
    #[error("course {0} already has capacity {1}")]
    SameCapacity(CourseId, u32),
    /// The capacity would be below the students already subscribed.
    #[error("course {0} has {1} students, more than capacity {2}")]
    BelowSubscriptions(CourseId, u32, u32),
    /// The course is full.
    #[error("course {0} is full")]
    CourseFull(CourseId),
    /// The student already takes this course.
    #[error("student {0} already takes course {1}")]
    AlreadySubscribed(StudentId, CourseId),
    /// The student takes the most courses allowed.
    #[error("student {0} already takes {MAX_COURSES_PER_STUDENT} courses")]
    TooManyCourses(StudentId),
}

/// One course: whether it exists, its capacity and how many seats are taken. Read by the
/// course's tag, so a decision about course `c1` reads nothing of other courses.
#[derive(Debug, Default)]
pub struct CourseSeats {
    defined: bool,
    capacity: u32,
    taken: u32,
}

#[decision_state(tags = [course])]
impl CourseSeats {
    #[apply]
    fn defined(&mut self, e: &CourseDefined) {
        self.defined = true;
        self.capacity = e.capacity;
    }

    #[apply]
    fn capacity_changed(&mut self, e: &CourseCapacityChanged) {
        self.capacity = e.capacity;
    }

    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.taken += 1;
    }
}

/// One student's subscriptions, read by the student's tag.
#[derive(Debug, Default)]
pub struct StudentCourses {
    courses: BTreeSet<CourseId>,
}

#[decision_state(tags = [student])]
impl StudentCourses {
    #[apply]
    fn subscribed(&mut self, e: &StudentSubscribed) {
        self.courses.insert(e.course.clone());
    }
}

/// The decisions about courses and subscriptions. Their events go to the stream
/// `courses-<course>` (or `courses-<course>-<student>` for a subscription).
pub struct Courses;

#[decision(name = "courses")]
impl Courses {
    #[handle]
    fn define(cmd: &DefineCourse, course: &CourseSeats) -> Result<CourseDefined, CourseError> {
        if course.defined {
            return Err(CourseError::AlreadyDefined(cmd.course.clone()));
        }
        Ok(CourseDefined {
            course: cmd.course.clone(),
            capacity: cmd.capacity,
        })
    }

    #[handle]
    fn change_capacity(
        cmd: &ChangeCourseCapacity,
        course: &CourseSeats,
    ) -> Result<CourseCapacityChanged, CourseError> {
        if !course.defined {
            return Err(CourseError::NoSuchCourse(cmd.course.clone()));
        }
        if course.capacity == cmd.capacity {
            return Err(CourseError::SameCapacity(cmd.course.clone(), cmd.capacity));
        }
        if course.taken > cmd.capacity {
            let (id, taken) = (cmd.course.clone(), course.taken);
            return Err(CourseError::BelowSubscriptions(id, taken, cmd.capacity));
        }
        Ok(CourseCapacityChanged {
            course: cmd.course.clone(),
            capacity: cmd.capacity,
        })
    }

    /// Two states, each read by its own tag: the rule spans the course and the student
    /// without a type that holds both.
    #[handle]
    fn subscribe(
        cmd: &SubscribeStudent,
        course: &CourseSeats,
        student: &StudentCourses,
    ) -> Result<StudentSubscribed, CourseError> {
        if !course.defined {
            return Err(CourseError::NoSuchCourse(cmd.course.clone()));
        }
        if student.courses.contains(&cmd.course) {
            let (s, c) = (cmd.student.clone(), cmd.course.clone());
            return Err(CourseError::AlreadySubscribed(s, c));
        }
        if course.taken >= course.capacity {
            return Err(CourseError::CourseFull(cmd.course.clone()));
        }
        if student.courses.len() >= MAX_COURSES_PER_STUDENT {
            return Err(CourseError::TooManyCourses(cmd.student.clone()));
        }
        Ok(StudentSubscribed {
            course: cmd.course.clone(),
            student: cmd.student.clone(),
        })
    }
}

/// The application over any store (the example's tests use `MemoryStore`; the SQL stores run
/// the same code). `retries` bounds how often a decision is re-read and re-decided when a
/// concurrent subscription changed what it read.
pub async fn app<S: EventStore>(
    store: S,
    retries: u32,
) -> Result<Cqrs<S>, eventweave_core::BuildError> {
    Cqrs::builder(store).max_retries(retries).build().await
}

/// The id of course `name`.
pub fn course(name: &str) -> CourseId {
    CourseId(name.to_owned())
}

/// The id of student `name`.
pub fn student(name: &str) -> StudentId {
    StudentId(name.to_owned())
}

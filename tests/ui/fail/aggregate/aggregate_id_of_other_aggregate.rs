// `EventMeta::aggregate_id` is checked against the aggregate the event belongs to: a member's
// event cannot give a book's id.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Joined")]
pub struct Joined;

#[derive(Command)]
#[command(aggregate = Member)]
pub struct Join {
    #[id]
    pub member: u64,
}

#[derive(Default)]
pub struct Member;

#[aggregate(id = u64)]
impl Member {
    #[handle]
    fn join(_: &Join) -> Joined {
        Joined
    }

    #[apply]
    fn joined(&mut self, _: &Joined) {}
}

#[derive(Default)]
pub struct Book;

#[aggregate(id = String)]
impl Book {}

fn book_of(meta: &EventMeta, e: &Joined) -> String {
    meta.aggregate_id::<Book, _>(e).unwrap()
}

fn main() {
    let _ = book_of;
}

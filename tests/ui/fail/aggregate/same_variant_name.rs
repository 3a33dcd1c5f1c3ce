// Two event types with one name in different modules would make two enum variants of one name.
use eventweave_core::prelude::*;

mod door {
    use eventweave_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "door.opened")]
    pub struct Opened;
}

mod window {
    use eventweave_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "window.opened")]
    pub struct Opened;
}

#[derive(Default)]
pub struct House;

#[aggregate(id = u64)]
impl House {
    #[apply]
    fn door_opened(&mut self, _: &door::Opened) {}

    #[apply]
    fn window_opened(&mut self, _: &window::Opened) {}
}

fn main() {}

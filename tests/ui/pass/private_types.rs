// A private aggregate with private events and commands compiles without warnings when its
// generated enums are given the aggregate's visibility (`vis = …`); a `pub` aggregate may
// have private events in its `pub` enums.
#![deny(warnings)]

use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened")]
struct Opened;

#[derive(Command, Clone)]
#[command(aggregate = Door)]
struct Open {
    #[id]
    id: u64,
}

#[derive(Default)]
struct Door {
    open: bool,
}

#[aggregate(id = u64, vis = pub(self))]
impl Door {
    #[handle]
    fn open(_: Open) -> Opened {
        Opened
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }
}

fn main() {
    let mut door = Door::default();
    door.apply(&DoorEvent::from(Opened));
    assert!(door.open);
    let _ = Open { id: 1 }.id;
    let _ = public::light();
}

mod public {
    use eventweave_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "Lit")]
    struct Lit;

    /// A public aggregate whose events are private.
    #[derive(Default)]
    pub struct Lamp;

    #[aggregate(id = u64)]
    impl Lamp {
        #[apply]
        fn lit(&mut self, _: &Lit) {}
    }

    pub fn light() -> LampEvent {
        Lit.into()
    }
}

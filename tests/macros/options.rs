//! The aggregate's naming arguments and `crate = …`.

use eventweave_core::prelude::*;
use eventweave_core::{CommandSet, EventSet, registry};

// ---------------------------------------------------------------------------------------------
// `event = …`, `command = …`, `name = …` on the aggregate

mod lamps {
    use eventweave_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "lamp.switched")]
    pub struct Switched {
        pub on: bool,
    }

    #[derive(Command, Clone, Debug, Deserialize)]
    #[command(aggregate = Lamp)]
    pub struct Switch {
        #[id]
        pub room: String,
        pub on: bool,
    }

    #[derive(Default)]
    pub struct Lamp {
        pub on: bool,
        pub switches: u32,
    }

    #[aggregate(id = String, name = "lamps", event = LampChange, command = LampOrder)]
    impl Lamp {
        /// Creates the lamp or switches it: both through one `&self` handler would need a
        /// stream; this one creates.
        #[handle]
        async fn switch(cmd: &Switch) -> Switched {
            Switched { on: cmd.on }
        }

        #[apply]
        fn switched(&mut self, e: &Switched) {
            self.on = e.on;
            self.switches += 1;
        }
    }
}

#[tokio::test]
async fn enum_and_stream_names_can_be_chosen() {
    use lamps::{Lamp, LampChange, LampOrder, Switch, Switched};
    assert_eq!(<Lamp as Aggregate>::NAME, "lamps");
    assert_eq!(LampChange::NAMES, ["lamp.switched"]);
    assert_eq!(LampOrder::NAMES, ["Switch"]);
    let app = Cqrs::builder(MemoryStore::new()).build().await.unwrap();
    let outcome = app
        .execute(Switch {
            room: "hall".into(),
            on: true,
        })
        .await
        .unwrap();
    assert_eq!(outcome.stream.to_string(), "lamps-hall");
    let (lamp, _) = app.load::<Lamp>(&"hall".to_owned()).await.unwrap();
    assert!(lamp.on);
    assert_eq!(lamp.switches, 1);
    assert_eq!(
        LampChange::from(Switched { on: false }),
        LampChange::Switched(Switched { on: false })
    );
}

// ---------------------------------------------------------------------------------------------
// `crate = …`: the generated code goes through the given path. The shim re-exports the
// runtime and replaces one helper with a counting one, so the test sees that path being used.

pub mod shim {
    pub use eventweave_core::*;

    #[doc(hidden)]
    pub mod __private {
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub use eventweave_core::__private::*;

        /// How many events went through this shim's `encode_event`.
        pub static ENCODED: AtomicUsize = AtomicUsize::new(0);

        pub fn encode_event<E: serde::Serialize>(
            event: &E,
            out: &mut Vec<u8>,
        ) -> Result<(), serde_json::Error> {
            ENCODED.fetch_add(1, Ordering::SeqCst);
            eventweave_core::__private::encode_event(event, out)
        }
    }
}

mod through_shim {
    use serde::{Deserialize, Serialize};

    use crate::options::shim::{Command, Event, Query, aggregate, projection};

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(crate = "crate::options::shim", name = "meter.ticked")]
    pub struct Ticked {
        pub by: u32,
    }

    #[derive(Command, Clone, Debug)]
    #[command(aggregate = Meter, crate = crate::options::shim)]
    pub struct Tick {
        #[id]
        pub id: u64,
        pub by: u32,
    }

    #[derive(Query)]
    #[query(response = u32, crate = "crate::options::shim")]
    pub struct Ticks;

    #[derive(Default)]
    pub struct Meter;

    #[aggregate(id = u64, crate = "crate::options::shim")]
    impl Meter {
        #[handle]
        fn tick(cmd: Tick) -> Ticked {
            Ticked { by: cmd.by }
        }

        #[apply]
        fn ticked(&mut self, _: &Ticked) {}
    }

    #[derive(Default)]
    pub struct TickTotal(pub u32);

    #[projection(crate = crate::options::shim)]
    impl TickTotal {
        fn on_ticked(&mut self, e: &Ticked) {
            self.0 += e.by;
        }

        #[query]
        fn total(&self, _: &Ticks) -> u32 {
            self.0
        }
    }
}

#[tokio::test]
async fn crate_argument_routes_generated_code_through_the_given_path() {
    use std::sync::atomic::Ordering;

    use through_shim::{Tick, TickTotal, Ticks};

    let before = shim::__private::ENCODED.load(Ordering::SeqCst);
    let app = Cqrs::builder(MemoryStore::new())
        .projection(TickTotal::default())
        .build()
        .await
        .unwrap();
    let outcome = app.execute(Tick { id: 1, by: 3 }).await.unwrap();
    assert_eq!(outcome.events[0].meta.event_name, "meter.ticked");
    assert_eq!(
        shim::__private::ENCODED.load(Ordering::SeqCst),
        before + 1,
        "the event was encoded through `crate::options::shim::__private`"
    );
    assert_eq!(app.query_after(outcome.position(), Ticks).await.unwrap(), 3);
    let registered = registry::aggregates()
        .into_iter()
        .find(|r| r.name == "meter")
        .map(|r| r.type_name);
    assert_eq!(registered, Some("macros::options::through_shim::Meter"));
}

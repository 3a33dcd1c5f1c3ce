// Less common but accepted forms: events from other modules, methods named like the traits'
// methods, several services, nested return values, `Result<(), E>`, generic and enum queries,
// a newtype id.
use std::fmt;

use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

mod events {
    use eventweave_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "bell.cast")]
    pub struct Cast;

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "bell.rung")]
    pub struct Rung(pub u8);

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "bell.tuned", version = 3)]
    // Upcasters named through `Self`, and one step reused.
    #[upcast(from = 2, with = Self::unchanged)]
    #[upcast(from = 1, with = Self::unchanged)]
    pub enum Tuned {
        Up,
        Down,
    }

    impl Tuned {
        fn unchanged(payload: serde_json::Value) -> serde_json::Value {
            payload
        }
    }
}

use events::Tuned;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BellId(pub String);

impl fmt::Display for BellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Command, Clone)]
#[command(aggregate = Bell)]
pub struct CastBell {
    #[id]
    pub bell: BellId,
}

#[derive(Command)]
#[command(aggregate = Bell, name = "bell.ring")]
pub struct Ring {
    #[id]
    pub bell: BellId,
    pub times: u8,
}

#[derive(Command)]
#[command(aggregate = Bell)]
pub struct Check {
    #[id]
    pub bell: BellId,
}

#[derive(Debug)]
pub struct Cracked;

impl fmt::Display for Cracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cracked")
    }
}

impl std::error::Error for Cracked {}

pub struct Foundry {
    pub name: &'static str,
}

pub struct Tuner {
    pub up: bool,
}

#[derive(Default)]
pub struct Bell {
    rings: u32,
    tune: i8,
}

#[aggregate(id = BellId, name = "bells")]
impl Bell {
    #[handle]
    async fn handle(
        _: CastBell,
        foundry: &Foundry,
        tuner: &Tuner,
    ) -> (events::Cast, Option<Tuned>) {
        assert_eq!(foundry.name, "acme");
        (events::Cast, tuner.up.then_some(Tuned::Up))
    }

    #[handle]
    fn ring(&self, cmd: &Ring) -> (Vec<events::Rung>, ()) {
        ((0..cmd.times).map(events::Rung).collect(), ())
    }

    #[handle]
    fn check(&self, _: &Check) -> Result<(), Cracked> {
        if self.tune < -5 { Err(Cracked) } else { Ok(()) }
    }

    #[apply]
    fn apply(&mut self, _: &events::Cast) {}

    #[apply]
    fn rung(&mut self, _: &events::Rung) {
        self.rings += 1;
    }

    #[apply]
    fn tuned(&mut self, e: &Tuned) {
        self.tune += match e {
            Tuned::Up => 1,
            Tuned::Down => -1,
        };
    }
}

#[derive(Query)]
#[query(response = Option<u32>)]
pub struct RingsOf<K> {
    pub key: K,
}

#[derive(Query)]
#[query(response = u32)]
pub enum Count {
    All,
    None,
}

#[derive(Default)]
pub struct Rings {
    by_stream: std::collections::HashMap<String, u32>,
}

#[projection]
impl Rings {
    fn on_rung(&mut self, _: &events::Rung, meta: &eventweave_core::EventMeta) {
        *self.by_stream.entry(meta.stream.to_string()).or_default() += 1;
    }

    #[query]
    fn rings_of(&self, q: &RingsOf<&'static str>) -> Option<u32> {
        self.by_stream.get(q.key).copied()
    }

    #[query]
    fn count(&self, q: &Count) -> u32 {
        match q {
            Count::All => self.by_stream.values().sum(),
            Count::None => 0,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = Cqrs::builder(MemoryStore::new())
        .service(Foundry { name: "acme" })
        .service(Tuner { up: true })
        .projection(Rings::default())
        .build()
        .await
        .unwrap();
    let bell = BellId("big-ben".into());
    let cast = app.execute(CastBell { bell: bell.clone() }).await.unwrap();
    assert_eq!(cast.events.len(), 2);
    assert_eq!(cast.stream.to_string(), "bells-big-ben");
    let rung = app
        .execute(Ring {
            bell: bell.clone(),
            times: 3,
        })
        .await
        .unwrap();
    assert_eq!(rung.version, 5);
    let checked = app.execute(Check { bell }).await.unwrap();
    assert!(checked.events.is_empty());
    let rings = app
        .query_after(
            rung.position(),
            RingsOf {
                key: "bells-big-ben",
            },
        )
        .await
        .unwrap();
    assert_eq!(rings, Some(3));
    assert_eq!(app.query(Count::All).await.unwrap(), 3);
    assert_eq!(<Ring as Command>::NAME, "bell.ring");
    assert_eq!(<Tuned as Event>::VERSION, 3);
}

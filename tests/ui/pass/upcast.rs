// Upcasters of every accepted form: JSON to JSON, typed old version to typed next version,
// fallible, to the event itself, through `Self`, and with the crate path given.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 4)]
#[upcast(from = 3, with = Self::from_v3)]
#[upcast(from = 1, with = v1_to_v2)]
#[upcast(from = 2, with = typed::v2_to_v3)]
pub struct Opened {
    pub by: String,
    pub at: u64,
}

impl Opened {
    fn from_v3(v3: typed::OpenedV3) -> Result<Self, typed::NoTime> {
        Ok(Opened {
            by: v3.by,
            at: v3.at.ok_or(typed::NoTime)?,
        })
    }
}

fn v1_to_v2(mut v1: serde_json::Value) -> serde_json::Value {
    v1["by"] = "unknown".into();
    v1
}

mod typed {
    use eventweave_core::UpcastPayload;
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize)]
    pub struct OpenedV2 {
        pub by: String,
    }

    #[derive(Serialize, Deserialize)]
    pub struct OpenedV3 {
        pub by: String,
        pub at: Option<u64>,
    }

    impl UpcastPayload for OpenedV3 {}

    #[derive(Debug)]
    pub struct NoTime;

    impl std::fmt::Display for NoTime {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("no time")
        }
    }

    impl std::error::Error for NoTime {}

    pub fn v2_to_v3(v2: OpenedV2) -> OpenedV3 {
        OpenedV3 { by: v2.by, at: None }
    }
}

mod facade {
    pub use eventweave_core as cqrs;
}

#[derive(eventweave_core::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.closed", version = 2, crate = "facade::cqrs")]
#[upcast(from = 1, with = closed_v1)]
pub struct Closed;

fn closed_v1(_: serde_json::Value) -> Result<serde_json::Value, std::io::Error> {
    Ok(serde_json::Value::Null)
}

fn main() {
    let v3 = serde_json::json!({ "by": "ada", "at": 7 });
    assert_eq!(
        <Opened as Event>::upcast(3, v3.clone()),
        Ok(serde_json::json!({ "by": "ada", "at": 7 }))
    );
    assert!(<Opened as Event>::upcast(1, serde_json::json!({})).is_err());
    assert_eq!(<Closed as Event>::VERSION, 2);
}

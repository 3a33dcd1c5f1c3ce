//! Rejections that serialise: the domain error types whose data a `rejected` problem carries.

use std::error::Error as StdError;

use serde::Serialize;
use serde_json::Value;

type Serializer = fn(&(dyn StdError + Send + Sync + 'static)) -> Option<Value>;

/// The registered error types (`ApiBuilder::rejection`), tried in order.
#[derive(Clone, Default)]
pub(crate) struct Rejections(Vec<Serializer>);

fn serialize_as<E: StdError + Serialize + Send + Sync + 'static>(
    error: &(dyn StdError + Send + Sync + 'static),
) -> Option<Value> {
    serde_json::to_value(error.downcast_ref::<E>()?).ok()
}

impl Rejections {
    pub fn add<E: StdError + Serialize + Send + Sync + 'static>(&mut self) {
        self.0.push(serialize_as::<E>);
    }

    /// The error as JSON, if its type was registered and it serialises.
    pub fn serialize(&self, error: &(dyn StdError + Send + Sync + 'static)) -> Option<Value> {
        self.0.iter().find_map(|f| f(error))
    }
}

//! The catalog as JSON: the document for tools and the payload schemas.
//!
//! Both are stable: keys in a fixed order (the document) or sorted (schemas, whatever order
//! `serde_json` keeps maps in), lists sorted, two-space indentation, a final newline. Same
//! declarations, same bytes, so a committed copy can be compared with the code.
//!
//! The document's keys follow declaration order through derived `Serialize` (not a
//! `serde_json::Map`, whose order depends on `preserve_order`); schema objects are re-serialized
//! with sorted keys.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::Catalog;

/// `format` of the catalog document.
pub const FORMAT: &str = "eventweave-catalog";
/// `format` of the schemas document.
pub const SCHEMAS_FORMAT: &str = "eventweave-catalog-schemas";
/// `version` of both documents' shape; raised when a field changes meaning or goes away (new
/// fields may appear without it).
///
/// - 1: the first shape.
/// - 2 (issue 15): decisions are listed in `decisions`, no longer among `aggregates`; a
///   decision's command names it in `decision` (its `aggregate` is `null`); events name the
///   decisions that emit and read them (`emitted_by`, `read_by`). A reader of version 1 that
///   took every command for an aggregate's would misplace a decision's.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    version: u32,
    #[serde(flatten)]
    catalog: &'a Catalog,
}

#[derive(Serialize)]
struct Schemas<'a> {
    format: &'static str,
    version: u32,
    commands: Vec<Schema<'a>>,
    events: Vec<Schema<'a>>,
}

#[derive(Serialize)]
struct Schema<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    type_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    /// `null` when the type has no schema (see `registry::SchemaFn`).
    schema: Option<Sorted<'a>>,
}

impl Catalog {
    /// The catalog as a JSON document for tools:
    ///
    /// ```text
    /// { "format": "eventweave-catalog", "version": 2,
    ///   "aggregates":       [{ "name", "type", "commands": [name], "events": [name] }],
    ///   "decisions":        [{ "name", "type", "commands": [name],
    ///                          "states": [{ "name", "tags": [key], "events": [name] }],
    ///                          "emits": [name] }],
    ///   "commands":         [{ "name", "type" | null, "aggregate" | null, "decision" | null,
    ///                          "handled": bool, "issued_by": [process manager] }],
    ///   "events":           [{ "name", "version" | null, "type" | null, "recorded_by": [aggregate],
    ///                          "emitted_by": [decision], "read_by": [decision],
    ///                          "projections": [name], "process_managers": [name] }],
    ///   "projections":      [{ "name", "type", "kind": "in-memory" | "durable",
    ///                          "events": [name], "queries": [type] }],
    ///   "process_managers": [{ "name", "type", "events": [name], "issues": [command] | null }],
    ///   "queries":          [{ "type", "response", "projection" | null }] }
    /// ```
    ///
    /// Names are stored event names, command names (`Command::NAME`) and aggregate, decision,
    /// projection and process-manager names; a state's name is its type's, its `tags` the keys
    /// its events are selected by (values from the command), in declaration order; types are `module::Type`. `null` for a type means the item is
    /// known only by name; `"issues": null` means the process manager declares nothing (unknown,
    /// not empty). Every list is sorted; the text ends with a newline.
    pub fn to_json(&self) -> String {
        pretty(&Document {
            format: FORMAT,
            version: FORMAT_VERSION,
            catalog: self,
        })
    }

    /// The JSON Schema of every command and event payload:
    ///
    /// ```text
    /// { "format": "eventweave-catalog-schemas", "version": 2,
    ///   "commands": [{ "name", "type" | null, "schema": {…} | null }],
    ///   "events":   [{ "name", "type" | null, "version", "schema": {…} | null }] }
    /// ```
    ///
    /// A schema is `null` unless `eventweave-core` has its `schemars` feature and the type
    /// implements `schemars::JsonSchema`. Object keys inside schemas are sorted.
    pub fn schemas_json(&self) -> String {
        let commands: Vec<Option<Value>> = self
            .commands
            .iter()
            .map(|c| c.schema.and_then(|f| f()))
            .collect();
        let events: Vec<Option<Value>> = self
            .events
            .iter()
            .map(|e| e.schema.and_then(|f| f()))
            .collect();
        pretty(&Schemas {
            format: SCHEMAS_FORMAT,
            version: FORMAT_VERSION,
            commands: self
                .commands
                .iter()
                .zip(&commands)
                .map(|(c, schema)| Schema {
                    name: &c.name,
                    type_name: c.type_name.as_deref(),
                    version: None,
                    schema: schema.as_ref().map(Sorted),
                })
                .collect(),
            events: self
                .events
                .iter()
                .zip(&events)
                .map(|(e, schema)| Schema {
                    name: &e.name,
                    type_name: e.type_name.as_deref(),
                    version: e.version,
                    schema: schema.as_ref().map(Sorted),
                })
                .collect(),
        })
    }

    /// The JSON Schema of the command named `name`, if it has one.
    pub fn command_schema(&self, name: &str) -> Option<Value> {
        let entry = self.commands.iter().find(|c| c.name == name)?;
        entry.schema.and_then(|f| f())
    }

    /// The JSON Schema of the event stored as `name`, if it has one.
    pub fn event_schema(&self, name: &str) -> Option<Value> {
        let entry = self.events.iter().find(|e| e.name == name)?;
        entry.schema.and_then(|f| f())
    }
}

/// Two-space indented JSON with a final newline.
fn pretty<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|e| {
        // Only maps with non-string keys fail, and there are none here.
        unreachable!("the catalog serializes: {e}")
    });
    text.push('\n');
    text
}

/// A JSON value serialized with the keys of every object sorted, whichever map `serde_json`
/// was built with (`preserve_order` keeps insertion order).
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &Sorted(value))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Sorted(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

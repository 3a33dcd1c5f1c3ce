//! The OpenAPI 3.1 document of a service, generated from what its builder registered and served
//! at `GET /openapi.json` ([`ApiBuilder::openapi`](crate::ApiBuilder::openapi), on by default).
//!
//! What it describes:
//! - **every command route**: `POST /commands/{name}` once per served command (a concrete path
//!   each, so each has its own body schema) and every typed route, with the command's JSON
//!   Schema as the request body, the outcome (`200`, `X-Position`), and the problems a command
//!   can answer, by status;
//! - **every query route**: `POST /queries/{name}` (and `GET` for a query whose schema accepts
//!   `null`, a query without fields), typed `GET` routes with their path parameters, the
//!   response's schema, and the problems of queries;
//! - the **headers**: `Idempotency-Key`, `X-Correlation-Id`, `traceparent` (echoed in
//!   responses), `X-After-Position` (and `?after=`), `Last-Event-ID` (and `?from=`),
//!   `X-Position` and `Retry-After` in responses;
//! - the **live feed** (`text/event-stream`), with the schema of its events' data, and the
//!   payload schema of every event the served aggregates record, under
//!   `components/schemas/event.{name}`;
//! - the **problems** (`application/problem+json`), each status listing the problem types
//!   (`problem` module) it stands for.
//!
//! Schemas come from the registry, as the event catalog's do: a command's, query's or event's
//! registration carries its JSON Schema when `eventweave-core` has the `schemars` feature and
//! the type derives `schemars::JsonSchema`; without one, the document says `{}` (any JSON) and
//! a description says why. Each schema's `$defs` are moved to `components/schemas` (a `$ref`
//! of `#/$defs/X` inside an OpenAPI document would point at the document's root).
//!
//! Routes added with `ApiBuilder::routes` are not described (their types are unknown here),
//! nor is the admin page.
//!
//! The text ([`Api::openapi_json`](crate::Api::openapi_json)) is stable: object keys sorted,
//! two-space indentation, a final newline, so a committed copy can be compared with the code.

use std::collections::BTreeMap;

use eventweave_core::registry;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::problem::{self, ProblemType};

/// The `openapi` version of the documents made here.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// A typed command route, as the builder recorded it.
#[derive(Clone, Debug)]
pub(crate) struct CommandRoute {
    pub path: String,
    pub name: &'static str,
    pub aggregate: &'static str,
}

/// A typed query route, as the builder recorded it.
#[derive(Clone, Debug)]
pub(crate) struct QueryRouteDoc {
    pub path: String,
    pub name: &'static str,
    pub type_name: &'static str,
}

/// What the builder serves, for the document.
#[derive(Clone, Debug)]
pub(crate) struct Described {
    pub title: String,
    pub version: String,
    pub description: Option<String>,
    /// Aggregates whose commands are served by name (`Aggregate::NAME`).
    pub aggregates: Vec<&'static str>,
    pub command_routes: Vec<CommandRoute>,
    /// Queries served by name: name → type name.
    pub queries: BTreeMap<&'static str, &'static str>,
    pub query_routes: Vec<QueryRouteDoc>,
    pub feed: bool,
    pub served: bool,
}

impl Default for Described {
    fn default() -> Self {
        Described {
            title: "eventweave service".into(),
            version: "0.0.0".into(),
            description: None,
            aggregates: Vec::new(),
            command_routes: Vec::new(),
            queries: BTreeMap::new(),
            query_routes: Vec::new(),
            feed: true,
            served: true,
        }
    }
}

/// What kind of operation a set of problem responses is for.
#[derive(Clone, Copy)]
enum Kind {
    Command,
    Query,
    Feed,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Query => "query",
            Kind::Feed => "feed",
        }
    }

    /// The problem types an operation of this kind can answer.
    fn problems(self) -> &'static [ProblemType] {
        use ProblemType as P;
        match self {
            Kind::Command => &[
                P::Rejected,
                P::NotFound,
                P::AlreadyExists,
                P::Conflict,
                P::IdempotencyKeyReused,
                P::InvalidBody,
                P::BodyTooLarge,
                P::InvalidHeader,
                P::InvalidInput,
                P::Unavailable,
                P::OutcomeUnknown,
                P::Unauthorized,
                P::Forbidden,
                P::Timeout,
                P::Internal,
            ],
            Kind::Query => &[
                P::InvalidBody,
                P::BodyTooLarge,
                P::InvalidHeader,
                P::Unavailable,
                P::QueryTimeout,
                P::Unauthorized,
                P::Forbidden,
                P::Timeout,
                P::Internal,
            ],
            Kind::Feed => &[P::InvalidHeader, P::Unauthorized, P::Forbidden],
        }
    }

    /// The statuses of its problems, each with the types answered with it.
    fn statuses(self) -> BTreeMap<u16, Vec<ProblemType>> {
        let mut statuses: BTreeMap<u16, Vec<ProblemType>> = BTreeMap::new();
        for &kind in self.problems() {
            statuses
                .entry(kind.status().as_u16())
                .or_default()
                .push(kind);
            if kind == ProblemType::OutcomeUnknown {
                // Without an idempotency key.
                statuses.entry(500).or_default().push(kind);
            }
        }
        statuses
    }
}

/// The document's components and the schemas moved into them.
struct Components {
    schemas: Map<String, Value>,
    responses: Map<String, Value>,
}

impl Components {
    /// Adds `schema` (a root schema from the registry) as `key`, its `$defs` beside it, and
    /// returns a `$ref` to it. `None` becomes `{}` with `why` as its description.
    fn add(&mut self, key: &str, schema: Option<Value>, why: &str) -> Value {
        self.add_renamed(key, schema, why).0
    }

    /// As [`add`](Components::add), with the names its `$defs` got in the components.
    fn add_renamed(
        &mut self,
        key: &str,
        schema: Option<Value>,
        why: &str,
    ) -> (Value, BTreeMap<String, String>) {
        let mut schema = match schema {
            Some(Value::Object(map)) => map,
            Some(other) => {
                // `true` / `false` schemas.
                self.schemas.insert(key.to_owned(), other);
                return (reference(key), BTreeMap::new());
            }
            None => {
                let mut map = Map::new();
                map.insert("description".into(), why.into());
                map
            }
        };
        schema.remove("$schema");
        let mut renames = BTreeMap::new();
        if let Some(Value::Object(defs)) = schema.remove("$defs") {
            // First the names (a def equal to one already there is shared; another one of the
            // same name gets a suffix), then the defs with their references rewritten.
            // Compared as they would be stored: their own references rewritten.
            let same: BTreeMap<String, String> =
                defs.keys().map(|k| (k.clone(), k.clone())).collect();
            let mut pending = Vec::new();
            for (name, def) in defs {
                let mut stored = def.clone();
                rewrite_refs(&mut stored, &same);
                let mut target = name.clone();
                let mut n = 1;
                loop {
                    match self.schemas.get(&target) {
                        Some(existing) if *existing == stored => break,
                        None => break,
                        Some(_) => {
                            n += 1;
                            target = format!("{name}_{n}");
                        }
                    }
                }
                renames.insert(name, target.clone());
                pending.push((target, def));
            }
            for (target, mut def) in pending {
                rewrite_refs(&mut def, &renames);
                self.schemas.insert(target, def);
            }
        }
        let mut schema = Value::Object(schema);
        rewrite_refs(&mut schema, &renames);
        self.schemas.insert(key.to_owned(), schema);
        (reference(key), renames)
    }

    /// The problem responses of `kind`, added once; their `$ref`s by status.
    fn problem_responses(&mut self, kind: Kind) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (status, kinds) in kind.statuses() {
            let key = format!("{}-{status}", kind.prefix());
            if !self.responses.contains_key(&key) {
                let list: Vec<String> = kinds
                    .iter()
                    .map(|k| format!("`{}` ({})", k.slug(), k.title()))
                    .collect();
                let mut response = json!({
                    "description": format!(
                        "A problem (RFC 9457) of type {}; see {}",
                        list.join(", "),
                        problem::BASE
                    ),
                    "content": {
                        problem::CONTENT_TYPE: { "schema": reference("Problem") }
                    }
                });
                if kinds.iter().any(|k| retried_after(*k, status)) {
                    response["headers"] = json!({ "Retry-After": header_ref("RetryAfter") });
                }
                self.responses.insert(key.clone(), response);
            }
            out.push((status.to_string(), response_ref(&key)));
        }
        out
    }
}

/// Whether a problem of `kind` answered with `status` carries `Retry-After`.
fn retried_after(kind: ProblemType, status: u16) -> bool {
    match kind {
        ProblemType::OutcomeUnknown => status == 503,
        ProblemType::Conflict
        | ProblemType::Unavailable
        | ProblemType::QueryTimeout
        | ProblemType::Timeout => true,
        _ => false,
    }
}

fn reference(key: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{key}") })
}

fn response_ref(key: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{key}") })
}

fn parameter_ref(key: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{key}") })
}

fn header_ref(key: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{key}") })
}

/// Rewrites `#/$defs/X` references to `#/components/schemas/{renames[X]}`.
fn rewrite_refs(value: &mut Value, renames: &BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "$ref" {
                    if let Some(name) = child.as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
                        let target = renames.get(name).map_or(name, String::as_str);
                        *child = Value::String(format!("#/components/schemas/{target}"));
                    }
                } else {
                    rewrite_refs(child, renames);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_refs(item, renames);
            }
        }
        _ => {}
    }
}

/// `/a/{b}/c` → `a_b_c`, for operation ids.
fn path_id(path: &str) -> String {
    path.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// The `{name}` parameters of a path template, in order.
pub(crate) fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*'))
        .collect()
}

/// Whether a query's schema accepts `null` (a unit struct: `GET` works without a body).
fn accepts_null(schema: Option<&Value>) -> bool {
    match schema.and_then(|s| s.get("type")) {
        None => schema.is_none(),
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        Some(_) => false,
    }
}

const NO_SCHEMA: &str = "No JSON Schema is registered for this type: build `eventweave-core` with its `schemars` feature and derive `schemars::JsonSchema` on it.";

/// Builds the document.
pub(crate) fn document(described: &Described, commands: &[&'static str]) -> Value {
    let mut c = Components {
        schemas: Map::new(),
        responses: Map::new(),
    };
    base_schemas(&mut c);
    let mut paths = Map::new();

    // Commands by name: one concrete path each.
    let registered = registry::commands();
    for &name in commands {
        let registration = registered
            .iter()
            .find(|r| r.name == name && described.aggregates.contains(&r.aggregate))
            .or_else(|| registered.iter().find(|r| r.name == name));
        let aggregate = registration.map(|r| r.aggregate);
        let schema = c.add(
            &format!("command.{name}"),
            registration.and_then(|r| (r.schema)()),
            NO_SCHEMA,
        );
        let summary = format!("Run the `{name}` command");
        let operation = command_operation(
            &mut c,
            &format!("command_{}", path_id(name)),
            &summary,
            aggregate,
            schema,
        );
        paths.insert(format!("/commands/{name}"), json!({ "post": operation }));
    }
    // Typed command routes.
    for route in &described.command_routes {
        let registration = registered
            .iter()
            .find(|r| r.name == route.name && r.aggregate == route.aggregate);
        let schema = c.add(
            &format!("command.{}", route.name),
            registration.and_then(|r| (r.schema)()),
            NO_SCHEMA,
        );
        let summary = format!("Run the `{}` command (typed route)", route.name);
        let operation = command_operation(
            &mut c,
            &format!("post_{}", path_id(&route.path)),
            &summary,
            Some(route.aggregate),
            schema,
        );
        insert_operation(&mut paths, &route.path, "post", operation);
    }

    // Queries by name.
    let queries = registry::queries();
    let find_query = |type_name: &str| queries.iter().find(|r| r.type_name == type_name);
    for (&name, &type_name) in &described.queries {
        let registration = find_query(type_name);
        let raw = registration.and_then(|r| (r.schema)());
        let get = accepts_null(raw.as_ref());
        let schema = c.add(&format!("query.{name}"), raw, NO_SCHEMA);
        let response = c.add(
            &format!("query.{name}.response"),
            registration.and_then(|r| (r.response_schema)()),
            NO_SCHEMA,
        );
        let base = path_id(name);
        let mut item = Map::new();
        let mut post = query_operation(
            &mut c,
            &format!("query_{base}"),
            &format!("Answer the `{name}` query"),
            response.clone(),
            &[],
        );
        post["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema } }
        });
        item.insert("post".into(), post);
        if get {
            let get = query_operation(
                &mut c,
                &format!("query_{base}_get"),
                &format!("Answer the `{name}` query (it has no fields, so no body)"),
                response,
                &[],
            );
            item.insert("get".into(), get);
        }
        paths.insert(format!("/queries/{name}"), Value::Object(item));
    }
    // Typed query routes.
    for route in &described.query_routes {
        let registration = find_query(route.type_name);
        let raw = registration.and_then(|r| (r.schema)());
        let response = c.add(
            &format!("query.{}.response", route.name),
            registration.and_then(|r| (r.response_schema)()),
            NO_SCHEMA,
        );
        // A path parameter named as a field of the query gets that field's schema, whose
        // references point at the query's defs where `add` put them.
        let (_, renames) = c.add_renamed(&format!("query.{}", route.name), raw.clone(), NO_SCHEMA);
        let parameters: Vec<Value> = path_parameters(&route.path)
            .into_iter()
            .map(|param| {
                let field = raw
                    .as_ref()
                    .and_then(|r| r.get("properties"))
                    .and_then(|p| p.get(param))
                    .cloned()
                    .map(|mut schema| {
                        rewrite_refs(&mut schema, &renames);
                        schema
                    })
                    .unwrap_or_else(|| json!({ "type": "string" }));
                json!({
                    "name": param,
                    "in": "path",
                    "required": true,
                    "description": format!("The `{param}` of the `{}` query", route.name),
                    "schema": field,
                })
            })
            .collect();
        let operation = query_operation(
            &mut c,
            &format!("get_{}", path_id(&route.path)),
            &format!("Answer the `{}` query (typed route)", route.name),
            response,
            &parameters,
        );
        insert_operation(&mut paths, &route.path, "get", operation);
    }

    // The live feed.
    if described.feed {
        // The events the served aggregates record (not every event linked into the program:
        // what a test build or another service links is not this service's).
        let served: Vec<&str> = described
            .aggregates
            .iter()
            .copied()
            .chain(described.command_routes.iter().map(|r| r.aggregate))
            .collect();
        let mut events: Vec<&str> = registry::aggregates()
            .into_iter()
            .filter(|a| served.contains(&a.name))
            .flat_map(|a| a.events.iter().copied())
            .collect();
        events.sort_unstable();
        events.dedup();
        for name in events {
            let schema = registry::event(name).and_then(|e| (e.schema)());
            c.add(&format!("event.{name}"), schema, NO_SCHEMA);
        }
        let all = feed_operation(
            &mut c,
            "feed_all",
            "The live feed of every stream (Server-Sent Events); ids are global positions",
            false,
        );
        paths.insert("/events".into(), json!({ "get": all }));
        let one = feed_operation(
            &mut c,
            "feed_stream",
            "The live feed of one stream (Server-Sent Events); ids are stream versions",
            true,
        );
        paths.insert("/streams/{stream}/events".into(), json!({ "get": one }));
    }
    if described.served {
        paths.insert(
            "/openapi.json".into(),
            json!({ "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["meta"],
                "responses": { "200": {
                    "description": "The OpenAPI 3.1 document of this service",
                    "content": { "application/json": { "schema": { "type": "object" } } }
                } }
            } }),
        );
    }

    let mut info = json!({ "title": described.title, "version": described.version });
    if let Some(description) = &described.description {
        info["description"] = description.clone().into();
    }
    json!({
        "openapi": OPENAPI_VERSION,
        "info": info,
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "tags": [
            { "name": "commands", "description": "Commands: each records events or is refused with a problem" },
            { "name": "queries", "description": "Queries answered by the read side, with read-your-writes" },
            { "name": "feed", "description": "The live event feed (Server-Sent Events)" },
            { "name": "meta", "description": "About the service" }
        ],
        "paths": paths,
        "components": {
            "schemas": c.schemas,
            "responses": c.responses,
            "parameters": parameters(),
            "headers": headers(),
        }
    })
}

fn insert_operation(paths: &mut Map<String, Value>, path: &str, method: &str, operation: Value) {
    let item = paths
        .entry(path.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    item[method] = operation;
}

fn command_operation(
    c: &mut Components,
    id: &str,
    summary: &str,
    aggregate: Option<&str>,
    body: Value,
) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The command ran and recorded its events (or had run before with this Idempotency-Key)",
            "headers": {
                "X-Position": header_ref("Position"),
                "X-Correlation-Id": header_ref("CorrelationIdEcho"),
                "traceparent": header_ref("TraceparentEcho"),
            },
            "content": { "application/json": { "schema": reference("CommandOutcome") } }
        }),
    );
    for (status, response) in c.problem_responses(Kind::Command) {
        responses.insert(status, response);
    }
    let description = match aggregate {
        Some(aggregate) => format!("Handled by the aggregate `{aggregate}`."),
        None => "The aggregate that handles it is not registered.".to_owned(),
    };
    json!({
        "operationId": id,
        "summary": summary,
        "description": description,
        "tags": ["commands"],
        "parameters": [
            parameter_ref("IdempotencyKey"),
            parameter_ref("CorrelationId"),
            parameter_ref("Traceparent"),
        ],
        "requestBody": {
            "required": true,
            "content": { "application/json": { "schema": body } }
        },
        "responses": responses,
    })
}

fn query_operation(
    c: &mut Components,
    id: &str,
    summary: &str,
    response: Value,
    path_parameters: &[Value],
) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The answer",
            "headers": {
                "X-Correlation-Id": header_ref("CorrelationIdEcho"),
                "traceparent": header_ref("TraceparentEcho"),
            },
            "content": { "application/json": { "schema": response } }
        }),
    );
    for (status, response) in c.problem_responses(Kind::Query) {
        responses.insert(status, response);
    }
    let mut parameters = path_parameters.to_vec();
    parameters.extend([
        parameter_ref("AfterPosition"),
        parameter_ref("After"),
        parameter_ref("CorrelationId"),
        parameter_ref("Traceparent"),
    ]);
    json!({
        "operationId": id,
        "summary": summary,
        "tags": ["queries"],
        "parameters": parameters,
        "responses": responses,
    })
}

fn feed_operation(c: &mut Components, id: &str, summary: &str, stream: bool) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "A stream of Server-Sent Events. Each event's `id` is where `Last-Event-ID` resumes and its `data` is a `FeedEvent`. Control events have no id: `lagged` (the client read too slowly and is cut off; reconnect with Last-Event-ID), `shutdown` (the server is stopping) and `error` (the store failed); their data is a `FeedControl`. Idle feeds get keep-alive comments.",
            "content": { "text/event-stream": { "schema": {
                "type": "string",
                "description": "`id: <position or version>` and `data: <FeedEvent as JSON>` per event",
            } } }
        }),
    );
    for (status, response) in c.problem_responses(Kind::Feed) {
        responses.insert(status, response);
    }
    let mut parameters = Vec::new();
    if stream {
        parameters.push(json!({
            "name": "stream",
            "in": "path",
            "required": true,
            "description": "The stream id (`account-1`)",
            "schema": { "type": "string" }
        }));
    }
    parameters.push(parameter_ref("From"));
    parameters.push(parameter_ref("LastEventId"));
    json!({
        "operationId": id,
        "summary": summary,
        "tags": ["feed"],
        "parameters": parameters,
        "responses": responses,
    })
}

/// The schemas every document has.
fn base_schemas(c: &mut Components) {
    let types: Vec<String> = ProblemType::ALL.iter().map(|k| k.uri()).collect();
    c.schemas.insert(
        "Problem".into(),
        json!({
            "description": "An error (RFC 9457 problem details); extension members are named per type",
            "type": "object",
            "required": ["type", "title", "status", "detail", "retry"],
            "properties": {
                "type": { "type": "string", "format": "uri", "enum": types },
                "title": { "type": "string" },
                "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                "detail": { "type": "string" },
                "retry": {
                    "description": "What a client may do: change the request first (`never`), send it again as is (`safe`), or send it again only with the same Idempotency-Key",
                    "enum": ["never", "safe", "same-idempotency-key"]
                }
            },
            "additionalProperties": true
        }),
    );
    c.schemas.insert(
        "CommandOutcome".into(),
        json!({
            "description": "What a command recorded",
            "type": "object",
            "required": ["command_id", "correlation_id", "stream", "version", "position", "events"],
            "properties": {
                "command_id": { "type": "string", "format": "uuid" },
                "correlation_id": { "type": "string", "format": "uuid" },
                "stream": { "type": "string" },
                "version": { "type": "integer", "minimum": 0, "description": "The stream's version after the command" },
                "position": { "type": "integer", "minimum": 0, "description": "The global position of its last event (send it as X-After-Position to read your writes)" },
                "events": { "type": "integer", "minimum": 0, "description": "How many events it recorded" }
            },
            "additionalProperties": false
        }),
    );
    c.schemas.insert(
        "FeedEvent".into(),
        json!({
            "description": "The data of one event of the live feed; `payload` is the event's payload, whose schema is `event.{event_name}` when one is registered",
            "type": "object",
            "required": ["position", "stream", "version", "event_id", "event_name", "event_version", "recorded_at", "correlation_id", "causation_id", "metadata", "payload"],
            "properties": {
                "position": { "type": "integer", "minimum": 1 },
                "stream": { "type": "string" },
                "version": { "type": "integer", "minimum": 1 },
                "event_id": { "type": "string", "format": "uuid" },
                "event_name": { "type": "string" },
                "event_version": { "type": "integer", "minimum": 1 },
                "recorded_at": { "type": "integer", "description": "Microseconds since the Unix epoch" },
                "correlation_id": { "type": ["string", "null"], "format": "uuid" },
                "causation_id": { "type": ["string", "null"], "format": "uuid" },
                "metadata": { "type": "object" },
                "payload": {}
            }
        }),
    );
    c.schemas.insert(
        "FeedControl".into(),
        json!({
            "description": "The data of a control event (`lagged`, `shutdown`, `error`), the last of its feed",
            "type": "object",
            "required": ["detail", "last_event_id"],
            "properties": {
                "detail": { "type": "string" },
                "last_event_id": { "type": ["integer", "null"], "description": "Where Last-Event-ID resumes" }
            }
        }),
    );
}

fn parameters() -> Value {
    json!({
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "description": "Makes a retry safe: the command id, derived from the caller and the key. Sent again with the same command, the first outcome is answered and nothing is recorded twice; with another body, the `idempotency-key-reused` problem (422).",
            "schema": { "type": "string", "minLength": 1, "maxLength": crate::headers::MAX_KEY_BYTES }
        },
        "CorrelationId": {
            "name": "X-Correlation-Id",
            "in": "header",
            "description": "The business transaction: a UUID, or any text (mapped to a UUID). Recorded on the events and echoed.",
            "schema": { "type": "string" }
        },
        "Traceparent": {
            "name": "traceparent",
            "in": "header",
            "description": "W3C Trace Context: its trace id becomes the correlation id (when X-Correlation-Id is absent). Echoed.",
            "schema": { "type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}" }
        },
        "AfterPosition": {
            "name": "X-After-Position",
            "in": "header",
            "description": "Read your writes: answer only once the read side has reached this global position (a command's `position`); `query-timeout` (503) if it does not in time.",
            "schema": { "type": "integer", "minimum": 0 }
        },
        "After": {
            "name": "after",
            "in": "query",
            "description": "As X-After-Position, in the query string.",
            "schema": { "type": "integer", "minimum": 0 }
        },
        "From": {
            "name": "from",
            "in": "query",
            "description": "The first position (or stream version) to send; 1 when absent.",
            "schema": { "type": "integer", "minimum": 0 }
        },
        "LastEventId": {
            "name": "Last-Event-ID",
            "in": "header",
            "description": "Resume after this id (sent by EventSource when it reconnects); wins over `from`.",
            "schema": { "type": "integer", "minimum": 0 }
        }
    })
}

fn headers() -> Value {
    json!({
        "Position": {
            "description": "The global position of the command's last event",
            "schema": { "type": "integer", "minimum": 0 }
        },
        "CorrelationIdEcho": {
            "description": "The correlation id: as sent, or the one the command used",
            "schema": { "type": "string" }
        },
        "TraceparentEcho": {
            "description": "The traceparent, as sent",
            "schema": { "type": "string" }
        },
        "RetryAfter": {
            "description": "Seconds to wait before sending the request again",
            "schema": { "type": "integer", "minimum": 0 }
        }
    })
}

/// Two-space indented JSON, object keys sorted (whatever map `serde_json` was built with), a
/// final newline.
pub(crate) fn to_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&Sorted(value)).unwrap_or_default();
    text.push('\n');
    text
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defs_move_to_the_components_and_references_follow() {
        let mut c = Components {
            schemas: Map::new(),
            responses: Map::new(),
        };
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": { "id": { "$ref": "#/$defs/Id" } },
            "$defs": { "Id": { "type": "integer" } }
        });
        assert_eq!(
            c.add("command.A", Some(schema), ""),
            json!({ "$ref": "#/components/schemas/command.A" })
        );
        assert_eq!(c.schemas["Id"], json!({ "type": "integer" }));
        assert_eq!(
            c.schemas["command.A"]["properties"]["id"]["$ref"],
            "#/components/schemas/Id"
        );
        assert!(c.schemas["command.A"].get("$schema").is_none());
        // Another type's `Id` that differs keeps its own.
        let other = json!({
            "properties": { "id": { "$ref": "#/$defs/Id" } },
            "$defs": { "Id": { "type": "string" } }
        });
        c.add("command.B", Some(other), "");
        assert_eq!(c.schemas["Id_2"], json!({ "type": "string" }));
        assert_eq!(
            c.schemas["command.B"]["properties"]["id"]["$ref"],
            "#/components/schemas/Id_2"
        );
    }

    #[test]
    fn path_parameters_and_ids() {
        assert_eq!(path_parameters("/accounts/{account}/balance"), ["account"]);
        assert_eq!(
            path_id("/accounts/{account}/balance"),
            "accounts_account_balance"
        );
        assert!(accepts_null(Some(&json!({ "type": "null" }))));
        assert!(!accepts_null(Some(&json!({ "type": "object" }))));
    }
}

//! The bank's OpenAPI document: served at `/openapi.json` over real HTTP, valid OpenAPI 3.1 as
//! far as the parts the crate emits go (a structural validator below), every registered
//! command present with its schema, and equal to the copy committed in `docs/`.

mod http;

use std::collections::BTreeSet;
use std::path::PathBuf;

use bank::serve;
use eventweave_core::MemoryStore;
use http::Client;
use hyper::Method;
use serde_json::Value;

/// Set to rewrite the committed document instead of comparing.
const UPDATE: &str = "UPDATE_OPENAPI";

async fn bank_api() -> eventweave_axum::Api<MemoryStore> {
    let app = serve::app(MemoryStore::new()).await.unwrap();
    serve::api(app).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_and_valid() {
    let app = serve::app(MemoryStore::new()).await.unwrap();
    let server = serve::spawn(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        serve::api(app).unwrap(),
    )
    .unwrap();
    let mut client = Client::connect(server.addr).await;
    let reply = client.send(Method::GET, "/openapi.json", &[], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let document = reply.json();
    assert_eq!(document, *server.api.openapi());
    let errors = validate(&document);
    assert!(
        errors.is_empty(),
        "the document is not valid OpenAPI 3.1:\n{}",
        errors.join("\n")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn every_registered_command_appears_with_its_schema() {
    let api = bank_api().await;
    let document = api.openapi();
    let catalog = bank::catalog();
    let served: BTreeSet<&str> = api.commands().into_iter().collect();
    for command in &catalog.commands {
        let name = command.name.as_str();
        assert!(served.contains(name), "`{name}` is not served by name");
        let path = format!("/commands/{name}");
        let operation = &document["paths"][&path]["post"];
        assert!(operation.is_object(), "no POST {path} in the document");
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        let target = resolve(document, schema["$ref"].as_str().unwrap()).unwrap();
        assert_eq!(target["type"], "object", "`{name}`'s schema: {target}");
        // The schema is the registry's (the catalog's), not a placeholder.
        let registered = catalog
            .command_schema(name)
            .expect("commands derive JsonSchema");
        assert_eq!(target["properties"], {
            let mut p = registered["properties"].clone();
            rewrite_defs(&mut p);
            p
        });
        for status in ["200", "400", "403", "409", "413", "422", "503"] {
            assert!(
                operation["responses"][status].is_object(),
                "POST {path} documents no {status}"
            );
        }
        let parameters: Vec<&str> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["$ref"].as_str())
            .collect();
        for header in ["IdempotencyKey", "CorrelationId", "Traceparent"] {
            assert!(
                parameters.contains(&format!("#/components/parameters/{header}").as_str()),
                "POST {path} lacks {header}"
            );
        }
    }
    // Typed routes, queries and the feed.
    for path in ["/deposits", "/withdrawals", "/accounts"] {
        assert!(document["paths"][path]["post"].is_object(), "POST {path}");
    }
    for query in [
        "GetBalance",
        "GetStatement",
        "ListAccounts",
        "TotalHoldings",
    ] {
        let path = format!("/queries/{query}");
        assert!(document["paths"][&path]["post"].is_object(), "POST {path}");
    }
    assert!(document["paths"]["/queries/ListAccounts"]["get"].is_object());
    assert!(document["paths"]["/queries/GetBalance"]["get"].is_null());
    let balance = &document["paths"]["/accounts/{account}/balance"]["get"];
    assert_eq!(balance["parameters"][0]["name"], "account");
    assert_eq!(
        balance["parameters"][0]["schema"]["$ref"],
        "#/components/schemas/AccountId"
    );
    let feed = &document["paths"]["/events"]["get"]["responses"]["200"]["content"];
    assert!(feed["text/event-stream"].is_object());
    assert!(document["components"]["schemas"]["event.account.deposited"]["properties"].is_object());
    for header in [
        "X-After-Position",
        "Idempotency-Key",
        "X-Correlation-Id",
        "traceparent",
        "Last-Event-ID",
    ] {
        let declared = document["components"]["parameters"]
            .as_object()
            .unwrap()
            .values()
            .any(|p| p["name"] == header);
        assert!(declared, "{header} is not declared");
    }
}

fn rewrite_defs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "$ref" {
                    if let Some(name) = child.as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
                        *child = Value::String(format!("#/components/schemas/{name}"));
                    }
                } else {
                    rewrite_defs(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_defs),
        _ => {}
    }
}

#[tokio::test]
async fn the_committed_document_is_current() {
    let api = bank_api().await;
    let generated = api.openapi_json();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/bank-openapi.json");
    if std::env::var_os(UPDATE).is_some() {
        std::fs::write(&path, generated).expect("docs/ is writable");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == generated {
        return;
    }
    let line = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    panic!(
        "docs/bank-openapi.json is out of date with the code (first difference at line {}: \
         committed {:?}, generated {:?}).\nRegenerate it with `{UPDATE}=1 cargo test -p bank \
         --test openapi`, read the diff and commit it.",
        line + 1,
        committed.lines().nth(line).unwrap_or("<end of file>"),
        generated.lines().nth(line).unwrap_or("<end of file>"),
    );
}

#[test]
fn the_validator_finds_mistakes() {
    let broken = serde_json::json!({
        "openapi": "3.0.3",
        "info": { "title": "x" },
        "paths": {
            "accounts": {},
            "/a/{id}": { "get": {
                "operationId": "same",
                "responses": { "200": {}, "abc": { "description": "?" } },
                "parameters": [{ "name": "q", "in": "body", "schema": {} }]
            } },
            "/b": { "get": {
                "operationId": "same",
                "responses": { "200": { "description": "x", "content": {
                    "application/json": { "schema": { "$ref": "#/components/schemas/Missing" } }
                } } }
            } }
        }
    });
    let errors = validate(&broken);
    let expect = [
        "openapi",
        "info.version",
        "path `accounts`",
        "`{id}`",
        "description",
        "`abc`",
        "`in`",
        "operationId `same`",
        "#/components/schemas/Missing",
    ];
    for fragment in expect {
        assert!(
            errors.iter().any(|e| e.contains(fragment)),
            "no error mentions {fragment}: {errors:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A structural validator of the parts of OpenAPI 3.1 the crate emits: the document's fixed
// fields, paths and path templates, operations (unique ids, parameters, request bodies,
// responses with descriptions and status codes), media types, components' keys, and every
// `$ref` resolving inside the document. JSON Schemas are checked to be objects or booleans
// with known `type` words; their full meta-schema is not.
// ---------------------------------------------------------------------------------------------

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

fn validate(document: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let mut err = |e: String| errors.push(e);
    match document["openapi"].as_str() {
        Some(v) if v.starts_with("3.1.") => {}
        other => err(format!("`openapi` must be 3.1.x, is {other:?}")),
    }
    for field in ["title", "version"] {
        if !document["info"][field].is_string() {
            err(format!("info.{field} must be a string"));
        }
    }
    let Some(paths) = document["paths"].as_object() else {
        err("`paths` must be an object".into());
        return errors;
    };
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        if !path.starts_with('/') {
            err(format!("path `{path}` must start with `/`"));
        }
        let Some(item) = item.as_object() else {
            err(format!("path `{path}`: not an object"));
            continue;
        };
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, operation) in item {
            if !METHODS.contains(&method.as_str()) {
                err(format!("path `{path}`: `{method}` is not an HTTP method"));
                continue;
            }
            let at = format!("{} {path}", method.to_uppercase());
            if let Some(id) = operation["operationId"].as_str()
                && !ids.insert(id.to_owned())
            {
                err(format!("{at}: operationId `{id}` is not unique"));
            }
            let mut declared = BTreeSet::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let parameter = follow(document, parameter, &mut err, &at);
                let name = parameter["name"].as_str().unwrap_or_default();
                let location = parameter["in"].as_str().unwrap_or_default();
                if name.is_empty() {
                    err(format!("{at}: a parameter has no name"));
                }
                if !["query", "header", "path", "cookie"].contains(&location) {
                    err(format!(
                        "{at}: parameter `{name}` has `in` = {:?}",
                        parameter["in"]
                    ));
                }
                if location == "path" {
                    if parameter["required"] != true {
                        err(format!("{at}: path parameter `{name}` must be required"));
                    }
                    declared.insert(name.to_owned());
                }
                if parameter.get("schema").is_none() && parameter.get("content").is_none() {
                    err(format!(
                        "{at}: parameter `{name}` has neither schema nor content"
                    ));
                }
                if let Some(schema) = parameter.get("schema") {
                    check_schema(schema, &format!("{at} parameter {name}"), &mut err);
                }
            }
            for name in &templated {
                if !declared.contains(*name) {
                    err(format!("{at}: `{{{name}}}` has no path parameter"));
                }
            }
            if let Some(body) = operation.get("requestBody") {
                let body = follow(document, body, &mut err, &at);
                check_content(&body["content"], &format!("{at} requestBody"), &mut err);
            }
            let Some(responses) = operation["responses"].as_object().filter(|r| !r.is_empty())
            else {
                err(format!("{at}: no responses"));
                continue;
            };
            for (status, response) in responses {
                let known = status == "default"
                    || (status.len() == 3
                        && (status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s))
                            || (status.ends_with("XX") && "12345".contains(&status[..1]))));
                if !known {
                    err(format!(
                        "{at}: response key `{status}` is not a status code"
                    ));
                }
                let response = follow(document, response, &mut err, &at);
                if !response["description"].is_string() {
                    err(format!("{at} {status}: a response needs a description"));
                }
                if let Some(content) = response.get("content") {
                    check_content(content, &format!("{at} {status}"), &mut err);
                }
                for header in response["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|h| h.1)
                {
                    let header = follow(document, header, &mut err, &at);
                    if header.get("name").is_some() || header.get("in").is_some() {
                        err(format!("{at} {status}: a header object has no name or in"));
                    }
                }
            }
        }
    }
    if let Some(components) = document["components"].as_object() {
        for (kind, map) in components {
            for (key, value) in map.as_object().into_iter().flatten() {
                let valid = key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
                if !valid {
                    err(format!(
                        "components.{kind}: key `{key}` has characters OpenAPI refuses"
                    ));
                }
                if kind == "schemas" {
                    check_schema(value, &format!("schema {key}"), &mut err);
                }
            }
        }
    }
    // Every reference anywhere resolves.
    let mut refs = Vec::new();
    collect_refs(document, &mut refs);
    for r in refs {
        if resolve(document, &r).is_none() {
            err(format!("`$ref` {r} does not resolve"));
        }
    }
    errors
}

fn follow<'a>(
    document: &'a Value,
    value: &'a Value,
    err: &mut impl FnMut(String),
    at: &str,
) -> &'a Value {
    match value["$ref"].as_str() {
        Some(r) => resolve(document, r).unwrap_or_else(|| {
            err(format!("{at}: `$ref` {r} does not resolve"));
            &Value::Null
        }),
        None => value,
    }
}

fn check_content(content: &Value, at: &str, err: &mut impl FnMut(String)) {
    let Some(content) = content.as_object().filter(|c| !c.is_empty()) else {
        err(format!("{at}: `content` must be a non-empty object"));
        return;
    };
    for (media, object) in content {
        if !media.contains('/') {
            err(format!("{at}: `{media}` is not a media type"));
        }
        if let Some(schema) = object.get("schema") {
            check_schema(schema, &format!("{at} {media}"), err);
        }
    }
}

fn check_schema(schema: &Value, at: &str, err: &mut impl FnMut(String)) {
    match schema {
        Value::Bool(_) => {}
        Value::Object(map) => {
            let types: Vec<&Value> = match map.get("type") {
                None => Vec::new(),
                Some(Value::Array(types)) => types.iter().collect(),
                Some(t) => vec![t],
            };
            for t in types {
                if !t.as_str().is_some_and(|t| TYPES.contains(&t)) {
                    err(format!("{at}: schema type {t} is not a JSON Schema type"));
                }
            }
            for key in ["properties", "$defs"] {
                for (name, sub) in map
                    .get(key)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    check_schema(sub, &format!("{at}.{name}"), err);
                }
            }
            for key in ["items", "additionalProperties", "not"] {
                if let Some(sub) = map.get(key) {
                    check_schema(sub, &format!("{at}.{key}"), err);
                }
            }
            for key in ["oneOf", "anyOf", "allOf"] {
                for sub in map.get(key).and_then(Value::as_array).into_iter().flatten() {
                    check_schema(sub, &format!("{at}.{key}"), err);
                }
            }
            if let Some(required) = map.get("required")
                && !required
                    .as_array()
                    .is_some_and(|r| r.iter().all(Value::is_string))
            {
                err(format!("{at}: `required` must be a list of names"));
            }
        }
        other => err(format!(
            "{at}: a schema must be an object or a boolean, is {other}"
        )),
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

/// A local reference (`#/a/b~1c`), resolved as a JSON pointer into the document.
fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    document.pointer(reference.strip_prefix('#')?)
}

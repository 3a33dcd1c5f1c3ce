//! The admin page: a small HTML page served by the service, for operators, with no JavaScript
//! build step (hand-written HTML, CSS and vanilla JavaScript, embedded with `include_str!`).
//!
//! Off by default; [`ApiBuilder::admin`](crate::ApiBuilder::admin) turns it on at
//! [`Admin::path`] (default `/admin`). It shows:
//! - the **projections** (registered ones, with the application's in-memory ones): kind,
//!   state, checkpoint (or the position an in-memory one has applied), lag behind the store's
//!   head, and parked events with their errors;
//! - the **streams** (`InspectStore::list_streams`) and, on a click, a stream's events with
//!   their metadata and decoded payloads;
//! - the **live feed**: the service's `/events` feed through the browser's `EventSource`; new
//!   events appear without a reload (and refresh the projections' lag);
//! - the **event catalog**: commands → aggregates → events → projections and process managers
//!   → queries drawn as columns with SVG links, and the Mermaid text beside it.
//!
//! **Who may see it.** Every admin request goes through the same authorization hook as the
//! API, as [`Operation::Admin`]. And unless
//! [`Admin::allow_remote`] is set, only loopback peers are served (`127.0.0.1`, `::1`): the peer
//! address is the `ConnectInfo<SocketAddr>` that [`serve`](crate::serve) and
//! [`serve_router`](crate::serve_router) put into each request; a request without one (a
//! router served some other way) is refused too, with a `403` problem that says so.
//!
//! Its JSON endpoints, under the page's path: `api/overview`, `api/projections`,
//! `api/streams?after=&limit=`, `api/streams/{stream}?from=&limit=`, `api/catalog`. They are
//! for the page, not a stable API.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use eventweave_core::catalog::Catalog;
use eventweave_core::registry::{self, ProjectionKind};
use eventweave_core::runner::{Checkpoints, list_projections};
use eventweave_core::{EventStore, InspectStore, Position, RecordedEvent, StreamId};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::Shared;
use crate::auth::{Caller, Operation};
use crate::headers::query_param;
use crate::problem::{Problem, ProblemType};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("admin.js");
const STYLE: &str = include_str!("admin.css");

/// The most streams or events one admin request returns.
pub const MAX_PAGE: usize = 500;

/// The admin page's configuration, given to [`ApiBuilder::admin`](crate::ApiBuilder::admin).
///
/// ```
/// use eventweave_axum::admin::Admin;
///
/// let admin = Admin::new().path("/ops"); // loopback peers only, every registered type
/// # let _ = admin;
/// ```
#[derive(Clone, Debug)]
pub struct Admin {
    path: String,
    remote: bool,
    catalog: Option<Catalog>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin::new()
    }
}

impl Admin {
    /// The page at `/admin`, for loopback peers, showing every registered type.
    pub fn new() -> Self {
        Admin {
            path: "/admin".into(),
            remote: false,
            catalog: None,
        }
    }

    /// Where the page is served (default `/admin`; a path starting with `/`, no trailing `/`).
    pub fn path(mut self, path: &str) -> Self {
        let trimmed = path.trim_end_matches('/');
        self.path = if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// Serves peers that are not on the loopback interface too (default off). Put an identity
    /// layer and an authorization hook in front before turning this on.
    pub fn allow_remote(mut self, on: bool) -> Self {
        self.remote = on;
        self
    }

    /// The catalog the page draws, and whose projections it lists (default: everything
    /// registered in the program, `Catalog::registered()`).
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// The page's path.
    pub fn page_path(&self) -> &str {
        &self.path
    }
}

/// What the admin routes share.
struct State_ {
    admin: Admin,
    catalog: Catalog,
    page: String,
}

type Routes<S> = axum::Router<Arc<Shared<S>>>;

/// The admin routes for a service on store `S`.
pub(crate) fn routes<S>(admin: Admin) -> Routes<S>
where
    S: EventStore + InspectStore + Checkpoints,
{
    let catalog = admin.catalog.clone().unwrap_or_else(Catalog::registered);
    let base = admin.path.clone();
    let page = PAGE.replace("{{BASE}}", &html_escape(&base));
    let state = Arc::new(State_ {
        admin,
        catalog,
        page,
    });
    let route = |state: &Arc<State_>, what: What| {
        let state = Arc::clone(state);
        get(
            move |State(shared): State<Arc<Shared<S>>>, request: Request| {
                let state = Arc::clone(&state);
                async move { handle(shared, state, what, request).await }
            },
        )
    };
    let stream_route = {
        let state = Arc::clone(&state);
        get(
            move |State(shared): State<Arc<Shared<S>>>,
                  Path(stream): Path<String>,
                  request: Request| {
                let state = Arc::clone(&state);
                async move { handle(shared, state, What::Stream(stream), request).await }
            },
        )
    };
    axum::Router::new()
        .route(&base, route(&state, What::Page))
        .route(&format!("{base}/"), route(&state, What::Page))
        .route(&format!("{base}/admin.js"), route(&state, What::Script))
        .route(&format!("{base}/admin.css"), route(&state, What::Style))
        .route(
            &format!("{base}/api/overview"),
            route(&state, What::Overview),
        )
        .route(
            &format!("{base}/api/projections"),
            route(&state, What::Projections),
        )
        .route(&format!("{base}/api/streams"), route(&state, What::Streams))
        .route(&format!("{base}/api/streams/{{stream}}"), stream_route)
        .route(&format!("{base}/api/catalog"), route(&state, What::Catalog))
}

/// What an admin request asks for.
#[derive(Clone)]
enum What {
    Page,
    Script,
    Style,
    Overview,
    Projections,
    Streams,
    Stream(String),
    Catalog,
}

async fn handle<S>(
    shared: Arc<Shared<S>>,
    state: Arc<State_>,
    what: What,
    request: Request,
) -> Response
where
    S: EventStore + InspectStore + Checkpoints,
{
    if let Err(problem) = admit(&shared, &state.admin, &request) {
        return problem.into_response();
    }
    let query = request.uri().query();
    let result = match what {
        What::Page => return asset(state.page.clone(), "text/html; charset=utf-8"),
        What::Script => return asset(SCRIPT.to_owned(), "text/javascript; charset=utf-8"),
        What::Style => return asset(STYLE.to_owned(), "text/css; charset=utf-8"),
        What::Overview => overview(&shared).await,
        What::Projections => projections(&shared, &state.catalog).await,
        What::Streams => streams(&shared, query).await,
        What::Stream(stream) => stream_events(&shared, &stream, query).await,
        What::Catalog => Ok(json!({
            "mermaid": state.catalog.to_mermaid(),
            "catalog": state.catalog,
        })),
    };
    match result {
        Ok(value) => {
            let mut response = (StatusCode::OK, value.to_string()).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(problem) => problem.into_response(),
    }
}

/// Loopback (unless remote peers are allowed), then the authorization hook.
fn admit<S>(shared: &Shared<S>, admin: &Admin, request: &Request) -> Result<(), Problem> {
    if !admin.remote {
        match request.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) if peer.ip().is_loopback() => {}
            Some(ConnectInfo(peer)) => {
                return Err(Problem::new(
                    ProblemType::Forbidden,
                    format!(
                        "the admin page is served to loopback peers only, not {}",
                        peer.ip()
                    ),
                ));
            }
            None => {
                return Err(Problem::new(
                    ProblemType::Forbidden,
                    "the admin page is served to loopback peers only, and this request has no \
                     peer address (serve with `eventweave_axum::serve`, or \
                     `into_make_service_with_connect_info::<SocketAddr>()`)",
                ));
            }
        }
    }
    shared.authorize(
        request.extensions().get::<Caller>(),
        Operation::Admin {
            path: request.uri().path(),
        },
        request.headers(),
    )
}

fn asset(body: String, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Everything the page loads is its own: no inline script, no other origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn store_problem(e: impl std::fmt::Display) -> Problem {
    Problem::new(ProblemType::Unavailable, format!("the store failed: {e}"))
}

async fn overview<S: EventStore>(shared: &Shared<S>) -> Result<Value, Problem> {
    let head = shared.app.store().head().await.map_err(store_problem)?;
    Ok(json!({
        "head": head.0,
        "applied": shared.app.position().0,
        "feed": shared.config.feed,
    }))
}

#[derive(Serialize)]
struct ProjectionRow {
    name: String,
    kind: &'static str,
    state: String,
    /// The stored checkpoint (durable) or the position applied (in memory).
    checkpoint: u64,
    lag: u64,
    parked: Vec<Value>,
}

async fn projections<S>(shared: &Shared<S>, catalog: &Catalog) -> Result<Value, Problem>
where
    S: EventStore + Checkpoints,
{
    let store = shared.app.store();
    let head = store.head().await.map_err(store_problem)?;
    let listed = list_projections(store).await.map_err(store_problem)?;
    let running = shared.app.projections();
    let wanted = |name: &str| {
        catalog.projections.iter().any(|p| p.name == name)
            || catalog.process_managers.iter().any(|p| p.name == name)
            || running.iter().any(|p| p.name == name)
    };
    let mut rows = Vec::new();
    for listing in listed.iter().filter(|l| wanted(l.name)) {
        let row = match listing.kind {
            ProjectionKind::Durable => {
                let parked = store
                    .parked_events(listing.name)
                    .await
                    .map_err(store_problem)?;
                let state = match (parked.is_empty(), listing.lag) {
                    (false, _) => format!("{} parked", parked.len()),
                    (true, 0) => "caught up".to_owned(),
                    (true, _) => "behind".to_owned(),
                };
                ProjectionRow {
                    name: listing.name.to_owned(),
                    kind: "durable",
                    state,
                    checkpoint: listing.checkpoint.0,
                    lag: listing.lag,
                    parked: parked
                        .iter()
                        .take(50)
                        .map(|p| {
                            json!({
                                "position": p.position.0,
                                "stream": p.stream.as_str(),
                                "version": p.version,
                                "event_name": p.event_name,
                                "error": p.error,
                            })
                        })
                        .collect(),
                }
            }
            _ => in_memory_row(listing.name, &running, head),
        };
        rows.push(row);
    }
    // In-memory projections of the application that the registry does not list.
    for status in &running {
        if !rows.iter().any(|r| r.name == status.name) {
            rows.push(in_memory_row(status.name, &running, head));
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(json!({ "head": head.0, "projections": rows }))
}

fn in_memory_row(
    name: &str,
    running: &[eventweave_core::ProjectionStatus],
    head: Position,
) -> ProjectionRow {
    match running.iter().find(|s| s.name == name) {
        Some(status) => ProjectionRow {
            name: name.to_owned(),
            kind: "in-memory",
            state: match &status.error {
                Some(error) => format!("stopped: {error}"),
                None if status.position >= head => "caught up".to_owned(),
                None => "behind".to_owned(),
            },
            checkpoint: status.position.0,
            lag: head.0.saturating_sub(status.position.0),
            parked: Vec::new(),
        },
        None => ProjectionRow {
            name: name.to_owned(),
            kind: "in-memory",
            state: "not attached to this application".to_owned(),
            checkpoint: 0,
            lag: 0,
            parked: Vec::new(),
        },
    }
}

fn limit(query: Option<&str>) -> usize {
    query_param(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100)
        .clamp(1, MAX_PAGE)
}

async fn streams<S: InspectStore>(
    shared: &Shared<S>,
    query: Option<&str>,
) -> Result<Value, Problem> {
    let after = query_param(query, "after")
        .filter(|a| !a.is_empty())
        .map(|a| StreamId::from(percent_decode(a)));
    let page = shared
        .app
        .store()
        .list_streams(after.as_ref(), limit(query))
        .await
        .map_err(store_problem)?;
    let streams: Vec<Value> = page
        .iter()
        .map(|s| {
            json!({
                "stream": s.stream.as_str(),
                "events": s.events,
                "last_position": s.last_position.0,
            })
        })
        .collect();
    Ok(json!({ "streams": streams }))
}

async fn stream_events<S: EventStore>(
    shared: &Shared<S>,
    stream: &str,
    query: Option<&str>,
) -> Result<Value, Problem> {
    let from = query_param(query, "from")
        .and_then(|f| f.parse().ok())
        .unwrap_or(1u64)
        .max(1);
    let events = shared
        .app
        .store()
        .read_stream(&StreamId::from(stream), from, limit(query))
        .await
        .map_err(store_problem)?;
    let events: Vec<Value> = events.iter().map(event_json).collect();
    Ok(json!({ "stream": stream, "events": events }))
}

/// An event for the page: its metadata and its payload, decoded through its registered type
/// (upcasts included) where there is one.
fn event_json(event: &RecordedEvent) -> Value {
    let meta = &event.meta;
    let payload = event.payload.as_str();
    let (payload, problem) = match registry::event(&meta.event_name) {
        Some(registration) => match (registration.decode)(meta.event_version, payload) {
            Ok(value) => (value, None),
            Err(failure) => (
                Value::String(payload.to_owned()),
                Some(format!(
                    "does not decode as `{}`: {failure}",
                    registration.type_name
                )),
            ),
        },
        None => match serde_json::from_str(payload) {
            Ok(value) => (value, None),
            Err(e) => (Value::String(payload.to_owned()), Some(e.to_string())),
        },
    };
    json!({
        "position": meta.position.0,
        "stream": meta.stream.as_str(),
        "version": meta.version,
        "event_id": meta.event_id.to_string(),
        "event_name": &*meta.event_name,
        "event_version": meta.event_version,
        "recorded_at": meta.recorded_at.unix_micros(),
        "correlation_id": meta.correlation_id.map(|id| id.to_string()),
        "causation_id": meta.causation_id.map(|id| id.to_string()),
        "metadata": meta.metadata.as_map(),
        "payload": payload,
        "problem": problem,
    })
}

/// `%XX` sequences decoded (a stream id in `?after=`); invalid ones are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("account-1"), "account-1");
        assert_eq!(percent_decode("a%2Fb%20c+d%zz"), "a/b c d%zz");
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(Admin::new().path("ops/").page_path(), "/ops");
        assert_eq!(Admin::new().page_path(), "/admin");
    }
}

//! Serve an [eventweave](eventweave_core) application over HTTP with [axum]: commands by name
//! and on typed routes, queries with read-your-writes, errors as RFC 9457 problems, idempotency
//! keys, correlation ids, an authorization hook, and a live event feed (Server-Sent Events).
//!
//! ```
//! use eventweave_axum::{Api, axum};
//! use eventweave_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//! use tower::ServiceExt; // `oneshot`: one request through the router, no socket
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "axum_doc.opened")]
//! pub struct Opened;
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "axum_doc.deposited")]
//! pub struct Deposited { pub amount: u64 }
//!
//! #[derive(Command, Deserialize)] #[command(aggregate = Till)]
//! pub struct Open { #[id] pub till: u64 }
//! #[derive(Command, Deserialize)] #[command(aggregate = Till)]
//! pub struct Deposit { #[id] pub till: u64, pub amount: u64 }
//!
//! #[derive(Debug, thiserror::Error, Serialize)]
//! #[error("amounts must be positive")]
//! pub struct ZeroAmount;
//!
//! #[derive(Default)] pub struct Till;
//! #[aggregate(id = u64, name = "axum-doc-till")]
//! impl Till {
//!     #[handle] fn open(_: &Open) -> Opened { Opened }
//!     #[handle] fn deposit(&self, c: &Deposit) -> Result<Deposited, ZeroAmount> {
//!         if c.amount == 0 { return Err(ZeroAmount) }
//!         Ok(Deposited { amount: c.amount })
//!     }
//!     #[apply] fn opened(&mut self, _: &Opened) {}
//!     #[apply] fn deposited(&mut self, _: &Deposited) {}
//! }
//!
//! #[derive(Default)] pub struct Totals { total: u64 }
//! #[derive(Query, Deserialize)] #[query(response = u64)]
//! pub struct Total;
//! #[projection(name = "axum_doc_totals")]
//! impl Totals {
//!     fn on_deposited(&mut self, e: &Deposited) { self.total += e.amount; }
//!     #[query] fn total(&self, _: &Total) -> u64 { self.total }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Cqrs::builder(MemoryStore::new()).projection(Totals::default()).build().await?;
//! let api = Api::builder(app)
//!     .aggregate::<Till>()                 // POST /commands/Open, /commands/Deposit
//!     .command::<Deposit>("/deposits")     // a typed route
//!     .query::<Total>()                    // GET or POST /queries/Total
//!     .rejection::<ZeroAmount>()           // its data goes into `rejected` problems
//!     .build()?;
//! let router = api.router();
//!
//! // The OpenAPI 3.1 document, from the types (also served at `GET /openapi.json`).
//! assert_eq!(api.openapi()["openapi"], "3.1.0");
//! assert!(api.openapi()["paths"]["/commands/Deposit"]["post"]["requestBody"].is_object());
//! assert!(api.openapi()["paths"]["/deposits"]["post"]["responses"]["422"].is_object());
//!
//! let post = |path: &str, key: &str, body: &'static str| {
//!     axum::http::Request::post(path).header("idempotency-key", key).body(axum::body::Body::from(body)).unwrap()
//! };
//! let opened = router.clone().oneshot(post("/commands/Open", "k1", r#"{"till":1}"#)).await?;
//! assert_eq!(opened.status(), 200);
//! let deposited = router.clone().oneshot(post("/deposits", "k2", r#"{"till":1,"amount":5}"#)).await?;
//! let position = deposited.headers()["x-position"].clone(); // the command's global position
//!
//! // Read-your-writes: answered once the read side has reached that position.
//! let total = axum::http::Request::get("/queries/Total")
//!     .header("x-after-position", position)
//!     .body(axum::body::Body::empty())?;
//! let total = router.clone().oneshot(total).await?;
//! let body = axum::body::to_bytes(total.into_body(), 1024).await?;
//! assert_eq!(&body[..], b"5");
//!
//! // The domain refuses: 422, `application/problem+json`.
//! let refused = router.clone().oneshot(post("/deposits", "k3", r#"{"till":1,"amount":0}"#)).await?;
//! assert_eq!(refused.status(), 422);
//! assert_eq!(refused.headers()["content-type"], "application/problem+json");
//! # Ok(())
//! # }
//! ```
//!
//! Serving it: [`serve`] (or [`serve_router`] for a router wrapped in layers of your own) on a
//! `tokio::net::TcpListener`, with graceful shutdown.
//!
//! # Routes
//!
//! | route | what |
//! |---|---|
//! | `POST /commands/{name}` | a command of an aggregate added with [`ApiBuilder::aggregate`], JSON body |
//! | `POST path` | a typed command route ([`ApiBuilder::command`]) |
//! | `GET`/`POST /queries/{name}` | a query added with [`ApiBuilder::query`] (JSON body for `POST`) |
//! | `GET path` | a typed query route, its query built from path parameters ([`ApiBuilder::query_route`]) |
//! | `GET /events` | the live feed of every stream ([`feed`]) |
//! | `GET /streams/{stream}/events` | the live feed of one stream |
//! | `GET /openapi.json` | the service's OpenAPI 3.1 document ([`openapi`]; default on) |
//! | `GET /admin` | the admin page ([`admin`]; off by default, loopback peers only) |
//!
//! A command's response is `200` with `{"command_id", "correlation_id", "stream", "version",
//! "position", "events"}` (and `X-Position`); every error is a [`Problem`] whose `type` is one
//! of the stable URIs of [`problem`].
//!
//! # Headers
//!
//! - **`Idempotency-Key`** (1 to 255 characters): the command id, derived from the caller and
//!   the key ([`headers::command_id_for_key`]). Sent again with the same command, it answers
//!   the first outcome and records nothing; with another body or command it is the
//!   `idempotency-key-reused` problem (`422`). Send one with every command that may be retried.
//! - **`X-Correlation-Id`** (a UUID, or any text, mapped to a UUID) or **`traceparent`** (W3C;
//!   its trace id is the UUID): the correlation id of the events; both are echoed in the
//!   response. Without either, the command starts a new business transaction. A valid
//!   `traceparent` (with its `tracestate`, if any) also joins the command to that trace: its
//!   events carry it in their metadata, and so do the commands a process manager issues for
//!   them (`eventweave_core::TraceContext`).
//! - **`X-After-Position`** (or `?after=`) on a query: read-your-writes through
//!   `Cqrs::query_after`; `query-timeout` (`503`) if the read side does not get there within
//!   the application's query timeout.
//! - **`Last-Event-ID`** (or `?from=`) on the feed: where it resumes.
//!
//! # Layers
//!
//! [`Api::router`] wraps the routes in tower layers: a request body limit
//! (`tower_http::limit`, [`ApiBuilder::body_limit`], `413` problems), a request timeout
//! (`tower_http::timeout`, [`ApiBuilder::request_timeout`], `503` `timeout`), and commands have
//! a timeout of their own ([`ApiBuilder::command_timeout`]) that answers `outcome-unknown`,
//! since an abandoned command may have been recorded. The authorization hook ([`auth`]) sees
//! every command, query and feed before it runs.

pub mod admin;
pub mod auth;
pub mod feed;
pub mod headers;
pub mod openapi;
pub mod problem;

mod api;
mod commands;
mod queries;
mod rejection;

pub use api::{Api, ApiBuilder, serve, serve_router};
pub use auth::{Access, Authorize, Caller, Denied, Operation};
/// The axum this crate is built on, for layers and routes of your own.
pub use axum;
pub use problem::{Problem, ProblemType};
pub use queries::{BuildQuery, Params};

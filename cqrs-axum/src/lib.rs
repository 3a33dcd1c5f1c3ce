//! Serve an [eventweave](eventweave_core) application over HTTP with [axum].
//!
//! TODO: tutorial.

pub mod auth;
pub mod feed;
pub mod headers;
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

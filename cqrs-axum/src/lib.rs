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

pub use api::{Api, ApiBuilder, serve};
pub use auth::{Access, Authorize, Caller, Denied, Operation};
pub use problem::{Problem, ProblemType};
pub use queries::{BuildQuery, Params};

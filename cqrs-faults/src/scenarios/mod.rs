//! The scenarios, one module per kind of fault.

pub mod dropped;
pub mod pg_server;
pub mod processes;
pub mod sigkill;
pub mod stray;

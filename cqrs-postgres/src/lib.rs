//! Event store on postgres (work in progress).

mod append;
mod config;
mod decode;
mod error;
mod holes;
mod hooks;
mod notify;
mod pool;
mod read;
mod schema;
mod statements;
mod store;
mod versions;

pub use config::PostgresConfig;
pub use error::OpenError;
#[doc(hidden)]
pub use hooks::HeldAppend;
pub use store::PostgresStore;

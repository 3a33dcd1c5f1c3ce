//! The command line, as clap types: [`AdminArgs`] is a `clap::Args`, so it can be flattened
//! into the application's own subcommand enum (`Admin(AdminArgs)`), or parsed alone.
//!
//! `--store` and `--schema` are global, and also read from `EVENTWEAVE_STORE` and
//! `EVENTWEAVE_SCHEMA`. clap is built with `derive`, `color` and `env`, without `suggestions`,
//! `unicode` or `wrap_help`: subcommands users already know how to extend, at a small build cost.
//! `tail` stops on Ctrl-C through tokio's `signal` feature; `eventweave-sqlite` and
//! `eventweave-postgres` are only behind the crate's features.

use clap::{Args, Subcommand, ValueEnum};

/// `admin [--store URL] [--schema NAME] <command>`.
#[derive(Args, Clone, Debug)]
#[command(about = "Inspect and operate the event store and projections of this application")]
pub struct AdminArgs {
    /// The store: `sqlite:PATH` (or a path ending in `.db`), or `postgres://…`.
    #[arg(long, env = "EVENTWEAVE_STORE", global = true)]
    pub store: Option<String>,
    /// PostgreSQL schema of the store's tables (default `cqrs`).
    #[arg(long, env = "EVENTWEAVE_SCHEMA", global = true)]
    pub schema: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The subcommands.
#[derive(Subcommand, Clone, Debug)]
pub enum AdminCommand {
    /// List streams with their event counts and last positions.
    Streams {
        /// Only streams whose id starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// At most this many streams.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Print the events of one stream, decoded, with their metadata.
    Stream {
        /// The stream id (`account-1`).
        id: String,
        /// From this version on.
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Follow every new event (`$all`) until Ctrl-C.
    Tail {
        /// Start after this position (default: the head, so only new events).
        #[arg(long)]
        from: Option<u64>,
    },
    /// List the registered projections and process managers: kind, checkpoint, lag, state,
    /// parked events.
    Projections,
    /// Reset a durable projection and replay every event into it, with a progress bar.
    Rebuild {
        /// The projection's name.
        name: String,
        /// Wait for another process to release the projection's lease instead of refusing.
        #[arg(long)]
        wait: bool,
    },
    /// List the events a projection parked.
    Parked {
        /// The projection's name.
        name: String,
    },
    /// Apply a projection's parked events again, in position order (after the cause is fixed),
    /// without moving its checkpoint; each one applied is no longer parked.
    ReplayParked {
        /// The projection's name.
        name: String,
        /// Only the parked event with this id (as `parked` shows it).
        #[arg(long)]
        event: Option<String>,
    },
    /// Print the event catalog: commands, aggregates, decisions, events, projections, process
    /// managers.
    Catalog {
        /// Output format.
        #[arg(long, value_enum, default_value_t = CatalogFormat::Mermaid)]
        format: CatalogFormat,
    },
}

/// `catalog --format`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogFormat {
    /// A Mermaid flowchart.
    Mermaid,
    /// The JSON document for tools.
    Json,
    /// The JSON Schemas of command and event payloads.
    Schema,
}

impl AdminCommand {
    /// Whether the command needs a store (`catalog` does not).
    pub fn needs_store(&self) -> bool {
        !matches!(self, AdminCommand::Catalog { .. })
    }
}

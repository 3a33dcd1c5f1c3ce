//! # eventweave-cli
//!
//! An operator command line for an eventweave application, mounted in the application's own
//! binary: decoding events and rebuilding read models needs the application's types, which a
//! generic binary does not have.
//!
//! ```text
//! myapp admin --store sqlite:app.db streams                 # streams, event counts, last positions
//! myapp admin --store sqlite:app.db stream account-1        # its events, decoded, with metadata
//! myapp admin --store postgres://… tail --from 1200         # follow $all until Ctrl-C
//! myapp admin --store postgres://… projections              # kind, checkpoint, lag, state, parked
//! myapp admin --store postgres://… rebuild balances [--wait]
//! myapp admin --store postgres://… parked balances
//! myapp admin --store postgres://… replay-parked balances [--event ID]
//! myapp admin catalog --format mermaid|json|schema          # the event catalog
//! ```
//!
//! Mount it in a few lines (features `sqlite` and/or `postgres` open those stores):
//!
//! ```no_run
//! use eventweave_cli::Admin;
//! use eventweave_core::catalog::Catalog;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> std::process::ExitCode {
//!     let mut args = std::env::args_os();
//!     if std::env::args().nth(1).as_deref() == Some("admin") {
//!         let admin = Admin::new(Catalog::registered_in("myapp"));
//!         // .durable("balances", |store: &SqliteStore| Ok(ProjectionRunner::new(store.clone(), sink(store)?)))
//!         return admin.main_from(args.by_ref().skip(1)).await;
//!     }
//!     // … the application itself
//!     std::process::ExitCode::SUCCESS
//! }
//! ```
//!
//! Or flatten [`AdminArgs`] into the application's own clap subcommands and call
//! [`Admin::run`]. Every failure is one line on stderr (`error: …`) and exit code 1 (2 for a
//! command line clap refuses); output is coloured only on a terminal (`anstream`; `NO_COLOR`
//! is honoured).
//!
//! `rebuild` needs to know how to run a durable projection: [`Admin::durable`] registers a
//! function that makes its `ProjectionRunner` on the opened store. The command takes the
//! projection's lease (`PgLeases` on PostgreSQL, `SqliteLeases` on SQLite) for the whole
//! rebuild, so it refuses while another process runs the projection (or waits, with `--wait`).
//! On SQLite that holds for applications whose runners take `SqliteLeases` too.
//!
//! `replay-parked` applies a projection's parked events again (all, in position order, or the
//! one `--event` names) through the sink of a mounted projection, once the cause is fixed: each
//! event's parked record goes only if it was applied (in the same transaction on the SQL
//! sinks), and the checkpoint does not move. One line per event says `replayed` or `failed
//! again` with the error; events that failed again stay parked, and the command then exits 1.
//!
//! A PostgreSQL store is opened with `--schema` and a 5 s connect timeout, with `PgLeases`; a
//! SQLite store with `SqliteLeases`; a SQLite path that does not exist is refused rather than
//! created.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod args;
mod commands;
mod output;
mod progress;
mod store;

use std::any::Any;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use clap::Parser;
use eventweave_core::catalog::Catalog;
use eventweave_core::runner::{
    ApplyError, Checkpoints, LocalLease, ProgressFn, ProjectionRunner, ProjectionSink,
};
use eventweave_core::{EventStore, InspectStore, Position, RecordedEvent};

pub use args::{AdminArgs, AdminCommand, CatalogFormat};
pub use progress::ProgressBar;
pub use store::StoreUrl;

/// Any error the commands report (printed as one line).
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Rebuilds one projection on a store given as `&dyn Any`; `None` when it is not the store
/// type the function was registered for.
type RebuildFn = Box<
    dyn Fn(&dyn Any, ProgressFn) -> Option<BoxFuture<'static, Result<Position, Failure>>>
        + Send
        + Sync,
>;

/// Makes the sink of one projection on a store given as `&dyn Any` (to replay parked events);
/// `None` when it is not the store type the function was registered for.
type SinkFn = Box<dyn Fn(&dyn Any) -> Option<Result<Box<dyn Replay>, Failure>> + Send + Sync>;

/// A sink with its type erased, for `replay-parked`.
trait Replay: Send {
    fn replay<'a>(&'a mut self, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), ApplyError>>;
}

impl<K: ProjectionSink> Replay for K {
    fn replay<'a>(&'a mut self, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), ApplyError>> {
        Box::pin(self.replay_parked(event))
    }
}

/// A durable projection mounted for one type of store.
struct Mounted {
    rebuild: RebuildFn,
    sink: SinkFn,
}

/// The operator CLI of one application: its catalog and how to rebuild its durable
/// projections.
pub struct Admin {
    catalog: Catalog,
    /// Per projection, one entry per type of store it was mounted for.
    mounted: BTreeMap<&'static str, Vec<Mounted>>,
}

/// `admin …` parsed alone.
#[derive(Parser, Debug)]
#[command(name = "admin")]
struct Standalone {
    #[command(flatten)]
    args: AdminArgs,
}

impl Admin {
    /// The CLI of an application whose catalog is `catalog` (say
    /// `Catalog::registered_in("myapp")`).
    pub fn new(catalog: Catalog) -> Self {
        Admin {
            catalog,
            mounted: BTreeMap::new(),
        }
    }

    /// Lets `rebuild name` and `replay-parked name` run: `runner` makes the projection's
    /// runner on the opened store (of type `S`; on another store type the commands say they
    /// cannot). The rebuild resets the projection through its sink and replays every event,
    /// with a progress bar; `replay-parked` applies parked events again through the runner's
    /// sink ([`ProjectionSink::replay_parked`]). Mount a projection once per type of store it
    /// can run on.
    pub fn durable<S, K, F>(mut self, name: &'static str, runner: F) -> Self
    where
        S: EventStore,
        K: ProjectionSink,
        F: Fn(&S) -> Result<ProjectionRunner<S, K, LocalLease>, Failure> + Send + Sync + 'static,
    {
        let runner = std::sync::Arc::new(runner);
        let make = std::sync::Arc::clone(&runner);
        let rebuild = move |store: &dyn Any, progress: ProgressFn| {
            let store = store.downcast_ref::<S>()?;
            let made = make(store);
            let future: BoxFuture<'static, Result<Position, Failure>> = Box::pin(async move {
                let running = made?.spawn();
                let result = running.rebuild(Some(progress)).await;
                running.stop().await;
                Ok(result?)
            });
            Some(future)
        };
        let sink = move |store: &dyn Any| {
            let store = store.downcast_ref::<S>()?;
            Some(runner(store).map(|made| Box::new(made.into_sink()) as Box<dyn Replay>))
        };
        self.mounted.entry(name).or_default().push(Mounted {
            rebuild: Box::new(rebuild),
            sink: Box::new(sink),
        });
        self
    }

    /// Parses `args` (the words after the program name, starting with the subcommand; the
    /// first word is taken as the program's name, as clap does), runs the command and returns
    /// the exit code, having printed any error.
    pub async fn main_from<I, T>(&self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        match Standalone::try_parse_from(args) {
            Ok(parsed) => self.run(parsed.args).await,
            Err(e) => {
                let _ = e.print();
                ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
            }
        }
    }

    /// Runs parsed arguments; prints an error as one line on stderr and returns exit code 1.
    pub async fn run(&self, args: AdminArgs) -> ExitCode {
        match self.try_run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let mut stderr = anstream::stderr();
                let _ = std::io::Write::write_fmt(
                    &mut stderr,
                    format_args!(
                        "{} {}\n",
                        output::paint(output::BAD, "error:"),
                        one_line(&*e)
                    ),
                );
                ExitCode::FAILURE
            }
        }
    }

    /// Runs parsed arguments, returning the error instead of printing it.
    pub async fn try_run(&self, args: AdminArgs) -> Result<(), Failure> {
        if let AdminCommand::Catalog { format } = args.command {
            let text = match format {
                CatalogFormat::Mermaid => self.catalog.to_mermaid(),
                CatalogFormat::Json => self.catalog.to_json(),
                CatalogFormat::Schema => self.catalog.schemas_json(),
            };
            print!("{text}");
            return Ok(());
        }
        let Some(url) = args.store.as_deref() else {
            return Err("no store: pass --store sqlite:PATH or --store postgres://… (or set EVENTWEAVE_STORE)".into());
        };
        match StoreUrl::parse(url)? {
            StoreUrl::Sqlite(path) => self.on_sqlite(&path, args.command).await,
            StoreUrl::Postgres(url) => {
                self.on_postgres(&url, args.schema.as_deref(), args.command)
                    .await
            }
        }
    }

    /// Runs `command` on an opened store (for applications that open stores themselves, or
    /// stores this crate does not know). `leases`: the store's leases across processes, if any.
    pub async fn run_on<S, L>(
        &self,
        store: S,
        leases: Option<L>,
        command: AdminCommand,
    ) -> Result<(), Failure>
    where
        S: EventStore + Checkpoints + InspectStore,
        L: eventweave_core::runner::Leases,
    {
        commands::run(self, store, leases, command).await
    }

    #[cfg(feature = "sqlite")]
    async fn on_sqlite(&self, path: &str, command: AdminCommand) -> Result<(), Failure> {
        // Opening creates a missing file; an operator naming a wrong path wants to hear so.
        if !std::path::Path::new(path).exists() {
            return Err(format!("no SQLite store at `{path}` (the file does not exist)").into());
        }
        let store = eventweave_sqlite::SqliteStore::open(path)
            .map_err(|e| format!("cannot open the SQLite store `{path}`: {e}"))?;
        let leases = eventweave_sqlite::SqliteLeases::new(&store);
        self.run_on(store, Some(leases), command).await
    }

    #[cfg(not(feature = "sqlite"))]
    async fn on_sqlite(&self, _: &str, _: AdminCommand) -> Result<(), Failure> {
        Err(
            "this program was built without SQLite support (eventweave-cli feature `sqlite`)"
                .into(),
        )
    }

    #[cfg(feature = "postgres")]
    async fn on_postgres(
        &self,
        url: &str,
        schema: Option<&str>,
        command: AdminCommand,
    ) -> Result<(), Failure> {
        use eventweave_postgres::{PgLeases, PostgresConfig, PostgresStore};
        let mut config = PostgresConfig::parse(url)
            .map_err(|e| format!("bad PostgreSQL connection string: {e}"))?
            .pool_size(2)
            .connect_timeout(std::time::Duration::from_secs(5));
        if let Some(schema) = schema {
            config = config.schema(schema);
        }
        let store = PostgresStore::open(config)
            .await
            .map_err(|e| format!("cannot open the PostgreSQL store: {e}"))?;
        let leases = PgLeases::new(&store);
        self.run_on(store, Some(leases), command).await
    }

    #[cfg(not(feature = "postgres"))]
    async fn on_postgres(&self, _: &str, _: Option<&str>, _: AdminCommand) -> Result<(), Failure> {
        Err(
            "this program was built without PostgreSQL support (eventweave-cli feature `postgres`)"
                .into(),
        )
    }
}

/// An error and its causes on one line (`a: b: c`), each cause once.
fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

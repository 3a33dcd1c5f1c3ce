//! The bank as an HTTP service (`cargo run -p bank -- serve`), on `eventweave-axum`.
//!
//! What it serves (README, "Serving over HTTP", walks through it with curl):
//! - every account command by name: `POST /commands/{name}` (`OpenAccount`, `Deposit`,
//!   `Withdraw`, `CloseAccount`, `SendTransfer`, …), with `Idempotency-Key`,
//!   `X-Correlation-Id` / `traceparent`;
//! - typed routes: `POST /accounts` (`OpenAccount`), `POST /deposits` (`Deposit`),
//!   `POST /withdrawals` (`Withdraw`);
//! - queries by name: `GET`/`POST /queries/{GetBalance, GetStatement, ListAccounts,
//!   TotalHoldings}`, and typed `GET /accounts`, `GET /accounts/{account}/balance`,
//!   `GET /accounts/{account}/statement`; all with `X-After-Position` (read-your-writes);
//! - the live feed: `GET /events`, `GET /streams/account-1/events`;
//! - the OpenAPI document (`GET /openapi.json`, committed as `docs/bank-openapi.json`) and the
//!   admin page (`/admin`: projections, streams, the live feed, the catalog).
//!
//! Transfers run through the transfer process manager, as in the transcript: `SendTransfer`
//! debits, the process manager credits the receiver (or refunds).
//!
//! **Callers** (a demonstration, not authentication): the `X-Caller` header names the caller;
//! the authorization hook refuses `Withdraw` to the caller `guest` (`403`). A real service puts
//! its own identity layer (tokens, sessions) where [`identify`] is.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use eventweave_axum::admin::Admin;
use eventweave_axum::axum::extract::Request;
use eventweave_axum::axum::middleware::{self, Next};
use eventweave_axum::axum::response::Response;
use eventweave_axum::{Access, Api, ApiBuilder, Caller, Denied, Operation, Params};
use eventweave_core::process::ProcessManager;
use eventweave_core::process::ProcessManagerSink;
use eventweave_core::runner::{Checkpoints, ProjectionRunner, RunningProjection};
use eventweave_core::{
    BuildError, Command, Cqrs, DispatchError, EventStore, InspectStore, MemoryStore, Position,
};
use eventweave_sqlite::SqliteStore;
use tokio::net::TcpListener;

use crate::*;

/// Any error of the service's start-up.
pub type Failure = Box<dyn Error + Send + Sync>;

/// The port served when none is given.
pub const DEFAULT_PORT: u16 = 8080;

/// The caller the authorization hook refuses `Withdraw` to.
pub const GUEST: &str = "guest";

/// The application the service runs: the in-memory read models that answer its queries, and
/// the bank's limits.
pub async fn app<S: EventStore>(store: S) -> Result<Cqrs<S>, BuildError> {
    Cqrs::builder(store)
        .projection(Balances::default())
        .projection(AccountHistory::default())
        .service(Limits {
            max_withdrawal: 50_000,
        })
        .build()
        .await
}

/// The bank's policy: guests may not withdraw, whatever the route.
pub fn policy(access: &Access<'_>) -> Result<(), Denied> {
    let guest = access.caller().is_some_and(|c| c.id() == GUEST);
    match access.operation() {
        Operation::Command { name, .. } if guest && name == Withdraw::NAME => {
            Err(Denied::forbidden("the caller `guest` may not withdraw"))
        }
        _ => Ok(()),
    }
}

fn account(params: &Params) -> Result<AccountId, String> {
    params.parse("account").map(AccountId)
}

/// The service: every route above, the policy, and the bank's error data in `rejected`
/// problems.
pub fn api<S: EventStore>(app: Cqrs<S>) -> Result<Api<S>, DispatchError> {
    builder(app).build()
}

/// The service with the admin page at `/admin` (for loopback peers; the bank's catalog), as
/// `cargo run -p bank -- serve` runs it.
pub fn admin_api<S>(app: Cqrs<S>) -> Result<Api<S>, DispatchError>
where
    S: EventStore + InspectStore + Checkpoints,
{
    builder(app)
        .admin(Admin::new().catalog(crate::catalog()))
        .build()
}

/// What [`api`] and [`admin_api`] build.
pub fn builder<S: EventStore>(app: Cqrs<S>) -> ApiBuilder<S> {
    Api::builder(app)
        .info("The bank", env!("CARGO_PKG_VERSION"))
        .description(
            "The eventweave example bank: accounts, deposits, withdrawals and transfers. \
             The caller `guest` (header `X-Caller`) may not withdraw.",
        )
        .aggregate::<Account>()
        .decision::<Transfers>()
        .command::<OpenAccount>("/accounts")
        .command::<Deposit>("/deposits")
        .command::<Withdraw>("/withdrawals")
        .query::<GetBalance>()
        .query::<GetStatement>()
        .query::<ListAccounts>()
        .query::<TotalHoldings>()
        .query_route::<ListAccounts>("/accounts", |_| Ok(ListAccounts))
        .query_route::<GetBalance>("/accounts/{account}/balance", |p| {
            Ok(GetBalance {
                account: account(p)?,
            })
        })
        .query_route::<GetStatement>("/accounts/{account}/statement", |p| {
            Ok(GetStatement {
                account: account(p)?,
            })
        })
        .rejection::<BankError>()
        .authorize(policy)
}

/// The demonstration identity layer: `X-Caller: name` becomes the request's [`Caller`].
pub async fn identify(mut request: Request, next: Next) -> Response {
    let caller = request
        .headers()
        .get("x-caller")
        .and_then(|v| v.to_str().ok())
        .map(|name| Caller::new(name.trim()));
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller);
    }
    next.run(request).await
}

/// The router of `api` behind the identity layer.
pub fn router<S: EventStore>(api: &Api<S>) -> eventweave_axum::axum::Router {
    api.router().layer(middleware::from_fn(identify))
}

/// Starts the transfer process manager from its checkpoint (at the head for a store whose
/// transfers predate it, as the transcript does).
pub async fn transfers<S: EventStore + Checkpoints>(
    app: &Cqrs<S>,
) -> Result<RunningProjection<ProcessManagerSink<TransferProcess, S>>, Failure> {
    let store = app.store().clone();
    if store.load_checkpoint(TransferProcess::NAME).await? == Position::ZERO {
        let head = store.head().await?;
        if head > Position::ZERO {
            store.save_checkpoint(TransferProcess::NAME, head).await?;
        }
    }
    Ok(ProjectionRunner::new(store, transfer_process(app)?).spawn())
}

/// A running service (for tests): its address and how to stop it.
pub struct Server<S> {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The service (shut it down with [`Server::stop`]).
    pub api: Api<S>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl<S: EventStore> Server<S> {
    /// Shuts down gracefully and waits until the server has stopped.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Serves `api` on `listener` in a task of the current runtime.
pub fn spawn<S: EventStore>(listener: TcpListener, api: Api<S>) -> std::io::Result<Server<S>> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = router(&api);
    let task = tokio::spawn(eventweave_axum::serve_router(
        listener,
        router,
        api.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Server {
        addr,
        api,
        task,
        stop,
    })
}

/// `serve [--port N] [--memory]`: the command line of the service.
struct Args {
    port: u16,
    in_memory: bool,
}

fn args(words: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        port: match std::env::var("BANK_PORT") {
            Ok(port) => port.parse().map_err(|e| format!("BANK_PORT={port}: {e}"))?,
            Err(_) => DEFAULT_PORT,
        },
        in_memory: std::env::var("BANK_STORE").is_ok_and(|s| s == "memory"),
    };
    let mut words = words;
    while let Some(word) = words.next() {
        match word.as_str() {
            "--memory" => args.in_memory = true,
            "--port" => {
                let port = words.next().ok_or("--port needs a number")?;
                args.port = port.parse().map_err(|e| format!("--port {port}: {e}"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (serve takes --port N and --memory)"
                ));
            }
        }
    }
    Ok(args)
}

/// Runs the service until Ctrl-C (the words after `serve` on the command line).
pub async fn main(words: impl Iterator<Item = String>) -> Result<(), Failure> {
    let args = args(words)?;
    if args.in_memory {
        println!("Store: in memory (forgotten at exit)");
        run(MemoryStore::new(), args.port).await
    } else {
        let path =
            std::env::var_os("BANK_DB").map_or_else(|| PathBuf::from("bank.db"), PathBuf::from);
        println!("Store: SQLite file {}", path.display());
        run(SqliteStore::open(&path)?, args.port).await
    }
}

async fn run<S: EventStore + InspectStore + Checkpoints>(
    store: S,
    port: u16,
) -> Result<(), Failure> {
    let app = app(store).await?;
    let transfers = transfers(&app).await?;
    let api = admin_api(app)?;
    // Loopback only: the example has no authentication.
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "Serving the bank on http://{} (Ctrl-C stops)",
        listener.local_addr()?
    );
    println!(
        "  try: curl -s -X POST localhost:{0}/commands/OpenAccount -d '{{\"account\":1,\"owner\":\"Ada\"}}'",
        listener.local_addr()?.port()
    );
    println!(
        "  admin page: http://{}/admin   OpenAPI: http://{0}/openapi.json",
        listener.local_addr()?
    );
    let router = router(&api);
    eventweave_axum::serve_router(listener, router, api, async {
        let _ = tokio::signal::ctrl_c().await;
        println!("Stopping: finishing requests in flight");
    })
    .await?;
    // The process manager between batches; its checkpoint is stored.
    tokio::time::timeout(Duration::from_secs(5), transfers.stop())
        .await
        .ok();
    Ok(())
}

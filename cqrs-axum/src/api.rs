//! The service: [`ApiBuilder`] (what is served, limits, the authorization hook), [`Api`] (the
//! `axum::Router` with its layers, shutdown) and [`serve`].

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use eventweave_core::runner::Checkpoints;
use eventweave_core::{
    Aggregate, Command, Cqrs, DispatchError, EventStore, Handles, InspectStore, RoutedQuery, Router,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admin::{self, Admin};
use crate::auth::{Access, Authorize, Caller, Operation};
use crate::feed::{Feed, Hub};
use crate::headers::{last_event_id, query_param};
use crate::openapi::{self, CommandRoute, Described, QueryRouteDoc};
use crate::problem::{Problem, ProblemType};
use crate::queries::{self, BuildQuery, QueryRoute};
use crate::rejection::Rejections;
use crate::{commands, problem};

/// Limits and timeouts of the service.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub body_limit: usize,
    pub command_timeout: Duration,
    pub request_timeout: Duration,
    pub feed_buffer: usize,
    pub keep_alive: Duration,
    pub feed: bool,
    pub openapi: bool,
}

/// The OpenAPI document, made once at `build`.
pub(crate) struct Document {
    pub value: serde_json::Value,
    pub text: Bytes,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            body_limit: 64 * 1024,
            command_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            feed_buffer: 1024,
            keep_alive: Duration::from_secs(15),
            feed: true,
            openapi: true,
        }
    }
}

/// What every route shares.
pub(crate) struct Shared<S> {
    pub app: Cqrs<S>,
    pub router: Router<S>,
    pub queries: BTreeMap<&'static str, QueryRoute<S>>,
    pub rejections: Rejections,
    pub authorize: Option<Box<dyn Authorize>>,
    pub config: Config,
    pub hub: Arc<Hub<S>>,
    pub document: Document,
}

impl<S> Shared<S> {
    /// Asks the authorization hook.
    pub fn authorize(
        &self,
        caller: Option<&Caller>,
        operation: Operation<'_>,
        headers: &HeaderMap,
    ) -> Result<(), Problem> {
        match &self.authorize {
            None => Ok(()),
            Some(hook) => hook
                .authorize(&Access {
                    caller,
                    operation,
                    headers,
                })
                .map_err(|denied| denied.into_problem()),
        }
    }
}

/// Reads a request body of at most `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Problem> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            too_large_problem(limit)
        } else {
            Problem::new(
                ProblemType::InvalidBody,
                format!("the body cannot be read: {e}"),
            )
        }
    })
}

fn too_large_problem(limit: usize) -> Problem {
    Problem::new(
        ProblemType::BodyTooLarge,
        format!("the body is larger than the limit of {limit} bytes"),
    )
    .with("limit", limit)
}

type ExtraRoutes<S> = axum::Router<Arc<Shared<S>>>;

/// Configures an [`Api`]. Made by [`Api::builder`].
pub struct ApiBuilder<S> {
    app: Cqrs<S>,
    router: Router<S>,
    queries: BTreeMap<&'static str, QueryRoute<S>>,
    rejections: Rejections,
    authorize: Option<Box<dyn Authorize>>,
    config: Config,
    routes: ExtraRoutes<S>,
    error: Option<DispatchError>,
    described: Described,
}

/// The last segment of a type's path (`bank::GetBalance` → `GetBalance`).
fn short_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

impl<S: EventStore> ApiBuilder<S> {
    /// Serves every command of aggregate `A` by name: `POST /commands/{name}` with the command
    /// as JSON (commands must derive `serde::Deserialize`). Two aggregates may not share a
    /// command name (`build` fails).
    pub fn aggregate<A: Aggregate>(mut self) -> Self {
        let router = std::mem::replace(&mut self.router, Router::new(self.app.clone()));
        self.described.aggregates.push(A::NAME);
        match router.aggregate::<A>() {
            Ok(router) => self.router = router,
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Serves every command of decision `D` by name (`POST /commands/{name}`), like
    /// [`ApiBuilder::aggregate`] for an aggregate's.
    pub fn decision<D: eventweave_core::Decision>(mut self) -> Self {
        let router = std::mem::replace(&mut self.router, Router::new(self.app.clone()));
        match router.decision::<D>() {
            Ok(router) => self.router = router,
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// A typed route for command `C`: `POST path` with `C` as JSON, run with
    /// `Cqrs::execute_with` (no name lookup). Same headers, responses and problems as
    /// `/commands/{name}`; the authorization hook sees `C::NAME`.
    pub fn command<C>(mut self, path: &str) -> Self
    where
        C: Command + DeserializeOwned,
        C::Aggregate: Handles<C>,
    {
        self.routes = self.routes.route(path, post(commands::typed::<C, S>));
        self.described.command_routes.push(CommandRoute {
            path: path.to_owned(),
            name: C::NAME,
            aggregate: <C::Aggregate as Aggregate>::NAME,
        });
        self
    }

    /// Serves query `Q` by name (the last segment of its type's name, `GetBalance`):
    /// `POST /queries/{name}` with `Q` as JSON, or `GET /queries/{name}` for a query without
    /// fields. The answer is `Q::Response` as JSON.
    pub fn query<Q>(self) -> Self
    where
        Q: RoutedQuery + DeserializeOwned,
        Q::Response: Serialize,
    {
        self.query_named::<Q>(short_name::<Q>())
    }

    /// Serves query `Q` under `name`, as [`query`](ApiBuilder::query).
    pub fn query_named<Q>(mut self, name: &'static str) -> Self
    where
        Q: RoutedQuery + DeserializeOwned,
        Q::Response: Serialize,
    {
        self.queries.insert(name, queries::route::<Q, S>);
        self.described
            .queries
            .insert(name, std::any::type_name::<Q>());
        self
    }

    /// A typed query route: `GET path` (with path parameters such as `{account}`), the query
    /// built from them by `build`; answered as the by-name route (read-your-writes included).
    /// The authorization hook sees the last segment of `Q`'s type name.
    pub fn query_route<Q>(mut self, path: &str, build: BuildQuery<Q>) -> Self
    where
        Q: RoutedQuery,
        Q::Response: Serialize,
    {
        let name = short_name::<Q>();
        self.described.query_routes.push(QueryRouteDoc {
            path: path.to_owned(),
            name,
            type_name: std::any::type_name::<Q>(),
        });
        self.routes = self.routes.route(
            path,
            get(
                move |State(shared): State<Arc<Shared<S>>>, request: Request| {
                    queries::typed::<Q, S>(shared, name, build, request)
                },
            ),
        );
        self
    }

    /// Puts the domain error `E` (a handler's error type) as JSON into the `data` member of
    /// `rejected` problems.
    pub fn rejection<E>(mut self) -> Self
    where
        E: std::error::Error + Serialize + Send + Sync + 'static,
    {
        self.rejections.add::<E>();
        self
    }

    /// The authorization hook, asked before every command, query and feed (see [`crate::auth`]).
    pub fn authorize(mut self, hook: impl Authorize) -> Self {
        self.authorize = Some(Box::new(hook));
        self
    }

    /// The largest request body, in bytes (default 64 KiB). Larger bodies are answered `413`.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config.body_limit = bytes;
        self
    }

    /// How long a command may run (default 10 s). A command that takes longer is abandoned and
    /// answered `outcome-unknown`: it may have been recorded.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = timeout;
        self
    }

    /// How long any request may take until its response starts (default 30 s; the live feed's
    /// stream is not limited): answered `503` `timeout`. Keep it above the command timeout,
    /// or commands get `timeout` instead of `outcome-unknown`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How many events the live feed keeps for clients that read slowly (default 1024). A
    /// client further behind is cut off with a `lagged` event.
    pub fn feed_buffer(mut self, events: usize) -> Self {
        self.config.feed_buffer = events;
        self
    }

    /// How often an idle feed sends a keep-alive comment (default 15 s).
    pub fn feed_keep_alive(mut self, interval: Duration) -> Self {
        self.config.keep_alive = interval;
        self
    }

    /// Serves the live feed (`/events`, `/streams/{stream}/events`; default on).
    pub fn feed(mut self, on: bool) -> Self {
        self.config.feed = on;
        self
    }

    /// Serves the admin page (off by default; see [`crate::admin`]): projections, streams and
    /// their events, the live feed and the event catalog, for loopback peers unless
    /// [`Admin::allow_remote`], behind the authorization hook (as
    /// [`Operation::Admin`]).
    pub fn admin(mut self, admin: Admin) -> Self
    where
        S: InspectStore + Checkpoints,
    {
        self.routes = self.routes.merge(admin::routes::<S>(admin));
        self
    }

    /// Serves the OpenAPI 3.1 document of the service at `GET /openapi.json` (default on; see
    /// [`crate::openapi`]). [`Api::openapi`] returns it either way.
    pub fn openapi(mut self, on: bool) -> Self {
        self.described.served = on;
        self
    }

    /// The `info` of the OpenAPI document: the service's title and version (default
    /// `eventweave service`, `0.0.0`).
    pub fn info(mut self, title: impl Into<String>, version: impl Into<String>) -> Self {
        self.described.title = title.into();
        self.described.version = version.into();
        self
    }

    /// The `info.description` of the OpenAPI document (CommonMark).
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.described.description = Some(text.into());
        self
    }

    /// Adds routes of your own, served with the same state, layers and fallback (for pages or
    /// documents built on the same application).
    pub fn routes(mut self, routes: axum::Router) -> Self {
        self.routes = self.routes.merge(routes.with_state(()));
        self
    }

    /// The service, or the first wiring mistake (two aggregates with one command name).
    pub fn build(self) -> Result<Api<S>, DispatchError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut described = self.described;
        described.feed = self.config.feed;
        let mut config = self.config;
        config.openapi = described.served;
        let value = openapi::document(&described, &self.router.commands());
        let document = Document {
            text: Bytes::from(openapi::to_text(&value)),
            value,
        };
        let (shutdown, stopping) = watch::channel(false);
        let hub = Arc::new(Hub::new(
            self.app.store().clone(),
            config.feed_buffer,
            stopping,
        ));
        let shared = Arc::new(Shared {
            app: self.app,
            router: self.router,
            queries: self.queries,
            rejections: self.rejections,
            authorize: self.authorize,
            config,
            hub,
            document,
        });
        Ok(Api {
            shared,
            routes: self.routes,
            shutdown: Arc::new(shutdown),
        })
    }
}

/// The HTTP service of a [`Cqrs`] application. Cheap to clone.
///
/// Routes: `POST /commands/{name}`, `POST`/`GET /queries/{name}`, the typed routes given to the
/// builder, and (unless turned off) the live feed `GET /events` and
/// `GET /streams/{stream}/events`. Every other path is a `404` problem.
pub struct Api<S> {
    shared: Arc<Shared<S>>,
    routes: ExtraRoutes<S>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl<S> Clone for Api<S> {
    fn clone(&self) -> Self {
        Api {
            shared: Arc::clone(&self.shared),
            routes: self.routes.clone(),
            shutdown: Arc::clone(&self.shutdown),
        }
    }
}

impl<S: EventStore> Api<S> {
    /// Starts configuring the service of `app`.
    pub fn builder(app: Cqrs<S>) -> ApiBuilder<S> {
        ApiBuilder {
            router: Router::new(app.clone()),
            app,
            queries: BTreeMap::new(),
            rejections: Rejections::default(),
            authorize: None,
            config: Config::default(),
            routes: axum::Router::new(),
            error: None,
            described: Described::default(),
        }
    }

    /// The application.
    pub fn app(&self) -> &Cqrs<S> {
        &self.shared.app
    }

    /// The command names served by name, sorted.
    pub fn commands(&self) -> Vec<&'static str> {
        self.shared.router.commands()
    }

    /// The query names served by name, sorted.
    pub fn queries(&self) -> Vec<&'static str> {
        self.shared.queries.keys().copied().collect()
    }

    /// The OpenAPI 3.1 document of the service (see [`crate::openapi`]).
    pub fn openapi(&self) -> &serde_json::Value {
        &self.shared.document.value
    }

    /// The OpenAPI document as stable text (keys sorted, two-space indentation, a final
    /// newline), as `GET /openapi.json` serves it.
    pub fn openapi_json(&self) -> &str {
        std::str::from_utf8(&self.shared.document.text).unwrap_or_default()
    }

    /// The `axum::Router`, with its layers: the body limit (`413` problems), the request
    /// timeout (`503` `timeout` problems), and problems for unknown paths.
    pub fn router(&self) -> axum::Router {
        let mut routes = self
            .routes
            .clone()
            .route("/commands/{name}", post(commands::by_name::<S>))
            .route(
                "/queries/{name}",
                post(queries::by_name::<S>).get(queries::by_name::<S>),
            );
        if self.shared.config.openapi {
            routes = routes.route("/openapi.json", get(openapi_document::<S>));
        }
        if self.shared.config.feed {
            routes = routes
                .route("/events", get(feed_all::<S>))
                .route("/streams/{stream}/events", get(feed_stream::<S>));
        }
        let limit = self.shared.config.body_limit;
        routes
            .fallback(no_route)
            .with_state(Arc::clone(&self.shared))
            .layer(RequestBodyLimitLayer::new(limit))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                self.shared.config.request_timeout,
            ))
            // Outermost: it sees the bare responses of the two layers above.
            .layer(axum::middleware::map_response(move |response: Response| {
                bare_to_problem(response, limit)
            }))
    }

    /// Starts a graceful shutdown: every live feed ends with a `shutdown` event (so that
    /// connections held by feeds close); [`serve`] stops accepting and waits for requests in
    /// flight.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether [`shutdown`](Api::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Serves `api` on `listener` until `signal` resolves, then shuts down gracefully: feeds end
/// (with a `shutdown` event), no new connections are accepted, and requests in flight finish.
///
/// ```no_run
/// # use eventweave_core::{Cqrs, MemoryStore};
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// # let app = Cqrs::builder(MemoryStore::new()).build().await.unwrap();
/// let api = eventweave_axum::Api::builder(app).build().unwrap();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// eventweave_axum::serve(listener, api, async {
///     let _ = stopped.await; // `tokio::signal::ctrl_c()` in a binary
/// })
/// .await
/// # }
/// ```
pub async fn serve<S: EventStore>(
    listener: TcpListener,
    api: Api<S>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let router = api.router();
    serve_router(listener, router, api, signal).await
}

/// As [`serve`], for `api`'s router wrapped in layers of your own (an identity layer that puts
/// a [`Caller`] into requests, say): `router` is served, `api` is shut down with it.
pub async fn serve_router<S: EventStore>(
    listener: TcpListener,
    router: axum::Router,
    api: Api<S>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // The peer address goes into each request (`ConnectInfo`): the admin page serves loopback
    // peers only.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        signal.await;
        api.shutdown();
    })
    .await
}

/// Responses made by layers and by axum itself (`413` from the body limit, `503` from the
/// timeout) have no body: they become problems.
async fn bare_to_problem(response: Response, limit: usize) -> Response {
    let content_type = response.headers().get(header::CONTENT_TYPE);
    if content_type.is_some_and(|t| t == problem::CONTENT_TYPE) {
        return response;
    }
    match response.status() {
        // tower-http's body limit answers in plain text.
        StatusCode::PAYLOAD_TOO_LARGE => too_large_problem(limit).into_response(),
        // The timeout layer answers with no body at all.
        StatusCode::SERVICE_UNAVAILABLE if content_type.is_none() => Problem::new(
            ProblemType::Timeout,
            "the request did not complete within the request timeout",
        )
        .into_response(),
        _ => response,
    }
}

async fn no_route(request: Request) -> Response {
    Problem::new(
        ProblemType::NotFound,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
    .into_response()
}

/// Where a feed starts: after `Last-Event-ID`, else at `?from=` (inclusive), else at 1.
fn feed_start(headers: &HeaderMap, query: Option<&str>) -> Result<u64, Problem> {
    if let Some(id) = last_event_id(headers)? {
        return Ok(id + 1);
    }
    match query_param(query, "from") {
        None | Some("") => Ok(1),
        Some(value) => value.parse().map_err(|_| {
            Problem::new(
                ProblemType::InvalidHeader,
                format!("`from` must be a position (a non-negative integer), not `{value}`"),
            )
            .with("header", "from")
        }),
    }
}

fn feed<S: EventStore>(
    shared: &Shared<S>,
    request: &Request,
    stream: Option<&str>,
) -> Result<Response, Problem> {
    let headers = request.headers();
    shared.authorize(
        request.extensions().get::<Caller>(),
        Operation::Feed { stream },
        headers,
    )?;
    let from = feed_start(headers, request.uri().query())?;
    let feed = Feed::new(Arc::clone(&shared.hub), stream.map(Into::into), from);
    Ok(feed.into_response(shared.config.keep_alive).into_response())
}

/// `GET /events`: every stream.
async fn feed_all<S: EventStore>(
    State(shared): State<Arc<Shared<S>>>,
    request: Request,
) -> Response {
    feed(&shared, &request, None).unwrap_or_else(IntoResponse::into_response)
}

/// `GET /streams/{stream}/events`: one stream.
async fn feed_stream<S: EventStore>(
    State(shared): State<Arc<Shared<S>>>,
    Path(stream): Path<String>,
    request: Request,
) -> Response {
    feed(&shared, &request, Some(&stream)).unwrap_or_else(IntoResponse::into_response)
}

/// `GET /openapi.json`.
async fn openapi_document<S: EventStore>(State(shared): State<Arc<Shared<S>>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        shared.document.text.clone(),
    )
        .into_response()
}

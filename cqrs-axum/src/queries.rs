//! Query routes: `POST` or `GET /queries/{name}` (queries registered by name, JSON body) and
//! typed `GET` routes whose query is built from path parameters (`ApiBuilder::query_route`).
//! Both answer through the typed query bus, after `X-After-Position` / `?after=` when given
//! (`Cqrs::query_after`: read-your-writes).

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, RawPathParams, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventweave_core::{Cqrs, EventStore, Position, RoutedQuery};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::Shared;
use crate::auth::Caller;
use crate::commands::{Kind, admit};
use crate::headers::{RequestMeta, after_position};
use crate::problem::{Problem, ProblemType};

type Answer<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, Problem>> + Send + 'a>>;

/// A query registered by name: decodes the body and answers.
pub(crate) type QueryRoute<S> =
    for<'a> fn(&'a Cqrs<S>, &'a str, &'a [u8], Option<Position>) -> Answer<'a>;

/// The route of query type `Q`.
pub(crate) fn route<'a, Q, S>(
    app: &'a Cqrs<S>,
    name: &'a str,
    body: &'a [u8],
    after: Option<Position>,
) -> Answer<'a>
where
    S: EventStore,
    Q: RoutedQuery + DeserializeOwned,
    Q::Response: Serialize,
{
    // No body (a `GET`) is `null`: what a query without fields (a unit struct) reads from.
    let body = if body.is_empty() { &b"null"[..] } else { body };
    let query = serde_json::from_slice::<Q>(body).map_err(|e| {
        Problem::new(
            ProblemType::InvalidBody,
            format!("the body is not a `{name}` query: {e}"),
        )
        .with("query", name)
    });
    Box::pin(async move { answer(app, name, query?, after).await })
}

async fn answer<Q, S>(
    app: &Cqrs<S>,
    name: &str,
    query: Q,
    after: Option<Position>,
) -> Result<Vec<u8>, Problem>
where
    S: EventStore,
    Q: RoutedQuery,
    Q::Response: Serialize,
{
    let response = match after {
        Some(position) => app.query_after(position, query).await,
        None => app.query(query).await,
    }
    .map_err(|e| Problem::from_query(name, e))?;
    serde_json::to_vec(&response).map_err(|e| {
        Problem::new(
            ProblemType::Internal,
            format!("the answer to `{name}` does not serialize: {e}"),
        )
        .with("query", name)
    })
}

fn respond(meta: &RequestMeta<'_>, result: Result<Vec<u8>, Problem>) -> Response {
    let mut response = match result {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(problem) => problem.into_response(),
    };
    meta.echo(response.headers_mut(), None);
    response
}

/// `POST /queries/{name}` and `GET /queries/{name}`.
pub(crate) async fn by_name<S: EventStore>(
    State(shared): State<Arc<Shared<S>>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let caller = parts.extensions.get::<Caller>();
    let (meta, bytes) =
        match admit(&shared, &parts.headers, caller, body, (Kind::Query, &name)).await {
            Ok(admitted) => admitted,
            Err((meta, problem)) => return respond(&meta, Err(problem)),
        };
    let Some(route) = shared.queries.get(name.as_str()) else {
        let known: Vec<&str> = shared.queries.keys().copied().collect();
        let problem = Problem::new(
            ProblemType::UnknownQuery,
            format!(
                "no query `{name}` is served; known queries: {}",
                known.join(", ")
            ),
        )
        .with("query", name.as_str())
        .with("known", known);
        return respond(&meta, Err(problem));
    };
    let result = match after_position(&parts.headers, parts.uri.query()) {
        Ok(after) => route(&shared.app, &name, &bytes, after).await,
        Err(problem) => Err(problem),
    };
    respond(&meta, result)
}

/// The path parameters of a typed query route, from which its query is built.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The parameter `name` (percent-decoded), if the route has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The parameter `name` parsed as `T`, with a message naming it when it is missing or does
    /// not parse.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        let value = self
            .get(name)
            .ok_or_else(|| format!("the path has no parameter `{name}`"))?;
        value
            .parse()
            .map_err(|e| format!("path parameter `{name}` = `{value}`: {e}"))
    }
}

/// Builds a typed route's query from its path parameters.
pub type BuildQuery<Q> = fn(&Params) -> Result<Q, String>;

/// A typed query route: `GET path`, the query built by `build`.
pub(crate) async fn typed<Q, S>(
    shared: Arc<Shared<S>>,
    name: &'static str,
    build: BuildQuery<Q>,
    request: Request,
) -> Response
where
    S: EventStore,
    Q: RoutedQuery,
    Q::Response: Serialize,
{
    let (mut parts, body) = request.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .map(|raw| {
            Params(
                raw.iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )
        })
        .unwrap_or_default();
    let caller = parts.extensions.get::<Caller>();
    let (meta, bytes) =
        match admit(&shared, &parts.headers, caller, body, (Kind::Query, name)).await {
            Ok(admitted) => admitted,
            Err((meta, problem)) => return respond(&meta, Err(problem)),
        };
    drop(bytes);
    let query = match build(&params) {
        Ok(query) => query,
        Err(message) => {
            let problem = Problem::new(
                ProblemType::InvalidHeader,
                format!("cannot build a `{name}` query from the path: {message}"),
            )
            .with("query", name)
            .with("header", "path");
            return respond(&meta, Err(problem));
        }
    };
    let result = match after_position(&parts.headers, parts.uri.query()) {
        Ok(after) => answer(&shared.app, name, query, after).await,
        Err(problem) => Err(problem),
    };
    respond(&meta, result)
}

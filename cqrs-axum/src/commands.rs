//! Command routes: `POST /commands/{name}` (untyped dispatch through `eventweave_core::Router`)
//! and typed routes for chosen commands (`ApiBuilder::command`).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventweave_core::{BoxError, Command, CommandOutcome, EventStore, Handles};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::Shared;
use crate::auth::{Caller, Operation};
use crate::headers::{POSITION, RequestMeta};
use crate::problem::{Problem, ProblemType};

/// The body of a successful command's response.
#[derive(Serialize)]
struct Outcome<'a> {
    command_id: String,
    correlation_id: String,
    stream: &'a str,
    /// The stream's version after the command.
    version: u64,
    /// The global position of the command's last event (0 when it recorded none): send it as
    /// `X-After-Position` to read your writes.
    position: u64,
    /// How many events it recorded.
    events: usize,
}

/// A command's response: `200` with the outcome, or its problem; both echo the correlation.
fn respond(meta: &RequestMeta<'_>, result: Result<CommandOutcome, Problem>) -> Response {
    let (mut response, used) = match result {
        Ok(outcome) => {
            let body = serde_json::to_vec(&Outcome {
                command_id: outcome.command_id.to_string(),
                correlation_id: outcome.correlation_id.to_string(),
                stream: outcome.stream.as_str(),
                version: outcome.version,
                position: outcome.position().0,
                events: outcome.events.len(),
            })
            .unwrap_or_default();
            let mut response = (StatusCode::OK, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(POSITION, HeaderValue::from(outcome.position().0));
            (response, Some(outcome.correlation_id))
        }
        Err(problem) => (problem.into_response(), None),
    };
    meta.echo(response.headers_mut(), used);
    response
}

/// What a request runs: a command or a query, by name.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Command,
    Query,
}

/// Reads the request's headers and body and asks the authorization hook; what every command
/// and query route does before it runs anything.
pub(crate) async fn admit<'r, S: EventStore>(
    shared: &Shared<S>,
    headers: &'r HeaderMap,
    caller: Option<&'r Caller>,
    body: axum::body::Body,
    (kind, name): (Kind, &str),
) -> Result<(RequestMeta<'r>, axum::body::Bytes), (RequestMeta<'r>, Problem)> {
    let meta = RequestMeta::read(headers, caller).map_err(|p| (RequestMeta::default(), p))?;
    let bytes = match crate::api::read_body(body, shared.config.body_limit).await {
        Ok(bytes) => bytes,
        Err(problem) => return Err((meta, problem)),
    };
    let body = &bytes[..];
    let operation = match kind {
        Kind::Command => Operation::Command { name, body },
        Kind::Query => Operation::Query { name, body },
    };
    if let Err(problem) = shared.authorize(caller, operation, headers) {
        return Err((meta, problem));
    }
    Ok((meta, bytes))
}

/// `POST /commands/{name}`.
pub(crate) async fn by_name<S: EventStore>(
    State(shared): State<Arc<Shared<S>>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let caller = parts.extensions.get::<Caller>();
    let (meta, bytes) = match admit(
        &shared,
        &parts.headers,
        caller,
        body,
        (Kind::Command, &name),
    )
    .await
    {
        Ok(admitted) => admitted,
        Err((meta, problem)) => return respond(&meta, Err(problem)),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        let problem = Problem::new(ProblemType::InvalidBody, "the body is not UTF-8 JSON")
            .with("command", name.as_str());
        return respond(&meta, Err(problem));
    };
    let run = shared.router.dispatch_with(&name, text, meta.context());
    let result = match tokio::time::timeout(shared.config.command_timeout, run).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err(Problem::from_dispatch(
            &name,
            e,
            meta.key,
            &shared.rejections,
        )),
        Err(_) => Err(timed_out(&shared, &name, &meta)),
    };
    respond(&meta, result)
}

/// A command that outlived the command timeout: it was dropped, possibly after its append was
/// sent, so its outcome is unknown.
fn timed_out<S>(shared: &Shared<S>, command: &str, meta: &RequestMeta<'_>) -> Problem {
    Problem::outcome_unknown(
        command,
        format!(
            "the command did not finish within {:?} and was abandoned, possibly after the store received it",
            shared.config.command_timeout
        ),
        meta.key,
    )
}

/// A typed route: `POST path` with a JSON body of `C`, run through `Cqrs::execute_with` (no
/// name lookup).
pub(crate) async fn typed<C, S>(State(shared): State<Arc<Shared<S>>>, request: Request) -> Response
where
    S: EventStore,
    C: Command + DeserializeOwned,
    C::Aggregate: Handles<C>,
{
    let (parts, body) = request.into_parts();
    let caller = parts.extensions.get::<Caller>();
    let (meta, bytes) = match admit(
        &shared,
        &parts.headers,
        caller,
        body,
        (Kind::Command, C::NAME),
    )
    .await
    {
        Ok(admitted) => admitted,
        Err((meta, problem)) => return respond(&meta, Err(problem)),
    };
    let command: C = match serde_json::from_slice(&bytes) {
        Ok(command) => command,
        Err(e) => {
            let problem = Problem::new(
                ProblemType::InvalidBody,
                format!("the body is not a `{}` command: {e}", C::NAME),
            )
            .with("command", C::NAME);
            return respond(&meta, Err(problem));
        }
    };
    let run = shared.app.execute_with(command, meta.context());
    let result = match tokio::time::timeout(shared.config.command_timeout, run).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err(Problem::from_command(
            C::NAME,
            e.map_rejection(|e| Box::new(e) as BoxError),
            meta.key,
            &shared.rejections,
        )),
        Err(_) => Err(timed_out(&shared, C::NAME, &meta)),
    };
    respond(&meta, result)
}

//! The authorization hook: sees who calls, which operation, and the body, before anything runs.
//!
//! Who the caller is (a token checked, a session looked up) is decided by a layer in front of
//! the service, which puts a [`Caller`] into the request's extensions; that is where async work
//! belongs. The hook ([`Authorize`]) then decides, synchronously, whether this caller may run
//! this operation: it sees the caller, the command's or query's name and its body, and the
//! request's headers. A denial is a `401` or `403` problem and nothing runs.
//!
//! ```
//! use eventweave_axum::auth::{Access, Denied, Operation};
//!
//! // Guests may not withdraw; everything else is allowed.
//! fn policy(access: &Access<'_>) -> Result<(), Denied> {
//!     let guest = access.caller().is_some_and(|c| c.id() == "guest");
//!     match access.operation() {
//!         Operation::Command { name: "Withdraw", .. } if guest => {
//!             Err(Denied::forbidden("guests may not withdraw"))
//!         }
//!         _ => Ok(()),
//!     }
//! }
//! # let _ = policy;
//! ```

use std::fmt;
use std::sync::Arc;

use axum::http::HeaderMap;

use crate::problem::{Problem, ProblemType};

/// Who sends a request, as established by a layer in front of the service (which inserts it
/// into the request's extensions: `request.extensions_mut().insert(Caller::new("alice"))`).
///
/// Idempotency keys are scoped by caller (see `headers::command_id_for_key`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller(Arc<str>);

impl Caller {
    /// A caller with this identity.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Caller(id.into())
    }

    /// The caller's identity.
    pub fn id(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request asks to do.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Operation<'a> {
    /// Run a command (by name, or on a typed route: the command's `Command::NAME`).
    Command {
        /// The command's name.
        name: &'a str,
        /// The JSON body, as received.
        body: &'a [u8],
    },
    /// Answer a query (by name, or on a typed route: its registered name).
    Query {
        /// The query's name.
        name: &'a str,
        /// The JSON body, as received (empty for a `GET`).
        body: &'a [u8],
    },
    /// Follow the live event feed of every stream (`None`) or of one stream.
    Feed {
        /// The stream, when the feed is of one stream.
        stream: Option<&'a str>,
    },
    /// Look at the admin page or one of its endpoints (see [`crate::admin`]).
    Admin {
        /// The request's path (`/admin`, `/admin/api/streams`, …).
        path: &'a str,
    },
}

/// One request, as the authorization hook sees it.
#[derive(Clone, Copy, Debug)]
pub struct Access<'a> {
    pub(crate) caller: Option<&'a Caller>,
    pub(crate) operation: Operation<'a>,
    pub(crate) headers: &'a HeaderMap,
}

impl<'a> Access<'a> {
    /// The caller, if a layer in front of the service established one.
    pub fn caller(&self) -> Option<&'a Caller> {
        self.caller
    }

    /// What the request asks to do.
    pub fn operation(&self) -> Operation<'a> {
        self.operation
    }

    /// The request's headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }
}

/// A refusal of the authorization hook: answered as a `401` or `403` problem.
#[derive(Clone, Debug)]
pub struct Denied(Problem);

impl Denied {
    /// `403`: this caller may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Denied(Problem::new(ProblemType::Forbidden, detail))
    }

    /// `401`: the request must say who calls.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Denied(Problem::new(ProblemType::Unauthorized, detail))
    }

    /// The problem the client receives.
    pub fn into_problem(self) -> Problem {
        self.0
    }
}

/// Decides whether a request may run. Closures `Fn(&Access<'_>) -> Result<(), Denied>`
/// implement it.
pub trait Authorize: Send + Sync + 'static {
    /// `Ok(())` lets the request run; `Err` answers with the denial and runs nothing.
    fn authorize(&self, access: &Access<'_>) -> Result<(), Denied>;
}

impl<F> Authorize for F
where
    F: Fn(&Access<'_>) -> Result<(), Denied> + Send + Sync + 'static,
{
    fn authorize(&self, access: &Access<'_>) -> Result<(), Denied> {
        self(access)
    }
}

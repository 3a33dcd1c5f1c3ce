//! Untyped dispatch: a command given by name with a JSON body (from HTTP, a queue, a CLI),
//! routed to its typed handler.
//!
//! Commands are decoded through an autoref probe: commands that derive `Deserialize` are decoded,
//! others give `DispatchError::NotDeserializable` at run time, instead of every command being
//! forced to be deserializable.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::aggregate::{Aggregate, CommandSet};
use crate::app::Cqrs;
use crate::context::{CommandContext, CommandOutcome};
use crate::decision::{Decision, DecisionCommandSet};
use crate::error::DispatchError;
use crate::store::EventStore;

/// The future a route returns.
type RouteFuture<'a> =
    Pin<Box<dyn Future<Output = Result<CommandOutcome, DispatchError>> + Send + 'a>>;

type Route<S> = for<'a> fn(&'a Cqrs<S>, &'a str, &'a str, CommandContext) -> RouteFuture<'a>;

fn route<'a, A: Aggregate, S: EventStore>(
    app: &'a Cqrs<S>,
    name: &'a str,
    body: &'a str,
    context: CommandContext,
) -> RouteFuture<'a> {
    let command = A::Command::from_json(name, body);
    Box::pin(async move { command?.execute_on(app, context).await })
}

fn decision_route<'a, D: Decision, S: EventStore>(
    app: &'a Cqrs<S>,
    name: &'a str,
    body: &'a str,
    context: CommandContext,
) -> RouteFuture<'a> {
    let command = D::Command::from_json(name, body);
    Box::pin(async move { command?.execute_on(app, context).await })
}

/// Routes commands by name to the aggregates and decisions added to it.
///
/// ```
/// # use eventweave_core::{Cqrs, MemoryStore, Router, DispatchError};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = Cqrs::builder(MemoryStore::new()).build().await.unwrap();
/// let router = Router::new(app);
/// let err = router.dispatch("Nope", "{}").await.unwrap_err();
/// assert!(matches!(err, DispatchError::UnknownCommand { .. }));
/// # }
/// ```
pub struct Router<S> {
    app: Cqrs<S>,
    /// Each name's route, with the type of the aggregate or decision that handles it.
    routes: BTreeMap<&'static str, (TypeId, Route<S>)>,
}

impl<S: EventStore> Router<S> {
    /// A router with no route.
    pub fn new(app: Cqrs<S>) -> Self {
        Router {
            app,
            routes: BTreeMap::new(),
        }
    }

    /// Routes every command of aggregate `A`. Two aggregates may not share a command name.
    pub fn aggregate<A: Aggregate>(mut self) -> Result<Self, DispatchError> {
        let names = <A::Command as CommandSet>::NAMES;
        self.add(TypeId::of::<A>(), names, route::<A, S>, false)?;
        Ok(self)
    }

    /// Routes every command of decision `D`. No two routed commands may share a name.
    pub fn decision<D: Decision>(mut self) -> Result<Self, DispatchError> {
        let names = <D::Command as DecisionCommandSet>::NAMES;
        self.add(TypeId::of::<D>(), names, decision_route::<D, S>, false)?;
        Ok(self)
    }

    /// Routes the commands of aggregate `A` unless they are routed already (a process
    /// manager's sink adds the owner of each command it may issue, several of one owner).
    #[doc(hidden)]
    pub fn __ensure_aggregate<A: Aggregate>(&mut self) -> Result<(), DispatchError> {
        let names = <A::Command as CommandSet>::NAMES;
        self.add(TypeId::of::<A>(), names, route::<A, S>, true)
    }

    /// Routes the commands of decision `D` unless they are routed already.
    #[doc(hidden)]
    pub fn __ensure_decision<D: Decision>(&mut self) -> Result<(), DispatchError> {
        let names = <D::Command as DecisionCommandSet>::NAMES;
        self.add(TypeId::of::<D>(), names, decision_route::<D, S>, true)
    }

    /// Adds `names`, handled by `owner`, through `route`. A name routed to another owner is a
    /// `DuplicateCommand`; one routed to the same owner too, unless `again` allows it. Nothing
    /// is added when it fails.
    fn add(
        &mut self,
        owner: TypeId,
        names: &'static [&'static str],
        route: Route<S>,
        again: bool,
    ) -> Result<(), DispatchError> {
        for &name in names {
            if let Some((routed_to, _)) = self.routes.get(name)
                && (*routed_to != owner || !again)
            {
                return Err(DispatchError::DuplicateCommand { name });
            }
        }
        for &name in names {
            self.routes.insert(name, (owner, route));
        }
        Ok(())
    }

    /// The routed command names, sorted.
    pub fn commands(&self) -> Vec<&'static str> {
        self.routes.keys().copied().collect()
    }

    /// Runs the command called `name` with JSON `body` as a new business transaction.
    pub async fn dispatch(&self, name: &str, body: &str) -> Result<CommandOutcome, DispatchError> {
        self.dispatch_with(name, body, CommandContext::default())
            .await
    }

    /// Runs the command called `name` with JSON `body` in `context`.
    pub async fn dispatch_with(
        &self,
        name: &str,
        body: &str,
        context: CommandContext,
    ) -> Result<CommandOutcome, DispatchError> {
        let Some((_, route)) = self.routes.get(name) else {
            return Err(DispatchError::UnknownCommand {
                name: name.to_owned(),
                known: self.commands(),
            });
        };
        route(&self.app, name, body, context).await
    }
}

impl<S: EventStore> Cqrs<S> {
    /// Runs the command of aggregate `A` called `name` with JSON `body`.
    pub async fn dispatch<A: Aggregate>(
        &self,
        name: &str,
        body: &str,
    ) -> Result<CommandOutcome, DispatchError> {
        A::Command::from_json(name, body)?
            .execute_on(self, CommandContext::default())
            .await
    }
}

//! Procedural macros of the cqrs framework. Use them through `eventweave_core` (feature `derive`,
//! on by default): `use eventweave_core::prelude::*;` brings every macro and trait into scope.
//!
//! | macro | goes on | generates |
//! |---|---|---|
//! | [`Event`](derive@Event) | an event struct or enum | `impl Event` (stored name, schema version, upcasters from older versions) and its registration |
//! | [`Command`](derive@Command) | a command struct | `impl Command` (target aggregate, name, id field) |
//! | [`Query`](derive@Query) | a query struct or enum | `impl Query` (response type) |
//! | [`aggregate`](macro@aggregate) | the impl block of an aggregate | the event and command enums, `impl Aggregate`, one `impl Handles<C>` per handler, checks, registration |
//! | [`projection`](macro@projection) | the impl block of a read model | `impl Projection` and one `impl RoutedQuery` per query, or `impl DurableProjection<U>` for a durable read model; registration |
//! | [`process_manager`](macro@process_manager) | the impl block of a process manager's state | `impl ProcessManager` (handlers by stored event name, the `#[on_rejected]` compensation); registration |
//!
//! Every macro accepts `crate = "path"` (for example `#[aggregate(id = u64, crate =
//! "my_app::cqrs")]`) when `eventweave_core` is reachable only under another path, such as a
//! re-export from a facade crate.
//!
//! Mistakes are compile errors on your own tokens, each saying what to write instead; one
//! mistake gives one error, because the macros still emit your code and a placeholder for the
//! part in error.
//!
//! The examples below use `ignore` because this crate cannot depend on `eventweave_core`; the same
//! code is compiled and run by the workspace's `tests/macros.rs` and `tests/ui/pass`.

mod attr;
mod attr_dcb;
mod check;
mod ctxt;
mod expand;
mod model;
mod naming;

use proc_macro::TokenStream;
use syn::parse_macro_input;

use crate::model::derive::DeriveInput;

/// Implements `Event` for a struct or enum: a fact stored under a stable name and schema
/// version.
///
/// ```ignore
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #[event(name = "account.opened", version = 3)]
/// #[upcast(from = 1, with = opened_v1_to_v2)]
/// #[upcast(from = 2, with = opened_v2_to_v3)]
/// pub struct AccountOpened { pub owner: String, pub currency: String, pub overdraft: u64 }
///
/// // Version 1 had `name` where version 2 has `owner`: edit the JSON.
/// fn opened_v1_to_v2(mut v1: serde_json::Value) -> serde_json::Value {
///     if let Some(name) = v1.get_mut("name").map(serde_json::Value::take) {
///         v1["owner"] = name;
///     }
///     v1
/// }
///
/// // Or read the older version as a type of its own.
/// #[derive(Deserialize)]
/// struct OpenedV2 { owner: String, currency: Option<String> }
///
/// fn opened_v2_to_v3(v2: OpenedV2) -> Result<AccountOpened, MissingCurrency> {
///     let currency = v2.currency.ok_or(MissingCurrency)?;
///     Ok(AccountOpened { owner: v2.owner, currency, overdraft: 0 })
/// }
/// ```
///
/// - `name = "…"` (required): the stored name. Never change it once events are stored: it is
///   how stored rows find their type again, which is why it is written out rather than taken
///   from the type's name (renaming the type would orphan its stored events). Two event types of one aggregate
///   with the same name do not compile; two anywhere in the program fail at start-up.
/// - `version = n`: the payload's schema version, an integer from 1 (default 1). Raise it when
///   the payload's shape changes, and add an upcaster from the previous version.
/// - `crate = "path"`: where `eventweave_core` is.
/// - `#[upcast(from = n, with = path)]`, one for each older version `n` (1 to `version - 1`):
///   the function that turns a version `n` payload into a version `n + 1` payload. It takes the
///   payload by value, as `serde_json::Value` or a type that implements `Deserialize` (the old
///   shape), and returns `serde_json::Value` or a type that implements `Serialize` (the next
///   shape, the event type itself for the last step), or `Result` of that with an error that
///   implements `std::error::Error + Send + Sync + 'static`.
///
/// Loading an event stored at version `n` runs the upcasters from `n` up to the current
/// version, then decodes the result; aggregates and projections see only current events. An
/// event of the current version is decoded directly. A stored version newer than `version`, or
/// an upcaster that fails, is a typed error (`DecodeFailure::UnsupportedVersion`,
/// `DecodeFailure::Upcast`) naming the stream, the version in the stream, the event and its
/// stored version.
///
/// Compile-time checks: an upcaster from every older version (a missing one is reported on
/// `version = n`), only one from each, none from version 0 or from `version` or later, and
/// each function has one of the forms above.
/// - `#[tag]` / `#[tag(key = "…")]` on a named field (of the struct, or of an enum's variant):
///   the event carries the tag `key:<value>` (key: the field's name unless given), its value
///   the field's `TagValue` text. On an `Option<T>` field there is no tag when it is `None`;
///   an enum value carries the tags of its own variant's fields. Decisions read events by them.
///
/// The type must also implement `Serialize`, `Deserialize`, `Clone`, `Debug` and `PartialEq`
/// (derive them), and be `Send + Sync + 'static`. Generic types and unions are rejected.
#[proc_macro_derive(Event, attributes(event, upcast, tag))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive::event(&input).into()
}

/// Implements `Command` for a struct with named fields: a request to change one aggregate.
///
/// ```ignore
/// #[derive(Command, Clone, Debug, Deserialize)]
/// #[command(aggregate = Account, name = "deposit")]
/// pub struct Deposit {
///     #[id]
///     pub account: AccountId,
///     pub amount: u64,
/// }
/// ```
///
/// - `aggregate = Type` (required): the aggregate whose `#[handle]` method takes this command.
/// - `name = "…"`: the name used by untyped dispatch (`Router::dispatch`; default: the type's
///   name).
/// - `crate = "path"`: where `eventweave_core` is.
/// - `#[id]` on exactly one field, whose type is the aggregate's `id` type: it names the
///   aggregate instance the command goes to.
///
/// A command taken by value by its handler must be `Clone` (the handler may run again after a
/// concurrent write); one that derives `Deserialize` can also be sent as JSON by name.
#[proc_macro_derive(Command, attributes(command, id, tag))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive::command(&input).into()
}

/// Implements `Query` for a struct or enum: a question with a typed answer.
///
/// ```ignore
/// #[derive(Query)]
/// #[query(response = Option<u64>)]
/// pub struct GetBalance { pub account: AccountId }
/// ```
///
/// - `response = Type` (required): what the answer is. The `#[query]` method of a
///   `#[projection]` impl that answers it must return exactly this type.
/// - `crate = "path"`: where `eventweave_core` is.
///
/// Type parameters are bounded by `Send + Sync + 'static`.
#[proc_macro_derive(Query, attributes(query))]
pub fn derive_query(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive::query(&input).into()
}

/// Makes a type a decision state: a fold of the events of some types that carry the tags it
/// is read by, whose values come from the command of the decision that reads it.
///
/// ```ignore
/// #[derive(Default)]
/// pub struct CourseSeats { capacity: u32, taken: u32 }
///
/// #[decision_state(tags = [course])]
/// impl CourseSeats {
///     #[apply] fn defined(&mut self, e: &CourseDefined) { self.capacity = e.capacity; }
///     #[apply] fn subscribed(&mut self, _: &StudentSubscribed) { self.taken += 1; }
/// }
/// ```
///
/// - `tags = [key, …]`: the keys of the tags that select its events (identifiers or strings);
///   a state with none reads every event of its types.
/// - `crate = "path"`: where `eventweave_core` is.
///
/// Compile-time check: every `#[apply]` event carries a `#[tag]` field for each key (an event
/// without one would never be read).
#[proc_macro_attribute]
pub fn decision_state(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::decision::expand_state(args.into(), input.into()).into()
}

/// Makes a type a decision: command handlers that decide on states read by tag across streams
/// (dynamic consistency boundaries). The runtime reads the states' events in one query, folds
/// them, calls the handler, and appends what it returns under the condition that no event
/// matching the query was stored since the read; otherwise it reads and decides again.
///
/// ```ignore
/// pub struct Subscriptions;
///
/// #[decision(name = "subscriptions")]
/// impl Subscriptions {
///     #[handle]
///     fn subscribe(
///         cmd: &Subscribe,
///         seats: &CourseSeats,
///         courses: &StudentCourses,
///     ) -> Result<StudentSubscribed, SubscribeError> { todo!() }
///
///     #[handle]
///     fn transfer(
///         cmd: &Transfer,
///         #[tags(account = from)] from: &Account,
///         #[tags(account = to)] to: &Account,
///     ) -> Result<(InAggregate<Account, Withdrawn>, InAggregate<Account, Deposited>), Refused> {
///         todo!()
///     }
/// }
/// ```
///
/// - `name = "…"`: the category of its own stream (default: the type's name in snake case);
///   events it emits that are not `InAggregate` go to `<name>-<the command's tag values>`.
/// - `command = Name`, `vis = …`: the generated command enum (`SubscriptionsCommand`).
/// - `crate = "path"`: where `eventweave_core` is.
///
/// A handler takes its command by reference (`#[command(decision = Subscriptions)]`, with
/// `#[tag]` fields), then one or more states by reference (`#[decision_state]`s, or aggregates
/// with `tag = "…"`); each state's tags are filled from the command's `#[tag]` field with the
/// same key, or the one named by `#[tags(key = field)]`. It returns events, `InAggregate`
/// events, `Option`, `Vec` or tuples of them, optionally in a `Result`.
///
/// Compile-time checks: the command has a `#[tag]` field for each tag of each state, of the
/// type the state's events give that tag (compared by name); each emitted event type is read
/// back by one of the handler's states. The emitted types are read from the return type as
/// written, so write it out rather than through a type alias (return `Emits`, built by hand,
/// to opt out of the check).
#[proc_macro_attribute]
pub fn decision(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::decision::expand_decision(args.into(), input.into()).into()
}

/// Makes a type an aggregate, from the impl block that holds its `#[handle]` and `#[apply]`
/// methods.
///
/// ```ignore
/// #[aggregate(id = AccountId, name = "account")]
/// impl Account {
///     #[handle]
///     fn open(cmd: Open) -> AccountOpened { AccountOpened { owner: cmd.owner } }
///
///     #[handle]
///     fn deposit(&self, cmd: &Deposit) -> Result<MoneyDeposited, AccountError> {
///         if !self.open { return Err(AccountError::Closed); }
///         Ok(MoneyDeposited { amount: cmd.amount })
///     }
///
///     #[handle]
///     async fn withdraw(&self, cmd: Withdraw, limits: &Limits) -> Result<Vec<AccountEvent>, AccountError> {
///         /* … */
///     }
///
///     #[apply]
///     fn opened(&mut self, _: &AccountOpened) { self.open = true; }
///
///     #[apply]
///     fn deposited(&mut self, e: &MoneyDeposited) { self.balance += e.amount; }
/// }
/// ```
///
/// Arguments:
/// - `id = Type` (required): what identifies one instance (`u64`, `String`, `Uuid`, a newtype
///   with `Display`, …). The stream of instance `id` is `"{name}-{id}"`.
/// - `name = "…"`: the stream category (default: the type's name in snake case).
/// - `event = Ident`, `command = Ident`: the names of the generated enums (default
///   `{Type}Event`, `{Type}Command`).
/// - `vis = pub(crate)`: the visibility of the generated enums (default `pub`). An aggregate
///   that is not `pub` needs its own visibility here (`vis = pub(self)` for a private one):
///   otherwise the command enum's `CommandSet` impl exposes it ("private type in public
///   interface").
/// - `snapshot_every = n`: take a snapshot of the state after every append that crosses a
///   multiple of `n` events (and after a cold load that replayed `n` or more), so a cold load
///   reads the latest snapshot and at most about `n` events. The state must then implement
///   `Serialize` and `Deserialize`. Default: no snapshots.
/// - `snapshot_version = v`: the shape of the serialized state (default 1). Raise it whenever
///   the state's fields change: snapshots of another version are ignored and replaced, never
///   decoded into the new shape. Only with `snapshot_every`.
/// - `crate = "path"`: where `eventweave_core` is.
///
/// Methods:
/// - `#[apply] fn name(&mut self, event: &SomeEvent)`: folds one event into the state. Each
///   event type becomes a variant of the generated event enum, named after the type's last
///   path segment. Not `async`, no other parameter, no return value.
/// - `#[handle]`: decides what a command causes. Forms:
///   - `fn name(&self, cmd: C) -> R` or `cmd: &C`: changes an existing aggregate (the command
///     fails with `NotFound` on an empty stream);
///   - `fn name(cmd: C) -> R` or `cmd: &C`, without `self`: creates it (fails with
///     `AlreadyExists` on a stream that has events);
///   - `fn name(state: Option<&Self>, cmd: &C) -> R`, without `self`: creates it or changes
///     it (`None` when the stream is empty), with the same expected-version check, so two
///     commands racing to create one aggregate never both create it (the later one retries
///     and sees `Some`);
///   - optionally `async`, and followed by services taken by shared reference (`limits:
///     &Limits`, registered with `CqrsBuilder::service`).
///
///   `R` is `Result<T, E>` (written out, with `E: std::error::Error + Send + Sync + 'static`)
///   or a plain `T` for a handler that cannot fail. `T` is one event of this aggregate, the
///   event enum, a `Vec`, `Option` or tuple of those, or `()`. A command taken by value must be
///   `Clone`: the handler gets a copy because it may run again after a conflict. A handler must
///   not change the state: it returns events, and `#[apply]` methods change the state.
/// - Other methods are kept as they are.
///
/// Generated next to the block: `pub enum AccountEvent` (`Clone`, `Debug`, `PartialEq`, serde
/// by stored name, `From` each event), `impl Aggregate`, `pub enum AccountCommand` (`From` each
/// command, dispatch by name with a JSON body), `impl Handles<C>` per handler, and the
/// link-time registration.
///
/// Compile-time checks: one `#[apply]` per event type and one `#[handle]` per command, no two
/// events with the same stored name, each handled command targets this aggregate
/// (`#[command(aggregate = …)]`), handlers return only events this aggregate applies, and
/// every signature has one of the forms above.
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::aggregate::expand(args.into(), input.into()).into()
}

/// Makes a type a projection (a read model folded from events), from the impl block that holds
/// its event handlers and `#[query]` methods.
///
/// ```ignore
/// #[derive(Default)]
/// pub struct Balances { by_account: HashMap<AccountId, u64> }
///
/// #[projection(name = "balances")]
/// impl Balances {
///     fn on_deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta) { /* … */ }
///
///     fn on_withdrawn(&mut self, e: &MoneyWithdrawn) -> Result<(), BalanceError> { /* … */ }
///
///     #[query]
///     fn balance(&self, q: &GetBalance) -> Option<u64> { /* … */ }
/// }
/// ```
///
/// Arguments:
/// - `name = "…"`: the projection's unique name (default: the type's name in snake case). A
///   durable projection's checkpoint is stored under it: do not change it once deployed.
/// - `discover = false`: do not register a constructor for
///   `CqrsBuilder::discover_projections` (the type then need not implement `Default`; add it
///   with `CqrsBuilder::projection`). Durable projections are never discovered that way.
/// - `crate = "path"`: where `eventweave_core` is.
///
/// Methods:
/// - Every `&mut self` method handles an event: `fn name(&mut self, event: &SomeEvent)` or
///   `fn name(&mut self, event: &SomeEvent, meta: &EventMeta)`, returning `()` or
///   `Result<(), E>` (an error stops the projection at that event). One handler per event
///   type. Keep other `&mut self` methods in a separate impl block.
/// - `#[query] fn name(&self, query: &SomeQuery) -> Response` answers a query; `Response` is
///   the query's `#[query(response = …)]` type. One `#[query]` method per query type in the
///   program.
/// - Other methods are kept as they are.
///
/// These generate `impl Projection`: the state lives in memory, the application feeds it
/// (`CqrsBuilder::projection`) and rebuilds it from the first event at every start.
///
/// # Durable projections
///
/// A projection is *durable* when a handler is `async` or borrows a unit of work as its last
/// parameter, after the event and the optional `&EventMeta`:
///
/// ```ignore
/// pub struct BalanceTable;
///
/// #[projection(name = "balance_table")]
/// impl BalanceTable {
///     async fn on_deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta, db: &PgTx) -> Result<(), PgError> {
///         // `execute` returns the number of rows changed: the handler returns `()`.
///         db.execute("update balances set amount = amount + $1 where stream = $2", /* … */).await?;
///         Ok(())
///     }
///
///     fn on_withdrawn(&mut self, e: &MoneyWithdrawn, db: &PgTx) { /* … */ }
///
///     #[reset]
///     async fn truncate(&mut self, db: &PgTx) -> Result<(), PgError> {
///         db.execute("truncate balances", &[]).await?;
///         Ok(())
///     }
/// }
/// ```
///
/// It implements `eventweave_core::runner::DurableProjection<U>` instead of `Projection`, where `U`
/// is the unit of work its methods borrow (`eventweave_sqlite::SqliteTx`, `eventweave_postgres::PgTx`, or
/// a type of your own: the macro only reads its name). A `ProjectionRunner` runs it from its
/// checkpoint through a sink of that unit, whose changes commit together with the checkpoint.
/// Methods that take `db: &impl Bound` (in practice `db: &impl eventweave_core::sql::Sql`, the
/// portable SQL unit) make it implement `DurableProjection<U>` for every `U: Bound + Sync`, so
/// one projection runs under a `SqliteSink` and under a `PgSink`.
/// When no method takes a unit (the handlers are `async` only), it implements
/// `DurableProjection<U>` for every `U`, and runs under any sink (for example `MemorySink`).
///
/// - Handlers have the forms above, optionally `async`, optionally followed by `db: &Unit`.
///   Every method that takes a unit takes the same type, by shared reference (`U` must be
///   `Sync`), and every `async` handler's future must be `Send` (hold no `Rc` or lock guard
///   across an `.await`): the runner is a task of the tokio runtime. The handler gets the event
///   decoded to an owned value, so it may keep borrowing it across an `.await`.
/// - `#[reset] fn name(&mut self)` or `#[reset] async fn name(&mut self, db: &Unit)`, returning
///   `()` or `Result<(), E>`: at most one; the runner calls it before a rebuild to empty the read
///   model (by default, nothing is emptied). Only durable projections have one: an in-memory
///   projection is rebuilt from nothing at every start.
/// - No `#[query]` methods: a durable read model is queried from its database (write those
///   queries in a separate impl block), and `RunningProjection::wait_for(position, timeout)`
///   gives read-your-writes.
///
/// The registration says `ProjectionKind::Durable` and has no constructor: a runner, not the
/// application, owns a durable projection.
#[proc_macro_attribute]
pub fn projection(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::projection::expand(args.into(), input.into()).into()
}

/// Makes a type a process manager (a saga), from the impl block of its state: event handlers
/// that return the commands to run and the deadlines to schedule, and an optional compensation
/// for a rejected command.
///
/// ```ignore
/// #[derive(Clone, Debug, Default, Serialize, Deserialize)]
/// pub enum Transfer { #[default] Idle, Crediting { from: AccountId, amount: u64 }, Done }
///
/// #[process_manager(name = "transfer")]
/// impl Transfer {
///     fn on_sent(&mut self, e: &TransferSent, meta: &EventMeta) -> Result<Issue, NotAnAccount> {
///         let from = account_of(&meta.stream)?;
///         *self = Transfer::Crediting { from, amount: e.amount };
///         Ok(Issue::command(ReceiveTransfer { account: e.to, from, amount: e.amount }))
///     }
///
///     fn on_received(&mut self, _: &TransferReceived) { *self = Transfer::Done; }
///
///     fn on_opened(&mut self, e: &AccountOpened) -> Issue {
///         Issue::deadline(Duration::from_secs(3600), WelcomeDue { /* … */ })
///     }
///
///     #[on_rejected]
///     fn refund(&mut self, rejection: &Rejection) -> Option<Issue> {
///         let Transfer::Crediting { from, amount } = *self else { return None };
///         rejection.is::<ReceiveTransfer>().then(|| Issue::command(RefundTransfer { account: from, amount }))
///     }
/// }
/// ```
///
/// The state type must implement `Default + Clone + Serialize + DeserializeOwned + Send +
/// Sync + 'static` (the `ProcessManager` trait's bounds): each business transaction (a
/// correlation id) starts from `Default::default()`, and its state is stored as JSON after
/// every event it handles.
///
/// Arguments:
/// - `name = "…"`: the process manager's unique name (default: the type's name in snake case).
///   Its checkpoint and its instance streams (`pm-{name}-{correlation}`) are named after it: do
///   not change it once deployed.
/// - `crate = "path"`: where `eventweave_core` is.
///
/// Methods:
/// - Every `&mut self` method handles an event: `fn name(&mut self, event: &SomeEvent)` or
///   `fn name(&mut self, event: &SomeEvent, meta: &EventMeta)` (not `async`: a handler decides,
///   the sink runs the commands). It returns `()`, `Issue`, `Vec<Issue>` or `Option<Issue>`
///   (anything `IntoIssues`), or `Result<that, E>` with `E: std::error::Error + Send + Sync +
///   'static`: an error is a `ProjectionFailure::Handler`, retried by the runner like a
///   projection's. One handler per event type; timeout events scheduled with `Issue::deadline`
///   are handled like any other event. Keep other `&mut self` methods in a separate impl block.
/// - `#[on_rejected] fn name(&mut self, rejection: &Rejection)`, at most one, returning
///   anything `IntoIssues`: the compensation, run after a command this instance issued was
///   rejected. Without one, a rejection issues nothing (it is still recorded).
/// - Other methods are kept as they are. `#[query]`, `#[reset]`, `#[apply]` and `#[handle]`
///   belong to other macros and are errors here.
///
/// Handlers must be deterministic (same state and event, same issues): they may run again after
/// a crash before their outcome was recorded.
///
/// Generated: `impl ProcessManager` (`NAME`, `EVENTS` from the handlers' event types, `handle`
/// choosing the handler by the stored event name and decoding the payload with
/// `process::decode`, upcasting older versions; `on_rejected` when there is a compensation),
/// and the link-time registration, listed as a durable projection (it runs from a stored
/// checkpoint under its name, so `list_projections` shows its checkpoint and lag, and the
/// start-up checks refuse a projection of the same name). Run it with a
/// `ProcessManagerSink` in a `ProjectionRunner`; test it with `ProcessFixture`.
#[proc_macro_attribute]
pub fn process_manager(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::process::expand(args.into(), input.into()).into()
}

//! The model of `#[projection(…)] impl Balances { … }`: its event handlers (every
//! `&mut self` method taking `&SomeEvent`), its `#[query]` methods, and, for a durable
//! projection, its `#[reset]` method.
//!
//! A projection is durable when a handler is `async` or takes a unit of work (`db: &U`): it
//! then implements `DurableProjection<U>` instead of `Projection`.

use syn::{
    Attribute, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, PatType, Path, ReturnType, Type,
};

use super::sig::{self, SelfKind};
use super::{
    EVENT_HANDLER_FORMS, Marker, State, inherent_self, parse_event_head,
    reject_markers_on_other_items, single_role, take_markers,
};
use crate::attr::{self, ProjectionArgs};
use crate::ctxt::Ctxt;
use crate::naming;

/// One `#[projection]` impl block.
pub struct ProjectionDef {
    pub krate: Path,
    pub self_ty: Type,
    pub ident: Ident,
    /// The projection's name.
    pub name: LitStr,
    /// Whether it registers a constructor for `CqrsBuilder::discover_projections`.
    pub discover: bool,
    /// Whether a handler is `async` or takes a unit of work: `impl DurableProjection<U>`.
    pub durable: bool,
    pub handlers: Vec<EventHandler>,
    /// Empty in a durable projection (each `#[query]` there is an error).
    pub queries: Vec<QueryMethod>,
    /// `#[reset]` methods (only in a durable projection; a check keeps one).
    pub resets: Vec<ResetMethod>,
    /// Indices of the methods the macro handles (event handlers, `#[query]` and `#[reset]`
    /// methods).
    pub marked: Vec<usize>,
}

/// `fn on_opened(&mut self, e: &Opened, meta: &EventMeta) -> Result<(), Error>`, or in a
/// durable projection `async fn on_opened(&mut self, e: &Opened, db: &SqliteTx)`.
pub struct EventHandler {
    pub index: usize,
    pub method: Ident,
    /// `Opened`.
    pub event: Type,
    /// The event parameter's type as written (`&Opened`).
    pub param: Type,
    /// Whether it takes `&EventMeta` too.
    pub with_meta: bool,
    /// Whether it is `async`.
    pub is_async: bool,
    /// Whether it has a parameter after the event and the metadata (right or wrong).
    pub wants_unit: bool,
    /// Its unit of work, when that parameter is `db: &U`.
    pub unit: Option<Unit>,
    /// The return type, if written.
    pub returns: Option<Type>,
    pub state: State,
}

/// The unit of work a durable projection's method borrows: `db: &SqliteTx`.
pub struct Unit {
    /// `SqliteTx`.
    pub ty: Type,
    /// The parameter's type as written (`&SqliteTx`).
    pub param: Type,
}

/// `#[query] fn balance(&self, q: &GetBalance) -> Option<u64>`.
pub struct QueryMethod {
    pub index: usize,
    pub method: Ident,
    /// `GetBalance`.
    pub query: Type,
    /// The query parameter's type as written (`&GetBalance`).
    pub param: Type,
    /// The return type, if written.
    pub returns: Option<Type>,
    pub state: State,
}

/// `#[reset] async fn clear(&mut self, db: &SqliteTx) -> Result<(), Error>`.
pub struct ResetMethod {
    pub index: usize,
    pub method: Ident,
    /// The `#[reset]` attribute.
    pub attr: Attribute,
    /// Whether it is `async`.
    pub is_async: bool,
    /// Its unit of work, if it takes one.
    pub unit: Option<Unit>,
    /// The return type, if written.
    pub returns: Option<Type>,
    pub state: State,
}

impl ProjectionDef {
    /// The unit of work of a durable projection: the first one a wired method takes (a check
    /// makes the others agree), or `None` when no method takes one.
    pub fn unit(&self) -> Option<&Unit> {
        let handlers = self
            .handlers
            .iter()
            .filter(|h| h.state == State::Wired)
            .filter_map(|h| h.unit.as_ref().map(|u| (h.index, u)));
        let resets = self
            .resets
            .iter()
            .filter(|r| r.state == State::Wired)
            .filter_map(|r| r.unit.as_ref().map(|u| (r.index, u)));
        handlers
            .chain(resets)
            .min_by_key(|(i, _)| *i)
            .map(|(_, u)| u)
    }
}

const DURABLE_FORM: &str = "`async fn name(&mut self, event: &SomeEvent, meta: &EventMeta, db: &Unit)`, where `async`, `meta` and `db` are optional";
const QUERY_FORM: &str = "`#[query] fn name(&self, query: &SomeQuery) -> Response`";
const RESET_FORM: &str =
    "`#[reset] async fn name(&mut self, db: &Unit)`, where `async` and `db` are optional";

/// Reads the impl block and strips the helper attributes from it. `None` when the block
/// cannot be a projection at all.
pub fn parse(cx: &mut Ctxt, args: ProjectionArgs, item: &mut ItemImpl) -> Option<ProjectionDef> {
    let names = [attr::QUERY, attr::RESET, attr::APPLY, attr::HANDLE];
    let mut handlers = Vec::new();
    let mut roles: Vec<(usize, Marker)> = Vec::new();
    let mut marked = Vec::new();
    reject_markers_on_other_items(cx, item, &names);
    // First the handlers, which decide whether the projection is durable.
    for (index, impl_item) in item.items.iter_mut().enumerate() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let markers = take_markers(cx, &mut method.attrs, &names);
        match single_role(cx, &markers) {
            Some(role) => {
                marked.push(index);
                roles.push((index, role.clone()));
            }
            None if sig::self_kind(&method.sig) == SelfKind::RefMut => {
                marked.push(index);
                handlers.extend(parse_handler(cx, method, index));
            }
            None => {}
        }
    }
    let durable = handlers.iter().any(|h| h.is_async || h.wants_unit);
    let shown = sig::display(&item.self_ty);
    let mut queries = Vec::new();
    let mut resets = Vec::new();
    for (index, role) in roles {
        let Some(ImplItem::Fn(method)) = item.items.get(index) else {
            continue;
        };
        match role.name {
            // #[query] fn name(&self, query: &SomeQuery) -> Response
            attr::QUERY if durable => cx.error_spanned_by(
                &role.attr,
                format!(
                    "`{}` is a durable projection (a handler is `async` or takes `db: &…`), and a durable read model is queried from its database, not through `#[query]`: move this method to a separate impl block that reads the database; `RunningProjection::wait_for(position, timeout)` then gives read-your-writes",
                    shown
                ),
            ),
            attr::QUERY => queries.extend(parse_query(cx, method, index)),
            // #[reset] async fn name(&mut self, db: &Unit)
            attr::RESET if durable => resets.push(parse_reset(cx, method, index, role.attr)),
            attr::RESET => cx.error_spanned_by(
                &role.attr,
                format!(
                    "`#[reset]` empties the read model of a durable projection before a rebuild, but `{}` is an in-memory projection (no handler is `async` or takes `db: &…`), rebuilt from its first event at every start: remove `#[reset]`",
                    shown
                ),
            ),
            // #[apply] and #[handle]
            _ => cx.error_spanned_by(
                &role.attr,
                format!(
                    "`#[{}]` belongs in an `#[aggregate]` impl block; in a `#[projection]` impl, every {EVENT_HANDLER_FORMS} handles its event without an attribute",
                    role.name
                ),
            ),
        }
    }
    let (self_ty, ident) = inherent_self(cx, item, "projection")?;
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&naming::snake_case(&naming::plain(&ident)), ident.span()));
    Some(ProjectionDef {
        krate: attr::crate_path(args.krate),
        discover: args.discover.is_none_or(|d| d.value),
        durable,
        self_ty,
        ident,
        name,
        handlers,
        queries,
        resets,
        marked,
    })
}

fn parse_handler(cx: &mut Ctxt, method: &ImplItemFn, index: usize) -> Option<EventHandler> {
    let sig = &method.sig;
    let head = parse_event_head(cx, sig, "a projection's event handler", "projection", true)?;
    let mut ok = head.ok;
    // After the event and the metadata, `db: &Unit` (optional).
    let unit = match head.rest.first() {
        Some(param) => {
            let unit = parse_unit(cx, param);
            ok &= unit.is_some();
            unit
        }
        None => None,
    };
    for extra in head.rest.iter().skip(1) {
        cx.error_spanned_by(
            extra,
            format!(
                "remove this parameter: the accepted forms are {EVENT_HANDLER_FORMS}, and for a durable projection {DURABLE_FORM}"
            ),
        );
        ok = false;
    }
    Some(EventHandler {
        index,
        method: sig.ident.clone(),
        event: head.event,
        param: head.param,
        with_meta: head.with_meta,
        is_async: sig.asyncness.is_some(),
        wants_unit: !head.rest.is_empty(),
        unit,
        returns: sig::written_return(&sig.output),
        state: if ok { State::Wired } else { State::Fallback },
    })
}

/// `db: &Unit`, the unit of work of a durable projection's method.
fn parse_unit(cx: &mut Ctxt, param: &PatType) -> Option<Unit> {
    if let Some(ty) = sig::shared_ref(&param.ty) {
        return Some(Unit {
            ty: ty.clone(),
            param: (*param.ty).clone(),
        });
    }
    let pat = sig::display(&param.pat);
    match sig::mut_ref(&param.ty) {
        Some(ty) => cx.error_spanned_by(
            &param.ty,
            format!(
                "borrow the unit of work by shared reference: `{pat}: &{}` (the sink lends it to every handler of a batch and commits it after the last one; a unit whose statements need `&mut` uses interior mutability)",
                sig::display(ty)
            ),
        ),
        None => cx.error_spanned_by(
            &param.ty,
            format!(
                "borrow the unit of work by shared reference: `{pat}: &{}` (the sink owns it and commits it after the batch)",
                sig::display(&param.ty)
            ),
        ),
    }
    None
}

fn parse_reset(cx: &mut Ctxt, method: &ImplItemFn, index: usize, attr: Attribute) -> ResetMethod {
    let sig = &method.sig;
    let name = &sig.ident;
    let mut ok = sig::check_plain_fn(cx, sig, "a `#[reset]` method", true);
    ok &= sig::expect_mut_self(
        cx,
        sig,
        "a `#[reset]` method empties the read model",
        &format!(" ({RESET_FORM})"),
        &format!(" ({RESET_FORM})"),
    );
    let params = sig::params(sig);
    let unit = match params.first() {
        Some(param) => {
            let unit = parse_unit(cx, param);
            ok &= unit.is_some();
            unit
        }
        None => None,
    };
    for extra in params.iter().skip(1) {
        cx.error_spanned_by(
            extra,
            format!("remove this parameter: a `#[reset]` method is {RESET_FORM}"),
        );
        ok = false;
    }
    ResetMethod {
        index,
        method: name.clone(),
        attr,
        is_async: sig.asyncness.is_some(),
        unit,
        returns: sig::written_return(&sig.output),
        state: if ok { State::Wired } else { State::Fallback },
    }
}

fn parse_query(cx: &mut Ctxt, method: &ImplItemFn, index: usize) -> Option<QueryMethod> {
    let sig = &method.sig;
    let name = &sig.ident;
    let mut ok = sig::check_plain_fn(cx, sig, "a `#[query]` method", false);
    match sig::self_kind(sig) {
        SelfKind::Ref => {}
        SelfKind::None => {
            cx.error_spanned_by(
                name,
                format!("a `#[query]` method reads the projection: add `&self` ({QUERY_FORM})"),
            );
            ok = false;
        }
        SelfKind::RefMut | SelfKind::Value | SelfKind::Typed => {
            cx.error_spanned_by(
                sig.receiver(),
                "a `#[query]` method only reads the projection: take `&self`",
            );
            ok = false;
        }
    }
    let params = sig::params(sig);
    let Some(first) = params.first() else {
        cx.error_spanned_by(
            name,
            format!("a `#[query]` method takes the query it answers: {QUERY_FORM}"),
        );
        return None;
    };
    let query = match sig::shared_ref(&first.ty) {
        Some(query) => query,
        None => {
            let shown = sig::mut_ref(&first.ty).unwrap_or(&first.ty);
            cx.error_spanned_by(
                &first.ty,
                format!(
                    "take the query by shared reference: `{}: &{}`",
                    sig::display(&first.pat),
                    sig::display(shown)
                ),
            );
            ok = false;
            shown
        }
    };
    if sig::last_ident(query).is_none() {
        cx.error_spanned_by(
            &first.ty,
            format!("expected a reference to a query type: {QUERY_FORM}"),
        );
        return None;
    }
    for extra in &params[1..] {
        cx.error_spanned_by(extra, format!("remove this parameter: {QUERY_FORM}"));
        ok = false;
    }
    let returns = match &sig.output {
        ReturnType::Type(_, ty) => Some((**ty).clone()),
        ReturnType::Default => {
            cx.error_spanned_by(
                name,
                format!(
                    "a `#[query]` method returns its answer: add `-> …` with the `response` type of `{}`",
                    sig::display(query)
                ),
            );
            ok = false;
            None
        }
    };
    Some(QueryMethod {
        index,
        method: name.clone(),
        query: query.clone(),
        param: (*first.ty).clone(),
        returns,
        state: if ok { State::Wired } else { State::Fallback },
    })
}

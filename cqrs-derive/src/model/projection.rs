//! The model of `#[projection(…)] impl Balances { … }`: its event handlers (every
//! `&mut self` method taking `&SomeEvent`) and its `#[query]` methods.

use syn::{Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, ReturnType, Type};

use super::sig::{self, SelfKind};
use super::{State, inherent_self, reject_markers_on_other_items, single_role, take_markers};
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
    pub handlers: Vec<EventHandler>,
    pub queries: Vec<QueryMethod>,
    /// Indices of the methods the macro handles (event handlers and `#[query]` methods).
    pub marked: Vec<usize>,
}

/// `fn on_opened(&mut self, e: &Opened, meta: &EventMeta) -> Result<(), Error>`.
pub struct EventHandler {
    pub index: usize,
    pub method: Ident,
    /// `Opened`.
    pub event: Type,
    /// The event parameter's type as written (`&Opened`).
    pub param: Type,
    /// Whether it takes `&EventMeta` too.
    pub with_meta: bool,
    /// The return type, if written.
    pub returns: Option<Type>,
    pub state: State,
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

const HANDLER_FORMS: &str = "`fn name(&mut self, event: &SomeEvent)` or `fn name(&mut self, event: &SomeEvent, meta: &EventMeta)`";
const QUERY_FORM: &str = "`#[query] fn name(&self, query: &SomeQuery) -> Response`";

/// Reads the impl block and strips the helper attributes from it. `None` when the block
/// cannot be a projection at all.
pub fn parse(cx: &mut Ctxt, args: ProjectionArgs, item: &mut ItemImpl) -> Option<ProjectionDef> {
    let names = [attr::QUERY, attr::APPLY, attr::HANDLE];
    let mut handlers = Vec::new();
    let mut queries = Vec::new();
    let mut marked = Vec::new();
    reject_markers_on_other_items(cx, item, &names);
    for (index, impl_item) in item.items.iter_mut().enumerate() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let markers = take_markers(cx, &mut method.attrs, &names);
        match single_role(cx, &markers) {
            Some(role) if role.name == attr::QUERY => {
                marked.push(index);
                queries.extend(parse_query(cx, method, index));
            }
            Some(role) => {
                marked.push(index);
                cx.error_spanned_by(
                    &role.attr,
                    format!(
                        "`#[{}]` belongs in an `#[aggregate]` impl block; in a `#[projection]` impl, every {HANDLER_FORMS} handles its event without an attribute",
                        role.name
                    ),
                );
            }
            None if sig::self_kind(&method.sig) == SelfKind::RefMut => {
                marked.push(index);
                handlers.extend(parse_handler(cx, method, index));
            }
            None => {}
        }
    }
    let (self_ty, ident) = inherent_self(cx, item, "projection")?;
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&naming::snake_case(&naming::plain(&ident)), ident.span()));
    Some(ProjectionDef {
        krate: attr::crate_path(args.krate),
        discover: args.discover.is_none_or(|d| d.value),
        self_ty,
        ident,
        name,
        handlers,
        queries,
        marked,
    })
}

fn parse_handler(cx: &mut Ctxt, method: &ImplItemFn, index: usize) -> Option<EventHandler> {
    let sig = &method.sig;
    let name = &sig.ident;
    let mut ok = sig::check_plain_fn(cx, sig, "a projection's event handler", false);
    let params = sig::params(sig);
    let Some(first) = params.first() else {
        cx.error_spanned_by(
            name,
            format!(
                "a `&mut self` method of a `#[projection]` impl handles an event: write {HANDLER_FORMS} (keep other `&mut self` methods in a separate impl block)"
            ),
        );
        return None;
    };
    let Some(event) = sig::shared_ref(&first.ty) else {
        let shown = sig::mut_ref(&first.ty).unwrap_or(&first.ty);
        cx.error_spanned_by(
            &first.ty,
            format!(
                "a projection's event handler takes the event by shared reference: `{}: &{}` (the accepted forms are {HANDLER_FORMS})",
                sig::display(&first.pat),
                sig::display(shown)
            ),
        );
        return None;
    };
    if sig::last_ident(event).is_none() {
        cx.error_spanned_by(
            &first.ty,
            format!("expected a reference to an event type: {HANDLER_FORMS}"),
        );
        return None;
    }
    let mut with_meta = false;
    if let Some(second) = params.get(1) {
        let is_meta = sig::shared_ref(&second.ty)
            .and_then(sig::last_ident)
            .is_some_and(|i| i == "EventMeta");
        if is_meta {
            with_meta = true;
        } else {
            cx.error_spanned_by(
                &second.ty,
                format!(
                    "the optional last parameter of a projection's event handler is `meta: &EventMeta` (the accepted forms are {HANDLER_FORMS})"
                ),
            );
            ok = false;
        }
    }
    for extra in params.iter().skip(2) {
        cx.error_spanned_by(
            extra,
            format!("remove this parameter: the accepted forms are {HANDLER_FORMS}"),
        );
        ok = false;
    }
    Some(EventHandler {
        index,
        method: name.clone(),
        event: event.clone(),
        param: (*first.ty).clone(),
        with_meta,
        returns: match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some((**ty).clone()),
        },
        state: if ok { State::Wired } else { State::Fallback },
    })
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

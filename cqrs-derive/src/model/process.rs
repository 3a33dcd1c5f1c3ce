//! The model of `#[process_manager(…)] impl Transfer { … }`: its event handlers (every
//! `&mut self` method taking `&SomeEvent`) and its optional `#[on_rejected]` compensation.

use syn::{Attribute, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, ReturnType, Type};

use super::projection::is_meta;
use super::sig::{self, SelfKind};
use super::{
    Marker, State, inherent_self, reject_markers_on_other_items, single_role, take_markers,
};
use crate::attr::{self, ProcessManagerArgs};
use crate::ctxt::Ctxt;
use crate::naming;

/// One `#[process_manager]` impl block.
pub struct ProcessDef {
    pub krate: Path,
    pub self_ty: Type,
    pub ident: Ident,
    /// The process manager's name (checkpoint and instance streams).
    pub name: LitStr,
    pub handlers: Vec<EventHandler>,
    /// `#[on_rejected]` methods (a check keeps one).
    pub compensations: Vec<Compensation>,
    /// Indices of the methods the macro handles.
    pub marked: Vec<usize>,
}

/// `fn on_sent(&mut self, e: &TransferSent, meta: &EventMeta) -> Result<Issue, Error>`.
pub struct EventHandler {
    pub index: usize,
    pub method: Ident,
    /// `TransferSent`.
    pub event: Type,
    /// The event parameter's type as written (`&TransferSent`).
    pub param: Type,
    /// Whether it takes `&EventMeta` too.
    pub with_meta: bool,
    /// The return type, if written.
    pub returns: Option<Type>,
    pub state: State,
}

/// `#[on_rejected] fn refund(&mut self, rejection: &Rejection) -> Option<Issue>`.
pub struct Compensation {
    pub index: usize,
    pub method: Ident,
    /// The `#[on_rejected]` attribute.
    pub attr: Attribute,
    /// The rejection parameter's type as written (`&Rejection`).
    pub param: Option<Type>,
    /// The return type, if written.
    pub returns: Option<Type>,
    pub state: State,
}

const HANDLER_FORMS: &str = "`fn name(&mut self, event: &SomeEvent)` or `fn name(&mut self, event: &SomeEvent, meta: &EventMeta)`";
const COMPENSATION_FORM: &str = "`#[on_rejected] fn name(&mut self, rejection: &Rejection)`";

/// Reads the impl block and strips the helper attributes from it. `None` when the block
/// cannot be a process manager at all.
pub fn parse(cx: &mut Ctxt, args: ProcessManagerArgs, item: &mut ItemImpl) -> Option<ProcessDef> {
    let names = [
        attr::ON_REJECTED,
        attr::QUERY,
        attr::RESET,
        attr::APPLY,
        attr::HANDLE,
    ];
    let mut handlers = Vec::new();
    let mut compensations = Vec::new();
    let mut marked = Vec::new();
    reject_markers_on_other_items(cx, item, &names);
    for (index, impl_item) in item.items.iter_mut().enumerate() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let markers = take_markers(cx, &mut method.attrs, &names);
        match single_role(cx, &markers).cloned() {
            // #[on_rejected] fn name(&mut self, rejection: &Rejection)
            Some(Marker {
                name: attr::ON_REJECTED,
                attr,
            }) => {
                marked.push(index);
                compensations.push(parse_compensation(cx, method, index, attr));
            }
            Some(other) => {
                marked.push(index);
                cx.error_spanned_by(&other.attr, misplaced(other.name));
            }
            None if sig::self_kind(&method.sig) == SelfKind::RefMut => {
                marked.push(index);
                handlers.extend(parse_handler(cx, method, index));
            }
            None => {}
        }
    }
    let (self_ty, ident) = inherent_self(cx, item, "process_manager")?;
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&naming::snake_case(&naming::plain(&ident)), ident.span()));
    Some(ProcessDef {
        krate: attr::crate_path(args.krate),
        self_ty,
        ident,
        name,
        handlers,
        compensations,
        marked,
    })
}

/// The message for an aggregate's or a projection's helper attribute in a process manager.
fn misplaced(name: &str) -> String {
    let home = match name {
        attr::QUERY | attr::RESET => "a `#[projection]`",
        _ => "an `#[aggregate]`",
    };
    format!(
        "`#[{name}]` belongs in {home} impl block; a `#[process_manager]` has event handlers ({HANDLER_FORMS}, without an attribute) and at most one {COMPENSATION_FORM}"
    )
}

fn parse_handler(cx: &mut Ctxt, method: &ImplItemFn, index: usize) -> Option<EventHandler> {
    let sig = &method.sig;
    let name = &sig.ident;
    let mut ok = sig::check_plain_fn(cx, sig, "a process manager's event handler", false);
    let params = sig::params(sig);
    let Some(first) = params.first() else {
        cx.error_spanned_by(
            name,
            format!(
                "a `&mut self` method of a `#[process_manager]` impl handles an event: write {HANDLER_FORMS} (keep other `&mut self` methods in a separate impl block)"
            ),
        );
        return None;
    };
    let Some(event) = sig::shared_ref(&first.ty) else {
        let shown = sig::mut_ref(&first.ty).unwrap_or(&first.ty);
        cx.error_spanned_by(
            &first.ty,
            format!(
                "a process manager's event handler takes the event by shared reference: `{}: &{}` (the accepted forms are {HANDLER_FORMS})",
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
    // event, then `meta: &EventMeta` (optional).
    let mut next = 1;
    let mut with_meta = false;
    if let Some(second) = params.get(1).filter(|p| is_meta(&p.ty)) {
        with_meta = true;
        next = 2;
        if sig::shared_ref(&second.ty).is_none() {
            cx.error_spanned_by(
                &second.ty,
                format!(
                    "take the metadata by shared reference: `{}: &EventMeta`",
                    sig::display(&second.pat)
                ),
            );
            ok = false;
        }
    }
    for extra in params.iter().skip(next) {
        cx.error_spanned_by(
            extra,
            format!(
                "remove this parameter: a process manager's event handler is {HANDLER_FORMS} (it reads nothing else: what it needs later belongs in its state)"
            ),
        );
        ok = false;
    }
    Some(EventHandler {
        index,
        method: name.clone(),
        event: event.clone(),
        param: (*first.ty).clone(),
        with_meta,
        returns: returns(&sig.output),
        state: if ok { State::Wired } else { State::Fallback },
    })
}

fn parse_compensation(
    cx: &mut Ctxt,
    method: &ImplItemFn,
    index: usize,
    attr: Attribute,
) -> Compensation {
    let sig = &method.sig;
    let name = &sig.ident;
    let mut ok = sig::check_plain_fn(cx, sig, "an `#[on_rejected]` method", false);
    match sig::self_kind(sig) {
        SelfKind::RefMut => {}
        SelfKind::None => {
            cx.error_spanned_by(
                name,
                format!(
                    "an `#[on_rejected]` method updates the process manager's state: add `&mut self` ({COMPENSATION_FORM})"
                ),
            );
            ok = false;
        }
        SelfKind::Ref | SelfKind::Value | SelfKind::Typed => {
            cx.error_spanned_by(
                sig.receiver(),
                format!(
                    "an `#[on_rejected]` method updates the process manager's state: take `&mut self` ({COMPENSATION_FORM})"
                ),
            );
            ok = false;
        }
    }
    let params = sig::params(sig);
    let param = match params.first() {
        Some(first) if sig::shared_ref(&first.ty).is_some() => Some((*first.ty).clone()),
        Some(first) => {
            cx.error_spanned_by(
                &first.ty,
                format!(
                    "take the rejection by shared reference: `{}: &Rejection`",
                    sig::display(&first.pat)
                ),
            );
            ok = false;
            None
        }
        None => {
            cx.error_spanned_by(
                name,
                format!(
                    "an `#[on_rejected]` method takes the rejection it compensates: {COMPENSATION_FORM}"
                ),
            );
            ok = false;
            None
        }
    };
    for extra in params.iter().skip(1) {
        cx.error_spanned_by(extra, format!("remove this parameter: {COMPENSATION_FORM}"));
        ok = false;
    }
    Compensation {
        index,
        method: name.clone(),
        attr,
        param,
        returns: returns(&sig.output),
        state: if ok { State::Wired } else { State::Fallback },
    }
}

fn returns(output: &ReturnType) -> Option<Type> {
    match output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some((**ty).clone()),
    }
}

//! The model of `#[process_manager(…)] impl Transfer { … }`: its event handlers (every
//! `&mut self` method taking `&SomeEvent`) and its optional `#[on_rejected]` compensation.

use syn::{Attribute, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, Type};

use super::sig::{self, SelfKind};
use super::{
    EVENT_HANDLER_FORMS, Marker, State, inherent_self, parse_event_head,
    reject_markers_on_other_items, single_role, take_markers,
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
    /// `issues = [Credit, Refund]`: the commands its handlers may issue, if declared.
    pub issues: Option<Vec<Type>>,
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
        issues: args.issues.map(|list| list.0),
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
        "`#[{name}]` belongs in {home} impl block; a `#[process_manager]` has event handlers ({EVENT_HANDLER_FORMS}, without an attribute) and at most one {COMPENSATION_FORM}"
    )
}

fn parse_handler(cx: &mut Ctxt, method: &ImplItemFn, index: usize) -> Option<EventHandler> {
    let sig = &method.sig;
    let head = parse_event_head(
        cx,
        sig,
        "a process manager's event handler",
        "process_manager",
        false,
    )?;
    let mut ok = head.ok;
    for extra in head.rest {
        cx.error_spanned_by(
            extra,
            format!(
                "remove this parameter: a process manager's event handler is {EVENT_HANDLER_FORMS} (it reads nothing else: what it needs later belongs in its state)"
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
        returns: sig::written_return(&sig.output),
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
    ok &= sig::expect_mut_self(
        cx,
        sig,
        "an `#[on_rejected]` method updates the process manager's state",
        &format!(" ({COMPENSATION_FORM})"),
        &format!(" ({COMPENSATION_FORM})"),
    );
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
        returns: sig::written_return(&sig.output),
        state: if ok { State::Wired } else { State::Fallback },
    }
}

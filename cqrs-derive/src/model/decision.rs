//! The models of `#[decision_state(tags = […])] impl CourseSeats { … }` (its `#[apply]`
//! methods) and of `#[decision] impl Subscriptions { … }` (its `#[handle]` methods, each with
//! a command and the states it decides on).

use proc_macro2::Span;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, Type, Visibility};

use super::aggregate::{Apply, parse_apply};
use super::sig::{self, Returns, SelfKind};
use super::{State, inherent_self, reject_markers_on_other_items, single_role, take_markers};
use crate::attr::{self};
use crate::attr_dcb::{self, DecisionArgs, StateArgs};
use crate::ctxt::Ctxt;
use crate::naming;

/// One `#[decision_state]` impl block.
pub struct StateDef {
    pub krate: Path,
    pub self_ty: Type,
    pub ident: Ident,
    /// The tag keys it is read by, with their spans.
    pub tags: Vec<(String, Span)>,
    pub applies: Vec<Apply>,
    pub marked: Vec<usize>,
}

/// Reads a `#[decision_state]` block. `None` when it cannot be one at all.
pub fn parse_state(cx: &mut Ctxt, args: StateArgs, item: &mut ItemImpl) -> Option<StateDef> {
    let names = [attr::APPLY, attr::HANDLE];
    let mut applies = Vec::new();
    let mut marked = Vec::new();
    reject_markers_on_other_items(cx, item, &names);
    for (index, impl_item) in item.items.iter_mut().enumerate() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let markers = take_markers(cx, &mut method.attrs, &names);
        let Some(role) = single_role(cx, &markers) else {
            continue;
        };
        marked.push(index);
        if role.name == attr::APPLY {
            applies.extend(parse_apply(cx, method, index));
        } else {
            cx.error_spanned_by(
                &role.attr,
                "a decision state only folds events (`#[apply]`): its `#[handle]` methods belong in a `#[decision]` impl block, which takes the state as a parameter",
            );
        }
    }
    let (self_ty, ident) = inherent_self(cx, item, "decision_state")?;
    if applies.is_empty() {
        cx.error_spanned_by(
            &item.self_ty,
            "a decision state folds events: add `#[apply] fn name(&mut self, event: &SomeEvent)` methods",
        );
    }
    Some(StateDef {
        krate: attr::crate_path(args.krate),
        tags: args.tags,
        self_ty,
        ident,
        applies,
        marked,
    })
}

/// One `#[decision]` impl block.
pub struct DecisionDef {
    pub krate: Path,
    pub self_ty: Type,
    pub ident: Ident,
    /// The category of its own stream.
    pub name: LitStr,
    /// The generated command enum (`TransfersCommand`).
    pub command_enum: Ident,
    pub vis: Visibility,
    pub handlers: Vec<DecisionHandler>,
    pub marked: Vec<usize>,
}

/// `#[handle] fn subscribe(cmd: &Subscribe, seats: &CourseSeats, …) -> Result<…, …>`.
pub struct DecisionHandler {
    pub index: usize,
    pub method: Ident,
    /// `Subscribe`.
    pub command: Type,
    /// The states, in parameter order.
    pub states: Vec<StateParam>,
    /// `None` when the return type could not be read (an error was recorded).
    pub returns: Option<Returns>,
    /// The command enum variant.
    pub variant: Ident,
    pub state: State,
}

/// A state parameter: `#[tags(account = from)] from: &Account`.
pub struct StateParam {
    /// `Account`.
    pub ty: Type,
    /// `(key, field)` bindings.
    pub bindings: Vec<(String, Ident)>,
}

/// Reads a `#[decision]` block and strips the helper attributes (also from parameters).
pub fn parse_decision(
    cx: &mut Ctxt,
    args: DecisionArgs,
    item: &mut ItemImpl,
) -> Option<DecisionDef> {
    let names = [attr::HANDLE, attr::APPLY];
    let mut handlers: Vec<DecisionHandler> = Vec::new();
    let mut marked = Vec::new();
    reject_markers_on_other_items(cx, item, &names);
    for (index, impl_item) in item.items.iter_mut().enumerate() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let markers = take_markers(cx, &mut method.attrs, &names);
        let Some(role) = single_role(cx, &markers) else {
            continue;
        };
        marked.push(index);
        if role.name == attr::HANDLE {
            if let Some(handler) = parse_handler(cx, method, index) {
                let key = sig::type_key(&handler.command);
                if handlers.iter().any(|h| sig::type_key(&h.command) == key) {
                    cx.error_spanned_by(
                        &handler.command,
                        format!(
                            "a second handler for `{}`: each command has one handler; remove this one",
                            sig::display(&handler.command)
                        ),
                    );
                } else {
                    handlers.push(handler);
                }
            }
        } else {
            cx.error_spanned_by(
                &role.attr,
                "a decision folds events in its states, not in itself: move this `#[apply]` method to a `#[decision_state]` impl block and take that state as a parameter of the handler",
            );
        }
    }
    let (self_ty, ident) = inherent_self(cx, item, "decision")?;
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&naming::snake_case(&naming::plain(&ident)), ident.span()));
    Some(DecisionDef {
        krate: attr::crate_path(args.krate),
        command_enum: args
            .command
            .unwrap_or_else(|| naming::suffixed(&ident, "Command")),
        vis: args.vis.unwrap_or_else(|| syn::parse_quote!(pub)),
        self_ty,
        ident,
        name,
        handlers,
        marked,
    })
}

const HANDLER_FORM: &str =
    "`fn name(cmd: &SomeCommand, state: &SomeState, …) -> Result<SomeEvent, SomeError>`";

fn parse_handler(cx: &mut Ctxt, method: &mut ImplItemFn, index: usize) -> Option<DecisionHandler> {
    // Strip `#[tags(…)]` from every parameter first: the block is re-emitted without them.
    let mut bindings: Vec<Vec<(String, Ident)>> = Vec::new();
    for input in &mut method.sig.inputs {
        if let FnArg::Typed(typed) = input {
            let found = attr_dcb::param_bindings(cx, &typed.attrs);
            typed
                .attrs
                .retain(|a| !a.path().is_ident(attr_dcb::TAGS_PARAM));
            bindings.push(found);
        }
    }
    let sig = &method.sig;
    let name = &sig.ident;
    let mut ok = sig::check_plain_fn(cx, sig, "a decision's `#[handle]` method", false);
    if sig.asyncness.is_some() {
        cx.error_spanned_by(
            sig.asyncness,
            "a decision's handler is synchronous: it decides from its command and states alone, and runs again when its condition fails; remove `async`",
        );
        ok = false;
    }
    if !matches!(sig::self_kind(sig), SelfKind::None) {
        cx.error_spanned_by(
            sig.receiver(),
            format!(
                "a decision's handler takes no `self`: the states it decides on are its parameters ({HANDLER_FORM})"
            ),
        );
        ok = false;
    }
    let params = sig::params(sig);
    let Some(first) = params.first() else {
        cx.error_spanned_by(
            name,
            format!("a decision's handler takes its command, then its states: {HANDLER_FORM}"),
        );
        return None;
    };
    let Some(command) = sig::shared_ref(&first.ty) else {
        cx.error_spanned_by(
            &first.ty,
            format!(
                "take the command by shared reference: `{}: &{}`",
                sig::display(&first.pat),
                sig::display(sig::mut_ref(&first.ty).unwrap_or(&first.ty))
            ),
        );
        return None;
    };
    let Some(variant) = sig::last_ident(command).cloned() else {
        cx.error_spanned_by(
            &first.ty,
            "expected a command type, such as `cmd: &Subscribe`",
        );
        return None;
    };
    if !bindings.first().is_none_or(Vec::is_empty) {
        cx.error_spanned_by(
            &first.ty,
            "`#[tags(…)]` goes on a state parameter: it says which of the command's fields fill the state's tags",
        );
    }
    let mut states = Vec::new();
    for (i, param) in params.iter().enumerate().skip(1) {
        match sig::shared_ref(&param.ty) {
            Some(state) => states.push(StateParam {
                ty: state.clone(),
                bindings: bindings.get(i).cloned().unwrap_or_default(),
            }),
            None => {
                cx.error_spanned_by(
                    &param.ty,
                    format!(
                        "a decision's handler takes its states by shared reference: `{}: &{}`",
                        sig::display(&param.pat),
                        sig::display(sig::mut_ref(&param.ty).unwrap_or(&param.ty))
                    ),
                );
                ok = false;
            }
        }
    }
    if states.is_empty() && ok {
        cx.error_spanned_by(
            name,
            format!(
                "a decision's handler decides on at least one state (a `#[decision_state]` or an aggregate with `tag = …`): {HANDLER_FORM}"
            ),
        );
        ok = false;
    }
    let returns = sig::handler_returns(cx, sig, "a decision's handler");
    ok &= returns.is_some();
    Some(DecisionHandler {
        index,
        method: name.clone(),
        command: command.clone(),
        states,
        returns,
        variant,
        state: if ok { State::Wired } else { State::Fallback },
    })
}

/// One type a handler emits: the event, and the aggregate whose stream it goes to
/// (`InAggregate<A, E>`), if any.
pub struct EmittedType {
    pub aggregate: Option<Type>,
    pub event: Type,
}

/// The event types in a handler's `Ok` type: events, `InAggregate<A, E>`, through `Option`,
/// `Vec` and tuples. `Emits` (built by hand) and `()` contribute none.
pub fn emitted_types(ty: &Type, out: &mut Vec<EmittedType>) {
    match sig::ungroup(ty) {
        Type::Tuple(tuple) => {
            for elem in &tuple.elems {
                emitted_types(elem, out);
            }
        }
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return;
            };
            let args: Vec<&Type> = match &last.arguments {
                syn::PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .filter_map(|g| match g {
                        syn::GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            match (last.ident.to_string().as_str(), args.as_slice()) {
                ("Option" | "Vec", [inner]) => emitted_types(inner, out),
                ("InAggregate", [aggregate, event]) => out.push(EmittedType {
                    aggregate: Some((*aggregate).clone()),
                    event: (*event).clone(),
                }),
                ("Emits", []) => {}
                _ => out.push(EmittedType {
                    aggregate: None,
                    event: ty.clone(),
                }),
            }
        }
        _ => {}
    }
}

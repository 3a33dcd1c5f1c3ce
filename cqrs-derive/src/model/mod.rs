//! The model: what each macro's input means, with the original syn nodes kept so later checks
//! and the expansion can put errors and generated calls on the user's own tokens.
//!
//! Parsing uses `syn` 2 with `full`. `serde_derive` already puts `syn` 2 in almost every tree, so a
//! second major version would cost users a whole extra `syn` build. `full` is needed to parse impl
//! blocks and methods; trees with `tokio`'s macros already build it. `extra-traits` is not used
//! (types are compared by their token text).
//!
//! This module holds what several macros share: `parse_event_head` reads the `&Event` parameter and
//! the optional `meta: &EventMeta` of projection and process-manager handlers, so both report
//! mistakes with one wording.

pub mod aggregate;
pub mod decision;
pub mod derive;
pub mod process;
pub mod projection;
pub mod sig;

use syn::{Attribute, Ident, ImplItem, ItemImpl, PatType, Signature, Type};

use crate::attr;
use crate::ctxt::Ctxt;

/// How far an annotated method could be understood.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    /// Its signature is right: generated code calls it.
    Wired,
    /// Its signature is wrong (an error was recorded): generated code keeps its type in the
    /// enums and emits a placeholder impl, so the one mistake causes no other error.
    Fallback,
    /// It repeats an earlier method (an error was recorded): nothing is generated for it.
    Dropped,
}

/// A helper attribute found on a method (`#[apply]`, `#[handle]`, `#[query]`, `#[reset]`).
#[derive(Clone)]
pub struct Marker {
    pub name: &'static str,
    pub attr: Attribute,
}

/// Removes the helper attributes `names` from `attrs` and returns them, in order.
pub fn take_markers(
    cx: &mut Ctxt,
    attrs: &mut Vec<Attribute>,
    names: &[&'static str],
) -> Vec<Marker> {
    let mut found = Vec::new();
    attrs.retain(|a| match names.iter().find(|n| attr::is_marker(cx, a, n)) {
        Some(name) => {
            found.push(Marker {
                name,
                attr: a.clone(),
            });
            false
        }
        None => true,
    });
    found
}

/// The one role among `markers`, recording an error at each extra marker.
pub fn single_role<'m>(cx: &mut Ctxt, markers: &'m [Marker]) -> Option<&'m Marker> {
    let first = markers.first()?;
    for extra in &markers[1..] {
        if extra.name == first.name {
            cx.error_spanned_by(
                &extra.attr,
                format!("duplicate `#[{}]`: remove this one", extra.name),
            );
        } else {
            cx.error_spanned_by(
                &extra.attr,
                format!(
                    "a method is either `#[{}]` or `#[{}]`, not both: remove one of them",
                    first.name, extra.name
                ),
            );
        }
    }
    Some(first)
}

/// The self type of an inherent `impl` block and its name, or an error at the block.
/// `macro_name` is `aggregate` or `projection`.
pub fn inherent_self(cx: &mut Ctxt, item: &ItemImpl, macro_name: &str) -> Option<(Type, Ident)> {
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            format!(
                "`#[{macro_name}]` goes on an inherent impl block (`impl {} {{ … }}`), not on a trait impl",
                sig::display(&item.self_ty)
            ),
        );
        return None;
    }
    let mut ok = true;
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(
            &item.generics,
            format!(
                "`#[{macro_name}]` does not support generic types: the generated enums and the registry need one concrete type"
            ),
        );
        ok = false;
    }
    let ident = match sig::ungroup(&item.self_ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().and_then(|s| {
            if s.arguments.is_empty() {
                Some(s.ident.clone())
            } else {
                cx.error_spanned_by(
                    &s.arguments,
                    format!(
                        "`#[{macro_name}]` does not support generic types: the generated enums and the registry need one concrete type"
                    ),
                );
                None
            }
        }),
        _ => {
            cx.error_spanned_by(
                &item.self_ty,
                format!("`#[{macro_name}]` goes on the impl block of a named struct or enum"),
            );
            None
        }
    };
    match (ok, ident) {
        (true, Some(ident)) => Some(((*item.self_ty).clone(), ident)),
        _ => None,
    }
}

/// Records an error for each helper attribute in `names` on a non-method item of the block.
pub fn reject_markers_on_other_items(cx: &mut Ctxt, item: &mut ItemImpl, names: &[&'static str]) {
    for impl_item in &mut item.items {
        let attrs = match impl_item {
            ImplItem::Const(c) => &mut c.attrs,
            ImplItem::Type(t) => &mut t.attrs,
            ImplItem::Macro(m) => &mut m.attrs,
            _ => continue,
        };
        for marker in take_markers(cx, attrs, names) {
            cx.error_spanned_by(
                &marker.attr,
                format!("`#[{}]` goes on a method", marker.name),
            );
        }
    }
}

/// The accepted forms of the event handlers of a projection and of a process manager.
pub const EVENT_HANDLER_FORMS: &str = "`fn name(&mut self, event: &SomeEvent)` or `fn name(&mut self, event: &SomeEvent, meta: &EventMeta)`";

/// What a projection's and a process manager's event handlers share: a plain signature, the
/// event by shared reference, then optionally `meta: &EventMeta`.
pub struct EventHead<'s> {
    /// `Opened`.
    pub event: Type,
    /// The event parameter's type as written (`&Opened`).
    pub param: Type,
    /// Whether it takes `&EventMeta` too.
    pub with_meta: bool,
    /// The parameters after the event and the metadata, which each macro reads its own way.
    pub rest: Vec<&'s PatType>,
    /// Whether the signature and the metadata are right (an error was recorded otherwise).
    pub ok: bool,
}

/// Reads the event and metadata parameters of a `&mut self` method in a `#[macro_name]` impl
/// block. `role` (such as "a projection's event handler") starts the messages, so both macros
/// word the same mistake the same way. `None` when the event cannot be read.
pub fn parse_event_head<'s>(
    cx: &mut Ctxt,
    sig: &'s Signature,
    role: &str,
    macro_name: &str,
    allow_async: bool,
) -> Option<EventHead<'s>> {
    let mut ok = sig::check_plain_fn(cx, sig, role, allow_async);
    let params = sig::params(sig);
    let Some(first) = params.first() else {
        cx.error_spanned_by(
            &sig.ident,
            format!(
                "a `&mut self` method of a `#[{macro_name}]` impl handles an event: write {EVENT_HANDLER_FORMS} (keep other `&mut self` methods in a separate impl block)"
            ),
        );
        return None;
    };
    let Some(event) = sig::shared_ref(&first.ty) else {
        let shown = sig::mut_ref(&first.ty).unwrap_or(&first.ty);
        cx.error_spanned_by(
            &first.ty,
            format!(
                "{role} takes the event by shared reference: `{}: &{}` (the accepted forms are {EVENT_HANDLER_FORMS})",
                sig::display(&first.pat),
                sig::display(shown)
            ),
        );
        return None;
    };
    if sig::last_ident(event).is_none() {
        cx.error_spanned_by(
            &first.ty,
            format!("expected a reference to an event type: {EVENT_HANDLER_FORMS}"),
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
    Some(EventHead {
        event: event.clone(),
        param: (*first.ty).clone(),
        with_meta,
        rest: params[next..].to_vec(),
        ok,
    })
}

/// Whether `ty` is `EventMeta` (by its last segment), by reference or not.
fn is_meta(ty: &Type) -> bool {
    let inner = sig::shared_ref(ty)
        .or_else(|| sig::mut_ref(ty))
        .unwrap_or(ty);
    sig::last_ident(inner).is_some_and(|i| i == "EventMeta")
}

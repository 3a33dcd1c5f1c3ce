//! The model of `#[aggregate(…)] impl Account { … }`: its `#[apply]` and `#[handle]` methods.

use syn::{Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, ReturnType, Type, Visibility};

use super::sig::{self, Returns, SelfKind};
use super::{State, inherent_self, reject_markers_on_other_items, single_role, take_markers};
use crate::attr::{self, AggregateArgs};
use crate::ctxt::{Ctxt, error_type};
use crate::naming;

/// One `#[aggregate]` impl block.
pub struct AggregateDef {
    /// The runtime crate (`::eventweave_core` or `crate = …`).
    pub krate: Path,
    /// `Account` as written after `impl`.
    pub self_ty: Type,
    /// Its name.
    pub ident: Ident,
    /// `id = …`, or a type that is the "missing `id`" error.
    pub id: proc_macro2::TokenStream,
    /// The stream category.
    pub name: LitStr,
    /// The generated event enum (`AccountEvent`).
    pub event_enum: Ident,
    /// The generated command enum (`AccountCommand`).
    pub command_enum: Ident,
    /// The visibility of both enums (`pub` unless `vis = …`).
    pub vis: Visibility,
    /// `snapshot_every = …` (and `snapshot_version = …`, default 1).
    pub snapshots: Option<Snapshots>,
    /// `tag = "account"`: every event carries the id under this key, and the aggregate is a
    /// decision state.
    pub tag: Option<LitStr>,
    /// `id = …` as written (for the tag's type), `None` when missing.
    pub id_type: Option<Type>,
    pub applies: Vec<Apply>,
    pub handlers: Vec<Handler>,
    /// Indices of every method that had a helper attribute.
    pub marked: Vec<usize>,
}

/// `#[aggregate(snapshot_every = 1000, snapshot_version = 2)]`.
pub struct Snapshots {
    pub every: u64,
    pub version: u32,
    /// The `snapshot_every` literal: the "state is not `Serialize`" error points at it.
    pub span: proc_macro2::Span,
}

/// `#[apply] fn opened(&mut self, e: &Opened)`.
pub struct Apply {
    /// Index of the method in the impl block.
    pub index: usize,
    pub method: Ident,
    /// `Opened`.
    pub event: Type,
    /// The parameter's type as written (`&Opened`): generated checks are spanned on it.
    pub param: Type,
    /// The enum variant: the last segment of the event's path.
    pub variant: Ident,
    pub state: State,
}

/// Whether a handler creates its aggregate or changes an existing one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No receiver.
    Create,
    /// `&self`.
    Update,
    /// No receiver, and a first parameter `Option<&Self>`: `None` when the aggregate does not
    /// exist yet.
    CreateOrUpdate,
}

/// `#[handle] fn deposit(&self, cmd: Deposit, limits: &Limits) -> Result<Deposited, Error>`.
pub struct Handler {
    /// Index of the method in the impl block.
    pub index: usize,
    pub method: Ident,
    pub kind: Kind,
    /// `Deposit`.
    pub command: Type,
    /// The parameter's type as written (`Deposit` or `&Deposit`).
    pub param: Type,
    /// Whether the command is taken by value (and so cloned for each attempt).
    pub by_value: bool,
    /// `Limits` for each `limits: &Limits`.
    pub services: Vec<Type>,
    pub is_async: bool,
    /// `None` when the return type could not be read (an error was recorded).
    pub returns: Option<Returns>,
    /// The command enum variant: the last segment of the command's path.
    pub variant: Ident,
    pub state: State,
}

/// Reads the impl block and strips the helper attributes from it (also when it has errors, so
/// the re-emitted block compiles). `None` when the block cannot be an aggregate at all.
pub fn parse(cx: &mut Ctxt, args: AggregateArgs, item: &mut ItemImpl) -> Option<AggregateDef> {
    let names = [attr::APPLY, attr::HANDLE, attr::QUERY];
    let mut applies = Vec::new();
    let mut handlers = Vec::new();
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
        match role.name {
            attr::APPLY => applies.extend(parse_apply(cx, method, index)),
            attr::HANDLE => {
                let handler = parse_handler(cx, method, index);
                // `-> ()` must be written, but clippy's `unused_unit` would flag it in the
                // re-emitted method: drop it there (the handler's model keeps it).
                if let ReturnType::Type(_, ty) = &method.sig.output
                    && is_unit(ty)
                {
                    method.sig.output = ReturnType::Default;
                }
                handlers.extend(handler);
            }
            _ => cx.error_spanned_by(
                &role.attr,
                "`#[query]` methods belong in a `#[projection]` impl block: an aggregate answers commands, a projection answers queries",
            ),
        }
    }
    let (self_ty, ident) = inherent_self(cx, item, "aggregate")?;
    let id = match &args.id {
        Some(id) => quote::quote!(#id),
        None => error_type(&syn::Error::new(
            proc_macro2::Span::call_site(),
            format!(
                "missing `id`: write `#[aggregate(id = …)]` with the type that identifies one `{}` (such as `u64`, `String` or `Uuid`)",
                naming::plain(&ident)
            ),
        )),
    };
    let snapshots = match (args.snapshot_every, args.snapshot_version) {
        (Some((every, span)), version) => Some(Snapshots {
            every,
            version: version.map_or(1, |(v, _)| v),
            span,
        }),
        (None, Some((_, span))) => {
            cx.error_at(
                span,
                "`snapshot_version` needs `snapshot_every`: write `#[aggregate(snapshot_every = 1000, snapshot_version = …)]`, or leave both out to take no snapshots",
            );
            None
        }
        (None, None) => None,
    };
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&naming::snake_case(&naming::plain(&ident)), ident.span()));
    Some(AggregateDef {
        tag: args.tag,
        id_type: args.id.clone(),
        krate: attr::crate_path(args.krate),
        event_enum: args
            .event
            .unwrap_or_else(|| naming::suffixed(&ident, "Event")),
        command_enum: args
            .command
            .unwrap_or_else(|| naming::suffixed(&ident, "Command")),
        vis: args.vis.unwrap_or_else(|| syn::parse_quote!(pub)),
        snapshots,
        self_ty,
        ident,
        id,
        name,
        applies,
        handlers,
        marked,
    })
}

const APPLY_FORM: &str = "`fn name(&mut self, event: &SomeEvent)`";

pub fn parse_apply(cx: &mut Ctxt, method: &ImplItemFn, index: usize) -> Option<Apply> {
    let sig = &method.sig;
    let name = &sig.ident;
    let mut ok = sig::check_plain_fn(cx, sig, "an `#[apply]` method", false);
    ok &= sig::expect_mut_self(
        cx,
        sig,
        "an `#[apply]` method changes the state",
        &format!(" (`fn {name}(&mut self, event: &SomeEvent)`)"),
        "",
    );
    let params = sig::params(sig);
    let Some(first) = params.first() else {
        cx.error_spanned_by(
            name,
            format!("an `#[apply]` method takes the event it applies: {APPLY_FORM}"),
        );
        return None;
    };
    let pat = sig::display(&first.pat);
    let event = if let Some(inner) = sig::shared_ref(&first.ty) {
        inner.clone()
    } else if let Some(inner) = sig::mut_ref(&first.ty) {
        cx.error_spanned_by(
            &first.ty,
            format!(
                "take the event by shared reference: `{pat}: &{}`",
                sig::display(inner)
            ),
        );
        ok = false;
        inner.clone()
    } else {
        cx.error_spanned_by(
            &first.ty,
            format!(
                "take the event by reference: `{pat}: &{}`",
                sig::display(&first.ty)
            ),
        );
        ok = false;
        (*first.ty).clone()
    };
    let Some(variant) = sig::last_ident(&event).cloned() else {
        cx.error_spanned_by(
            &first.ty,
            "expected a reference to an event type, such as `event: &AccountOpened`",
        );
        return None;
    };
    for extra in &params[1..] {
        cx.error_spanned_by(
            extra,
            format!(
                "an `#[apply]` method takes only the event: remove this parameter ({APPLY_FORM})"
            ),
        );
        ok = false;
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && !is_unit(ty)
    {
        cx.error_spanned_by(
            ty,
            format!(
                "an `#[apply]` method returns nothing, it only changes the state: remove `-> {}`",
                sig::display(ty)
            ),
        );
        ok = false;
    }
    Some(Apply {
        index,
        method: name.clone(),
        param: (*first.ty).clone(),
        event,
        variant,
        state: if ok { State::Wired } else { State::Fallback },
    })
}

fn is_unit(ty: &Type) -> bool {
    matches!(sig::ungroup(ty), Type::Tuple(t) if t.elems.is_empty())
}

fn parse_handler(cx: &mut Ctxt, method: &ImplItemFn, index: usize) -> Option<Handler> {
    let sig = &method.sig;
    let name = &sig.ident;
    let mut ok = sig::check_plain_fn(cx, sig, "a `#[handle]` method", true);
    let kind = match sig::self_kind(sig) {
        SelfKind::None => Kind::Create,
        SelfKind::Ref => Kind::Update,
        SelfKind::RefMut => {
            cx.error_spanned_by(
                sig.receiver(),
                "handlers decide, they do not change state: take `&self` and record the change in an `#[apply]` method",
            );
            ok = false;
            Kind::Update
        }
        SelfKind::Value | SelfKind::Typed => {
            cx.error_spanned_by(
                sig.receiver(),
                "a handler reads the state without consuming it: take `&self`, or no `self` for a command that creates the aggregate",
            );
            ok = false;
            Kind::Update
        }
    };
    let mut params = sig::params(sig);
    // `fn add_copy(book: Option<&Self>, cmd: &AddCopy)`: creates or updates.
    let kind = match params.first() {
        Some(state) if kind == Kind::Create && sig::option_ref(&state.ty).is_some() => {
            params.remove(0);
            Kind::CreateOrUpdate
        }
        _ => kind,
    };
    let Some(first) = params.first() else {
        let receiver = match kind {
            Kind::Create => "",
            Kind::Update => "&self, ",
            Kind::CreateOrUpdate => "state: Option<&Self>, ",
        };
        cx.error_spanned_by(
            name,
            format!(
                "a handler takes the command it handles: `fn {name}({receiver}cmd: SomeCommand)` or `cmd: &SomeCommand`"
            ),
        );
        return None;
    };
    let (command, by_value) = if let Some(inner) = sig::shared_ref(&first.ty) {
        (inner, false)
    } else if let Some(inner) = sig::mut_ref(&first.ty) {
        cx.error_spanned_by(
            &first.ty,
            format!(
                "take the command by value (`cmd: {0}`) or by shared reference (`cmd: &{0}`)",
                sig::display(inner)
            ),
        );
        ok = false;
        (inner, false)
    } else {
        (&*first.ty, true)
    };
    let Some(variant) = sig::last_ident(command).cloned() else {
        cx.error_spanned_by(
            &first.ty,
            "expected a command type, such as `cmd: Deposit` or `cmd: &Deposit`",
        );
        return None;
    };
    let mut services = Vec::new();
    for param in &params[1..] {
        match sig::shared_ref(&param.ty) {
            Some(service)
                if matches!(
                    sig::ungroup(service),
                    Type::ImplTrait(_) | Type::TraitObject(_)
                ) =>
            {
                cx.error_spanned_by(
                    service,
                    "a service has a concrete type, such as `limits: &Limits`: services are looked up by type",
                );
                ok = false;
            }
            Some(service) => services.push(service.clone()),
            None => {
                cx.error_spanned_by(
                    &param.ty,
                    format!(
                        "a handler takes services by shared reference: `{}: &{}` (registered with `CqrsBuilder::service`)",
                        sig::display(&param.pat),
                        sig::display(sig::mut_ref(&param.ty).unwrap_or(&param.ty))
                    ),
                );
                ok = false;
            }
        }
    }
    let returns = sig::handler_returns(cx, sig, "a handler");
    ok &= returns.is_some();
    Some(Handler {
        index,
        method: name.clone(),
        kind,
        command: command.clone(),
        param: (*first.ty).clone(),
        by_value,
        services,
        is_async: sig.asyncness.is_some(),
        returns,
        variant,
        state: if ok { State::Wired } else { State::Fallback },
    })
}

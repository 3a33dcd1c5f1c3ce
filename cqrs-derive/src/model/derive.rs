//! The models of `#[derive(Event)]`, `#[derive(Command)]` and `#[derive(Query)]`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Fields, Generics, Ident, Item, LitStr, Member, Path, Token};

use super::sig;
use crate::attr::{self, CommandArgs, EventArgs, QueryArgs};
use crate::ctxt::{Ctxt, error_type};
use crate::naming;

/// The item under a derive (the `derive` feature of syn is not used: its `DeriveInput` is
/// read from a full item instead).
pub struct DeriveInput {
    pub attrs: Vec<Attribute>,
    pub ident: Ident,
    pub generics: Generics,
    pub data: Data,
}

/// What kind of item it is.
pub enum Data {
    Struct(Fields),
    Enum(Token![enum]),
    Union(Token![union]),
}

impl Parse for DeriveInput {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let (attrs, ident, generics, data) = match input.parse::<Item>()? {
            Item::Struct(s) => (s.attrs, s.ident, s.generics, Data::Struct(s.fields)),
            Item::Enum(e) => (e.attrs, e.ident, e.generics, Data::Enum(e.enum_token)),
            Item::Union(u) => (u.attrs, u.ident, u.generics, Data::Union(u.union_token)),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "expected a struct, an enum or a union",
                ));
            }
        };
        Ok(DeriveInput {
            attrs,
            ident,
            generics,
            data,
        })
    }
}

/// `#[derive(Event)]`.
pub struct EventDef {
    pub krate: Path,
    pub ident: Ident,
    /// The stored name.
    pub name: LitStr,
    /// The schema version.
    pub version: u32,
    pub version_span: Span,
}

/// Reads `#[derive(Event)]`. `None` when no impl can be generated (a union, generics).
pub fn event(cx: &mut Ctxt, input: &DeriveInput) -> Option<EventDef> {
    let args = EventArgs::from_attrs(cx, &input.attrs);
    if let Data::Union(token) = &input.data {
        cx.error_spanned_by(
            token,
            "`#[derive(Event)]` goes on a struct or an enum, not a union: events are stored as JSON with serde",
        );
        return None;
    }
    if !concrete(
        cx,
        &input.generics,
        "Event",
        "each event type is stored under one name",
    ) {
        return None;
    }
    let (version, version_span) = args.version.unwrap_or((1, input.ident.span()));
    Some(EventDef {
        krate: attr::crate_path(args.krate),
        name: args
            .name
            .unwrap_or_else(|| LitStr::new(&naming::plain(&input.ident), input.ident.span())),
        ident: input.ident.clone(),
        version,
        version_span,
    })
}

/// Records an error at the generics of a type that must be concrete.
fn concrete(cx: &mut Ctxt, generics: &Generics, derive: &str, why: &str) -> bool {
    if generics.params.is_empty() && generics.where_clause.is_none() {
        return true;
    }
    cx.error_spanned_by(
        generics,
        format!("`#[derive({derive})]` does not support generic types: {why}; use a concrete type"),
    );
    false
}

/// `#[derive(Command)]`.
pub struct CommandDef {
    pub krate: Path,
    pub ident: Ident,
    /// `aggregate = …`, or a type that is the "missing `aggregate`" error.
    pub aggregate: TokenStream,
    pub name: LitStr,
    /// The `#[id]` field and its type's span, or `None` (an error was recorded).
    pub id: Option<(Member, Span)>,
}

/// Reads `#[derive(Command)]`. `None` when no impl can be generated (a union, generics).
pub fn command(cx: &mut Ctxt, input: &DeriveInput) -> Option<CommandDef> {
    let args = CommandArgs::from_attrs(cx, &input.attrs);
    let ident = &input.ident;
    let aggregate_name = args.aggregate.as_ref().map_or_else(
        || "aggregate".to_owned(),
        |a| sig::last_ident(a).map_or_else(|| sig::display(a), naming::plain),
    );
    let aggregate = match &args.aggregate {
        Some(ty) => quote!(#ty),
        None => error_type(&syn::Error::new(
            ident.span(),
            format!(
                "missing target aggregate: add `#[command(aggregate = …)]` to `{}`, naming the aggregate whose `#[handle]` method takes it",
                naming::plain(ident)
            ),
        )),
    };
    let fields = match &input.data {
        Data::Struct(fields) => match fields {
            Fields::Named(named) => Some(named),
            Fields::Unnamed(_) | Fields::Unit => {
                cx.error_spanned_by(
                    if matches!(fields, Fields::Unit) {
                        ident.to_token_stream()
                    } else {
                        fields.to_token_stream()
                    },
                    "`#[derive(Command)]` needs a struct with named fields, one of them marked `#[id]`: `struct Deposit { #[id] account: AccountId, … }`",
                );
                None
            }
        },
        Data::Enum(token) => {
            cx.error_spanned_by(
                token,
                "`#[derive(Command)]` goes on a struct with named fields, not an enum: each command is its own struct (`#[aggregate]` generates the enum of an aggregate's commands)",
            );
            None
        }
        Data::Union(token) => {
            cx.error_spanned_by(
                token,
                "`#[derive(Command)]` goes on a struct with named fields, not a union",
            );
            return None;
        }
    };
    if !concrete(
        cx,
        &input.generics,
        "Command",
        "commands are routed by one name",
    ) {
        return None;
    }
    let mut id = None;
    if let Some(fields) = fields {
        for field in &fields.named {
            for a in &field.attrs {
                if !attr::is_marker(cx, a, attr::ID_FIELD) {
                    continue;
                }
                if id.is_some() {
                    cx.error_spanned_by(
                        a,
                        format!(
                            "a command has one `#[id]` field, naming the one `{aggregate_name}` it targets: remove this `#[id]`"
                        ),
                    );
                } else if let Some(name) = &field.ident {
                    id = Some((Member::Named(name.clone()), field.ty.span()));
                }
            }
        }
        if id.is_none() {
            cx.error_spanned_by(
                ident,
                format!("add `#[id]` to the field that identifies the `{aggregate_name}`"),
            );
        }
    }
    Some(CommandDef {
        krate: attr::crate_path(args.krate),
        name: args
            .name
            .unwrap_or_else(|| LitStr::new(&naming::plain(ident), ident.span())),
        ident: ident.clone(),
        aggregate,
        id,
    })
}

/// `#[derive(Query)]`.
pub struct QueryDef {
    pub krate: Path,
    pub ident: Ident,
    pub generics: Generics,
    /// `response = …`, or a type that is the "missing `response`" error.
    pub response: TokenStream,
}

/// Reads `#[derive(Query)]`. `None` on a union.
pub fn query(cx: &mut Ctxt, input: &DeriveInput) -> Option<QueryDef> {
    let args = QueryArgs::from_attrs(cx, &input.attrs);
    if let Data::Union(token) = &input.data {
        cx.error_spanned_by(
            token,
            "`#[derive(Query)]` goes on a struct or an enum, not a union",
        );
        return None;
    }
    let response = match &args.response {
        Some(ty) => quote!(#ty),
        None => error_type(&syn::Error::new(
            input.ident.span(),
            format!(
                "missing response type: add `#[query(response = …)]` to `{}` with the type its answer has",
                naming::plain(&input.ident)
            ),
        )),
    };
    Some(QueryDef {
        krate: attr::crate_path(args.krate),
        ident: input.ident.clone(),
        generics: input.generics.clone(),
        response,
    })
}

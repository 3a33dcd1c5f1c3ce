//! The models of `#[derive(Event)]`, `#[derive(Command)]` and `#[derive(Query)]`.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Fields, Generics, Ident, Item, LitStr, Member, Path, Token};

use super::sig;
use crate::attr::{self, CommandArgs, EventArgs, QueryArgs, UpcastArgs};
use crate::attr_dcb;
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
    /// The `enum` token and the variants.
    Enum(Token![enum], Vec<syn::Variant>),
    Union(Token![union]),
}

impl Parse for DeriveInput {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let (attrs, ident, generics, data) = match input.parse::<Item>()? {
            Item::Struct(s) => (s.attrs, s.ident, s.generics, Data::Struct(s.fields)),
            Item::Enum(e) => (
                e.attrs,
                e.ident,
                e.generics,
                Data::Enum(e.enum_token, e.variants.into_iter().collect()),
            ),
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
    /// The upcasters, one per older version, sorted by the version they read. Those with an
    /// error are left out.
    pub upcasts: Vec<UpcastDef>,
    /// The `#[tag]` fields.
    pub tags: Vec<TagFieldDef>,
}

/// A `#[tag]` (or `#[tag(key = "…")]`) field of an event or a command.
pub struct TagFieldDef {
    /// The tag's key.
    pub key: String,
    /// The field.
    pub member: Ident,
    /// Its type; for an `Option<T>` field, `T`.
    pub ty: syn::Type,
    /// An `Option<T>` field: the event has no such tag when it is `None`.
    pub optional: bool,
    /// The enum variant it is a field of (`None`: a struct's field).
    pub variant: Option<Ident>,
}

/// The `#[tag]` fields of a struct's named fields, or of an enum's variants' named fields;
/// errors for `#[tag]` elsewhere.
fn tag_fields(cx: &mut Ctxt, data: &Data, what: &str) -> Vec<TagFieldDef> {
    let mut out = Vec::new();
    match data {
        Data::Struct(fields) => named_tag_fields(cx, fields, None, what, &mut out),
        Data::Enum(_, variants) => {
            for variant in variants {
                named_tag_fields(cx, &variant.fields, Some(&variant.ident), what, &mut out);
            }
        }
        Data::Union(_) => {}
    }
    out
}

/// The `#[tag]` fields of `fields` (of a struct, or of enum variant `variant`).
fn named_tag_fields(
    cx: &mut Ctxt,
    fields: &Fields,
    variant: Option<&Ident>,
    what: &str,
    out: &mut Vec<TagFieldDef>,
) {
    match fields {
        Fields::Named(named) => {
            for field in &named.named {
                let Some(member) = &field.ident else { continue };
                if let Some((key, _)) = attr_dcb::field_tag(cx, &field.attrs, member) {
                    let (ty, optional) = match option_inner(&field.ty) {
                        Some(inner) => (inner.clone(), true),
                        None => (field.ty.clone(), false),
                    };
                    out.push(TagFieldDef {
                        key,
                        member: member.clone(),
                        ty,
                        optional,
                        variant: variant.cloned(),
                    });
                }
            }
        }
        Fields::Unnamed(unnamed) => {
            for field in &unnamed.unnamed {
                if let Some(attr) = field
                    .attrs
                    .iter()
                    .find(|a| a.path().is_ident(attr_dcb::TAG_FIELD))
                {
                    cx.error_spanned_by(
                        attr,
                        format!("`#[tag]` goes on a named field of {what}: the field's name is the tag's key unless `#[tag(key = \"…\")]` says otherwise"),
                    );
                }
            }
        }
        Fields::Unit => {}
    }
}

/// `T` of a field written `Option<T>` (or `std::option::Option<T>`, `core::option::Option<T>`).
/// Recognised by how it is written: an alias of `Option` is taken for a plain value type.
fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let segments = &path.path.segments;
    let last = segments.last()?;
    let prefix: Vec<String> = segments
        .iter()
        .take(segments.len() - 1)
        .map(|s| s.ident.to_string())
        .collect();
    let plain_path =
        prefix.is_empty() || prefix == ["std", "option"] || prefix == ["core", "option"];
    if last.ident != "Option" || !plain_path {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(syn::GenericArgument::Type(inner)) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

/// `#[upcast(from = n, with = path)]`.
pub struct UpcastDef {
    /// The version the function reads.
    pub from: u32,
    /// The function.
    pub with: Path,
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
    let upcasts = UpcastArgs::from_attrs(cx, &input.attrs);
    let upcasts = if args.bad_version {
        // Which versions need an upcaster is unknown: check nothing more.
        Vec::new()
    } else {
        upcast_chain(cx, &input.ident, version, version_span, upcasts)
    };
    // No default from the type's name: renaming the type would silently orphan every event
    // stored under the old name.
    let name = args.name.unwrap_or_else(|| {
        let plain = naming::plain(&input.ident);
        if args.bad_name {
            // Already reported where it was written.
            return LitStr::new(&plain, input.ident.span());
        }
        cx.error_spanned_by(
            &input.ident,
            format!(
                "`{plain}` needs the name its events are stored under: add `#[event(name = \"{plain}\")]` (or a dotted name such as `\"account.opened\"`). The stored name must never change once events are stored, so it is written out rather than taken from the type's name, which a rename would change"
            ),
        );
        LitStr::new(&plain, input.ident.span())
    });
    let tags = tag_fields(cx, &input.data, "an event");
    Some(EventDef {
        krate: attr::crate_path(args.krate),
        name,
        ident: input.ident.clone(),
        version,
        version_span,
        upcasts,
        tags,
    })
}

/// Checks the upcasters of an event at `version`: one from each older version, none from
/// another. Returns the usable ones in chain order.
fn upcast_chain(
    cx: &mut Ctxt,
    ident: &Ident,
    version: u32,
    version_span: Span,
    upcasts: Vec<UpcastArgs>,
) -> Vec<UpcastDef> {
    let event = naming::plain(ident);
    let mut chain: Vec<UpcastDef> = Vec::new();
    // `from` values accounted for (an upcaster whose function is in error still covers its
    // version, so the missing-step error does not pile on).
    let mut covered = BTreeSet::new();
    let mut unknown_from = false;
    for upcast in upcasts {
        let Some((from, lit)) = upcast.from else {
            unknown_from = true;
            continue;
        };
        if from == 0 {
            cx.error_spanned_by(
                &lit,
                "schema versions start at 1: an upcaster reads version 1 or higher",
            );
            continue;
        }
        if from >= version {
            let message = if version == 1 {
                format!(
                    "`{event}` is at version 1, so no older version needs upcasting: raise it with `#[event(version = {})]` when its payload changes",
                    u64::from(from) + 1
                )
            } else {
                format!(
                    "`{event}` is at version {version}, so upcasters read versions 1 to {}: remove this `#[upcast]` or raise `version`",
                    version - 1
                )
            };
            cx.error_spanned_by(&lit, message);
            continue;
        }
        if !covered.insert(from) {
            cx.error_spanned_by(
                &lit,
                format!(
                    "a second upcaster from version {from}: each older version has exactly one `#[upcast]`; remove this one"
                ),
            );
            continue;
        }
        if let Some(with) = upcast.with {
            chain.push(UpcastDef { from, with });
        }
    }
    if !unknown_from {
        let missing: Vec<u32> = (1..version).filter(|v| !covered.contains(v)).collect();
        if let Some(message) = missing_steps(&event, version, &missing) {
            cx.error_at(version_span, message);
        }
    }
    chain.sort_by_key(|u| u.from);
    chain
}

/// The error for versions without an upcaster, or `None` when the chain is complete.
fn missing_steps(event: &str, version: u32, missing: &[u32]) -> Option<String> {
    let (&first, rest) = missing.split_first()?;
    if rest.is_empty() {
        return Some(format!(
            "missing upcaster from version {first} to {}: `{event}` is at version {version}, so stored events of version {first} need one; add `#[upcast(from = {first}, with = …)]` naming a function from the version {first} payload to the version {} one",
            u64::from(first) + 1,
            u64::from(first) + 1
        ));
    }
    // Runs of consecutive versions read as ranges: `1 to 998, 1000`.
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &v in missing {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == v => *end = v,
            _ => runs.push((v, v)),
        }
    }
    let list = runs
        .iter()
        .map(|&(start, end)| match end - start {
            0 => start.to_string(),
            1 => format!("{start}, {end}"),
            _ => format!("{start} to {end}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "missing upcasters from versions {list}: `{event}` is at version {version}, so stored events of each older version need one; add `#[upcast(from = n, with = …)]` for each, naming a function from the version n payload to the version n + 1 one"
    ))
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
    /// `decision = …`: the command is decided by a decision, not an aggregate.
    pub decision: Option<syn::Type>,
    pub name: LitStr,
    /// The `#[id]` field and its type's span, or `None` (an error was recorded).
    pub id: Option<(Member, Span)>,
    /// The `#[tag]` fields (of a decision's command).
    pub tags: Vec<TagFieldDef>,
}

/// Reads `#[derive(Command)]`. `None` when no impl can be generated (a union, generics).
pub fn command(cx: &mut Ctxt, input: &DeriveInput) -> Option<CommandDef> {
    let args = CommandArgs::from_attrs(cx, &input.attrs);
    let ident = &input.ident;
    let aggregate_name = args.aggregate.as_ref().map_or_else(
        || "aggregate".to_owned(),
        |a| sig::last_ident(a).map_or_else(|| sig::display(a), naming::plain),
    );
    let decision = args.decision.clone();
    if let (Some(_), Some(ty)) = (&args.aggregate, &decision) {
        cx.error_spanned_by(
            ty,
            "a command goes to one aggregate or one decision: remove `aggregate = …` or `decision = …`",
        );
    }
    let aggregate = match &args.aggregate {
        Some(ty) => quote!(#ty),
        None => error_type(&syn::Error::new(
            ident.span(),
            format!(
                "missing target aggregate: add `#[command(aggregate = …)]` to `{}`, naming the aggregate whose `#[handle]` method takes it (or `#[command(decision = …)]` for a decision's command)",
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
        Data::Enum(token, _) => {
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
    let tags = tag_fields(cx, &input.data, "a command");
    for tag in tags.iter().filter(|t| t.optional) {
        cx.error_spanned_by(
            &tag.member,
            "a command's `#[tag]` field cannot be an `Option`: it fills the tag its decision's states are read by; give it a value type, or make a command without this tag",
        );
    }
    if let (Some(fields), Some(_)) = (fields, &decision) {
        for field in &fields.named {
            for a in field
                .attrs
                .iter()
                .filter(|a| a.path().is_ident(attr::ID_FIELD))
            {
                cx.error_spanned_by(
                    a,
                    "a decision's command names no stream: mark the fields that select its events `#[tag]` instead of `#[id]`",
                );
            }
        }
    }
    let mut id = None;
    if let Some(fields) = fields.filter(|_| decision.is_none()) {
        if let Some(first) = tags.first() {
            cx.error_spanned_by(
                &first.member,
                "`#[tag]` fields select the events of a decision's states: this command goes to an aggregate, which finds its stream by `#[id]`; remove `#[tag]`, or make it `#[command(decision = …)]`",
            );
        }
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
        decision,
        id,
        tags,
    })
}

/// `#[derive(Query)]`.
pub struct QueryDef {
    pub krate: Path,
    pub ident: Ident,
    pub generics: Generics,
    /// `response = …`, or a type that is the "missing `response`" error.
    pub response: TokenStream,
    /// The response type as written, tidied (`Option<u64>`), for the registry; `None` when
    /// missing.
    pub response_text: Option<String>,
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
        response_text: args.response.as_ref().map(naming::type_text),
        krate: attr::crate_path(args.krate),
        ident: input.ident.clone(),
        generics: input.generics.clone(),
        response,
    })
}

#[cfg(test)]
mod tests {
    use super::option_inner;

    #[test]
    fn option_fields_are_recognised_as_written() {
        let inner = |s: &str| {
            let ty: syn::Type = syn::parse_str(s).unwrap();
            option_inner(&ty).map(|t| quote::ToTokens::to_token_stream(t).to_string())
        };
        assert_eq!(inner("Option<u32>").as_deref(), Some("u32"));
        assert_eq!(
            inner("std::option::Option<CourseId>").as_deref(),
            Some("CourseId")
        );
        assert_eq!(
            inner("::core::option::Option<String>").as_deref(),
            Some("String")
        );
        assert_eq!(inner("my::Option<u32>"), None, "another `Option`");
        assert_eq!(inner("Vec<u32>"), None);
        assert_eq!(inner("Option"), None);
    }
}

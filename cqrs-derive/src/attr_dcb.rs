//! Attribute arguments of dynamic consistency boundaries: `#[tag]` on fields, `#[decision(…)]`,
//! `#[decision_state(tags = […])]` and `#[tags(key = field)]` on a decision handler's state
//! parameter. Same conventions as `attr.rs` (named keywords, errors recorded, not returned).

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitStr, Meta, Token, Visibility};

use crate::attr::{
    COMMAND, CRATE, CRATE_SYNTAX, CratePath, NAME, VIS, helper_args, parse_raw_args, set_once,
    unknown,
};
use crate::ctxt::Ctxt;

/// `#[tag]` on an event or command field.
pub const TAG_FIELD: &str = "tag";
/// `#[tags(account = from)]` on a decision handler's state parameter.
pub const TAGS_PARAM: &str = "tags";
/// `key = "account"` in `#[tag(…)]`.
pub const KEY: &str = "key";
/// `tags = [course]` in `#[decision_state]`.
pub const TAGS: &str = "tags";

/// The longest tag key (`eventweave_core::MAX_TAG_KEY_BYTES`).
const MAX_KEY_BYTES: usize = 64;

/// Whether `key` is a valid tag key; records an error on `lit` otherwise.
pub fn check_tag_key(cx: &mut Ctxt, lit: &LitStr) -> bool {
    valid_key(cx, &lit.value(), lit.span())
}

fn valid_key(cx: &mut Ctxt, key: &str, span: Span) -> bool {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        cx.error_at(
            span,
            format!(
                "`{key}` is not a tag key: keys are 1 to {MAX_KEY_BYTES} ASCII letters, digits, `_`, `-` or `.`"
            ),
        );
    }
    ok
}

/// The tag key of a field marked `#[tag]` (its name) or `#[tag(key = "…")]`, with the span of
/// the attribute; `None` when the field has no `#[tag]`.
pub fn field_tag(cx: &mut Ctxt, attrs: &[Attribute], field: &Ident) -> Option<(String, Span)> {
    let mut found: Option<(String, Span)> = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident(TAG_FIELD)) {
        let span = syn::spanned::Spanned::span(attr);
        if found.is_some() {
            cx.error_spanned_by(
                attr,
                "duplicate `#[tag]`: a field is one tag; remove this one",
            );
            continue;
        }
        let mut key = crate::naming::plain(field);
        match &attr.meta {
            Meta::Path(_) => {}
            Meta::List(list) => {
                for arg in parse_raw_args(cx, list.tokens.clone()) {
                    match arg.key().as_str() {
                        // key = "account"
                        KEY => {
                            if let Some(lit) = arg.value::<LitStr>(cx, "key = \"account\"") {
                                key = lit.value();
                                if !check_tag_key(cx, &lit) {
                                    return None;
                                }
                            }
                        }
                        _ => unknown(cx, &arg, TAG_FIELD, &[KEY]),
                    }
                }
            }
            Meta::NameValue(_) => {
                cx.error_spanned_by(attr, "expected `#[tag]` or `#[tag(key = \"account\")]`")
            }
        }
        if valid_key(cx, &key, span) {
            found = Some((key, span));
        }
    }
    found
}

/// `#[decision(name = "transfers", command = …, vis = …, crate = …)]`.
#[derive(Default)]
pub struct DecisionArgs {
    pub name: Option<LitStr>,
    pub command: Option<Ident>,
    pub vis: Option<Visibility>,
    pub krate: Option<CratePath>,
}

impl DecisionArgs {
    pub fn parse(cx: &mut Ctxt, tokens: proc_macro2::TokenStream) -> Self {
        let mut out = DecisionArgs::default();
        for arg in parse_raw_args(cx, tokens) {
            match arg.key().as_str() {
                // name = "transfers"
                NAME => {
                    let v = arg.value::<LitStr>(cx, "name = \"transfers\"");
                    set_once(cx, &mut out.name, &arg, v);
                }
                // command = TransfersCommand
                COMMAND => {
                    let v = arg.value::<Ident>(cx, "command = TransfersCommand");
                    set_once(cx, &mut out.command, &arg, v);
                }
                // vis = pub(crate)
                VIS => {
                    let v = arg.value::<Visibility>(cx, "vis = pub(crate)");
                    set_once(cx, &mut out.vis, &arg, v);
                }
                // crate = "path"
                CRATE => {
                    let v = arg.value::<CratePath>(cx, CRATE_SYNTAX);
                    set_once(cx, &mut out.krate, &arg, v);
                }
                _ => unknown(cx, &arg, "decision", &[NAME, COMMAND, VIS, CRATE]),
            }
        }
        out
    }
}

/// A tag key written as an identifier or a string: `course` or `"course.id"`.
struct KeyLit(String, Span);

impl Parse for KeyLit {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            return Ok(KeyLit(lit.value(), lit.span()));
        }
        let ident: Ident = input.parse()?;
        Ok(KeyLit(crate::naming::plain(&ident), ident.span()))
    }
}

/// `[course, "student.id"]`.
struct KeyList(Vec<KeyLit>);

impl Parse for KeyList {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let content;
        syn::bracketed!(content in input);
        let keys = Punctuated::<KeyLit, Token![,]>::parse_terminated(&content)?;
        Ok(KeyList(keys.into_iter().collect()))
    }
}

/// `#[decision_state(tags = [course], crate = …)]`.
#[derive(Default)]
pub struct StateArgs {
    /// The keys and their spans.
    pub tags: Vec<(String, Span)>,
    pub krate: Option<CratePath>,
}

impl StateArgs {
    pub fn parse(cx: &mut Ctxt, tokens: proc_macro2::TokenStream) -> Self {
        let mut out = StateArgs::default();
        let mut seen_tags = None;
        for arg in parse_raw_args(cx, tokens) {
            match arg.key().as_str() {
                // tags = [course, student]
                TAGS => {
                    let v = arg.value::<KeyList>(cx, "tags = [course]");
                    let keys = v.map(|list| {
                        let mut keys: Vec<(String, Span)> = Vec::new();
                        for KeyLit(key, span) in list.0 {
                            if keys.iter().any(|(k, _)| *k == key) {
                                cx.error_at(span, format!("`{key}` is listed twice: remove one"));
                            } else if valid_key(cx, &key, span) {
                                keys.push((key, span));
                            }
                        }
                        keys
                    });
                    set_once(cx, &mut seen_tags, &arg, keys);
                }
                // crate = "path"
                CRATE => {
                    let v = arg.value::<CratePath>(cx, CRATE_SYNTAX);
                    set_once(cx, &mut out.krate, &arg, v);
                }
                _ => unknown(cx, &arg, "decision_state", &[TAGS, CRATE]),
            }
        }
        out.tags = seen_tags.unwrap_or_default();
        out
    }
}

/// The bindings `(key, field)` of every `#[tags(key = field)]` in `attrs`.
pub fn param_bindings(cx: &mut Ctxt, attrs: &[Attribute]) -> Vec<(String, Ident)> {
    let mut out: Vec<(String, Ident)> = Vec::new();
    for arg in helper_args(cx, attrs, TAGS_PARAM, "#[tags(account = from)]") {
        let key = arg.key();
        if let Some(field) = arg.value::<Ident>(cx, &format!("{key} = field")) {
            if out.iter().any(|(k, _)| *k == key) {
                cx.error_spanned_by(&arg.key, format!("`{key}` is bound twice: remove one"));
            } else {
                out.push((key, field));
            }
        }
    }
    out
}

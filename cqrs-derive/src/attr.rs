//! Attribute arguments, `key = value` lists such as `#[aggregate(id = AccountId, name = "account")]`.
//!
//! A list is first split into raw arguments (a key and the tokens of its value), then each
//! macro picks the keys it accepts and parses their values. Errors are recorded, not returned,
//! so every wrong argument is reported in one build.
//!
//! Keywords are named constants, so a key is spelled once.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Attribute, Ident, LitBool, LitInt, LitStr, Meta, Path, Token, Type, Visibility};

use crate::ctxt::Ctxt;

// Argument keywords.
/// `id = AccountId` in `#[aggregate]`.
pub const ID: &str = "id";
/// `name = "…"` in every macro but `#[derive(Query)]`.
pub const NAME: &str = "name";
/// `version = 2` in `#[event]`.
pub const VERSION: &str = "version";
/// `from = 1` in `#[upcast]`: the version an upcaster reads.
pub const FROM: &str = "from";
/// `with = path::to::function` in `#[upcast]`: the upcaster.
pub const WITH: &str = "with";
/// `aggregate = Account` in `#[command]`.
pub const AGGREGATE: &str = "aggregate";
/// `response = Type` in `#[query]`.
pub const RESPONSE: &str = "response";
/// `event = AccountEvent` in `#[aggregate]`.
pub const EVENT: &str = "event";
/// `command = AccountCommand` in `#[aggregate]`.
pub const COMMAND: &str = "command";
/// `vis = pub(crate)` in `#[aggregate]`: visibility of the generated enums.
pub const VIS: &str = "vis";
/// `snapshot_every = 1000` in `#[aggregate]`: take a snapshot every that many events.
pub const SNAPSHOT_EVERY: &str = "snapshot_every";
/// `snapshot_version = 2` in `#[aggregate]`: the shape of the snapshotted state.
pub const SNAPSHOT_VERSION: &str = "snapshot_version";
/// `issues = [Credit, Refund]` in `#[process_manager]`: the commands its handlers may issue.
pub const ISSUES: &str = "issues";
/// `discover = false` in `#[projection]`.
pub const DISCOVER: &str = "discover";
/// `decision = Transfers` in `#[command]`.
pub const DECISION: &str = "decision";
/// `tag = "account"` in `#[aggregate]`: every event carries the aggregate's id as this tag.
pub const TAG: &str = "tag";
/// `crate = "path"` everywhere: where the runtime crate is.
pub const CRATE: &str = "crate";

// Helper attributes.
/// `#[apply]` on an aggregate method.
pub const APPLY: &str = "apply";
/// `#[handle]` on an aggregate method.
pub const HANDLE: &str = "handle";
/// `#[query]` on a projection method.
pub const QUERY: &str = "query";
/// `#[reset]` on a durable projection method.
pub const RESET: &str = "reset";
/// `#[on_rejected]` on the compensation method of a process manager.
pub const ON_REJECTED: &str = "on_rejected";
/// `#[id]` on a command field.
pub const ID_FIELD: &str = "id";
/// `#[upcast(from = 1, with = f)]` on an event type.
pub const UPCAST: &str = "upcast";

/// One `key = value` argument, with the value's tokens not yet interpreted.
pub struct RawArg {
    pub key: Ident,
    /// `None` when the key stands alone (`#[event(name)]`).
    pub value: Option<TokenStream>,
}

impl RawArg {
    /// The key as written, without `r#`.
    pub fn key(&self) -> String {
        self.key.unraw().to_string()
    }

    /// Parses the value as `T`; records an error showing `syntax` when it is missing or wrong.
    pub fn value<T: Parse>(&self, cx: &mut Ctxt, syntax: &str) -> Option<T> {
        let Some(tokens) = &self.value else {
            cx.error_spanned_by(&self.key, format!("expected a value: write `{syntax}`"));
            return None;
        };
        if tokens.is_empty() {
            cx.error_spanned_by(&self.key, format!("expected a value: write `{syntax}`"));
            return None;
        }
        match syn::parse2::<T>(tokens.clone()) {
            Ok(value) => Some(value),
            Err(e) => {
                cx.error_at(e.span(), format!("{e}: write `{syntax}`"));
                None
            }
        }
    }
}

impl Parse for RawArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // Keys may be keywords (`crate`).
        let key = Ident::parse_any(input)?;
        if input.is_empty() || input.peek(Token![,]) {
            return Ok(RawArg { key, value: None });
        }
        if !input.peek(Token![=]) {
            return Err(input.error(format!("expected `=` after `{}`", key.unraw())));
        }
        input.parse::<Token![=]>()?;
        // The value runs to the next comma outside `<…>` (`HashMap<K, V>` is one value).
        let mut value = TokenStream::new();
        let mut depth = 0usize;
        let mut after_minus = false;
        loop {
            let at_end = input.is_empty() || (depth == 0 && input.peek(Token![,]));
            if at_end {
                break;
            }
            let tt: TokenTree = input.parse()?;
            if let TokenTree::Punct(p) = &tt {
                match p.as_char() {
                    '<' => depth += 1,
                    // `->` in a function type is not a closing bracket.
                    '>' if !after_minus => depth = depth.saturating_sub(1),
                    _ => {}
                }
                after_minus = p.as_char() == '-';
            } else {
                after_minus = false;
            }
            value.extend([tt]);
        }
        Ok(RawArg {
            key,
            value: Some(value),
        })
    }
}

/// Splits `tokens` into arguments. A syntax error is recorded and ends the list.
pub fn parse_raw_args(cx: &mut Ctxt, tokens: TokenStream) -> Vec<RawArg> {
    let parser = syn::punctuated::Punctuated::<RawArg, Token![,]>::parse_terminated;
    match parser.parse2(tokens) {
        Ok(args) => args.into_iter().collect(),
        Err(e) => {
            cx.push(e);
            Vec::new()
        }
    }
}

/// The arguments of every `#[name(…)]` helper attribute in `attrs`, in order.
/// `syntax` shows the accepted form in the error for `#[name]` or `#[name = …]`.
pub fn helper_args(cx: &mut Ctxt, attrs: &[Attribute], name: &str, syntax: &str) -> Vec<RawArg> {
    let mut args = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident(name)) {
        match &attr.meta {
            Meta::List(list) => args.extend(parse_raw_args(cx, list.tokens.clone())),
            _ => cx.error_spanned_by(attr, format!("expected arguments: write `{syntax}`")),
        }
    }
    args
}

/// Stores `value` in `slot`, or records a duplicate-argument error at the second `key`.
pub fn set_once<T>(cx: &mut Ctxt, slot: &mut Option<T>, arg: &RawArg, value: Option<T>) {
    if slot.is_some() {
        cx.error_spanned_by(
            &arg.key,
            format!("duplicate argument `{}`: give it once", arg.key()),
        );
    } else if value.is_some() {
        *slot = value;
    }
}

/// Records an "unknown argument" error listing the accepted keys.
pub fn unknown(cx: &mut Ctxt, arg: &RawArg, attribute: &str, accepted: &[&str]) {
    let list = accepted
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    cx.error_spanned_by(
        &arg.key,
        format!(
            "unknown argument `{}`: `#[{attribute}]` accepts {list}",
            arg.key()
        ),
    );
}

/// The value of `crate = "path"` or `crate = path`.
pub struct CratePath(pub Path);

impl Parse for CratePath {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            return lit.parse_with(Path::parse_mod_style).map(CratePath);
        }
        input.call(Path::parse_mod_style).map(CratePath)
    }
}

/// The runtime crate's path: `crate = …` or `::eventweave_core`.
pub fn crate_path(krate: Option<CratePath>) -> Path {
    krate.map_or_else(|| syn::parse_quote!(::eventweave_core), |k| k.0)
}

pub const CRATE_SYNTAX: &str = "crate = \"path::to::eventweave_core\"";

/// `#[event(name = "…", version = n, crate = …)]`.
#[derive(Default)]
pub struct EventArgs {
    pub name: Option<LitStr>,
    pub version: Option<(u32, Span)>,
    /// `version = …` was written but is not a valid version (an error was recorded).
    pub bad_version: bool,
    /// `name = …` was written but is not a string literal (an error was recorded).
    pub bad_name: bool,
    pub krate: Option<CratePath>,
}

impl EventArgs {
    pub fn from_attrs(cx: &mut Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = EventArgs::default();
        let syntax = "#[event(name = \"account.opened\", version = 1)]";
        for arg in helper_args(cx, attrs, "event", syntax) {
            match arg.key().as_str() {
                // name = "account.opened"
                NAME => {
                    let v = arg.value::<LitStr>(cx, "name = \"account.opened\"");
                    out.bad_name |= v.is_none();
                    set_once(cx, &mut out.name, &arg, v);
                }
                // version = 2 (an integer, at least 1)
                VERSION => {
                    let v = arg
                        .value::<LitInt>(cx, "version = 2")
                        .and_then(|lit| version(cx, &lit));
                    out.bad_version |= v.is_none();
                    set_once(cx, &mut out.version, &arg, v);
                }
                // crate = "path"
                CRATE => {
                    let v = arg.value::<CratePath>(cx, CRATE_SYNTAX);
                    set_once(cx, &mut out.krate, &arg, v);
                }
                _ => unknown(cx, &arg, "event", &[NAME, VERSION, CRATE]),
            }
        }
        out
    }
}

/// One `#[upcast(from = n, with = path)]` on an event type.
pub struct UpcastArgs {
    /// `from = n` and its literal (any `u32`; the model checks the range).
    pub from: Option<(u32, LitInt)>,
    pub with: Option<Path>,
}

impl UpcastArgs {
    /// Every `#[upcast(…)]` in `attrs`, in order. An attribute whose arguments do not parse is
    /// still returned (with what did parse), so the model knows a step was meant.
    pub fn from_attrs(cx: &mut Ctxt, attrs: &[Attribute]) -> Vec<Self> {
        let syntax = "#[upcast(from = 1, with = opened_v1_to_v2)]";
        let mut out = Vec::new();
        for attr in attrs.iter().filter(|a| a.path().is_ident(UPCAST)) {
            let mut args = UpcastArgs {
                from: None,
                with: None,
            };
            let raw = match &attr.meta {
                Meta::List(list) => parse_raw_args(cx, list.tokens.clone()),
                _ => {
                    cx.error_spanned_by(attr, format!("expected arguments: write `{syntax}`"));
                    Vec::new()
                }
            };
            let (mut saw_from, mut saw_with) = (false, false);
            for arg in raw {
                match arg.key().as_str() {
                    // from = 1 (the older version this upcaster reads)
                    FROM => {
                        let v = arg.value::<LitInt>(cx, "from = 1").and_then(|lit| {
                            match lit.base10_parse::<u32>() {
                                Ok(v) => Some((v, lit)),
                                Err(_) => {
                                    cx.error_spanned_by(
                                        &lit,
                                        "expected a version number, such as `from = 1`",
                                    );
                                    None
                                }
                            }
                        });
                        set_once(cx, &mut args.from, &arg, v);
                        saw_from = true;
                    }
                    // with = path::to::function
                    WITH => {
                        let v = arg.value::<Path>(cx, "with = opened_v1_to_v2");
                        set_once(cx, &mut args.with, &arg, v);
                        saw_with = true;
                    }
                    _ => unknown(cx, &arg, UPCAST, &[FROM, WITH]),
                }
            }
            if matches!(attr.meta, Meta::List(_)) && !(saw_from && saw_with) {
                let missing = if saw_from {
                    "with = …"
                } else if saw_with {
                    "from = …"
                } else {
                    "from = …, with = …"
                };
                cx.error_spanned_by(
                    attr,
                    format!("missing `{missing}`: write `{syntax}`, naming the version the function reads and the function"),
                );
            }
            out.push(args);
        }
        out
    }
}

fn version(cx: &mut Ctxt, lit: &LitInt) -> Option<(u32, Span)> {
    match lit.base10_parse::<u32>() {
        Ok(0) => {
            cx.error_spanned_by(
                lit,
                "schema versions start at 1: write `version = 1` or higher",
            );
            None
        }
        Ok(v) => Some((v, lit.span())),
        Err(_) => {
            cx.error_spanned_by(
                lit,
                "expected a version number from 1 to 4294967295, such as `version = 2`",
            );
            None
        }
    }
}

/// `#[command(aggregate = Account, name = "…", crate = …)]` (or `decision = Transfers`).
#[derive(Default)]
pub struct CommandArgs {
    pub aggregate: Option<Type>,
    pub decision: Option<Type>,
    pub name: Option<LitStr>,
    pub krate: Option<CratePath>,
}

impl CommandArgs {
    pub fn from_attrs(cx: &mut Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = CommandArgs::default();
        for arg in helper_args(cx, attrs, "command", "#[command(aggregate = Account)]") {
            match arg.key().as_str() {
                // aggregate = Account
                AGGREGATE => {
                    let v = arg.value::<Type>(cx, "aggregate = Account");
                    set_once(cx, &mut out.aggregate, &arg, v);
                }
                // decision = Transfers
                DECISION => {
                    let v = arg.value::<Type>(cx, "decision = Transfers");
                    set_once(cx, &mut out.decision, &arg, v);
                }
                // name = "Deposit"
                NAME => {
                    let v = arg.value::<LitStr>(cx, "name = \"Deposit\"");
                    set_once(cx, &mut out.name, &arg, v);
                }
                // crate = "path"
                CRATE => {
                    let v = arg.value::<CratePath>(cx, CRATE_SYNTAX);
                    set_once(cx, &mut out.krate, &arg, v);
                }
                _ => unknown(cx, &arg, "command", &[AGGREGATE, DECISION, NAME, CRATE]),
            }
        }
        out
    }
}

/// `#[query(response = Type, crate = …)]`.
#[derive(Default)]
pub struct QueryArgs {
    pub response: Option<Type>,
    pub krate: Option<CratePath>,
}

impl QueryArgs {
    pub fn from_attrs(cx: &mut Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = QueryArgs::default();
        for arg in helper_args(cx, attrs, "query", "#[query(response = Option<u64>)]") {
            match arg.key().as_str() {
                // response = Option<u64>
                RESPONSE => {
                    let v = arg.value::<Type>(cx, "response = Option<u64>");
                    set_once(cx, &mut out.response, &arg, v);
                }
                // crate = "path"
                CRATE => {
                    let v = arg.value::<CratePath>(cx, CRATE_SYNTAX);
                    set_once(cx, &mut out.krate, &arg, v);
                }
                _ => unknown(cx, &arg, "query", &[RESPONSE, CRATE]),
            }
        }
        out
    }
}

/// `#[aggregate(id = AccountId, name = "account", event = …, command = …, vis = …, crate = …)]`.
#[derive(Default)]
pub struct AggregateArgs {
    pub id: Option<Type>,
    pub name: Option<LitStr>,
    pub event: Option<Ident>,
    pub command: Option<Ident>,
    pub vis: Option<Visibility>,
    pub snapshot_every: Option<(u64, Span)>,
    pub snapshot_version: Option<(u32, Span)>,
    pub tag: Option<LitStr>,
    pub krate: Option<CratePath>,
}

impl AggregateArgs {
    pub fn parse(cx: &mut Ctxt, tokens: TokenStream) -> Self {
        let mut out = AggregateArgs::default();
        for arg in parse_raw_args(cx, tokens) {
            match arg.key().as_str() {
                // id = AccountId
                ID => {
                    let v = arg.value::<Type>(cx, "id = AccountId");
                    set_once(cx, &mut out.id, &arg, v);
                }
                // name = "account"
                NAME => {
                    let v = arg.value::<LitStr>(cx, "name = \"account\"");
                    set_once(cx, &mut out.name, &arg, v);
                }
                // event = AccountEvent
                EVENT => {
                    let v = arg.value::<Ident>(cx, "event = AccountEvent");
                    set_once(cx, &mut out.event, &arg, v);
                }
                // command = AccountCommand
                COMMAND => {
                    let v = arg.value::<Ident>(cx, "command = AccountCommand");
                    set_once(cx, &mut out.command, &arg, v);
                }
                // vis = pub(crate)
                VIS => {
                    let v = arg.value::<Visibility>(cx, "vis = pub(crate)");
                    set_once(cx, &mut out.vis, &arg, v);
                }
                // snapshot_every = 1000
                SNAPSHOT_EVERY => {
                    let v = arg
                        .value::<LitInt>(cx, "snapshot_every = 1000")
                        .and_then(|lit| snapshot_number(cx, &lit, SNAPSHOT_EVERY, "1000"));
                    set_once(cx, &mut out.snapshot_every, &arg, v);
                }
                // snapshot_version = 2
                SNAPSHOT_VERSION => {
                    let v = arg
                        .value::<LitInt>(cx, "snapshot_version = 2")
                        .and_then(|lit| snapshot_number(cx, &lit, SNAPSHOT_VERSION, "2"))
                        .and_then(|(v, span)| Some((u32::try_from(v).ok()?, span)));
                    set_once(cx, &mut out.snapshot_version, &arg, v);
                }
                // tag = "account"
                TAG => {
                    let v = arg
                        .value::<LitStr>(cx, "tag = \"account\"")
                        .filter(|lit| crate::attr_dcb::check_tag_key(cx, lit));
                    set_once(cx, &mut out.tag, &arg, v);
                }
                // crate = "path"
                CRATE => {
                    let v = arg.value::<CratePath>(cx, CRATE_SYNTAX);
                    set_once(cx, &mut out.krate, &arg, v);
                }
                _ => unknown(
                    cx,
                    &arg,
                    "aggregate",
                    &[
                        ID,
                        NAME,
                        EVENT,
                        COMMAND,
                        VIS,
                        SNAPSHOT_EVERY,
                        SNAPSHOT_VERSION,
                        TAG,
                        CRATE,
                    ],
                ),
            }
        }
        out
    }
}

/// A positive `snapshot_every` or `snapshot_version` (versions fit in a `u32`).
fn snapshot_number(cx: &mut Ctxt, lit: &LitInt, key: &str, example: &str) -> Option<(u64, Span)> {
    let max = if key == SNAPSHOT_VERSION {
        u64::from(u32::MAX)
    } else {
        u64::MAX
    };
    match lit.base10_parse::<u64>() {
        Ok(0) if key == SNAPSHOT_EVERY => {
            cx.error_spanned_by(
                lit,
                "`snapshot_every` counts events between snapshots, at least 1: leave it out to take no snapshots",
            );
            None
        }
        Ok(0) => {
            cx.error_spanned_by(
                lit,
                "snapshot versions start at 1: write `snapshot_version = 1` or higher",
            );
            None
        }
        Ok(v) if v <= max => Some((v, lit.span())),
        _ => {
            cx.error_spanned_by(
                lit,
                format!("expected a number from 1 to {max}, such as `{key} = {example}`"),
            );
            None
        }
    }
}

/// `#[projection(name = "balances", discover = false, crate = …)]`.
#[derive(Default)]
pub struct ProjectionArgs {
    pub name: Option<LitStr>,
    pub discover: Option<LitBool>,
    pub krate: Option<CratePath>,
}

impl ProjectionArgs {
    pub fn parse(cx: &mut Ctxt, tokens: TokenStream) -> Self {
        let mut out = ProjectionArgs::default();
        for arg in parse_raw_args(cx, tokens) {
            match arg.key().as_str() {
                // name = "balances"
                NAME => {
                    let v = arg.value::<LitStr>(cx, "name = \"balances\"");
                    set_once(cx, &mut out.name, &arg, v);
                }
                // discover = false
                DISCOVER => {
                    let v = arg.value::<LitBool>(cx, "discover = false");
                    set_once(cx, &mut out.discover, &arg, v);
                }
                // crate = "path"
                CRATE => {
                    let v = arg.value::<CratePath>(cx, CRATE_SYNTAX);
                    set_once(cx, &mut out.krate, &arg, v);
                }
                _ => unknown(cx, &arg, "projection", &[NAME, DISCOVER, CRATE]),
            }
        }
        out
    }
}

/// `#[process_manager(name = "transfer", issues = [Credit, Refund], crate = …)]`.
#[derive(Default)]
pub struct ProcessManagerArgs {
    pub name: Option<LitStr>,
    pub issues: Option<TypeList>,
    pub krate: Option<CratePath>,
}

/// `[A, B]`: a bracketed, comma-separated list of types (may be empty).
pub struct TypeList(pub Vec<Type>);

impl Parse for TypeList {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let content;
        syn::bracketed!(content in input);
        let types = syn::punctuated::Punctuated::<Type, Token![,]>::parse_terminated(&content)?;
        Ok(TypeList(types.into_iter().collect()))
    }
}

impl ProcessManagerArgs {
    pub fn parse(cx: &mut Ctxt, tokens: TokenStream) -> Self {
        let mut out = ProcessManagerArgs::default();
        for arg in parse_raw_args(cx, tokens) {
            match arg.key().as_str() {
                // name = "transfer"
                NAME => {
                    let v = arg.value::<LitStr>(cx, "name = \"transfer\"");
                    set_once(cx, &mut out.name, &arg, v);
                }
                // issues = [Credit, Refund]
                ISSUES => {
                    let v = arg.value::<TypeList>(cx, "issues = [Credit, Refund]");
                    set_once(cx, &mut out.issues, &arg, v);
                }
                // crate = "path"
                CRATE => {
                    let v = arg.value::<CratePath>(cx, CRATE_SYNTAX);
                    set_once(cx, &mut out.krate, &arg, v);
                }
                _ => unknown(cx, &arg, "process_manager", &[NAME, ISSUES, CRATE]),
            }
        }
        out
    }
}

/// Whether `attr` is the bare helper attribute `#[name]`; records an error if it has arguments.
pub fn is_marker(cx: &mut Ctxt, attr: &Attribute, name: &str) -> bool {
    if !attr.path().is_ident(name) {
        return false;
    }
    if !matches!(attr.meta, Meta::Path(_)) {
        cx.error_spanned_by(
            attr,
            format!("`#[{name}]` takes no arguments: write `#[{name}]`"),
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use quote::{ToTokens, quote};

    use super::*;

    fn keys_and_values(tokens: TokenStream) -> Vec<(String, String)> {
        let mut cx = Ctxt::new();
        let args = parse_raw_args(&mut cx, tokens);
        assert!(cx.into_compile_errors().is_empty());
        args.iter()
            .map(|a| {
                let value = a
                    .value
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                (a.key(), value)
            })
            .collect()
    }

    #[test]
    fn values_run_to_the_next_comma_outside_angle_brackets() {
        let args = keys_and_values(quote!(
            response = HashMap<u64, Vec<String>>,
            id = fn(u8, u8) -> Option<u8>,
            crate = "my::path",
            discover
        ));
        let keys: Vec<_> = args.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["response", "id", "crate", "discover"]);
        assert_eq!(args[0].1, quote!(HashMap<u64, Vec<String>>).to_string());
        assert_eq!(args[1].1, quote!(fn(u8, u8) -> Option<u8>).to_string());
        assert_eq!(args[3].1, "");
    }

    #[test]
    fn every_bad_argument_is_reported() {
        let mut cx = Ctxt::new();
        let args =
            AggregateArgs::parse(&mut cx, quote!(id = u64, stream = "x", id = u32, name = x));
        let errors = cx.into_compile_errors().to_string();
        assert!(errors.contains("unknown argument `stream`"), "{errors}");
        assert!(errors.contains("duplicate argument `id`"), "{errors}");
        assert!(errors.contains("expected string literal"), "{errors}");
        assert_eq!(args.id.to_token_stream().to_string(), "u64");
        assert!(args.name.is_none());
    }

    #[test]
    fn the_crate_path_is_a_string_or_a_path() {
        for tokens in [quote!("crate::facade::cqrs"), quote!(crate::facade::cqrs)] {
            let path = syn::parse2::<CratePath>(tokens).unwrap().0;
            assert_eq!(
                path.to_token_stream().to_string(),
                "crate :: facade :: cqrs"
            );
        }
        let default = crate_path(None);
        assert_eq!(default.to_token_stream().to_string(), ":: eventweave_core");
    }

    #[test]
    fn versions_start_at_one() {
        let mut cx = Ctxt::new();
        assert_eq!(
            version(&mut cx, &syn::parse_quote!(2)).map(|v| v.0),
            Some(2)
        );
        assert!(version(&mut cx, &syn::parse_quote!(0)).is_none());
        assert!(version(&mut cx, &syn::parse_quote!(4294967296)).is_none());
        let errors = cx.into_compile_errors().to_string();
        assert!(errors.contains("start at 1"), "{errors}");
        assert!(errors.contains("from 1 to 4294967295"), "{errors}");
    }
}

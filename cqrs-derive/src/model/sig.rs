//! Reading method signatures: receivers, reference parameters, `Result` return types.

use syn::{
    FnArg, GenericArgument, Ident, PatType, PathArguments, ReturnType, Signature, Type,
    TypeReference,
};

use crate::ctxt::Ctxt;

/// How a method takes `self`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SelfKind {
    /// No receiver: an associated function.
    None,
    /// `&self`.
    Ref,
    /// `&mut self`.
    RefMut,
    /// `self` or `mut self`.
    Value,
    /// `self: Box<Self>` and other typed receivers.
    Typed,
}

/// The receiver of `sig`.
pub fn self_kind(sig: &Signature) -> SelfKind {
    match sig.receiver() {
        None => SelfKind::None,
        Some(r) if r.colon_token.is_some() => SelfKind::Typed,
        Some(r) => match (&r.reference, &r.mutability) {
            (Some(_), Some(_)) => SelfKind::RefMut,
            (Some(_), None) => SelfKind::Ref,
            (None, _) => SelfKind::Value,
        },
    }
}

/// The parameters after the receiver.
pub fn params(sig: &Signature) -> Vec<&PatType> {
    sig.inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// Strips invisible groups and parentheses (`(T)`), which macros may leave around types.
pub fn ungroup(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(g) => ty = &g.elem,
            Type::Paren(p) => ty = &p.elem,
            _ => return ty,
        }
    }
}

/// `T` when `ty` is `&T` (not `&mut T`).
pub fn shared_ref(ty: &Type) -> Option<&Type> {
    match ungroup(ty) {
        Type::Reference(TypeReference {
            mutability: None,
            elem,
            ..
        }) => Some(elem),
        _ => None,
    }
}

/// `T` when `ty` is `Option<&T>` (the state parameter of a create-or-update handler).
pub fn option_ref(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ungroup(ty) else {
        return None;
    };
    let last = path.path.segments.last()?;
    if path.qself.is_some() || last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>()[..] {
        [syn::GenericArgument::Type(inner)] => shared_ref(inner),
        _ => None,
    }
}

/// `T` when `ty` is `&mut T`.
pub fn mut_ref(ty: &Type) -> Option<&Type> {
    match ungroup(ty) {
        Type::Reference(TypeReference {
            mutability: Some(_),
            elem,
            ..
        }) => Some(elem),
        _ => None,
    }
}

/// The last segment's identifier of a plain path type (`events::Opened` → `Opened`).
pub fn last_ident(ty: &Type) -> Option<&Ident> {
    match ungroup(ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        _ => None,
    }
}

/// What a handler returns: `-> T` (cannot fail) or `-> Result<T, E>`.
pub struct Returns {
    /// `T`.
    pub ok: Type,
    /// `E`, for a `Result`.
    pub error: Option<Type>,
}

/// Reads a handler's return type: `Result<T, E>` (by its last segment and two type arguments)
/// or a plain `T`. `what` names the method kind in messages.
pub fn handler_returns(cx: &mut Ctxt, sig: &Signature, what: &str) -> Option<Returns> {
    let ty = match &sig.output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => {
            cx.error_spanned_by(
                &sig.ident,
                format!(
                    "{what} returns the events it records: add `-> SomeEvent`, `-> Vec<…>`, `-> Result<SomeEvent, SomeError>`, or `-> ()` when it never records anything"
                ),
            );
            return None;
        }
    };
    let Type::Path(path) = ungroup(ty) else {
        return Some(plain(ty));
    };
    let Some(last) = path.path.segments.last() else {
        return Some(plain(ty));
    };
    if last.ident != "Result" || path.qself.is_some() {
        return Some(plain(ty));
    }
    let types: Vec<&Type> = match &last.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    match types.as_slice() {
        [ok, error] => Some(Returns {
            ok: (*ok).clone(),
            error: Some((*error).clone()),
        }),
        _ => {
            cx.error_spanned_by(
                ty,
                "spell out the error type: `Result<T, E>`, where `E` implements `std::error::Error` (a `Result` alias hides which error the handler returns)",
            );
            None
        }
    }
}

fn plain(ty: &Type) -> Returns {
    Returns {
        ok: ty.clone(),
        error: None,
    }
}

/// Records an error for `async`, generics, `unsafe` or `extern` on a method of kind `what`.
/// Returns whether the signature is free of them.
pub fn check_plain_fn(cx: &mut Ctxt, sig: &Signature, what: &str, allow_async: bool) -> bool {
    let mut ok = true;
    if let (false, Some(token)) = (allow_async, &sig.asyncness) {
        cx.error_spanned_by(token, format!("{what} cannot be `async`: remove `async`"));
        ok = false;
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let message =
            format!("{what} cannot be generic: the macro calls it with one concrete type");
        if sig.generics.params.is_empty() {
            cx.error_spanned_by(&sig.generics.where_clause, message);
        } else {
            cx.error_spanned_by(&sig.generics, message);
        }
        ok = false;
    }
    if let Some(token) = &sig.unsafety {
        cx.error_spanned_by(token, format!("{what} cannot be `unsafe`"));
        ok = false;
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, format!("{what} cannot be `extern`"));
        ok = false;
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, format!("{what} cannot be variadic"));
        ok = false;
    }
    ok
}

/// Records an error unless `sig` takes `&mut self`, as the methods that change state must:
/// `{why}: add `&mut self`{add_hint}` at the name when it has no receiver, `{why}: take `&mut
/// self`{take_hint}` at any other receiver. Returns whether it takes `&mut self`.
pub fn expect_mut_self(
    cx: &mut Ctxt,
    sig: &Signature,
    why: &str,
    add_hint: &str,
    take_hint: &str,
) -> bool {
    match self_kind(sig) {
        SelfKind::RefMut => true,
        SelfKind::None => {
            cx.error_spanned_by(&sig.ident, format!("{why}: add `&mut self`{add_hint}"));
            false
        }
        SelfKind::Ref | SelfKind::Value | SelfKind::Typed => {
            cx.error_spanned_by(
                sig.receiver(),
                format!("{why}: take `&mut self`{take_hint}"),
            );
            false
        }
    }
}

/// The return type as written, `None` for none.
pub fn written_return(output: &ReturnType) -> Option<Type> {
    match output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some((**ty).clone()),
    }
}

/// The tokens of a type as text, to compare two types syntactically.
pub fn type_key(ty: &Type) -> String {
    quote::ToTokens::to_token_stream(ungroup(ty)).to_string()
}

/// Tokens as a reader would write them, for messages: `Vec<Opened>`, not `Vec < Opened >`.
pub fn display(tokens: &impl quote::ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars.peek().copied();
            let glue_before = matches!(next, Some('<' | '>' | ',' | ':' | ')' | ']'));
            let glue_after = matches!(prev, Some('<' | '&' | ':' | '(' | '['));
            if glue_before || glue_after {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn returns(sig: Signature) -> Option<(String, Option<String>)> {
        let mut cx = Ctxt::new();
        let r = handler_returns(&mut cx, &sig, "a handler");
        r.map(|r| (display(&r.ok), r.error.as_ref().map(display)))
    }

    #[test]
    fn result_is_recognised_by_its_last_segment_and_two_arguments() {
        assert_eq!(
            returns(parse_quote!(fn f(&self) -> Result<Opened, Error>)),
            Some(("Opened".into(), Some("Error".into())))
        );
        assert_eq!(
            returns(parse_quote!(fn f(&self) -> std::result::Result<Vec<E>, my::Error>)),
            Some(("Vec<E>".into(), Some("my::Error".into())))
        );
        assert_eq!(
            returns(parse_quote!(fn f(&self) -> (A, Option<B>))),
            Some(("(A, Option<B>)".into(), None))
        );
        assert_eq!(returns(parse_quote!(fn f(&self) -> io::Result<A>)), None);
        assert_eq!(returns(parse_quote!(fn f(&self))), None);
    }

    #[test]
    fn receivers_and_references() {
        let kinds = [
            (parse_quote!(fn f(x: u8)), SelfKind::None),
            (parse_quote!(fn f(&self)), SelfKind::Ref),
            (parse_quote!(fn f(&'a mut self)), SelfKind::RefMut),
            (parse_quote!(fn f(mut self)), SelfKind::Value),
            (parse_quote!(fn f(self: Box<Self>)), SelfKind::Typed),
        ];
        for (sig, kind) in kinds {
            assert!(self_kind(&sig) == kind, "{}", display(&sig));
        }
        let ty: Type = parse_quote!(&events::Opened);
        assert_eq!(shared_ref(&ty).and_then(last_ident).unwrap(), "Opened");
        assert!(mut_ref(&ty).is_none());
        let ty: Type = parse_quote!(&mut Opened);
        assert!(shared_ref(&ty).is_none());
    }

    #[test]
    fn display_reads_like_source() {
        let ty: Type = parse_quote!(&'a HashMap<u64, Vec<(A, B)>>);
        assert_eq!(display(&ty), "&'a HashMap<u64, Vec<(A, B)>>");
        let ty: Type = parse_quote!(std::io::Result<Opened>);
        assert_eq!(display(&ty), "std::io::Result<Opened>");
    }
}

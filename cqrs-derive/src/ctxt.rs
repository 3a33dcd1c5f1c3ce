//! The error context: every check records its errors here instead of returning at the first
//! one, so a user sees all their mistakes in one build.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// Collects the errors of one macro invocation.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Option<syn::Error>,
}

impl Ctxt {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error spanning the given tokens (all of them, also on stable Rust).
    pub fn error_spanned_by(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error at `span`.
    pub fn error_at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error, keeping the earlier ones.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// One `compile_error!` per recorded error (nothing when there is none).
    pub fn into_compile_errors(self) -> TokenStream {
        self.errors
            .map(|e| e.to_compile_error())
            .unwrap_or_default()
    }
}

/// A type that is itself a compile error: `[(); compile_error!("…")]`.
///
/// rustc reports the message once and treats the type as an error type, so code that uses it
/// (a missing `type Id`, `type Aggregate`, …) raises no further errors.
pub(crate) fn error_type(error: &syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote::quote!([(); #error])
}

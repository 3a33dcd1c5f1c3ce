//! Expansion: turns a checked model into Rust items. Generated code names only `::core`,
//! `::std` and the runtime's `__private` module (through the crate path, `::eventweave_core` unless
//! `crate = …` says otherwise), and puts calls that can fail to type-check on the user's tokens.
//!
//! One mistake gives one compile error, on the user's tokens. A method with a wrong signature is
//! still re-emitted and gets a placeholder impl; a missing `id`, `aggregate` or `response` becomes
//! a type that is itself the `compile_error!`, so nothing downstream cascades; a rule broken across
//! methods (`check.rs`) puts the error on the later method and drops it from expansion. Known
//! exception: a durable projection whose unit type is not `Sync` gets two errors, both on the
//! user's unit type (the trait's bound, and the generated future that borrows the unit). The
//! trybuild suite (`tests/ui/`) is the source of truth: each case's `.stderr` shows what the user
//! sees.
//!
//! Generating only these paths means users add no dependency, and renames inside `__private` break
//! nothing outside the workspace (which is why `eventweave-core` pins this crate to one exact
//! version).
//!
//! `ImplBlockMacro` and `expand_impl_block` are the one driver of the attribute macros on impl
//! blocks: parse, check, allow the lints of methods the macro wires up, re-emit the item with the
//! generated code and the recorded errors.

pub mod aggregate;
pub mod decision;
pub mod derive;
pub mod process;
pub mod projection;

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::quote;
use syn::spanned::Spanned;
use syn::{ImplItem, ItemImpl, Path};

use crate::ctxt::Ctxt;
use crate::model::State;

/// The stages of an attribute macro on an impl block (`#[aggregate]`, `#[projection]`,
/// `#[process_manager]`), implemented by its model and run by [`expand_impl_block`].
pub trait ImplBlockMacro: Sized {
    /// The error when the attribute is not on an impl block: which block it goes on.
    const NOT_ON_IMPL: &'static str;
    /// Reads the arguments, then the block, stripping the helper attributes from it. `None`
    /// when the block cannot be this kind of item at all.
    fn parse(cx: &mut Ctxt, args: TokenStream, item: &mut ItemImpl) -> Option<Self>;
    /// The rules across methods (`check.rs`).
    fn check(&mut self, cx: &mut Ctxt);
    /// Indices of the methods the macro handles.
    fn marked(&self) -> &[usize];
    /// Index and state of every method the model read.
    fn methods(&self) -> Vec<(usize, State)>;
    /// The generated items.
    fn generate(&self) -> TokenStream;
}

/// Expands `#[macro(args)] item`. Errors come out as `compile_error!`s beside the impl block
/// (always re-emitted without the helper attributes, so one mistake gives one error) and
/// whatever could be generated.
pub fn expand_impl_block<M: ImplBlockMacro>(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::new();
    let mut item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            cx.error_at(Span::call_site(), M::NOT_ON_IMPL);
            let errors = cx.into_compile_errors();
            return quote!(#errors #input);
        }
    };
    let generated = M::parse(&mut cx, args, &mut item).map(|mut def| {
        def.check(&mut cx);
        let wired: Vec<usize> = def
            .methods()
            .into_iter()
            .filter(|(_, state)| *state == State::Wired)
            .map(|(index, _)| index)
            .collect();
        allow_dead_code(
            &mut item,
            def.marked().iter().copied().filter(|i| !wired.contains(i)),
        );
        allow_required_signatures(&mut item, def.marked());
        def.generate()
    });
    let errors = cx.into_compile_errors();
    quote! {
        #errors
        #item
        #generated
    }
}

/// `path::__private`.
pub fn private(krate: &Path) -> TokenStream {
    quote!(#krate::__private)
}

/// `tokens` with every token (also inside groups) spanned at `span`.
///
/// Generated calls whose failure must be reported on one user token are built entirely on that
/// token's span, so rustc reports the error there, and identical reports of one failure (on the
/// qualified path and on the call) collapse into one.
pub fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// The handled event types' `EventInfo` constants (`__cqrs_event_0`, …), one per type, each
/// spanned on the user's type: a type that is not an event fails `event_info`'s bound once,
/// there, and every other use of the type goes through its constant. The constants must share
/// a block (`const _: () = { … }`) with the code that uses them.
pub fn event_infos<'a>(
    p: &TokenStream,
    events: impl IntoIterator<Item = &'a syn::Type>,
) -> (TokenStream, Vec<syn::Ident>) {
    let mut consts = TokenStream::new();
    let mut names = Vec::new();
    for (i, event) in events.into_iter().enumerate() {
        let name = quote::format_ident!("__cqrs_event_{}", i);
        let info = respan(quote!(#p::event_info::<#event>()), event.span());
        consts.extend(quote! {
            #[allow(non_upper_case_globals)]
            const #name: #p::EventInfo<#event> = #info;
        });
        names.push(name);
    }
    (consts, names)
}

/// Attributes for every generated impl: marked as generated ([`impl_marker`]), and silent
/// under the strictest lint settings of the user's crate ([`impl_lint_allows`]).
pub fn impl_attrs() -> TokenStream {
    let marker = impl_marker();
    let allows = impl_lint_allows();
    quote!(#marker #allows)
}

/// What marks each generated impl as generated.
pub fn impl_marker() -> TokenStream {
    quote!(#[automatically_derived])
}

/// The lints generated impls allow. Lint levels apply to nested items too, so a macro that
/// generates many impls puts them in one [`impls_block`] that carries this once, instead of
/// once per impl: each `#[allow]` is parsed, its lint names checked, and a lint level scope
/// built, which for the 250 impls of a 50-event, 50-command aggregate was measurable.
pub fn impl_lint_allows() -> TokenStream {
    quote! {
        #[allow(
            unused_qualifications,
            unused_variables,
            unused_imports,
            unreachable_code,
            non_camel_case_types,
            non_snake_case,
            clippy::all,
            clippy::pedantic,
            clippy::nursery,
        )]
    }
}

/// `impls` (each marked with [`impl_marker`]) in one `const _: () = { … };` that allows the
/// lints of [`impl_lint_allows`] once for all of them. Impls are global, so nesting them changes
/// nothing else: names still resolve from the user's module, and spans are the tokens' own.
pub fn impls_block(impls: TokenStream) -> TokenStream {
    let allows = impl_lint_allows();
    quote! {
        #allows
        const _: () = {
            #impls
        };
    }
}

/// Lint allows for the generated enums, which users see but did not write. They are `pub`
/// even when the aggregate's events are private types (`private_interfaces`).
pub fn enum_attrs() -> TokenStream {
    quote! {
        #[allow(
            private_interfaces,
            non_camel_case_types,
            clippy::all,
            clippy::pedantic,
            clippy::nursery,
        )]
    }
}

/// `module::path::Type` at compile time.
pub fn type_name(ident: &syn::Ident) -> TokenStream {
    let name = crate::naming::plain(ident);
    quote!(::core::concat!(::core::module_path!(), "::", #name))
}

/// Allows, on the methods at `indices`, the clippy lints about signatures that the macros
/// require: a `&self` handler that only reads its command (`unused_self`), an `#[apply]` method
/// of a unit event, `&Event` parameters of small `Copy` events, and so on.
pub fn allow_required_signatures(item: &mut ItemImpl, indices: &[usize]) {
    for &index in indices {
        if let Some(ImplItem::Fn(method)) = item.items.get_mut(index) {
            method.attrs.push(syn::parse_quote!(#[allow(
                clippy::unused_self,
                clippy::trivially_copy_pass_by_ref,
                clippy::needless_pass_by_ref_mut,
                clippy::missing_const_for_fn
            )]));
        }
    }
}

/// Adds `#[allow(dead_code)]` to the methods at `indices`: methods whose signature was
/// rejected are not called by generated code, and the error already says why.
pub fn allow_dead_code(item: &mut ItemImpl, indices: impl IntoIterator<Item = usize>) {
    for index in indices {
        if let Some(ImplItem::Fn(method)) = item.items.get_mut(index) {
            method.attrs.push(syn::parse_quote!(#[allow(dead_code)]));
        }
    }
}

#[cfg(test)]
mod tests {
    //! The size of the expansion: what each registered type and each event of an aggregate
    //! adds to the user's crate is compiled in every build of it (`cqrs-bench/compile-time`
    //! measures the whole), so these tests hold the per-item counts where they are.

    use proc_macro2::{TokenStream, TokenTree};
    use quote::quote;

    /// How many times the keyword `word` occurs in `tokens`, groups included.
    fn count(tokens: &TokenStream, word: &str) -> usize {
        tokens
            .clone()
            .into_iter()
            .map(|tree| match tree {
                TokenTree::Ident(ident) => usize::from(ident == word),
                TokenTree::Group(group) => count(&group.stream(), word),
                _ => 0,
            })
            .sum()
    }

    fn event(input: TokenStream) -> TokenStream {
        super::derive::event(&syn::parse2(input).unwrap())
    }

    #[test]
    fn a_registered_type_generates_no_function_of_its_own() {
        // The schema is `__private::schema_fn!(T)`: the runtime decides, by its own features,
        // whether a function is needed; without `schemars` none is.
        let out = event(quote! {
            #[event(name = "door.opened")]
            pub struct Opened { pub at: u64 }
        });
        assert_eq!(count(&out, "fn"), 0, "{out}");
        assert!(out.to_string().contains("schema_fn !"), "{out}");
        let out = super::derive::command(
            &syn::parse2(quote! {
                #[command(aggregate = Door)]
                pub struct Open { #[id] pub id: u64 }
            })
            .unwrap(),
        );
        // `Command::aggregate_id` only.
        assert_eq!(count(&out, "fn"), 1, "{out}");
    }

    #[test]
    fn each_duplicate_name_check_is_one_const_item() {
        let out = super::aggregate::expand(
            quote!(id = u64),
            quote! {
                impl Door {
                    #[handle]
                    fn open(cmd: &Open) -> Opened { Opened }
                    #[apply]
                    fn opened(&mut self, _: &Opened) {}
                    #[apply]
                    fn closed(&mut self, _: &Closed) {}
                    #[apply]
                    fn locked(&mut self, _: &Locked) {}
                }
            },
        );
        // Two checks (the first event has no earlier one), each one `const _: () = f(…);`
        // with no block and no nested item, reading one table of duplicates made once.
        let text = out.to_string();
        assert_eq!(text.matches("distinct_event_name").count(), 2, "{out}");
        assert_eq!(text.matches("earlier_duplicates").count(), 1, "{out}");
        assert!(!text.contains("Message"), "{out}");
        // Every `const` of the expansion: the two checks, the table of duplicates, the block
        // that holds the impls, the registration's `const _`, the table of the events' type
        // names, `EventSet::NAMES`, `Aggregate::NAME`, `CommandSet::NAMES` and the handler's
        // `Handles::KIND`.
        assert_eq!(count(&out, "const"), 2 + 1 + 1 + 1 + 5, "{out}");
    }

    #[test]
    fn an_aggregate_allows_the_lints_of_its_impls_once() {
        let out = super::aggregate::expand(
            quote!(id = u64),
            quote! {
                impl Door {
                    #[handle]
                    fn open(cmd: &Open) -> Opened { Opened }
                    #[handle]
                    fn close(&self, cmd: &Close) -> Closed { Closed }
                    #[apply]
                    fn opened(&mut self, _: &Opened) {}
                    #[apply]
                    fn closed(&mut self, _: &Closed) {}
                }
            },
        );
        // Per event `From`, `IntoEvents` and `EventOf`; per handler `From` and `Handles`; then
        // the enum's `IntoEvents`, `EventSet`, `Serialize`, `Deserialize`, `Aggregate` and
        // `CommandSet`: each marked, none with its own `#[allow]`.
        assert_eq!(
            count(&out, "automatically_derived"),
            2 * 3 + 2 * 2 + 6,
            "{out}"
        );
        assert_eq!(count(&out, "unused_qualifications"), 1, "{out}");
    }
}

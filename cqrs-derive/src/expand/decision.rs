//! `#[decision_state]`: `impl DecisionState` and the check that every folded event carries the
//! state's tags. `#[decision]`: `impl Decision`, the command enum, one `impl Decides<C>` per
//! handler (its query items and its call), and the checks that the command fills every state's
//! tags with fields of the right types and that what the handler emits is read back.
//!
//! Every check is a `const` block that panics in const evaluation with a message built from
//! the constants the other macros generate (`TAG_FIELDS`, `TAG_KEYS`, `EVENT_NAMES`), spanned on
//! the user's tokens (the state parameter, the folded event, the emitted type).

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemImpl;
use syn::spanned::Spanned;

use super::{ImplBlockMacro, enum_attrs, expand_impl_block, impl_attrs, private, respan};
use crate::attr_dcb::{DecisionArgs, StateArgs};
use crate::ctxt::Ctxt;
use crate::model::State;
use crate::model::decision::{self, DecisionDef, DecisionHandler, StateDef, emitted_types};
use crate::model::sig::display;
use crate::naming::plain;

/// Expands `#[decision_state(args)] item`.
pub fn expand_state(args: TokenStream, input: TokenStream) -> TokenStream {
    expand_impl_block::<StateDef>(args, input)
}

/// Expands `#[decision(args)] item`.
pub fn expand_decision(args: TokenStream, input: TokenStream) -> TokenStream {
    expand_impl_block::<DecisionDef>(args, input)
}

impl ImplBlockMacro for StateDef {
    const NOT_ON_IMPL: &'static str = "`#[decision_state]` goes on the impl block that holds a decision state's `#[apply]` methods: `#[decision_state(tags = [course])] impl CourseSeats { … }`";

    fn parse(cx: &mut Ctxt, args: TokenStream, item: &mut ItemImpl) -> Option<Self> {
        let args = StateArgs::parse(cx, args);
        decision::parse_state(cx, args, item)
    }

    fn check(&mut self, _: &mut Ctxt) {}

    fn marked(&self) -> &[usize] {
        &self.marked
    }

    fn methods(&self) -> Vec<(usize, State)> {
        self.applies.iter().map(|a| (a.index, a.state)).collect()
    }

    fn generate(&self) -> TokenStream {
        generate_state(self)
    }
}

/// A const-evaluation failure with a message of `parts` (string literals and `&'static str`
/// constants), when `condition` holds.
fn fail_if(p: &TokenStream, condition: TokenStream, parts: &[TokenStream]) -> TokenStream {
    quote! {
        if #condition {
            const __PARTS: &[&str] = &[#(#parts),*];
            const __MESSAGE: [u8; #p::concat_len(__PARTS)] = #p::concat_bytes(__PARTS);
            ::core::panic!("{}", #p::utf8(&__MESSAGE));
        }
    }
}

fn generate_state(def: &StateDef) -> TokenStream {
    let p = private(&def.krate);
    let attrs = impl_attrs();
    let StateDef {
        self_ty,
        ident,
        tags,
        ..
    } = def;
    let applies: Vec<_> = def
        .applies
        .iter()
        .filter(|a| a.state != State::Dropped)
        .collect();
    let events: Vec<_> = applies.iter().map(|a| &a.event).collect();
    let keys: Vec<&String> = tags.iter().map(|(k, _)| k).collect();
    let name = plain(ident);
    let types = keys
        .iter()
        .map(|key| quote!(#p::tag_type(&[#(<#events as #p::Event>::TAG_FIELDS),*], #key)));
    let arms = applies.iter().filter(|a| a.state == State::Wired).map(|a| {
        let (event, method) = (&a.event, &a.method);
        quote! {
            if __meta.event_name == <#event as #p::Event>::NAME {
                let __event = #p::decode_event::<#event>(
                    __meta.event_version,
                    __stored.payload.as_str(),
                )?;
                Self::#method(self, &__event);
                return #p::Ok(());
            }
        }
    });
    // Check 1: a folded event that lacks one of the state's tags would never be read.
    let checks = applies.iter().map(|a| {
        let event = &a.event;
        let shown = display(event);
        let fail = fail_if(
            &p,
            quote!(!__MISSING.is_empty()),
            &[
                quote!("`"),
                quote!(#name),
                quote!("` is read by the tag `"),
                quote!(__MISSING),
                quote!("`, but `"),
                quote!(#shown),
                quote!("` carries no `"),
                quote!(__MISSING),
                quote!("` tag, so it would never be read: add `#[tag] "),
                quote!(__MISSING),
                quote!(": …` to `"),
                quote!(#shown),
                quote!("`, or fold it in a state read by the tags it carries"),
            ],
        );
        respan(
            quote! {
                const _: () = {
                    const __MISSING: &str =
                        #p::missing_event_tag(<#event as #p::Event>::TAG_FIELDS, &[#(#keys),*]);
                    #fail
                };
            },
            event.span(),
        )
    });
    quote! {
        #attrs
        impl #p::DecisionState for #self_ty {
            const STATE_NAME: &'static str = #name;
            const TAG_KEYS: &'static [&'static str] = &[#(#keys),*];
            const TAG_TYPES: &'static [&'static str] = &[#(#types),*];
            const EVENT_NAMES: &'static [&'static str] = &[#(<#events as #p::Event>::NAME),*];

            fn fold_stored(
                &mut self,
                __stored: &#p::RecordedEvent,
            ) -> #p::Result<(), #p::DecodeFailure> {
                let __meta = &__stored.meta;
                #(#arms)*
                #p::Ok(())
            }
        }

        #(#checks)*
    }
}

impl ImplBlockMacro for DecisionDef {
    const NOT_ON_IMPL: &'static str = "`#[decision]` goes on the impl block that holds a decision's `#[handle]` methods: `#[decision] impl Subscriptions { … }`";

    fn parse(cx: &mut Ctxt, args: TokenStream, item: &mut ItemImpl) -> Option<Self> {
        let args = DecisionArgs::parse(cx, args);
        decision::parse_decision(cx, args, item)
    }

    fn check(&mut self, _: &mut Ctxt) {}

    fn marked(&self) -> &[usize] {
        &self.marked
    }

    fn methods(&self) -> Vec<(usize, State)> {
        self.handlers.iter().map(|h| (h.index, h.state)).collect()
    }

    fn generate(&self) -> TokenStream {
        generate_decision(self)
    }
}

fn generate_decision(def: &DecisionDef) -> TokenStream {
    let p = private(&def.krate);
    let attrs = impl_attrs();
    let enum_attrs = enum_attrs();
    let DecisionDef {
        self_ty,
        ident,
        name,
        command_enum: cmd,
        vis,
        handlers,
        ..
    } = def;
    let variants: Vec<_> = handlers.iter().map(|h| &h.variant).collect();
    let commands: Vec<_> = handlers.iter().map(|h| &h.command).collect();
    let doc = format!(
        "The commands of `{}`, generated by `#[decision]`: one variant per `#[handle]` method, for dispatch by name.",
        plain(ident)
    );
    let variant_docs = handlers
        .iter()
        .map(|h| format!("`{}`.", display(&h.command)));
    let mut out = quote! {
        #attrs
        impl #p::Decision for #self_ty {
            const NAME: &'static str = #name;
            type Command = #cmd;
        }

        #[doc = #doc]
        #enum_attrs
        #vis enum #cmd {
            #(
                #[doc = #variant_docs]
                #variants(#commands),
            )*
        }

        #(
            #attrs
            impl ::core::convert::From<#commands> for #cmd {
                #[inline]
                fn from(__command: #commands) -> Self {
                    #cmd::#variants(__command)
                }
            }
        )*

        #attrs
        impl #p::DecisionCommandSet for #cmd {
            type Decision = #self_ty;
            const NAMES: &'static [&'static str] =
                &[#(<#commands as #p::DecisionCommand>::NAME),*];

            fn from_json(__name: &str, __body: &str) -> #p::Result<Self, #p::DispatchError> {
                use #p::{DecodeUnsupported as _, DecodeViaSerde as _};
                #(
                    if __name == <#commands as #p::DecisionCommand>::NAME {
                        return (&&#p::JsonProbe::<#commands>::NEW)
                            .decode_command(<#commands as #p::DecisionCommand>::NAME, __body)
                            .map(#cmd::#variants);
                    }
                )*
                #p::Err(#p::DispatchError::UnknownCommand {
                    name: ::std::borrow::ToOwned::to_owned(__name),
                    known: <[&'static str]>::to_vec(<Self as #p::DecisionCommandSet>::NAMES),
                })
            }

            fn execute_on<__B: #p::DecisionBus>(
                self,
                __bus: &__B,
                __context: #p::CommandContext,
            ) -> impl #p::Future<Output = #p::Result<#p::CommandOutcome, #p::DispatchError>>
                   + ::core::marker::Send {
                async move {
                    match self {
                        #(#cmd::#variants(__command) =>
                            #p::execute_decision_routed(__bus, __command, __context).await,)*
                    }
                }
            }
        }
    };
    for handler in handlers {
        out.extend(decides_impl(def, handler));
    }
    out.extend(registration(def));
    out
}

/// The catalog's registration: the commands, the states of every handler (each state type
/// once) and the events the handlers' return types name. Each state and event is spanned like
/// the checks that name it, so a type that is not one reports once.
fn registration(def: &DecisionDef) -> TokenStream {
    let p = private(&def.krate);
    let DecisionDef {
        self_ty,
        ident,
        command_enum: cmd,
        handlers,
        ..
    } = def;
    let mut seen = Vec::new();
    let mut states = Vec::new();
    let mut emits = Vec::new();
    for handler in handlers.iter().filter(|h| h.state == State::Wired) {
        for state in &handler.states {
            let ty = &state.ty;
            if seen.contains(&display(ty)) {
                continue;
            }
            seen.push(display(ty));
            states.push(respan(
                quote! {
                    #p::DecisionStateInfo {
                        name: <#ty as #p::DecisionState>::STATE_NAME,
                        tags: <#ty as #p::DecisionState>::TAG_KEYS,
                        events: <#ty as #p::DecisionState>::EVENT_NAMES,
                    }
                },
                ty.span(),
            ));
        }
        if let Some(returns) = &handler.returns {
            let mut emitted = Vec::new();
            emitted_types(&returns.ok, &mut emitted);
            for e in emitted {
                let event = &e.event;
                emits.push(respan(quote!(<#event as #p::Event>::NAME), event.span()));
            }
        }
    }
    let type_name = super::type_name(ident);
    quote! {
        const _: () = {
            #p::inventory::submit! {
                #p::DecisionRegistration {
                    name: <#self_ty as #p::Decision>::NAME,
                    type_name: #type_name,
                    commands: <#cmd as #p::DecisionCommandSet>::NAMES,
                    states: &[#(#states),*],
                    emits: &[#(#emits),*],
                }
            }
        };
    }
}

/// `impl Decides<C>` for one handler, and its checks.
fn decides_impl(def: &DecisionDef, handler: &DecisionHandler) -> TokenStream {
    let p = private(&def.krate);
    let attrs = impl_attrs();
    let self_ty = &def.self_ty;
    let command = &handler.command;
    let method = &handler.method;
    let error = match handler.returns.as_ref().and_then(|r| r.error.as_ref()) {
        Some(error) => quote!(#error),
        None => quote!(::core::convert::Infallible),
    };
    let states: Vec<_> = handler.states.iter().map(|s| &s.ty).collect();
    let items = handler.states.iter().map(|state| {
        let ty = &state.ty;
        let bound = bindings(state);
        quote! {{
            const __K: usize = <#ty as #p::DecisionState>::TAG_KEYS.len();
            const __F: [usize; __K] = #p::key_fields::<__K>(
                <#ty as #p::DecisionState>::TAG_KEYS,
                <#command as #p::DecisionCommand>::TAG_FIELDS,
                &[#(#bound),*],
            );
            let mut __tags = #p::Vec::with_capacity(__K);
            let mut __k = 0;
            while __k < __K {
                __tags.push(#p::command_tag(
                    __command,
                    <#ty as #p::DecisionState>::TAG_KEYS[__k],
                    __F[__k],
                )?);
                __k += 1;
            }
            __items.push(<#ty as #p::DecisionState>::query_item(__tags));
        }}
    });
    let slots = (0..states.len()).map(syn::Index::from);
    let body = match (&handler.state, &handler.returns) {
        (State::Wired, Some(returns)) => {
            let ok_type = &returns.ok;
            let spanned_p = respan(p.clone(), ok_type.span());
            let into = quote::quote_spanned! {ok_type.span()=>
                <#ok_type as #spanned_p::IntoEmits>::into_emits
            };
            let call = quote!(Self::#method(__command #(, &__states.#slots)*));
            let collect = |value: TokenStream| {
                quote!({
                    let mut __emits = #p::Emits::new();
                    #into(#value, &mut __emits);
                    #p::Ok(__emits)
                })
            };
            if returns.error.is_some() {
                let ok = collect(quote!(__ok));
                quote! {
                    match #call {
                        #p::Ok(__ok) => #ok,
                        #p::Err(__rejection) => #p::Err(__rejection),
                    }
                }
            } else {
                collect(call)
            }
        }
        _ => quote!(::core::unimplemented!("this `#[handle]` method has errors")),
    };
    let mut checks = TokenStream::new();
    if handler.state == State::Wired {
        for state in &handler.states {
            checks.extend(tag_checks(&p, command, state));
        }
        if let Some(returns) = &handler.returns {
            checks.extend(read_back_checks(&p, handler, &returns.ok));
        }
    }
    let target = respan(
        quote!(const _: fn() = #p::decision_target::<#command, #self_ty>;),
        command.span(),
    );
    quote! {
        #attrs
        impl #p::Decides<#command> for #self_ty {
            type Error = #error;
            type States = (#(#states,)*);

            fn query_items(
                __command: &#command,
            ) -> #p::Result<#p::Vec<#p::QueryItem>, #p::TagError> {
                let mut __items = #p::Vec::new();
                #(#items)*
                #p::Ok(__items)
            }

            fn decide(
                __command: &#command,
                __states: &Self::States,
            ) -> #p::Result<#p::Emits, Self::Error> {
                #body
            }
        }

        #target
        #checks
    }
}

/// `("key", "field")` for each `#[tags(key = field)]` of a state parameter.
fn bindings(state: &decision::StateParam) -> Vec<TokenStream> {
    state
        .bindings
        .iter()
        .map(|(key, field)| {
            let field = plain(field);
            quote!((#key, #field))
        })
        .collect()
}

/// Check 2: the command fills each of the state's tags with a `#[tag]` field (the one named
/// by `#[tags(…)]`, or its one field with that key) of the type the state's events give it.
fn tag_checks(p: &TokenStream, command: &syn::Type, state: &decision::StateParam) -> TokenStream {
    let ty = &state.ty;
    let (c, s) = (display(command), display(ty));
    let bound = bindings(state);
    let unknown = fail_if(
        p,
        quote!(!__UNKNOWN.is_empty()),
        &[
            quote!("`"),
            quote!(#c),
            quote!("` has no `#[tag]` field `"),
            quote!(__UNKNOWN),
            quote!("`: `#[tags(…)]` names one of the command's `#[tag]` fields"),
        ],
    );
    let missing = fail_if(
        p,
        quote!(__UNKNOWN.is_empty() && !__MISSING.is_empty()),
        &[
            quote!("`"),
            quote!(#s),
            quote!("` is read by the tag `"),
            quote!(__MISSING),
            quote!("`, but `"),
            quote!(#c),
            quote!("` has no `#[tag]` field with that key, or several: add `#[tag] "),
            quote!(__MISSING),
            quote!(": …` to `"),
            quote!(#c),
            quote!("`, or say which field with `#[tags("),
            quote!(__MISSING),
            quote!(" = field)]` on this parameter"),
        ],
    );
    let wrong = fail_if(
        p,
        quote!(__WRONG.0 != usize::MAX),
        &[
            quote!("the `#[tag]` field `"),
            quote!(#p::field_at(__FIELDS, __WRONG.1)),
            quote!("` of `"),
            quote!(#c),
            quote!("` is `"),
            quote!(#p::type_at(__FIELDS, __WRONG.1)),
            quote!("`, but the events of `"),
            quote!(#s),
            quote!("` tag `"),
            quote!(#p::str_at(__KEYS, __WRONG.0)),
            quote!("` with `"),
            quote!(#p::str_at(__TYPES, __WRONG.0)),
            quote!("`: give the field the events' type"),
        ],
    );
    respan(
        quote! {
            const _: () = {
                const __KEYS: &[&str] = <#ty as #p::DecisionState>::TAG_KEYS;
                const __TYPES: &[&str] = <#ty as #p::DecisionState>::TAG_TYPES;
                const __FIELDS: &[#p::TagField] = <#command as #p::DecisionCommand>::TAG_FIELDS;
                const __BOUND: &[(&str, &str)] = &[#(#bound),*];
                const __UNKNOWN: &str = #p::unknown_bound_field(__FIELDS, __BOUND);
                const __MISSING: &str = #p::unfilled_key(__KEYS, __FIELDS, __BOUND);
                const __WRONG: (usize, usize) =
                    #p::mistyped_key(__KEYS, __TYPES, __FIELDS, __BOUND);
                #unknown
                #missing
                #wrong
            };
        },
        ty.span(),
    )
}

/// Check 3: every event type the handler emits is read back by one of its states (the state
/// folds the type, and the event carries every tag the state is read by), so the decision sees
/// its own effect the next time it runs.
fn read_back_checks(p: &TokenStream, handler: &DecisionHandler, ok: &syn::Type) -> TokenStream {
    let mut emitted = Vec::new();
    emitted_types(ok, &mut emitted);
    let states: Vec<_> = handler.states.iter().map(|s| &s.ty).collect();
    let method = handler.method.to_string();
    let mut out = TokenStream::new();
    for e in &emitted {
        let event = &e.event;
        let shown = display(event);
        let id_tag = match &e.aggregate {
            Some(a) => quote!(<#a as #p::Aggregate>::ID_TAG),
            None => quote!(::core::option::Option::None),
        };
        let fail = fail_if(
            p,
            quote!(!__READ),
            &[
                quote!("`"),
                quote!(#method),
                quote!("` emits `"),
                quote!(#shown),
                quote!(
                    "`, which none of its states reads back (a state reads an event when it folds its type and the event carries every tag the state is read by): the decision could not see its own effect; fold `"
                ),
                quote!(#shown),
                quote!("` in one of the handler's states, or give it the tags they are read by"),
            ],
        );
        out.extend(respan(
            quote! {
                const _: () = {
                    const __READ: bool = #p::read_back(
                        <#event as #p::Event>::NAME,
                        <#event as #p::Event>::TAG_FIELDS,
                        #id_tag,
                        &[#((
                            <#states as #p::DecisionState>::EVENT_NAMES,
                            <#states as #p::DecisionState>::TAG_KEYS,
                        )),*],
                    );
                    #fail
                };
            },
            event.span(),
        ));
    }
    out
}

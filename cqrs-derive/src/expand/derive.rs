//! `#[derive(Event)]`, `#[derive(Command)]` and `#[derive(Query)]`.
//!
//! The registrations carry what the catalog needs from each site: an event's schema probe, a
//! command's schema probe and target aggregate, a query's route probe (which projection answers
//! it).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::LitInt;
use syn::spanned::Spanned;

use super::{impl_attrs, private, respan, type_name};
use crate::ctxt::Ctxt;
use crate::model::derive::{
    self, CommandDef, DeriveInput, EventDef, QueryDef, TagFieldDef, UpcastDef,
};
use crate::naming::tag_type_text;

/// `impl Event` and its registration.
pub fn event(input: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::new();
    let def = derive::event(&mut cx, input);
    let mut out = cx.into_compile_errors();
    if let Some(def) = def {
        out.extend(event_impl(&def));
    }
    out
}

fn event_impl(def: &EventDef) -> TokenStream {
    let EventDef {
        krate,
        ident,
        name,
        version,
        version_span,
        upcasts,
        tags,
    } = def;
    let p = private(krate);
    let attrs = impl_attrs();
    let version = LitInt::new(&format!("{version}u32"), *version_span);
    let type_name = type_name(ident);
    let upcast = upcast_fn(&p, upcasts);
    let schema = schema_fn(&p, &quote!(#ident));
    let tagging = event_tags(&p, tags);
    quote! {
        #attrs
        impl #p::Event for #ident {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            #tagging
            #upcast
        }

        #p::inventory::submit! {
            #p::EventRegistration {
                name: <#ident as #p::Event>::NAME,
                version: <#ident as #p::Event>::VERSION,
                type_name: #type_name,
                schema: #schema,
                decode: #p::event_json::<#ident>,
            }
        }
    }
}

/// `const TAG_FIELDS` describing `tags`.
pub fn tag_fields_const(p: &TokenStream, tags: &[TagFieldDef]) -> TokenStream {
    let fields = tags.iter().map(|t| {
        let key = &t.key;
        let field = crate::naming::plain(&t.member);
        let ty = tag_type_text(&t.ty);
        quote!(#p::TagField { key: #key, field: #field, ty: #ty })
    });
    quote! {
        const TAG_FIELDS: &'static [#p::TagField] = &[#(#fields),*];
    }
}

/// `TAG_FIELDS` and `tags()` of an event with `#[tag]` fields (nothing without: the trait's
/// defaults say "no tags" at no cost). Each value's conversion is spanned on its field's type,
/// so a type without `TagValue` is reported there. A struct whose tags are all plain values
/// builds them in one array; `Option` fields (no tag when `None`) and an enum's variants
/// (the tags of the variant it is) push them one by one.
fn event_tags(p: &TokenStream, tags: &[TagFieldDef]) -> TokenStream {
    if tags.is_empty() {
        return TokenStream::new();
    }
    let fields = tag_fields_const(p, tags);
    let tag = |t: &TagFieldDef, value: TokenStream| {
        let key = &t.key;
        respan(quote!(#p::field_tag(#key, #value)), t.ty.span())
    };
    let simple = tags.iter().all(|t| !t.optional && t.variant.is_none());
    let body = if simple {
        let values = tags.iter().map(|t| {
            let member = &t.member;
            let tag = tag(t, quote!(&self.#member));
            quote!(#tag?)
        });
        quote!(#p::Ok(#p::Tags::new([#(#values),*])))
    } else {
        // `__value` is a reference to the field's value (to the `T` of an `Option<T>`).
        let push = |t: &TagFieldDef, field: TokenStream| {
            let tag = tag(t, quote!(__value));
            if t.optional {
                quote! {
                    if let ::core::option::Option::Some(__value) = #field {
                        __cqrs_tags.push(#tag?);
                    }
                }
            } else {
                quote! {{
                    let __value = #field;
                    __cqrs_tags.push(#tag?);
                }}
            }
        };
        let of_struct = tags.iter().filter(|t| t.variant.is_none()).map(|t| {
            let member = &t.member;
            push(t, quote!(&self.#member))
        });
        let mut variants: Vec<&syn::Ident> = Vec::new();
        for v in tags.iter().filter_map(|t| t.variant.as_ref()) {
            if !variants.contains(&v) {
                variants.push(v);
            }
        }
        let arms = variants.iter().map(|v| {
            let of_variant: Vec<_> = tags
                .iter()
                .filter(|t| t.variant.as_ref() == Some(*v))
                .collect();
            let members = of_variant.iter().map(|t| &t.member);
            let pushes = of_variant.iter().map(|t| {
                let member = &t.member;
                push(t, quote!(#member))
            });
            quote!(Self::#v { #(#members,)* .. } => { #(#pushes)* })
        });
        let by_variant = if variants.is_empty() {
            TokenStream::new()
        } else {
            quote! {
                #[allow(unreachable_patterns)]
                match self {
                    #(#arms)*
                    _ => {}
                }
            }
        };
        quote! {
            let mut __cqrs_tags = #p::Vec::new();
            #(#of_struct)*
            #by_variant
            #p::Ok(#p::Tags::new(__cqrs_tags))
        }
    };
    quote! {
        #fields

        fn tags(&self) -> #p::Result<#p::Tags, #p::TagError> {
            #body
        }
    }
}

/// The registered `SchemaFn` of `ty`: `__private::schema_fn!(ty)`, which the runtime defines
/// by its own features (with `schemars`, a local function asking the autoref probe for the
/// type's JSON Schema, for types that implement `JsonSchema`; without it, one shared function
/// that returns `None`). No `cfg` of the user's crate is involved, and without `schemars` no
/// function is generated per type.
fn schema_fn(p: &TokenStream, ty: &TokenStream) -> TokenStream {
    quote!(#p::schema_fn!(#ty))
}

/// `Event::upcast`: each step from the stored version on, in order. The call is spanned on
/// the user's `with = …` path, so a function of the wrong form is reported there.
fn upcast_fn(p: &TokenStream, upcasts: &[UpcastDef]) -> TokenStream {
    if upcasts.is_empty() {
        return TokenStream::new();
    }
    let steps = upcasts.iter().map(|UpcastDef { from, with }| {
        let from = LitInt::new(&format!("{from}u32"), Span::call_site());
        let step = respan(quote!(#p::upcast(#with, #from, __payload)), with.span());
        quote! {
            if __from <= #from {
                __payload = #step?;
            }
        }
    });
    quote! {
        #[inline(never)]
        fn upcast(
            __from: u32,
            mut __payload: #p::serde_json::Value,
        ) -> #p::Result<#p::serde_json::Value, #p::DecodeFailure> {
            #(#steps)*
            #p::Ok(__payload)
        }
    }
}

/// `impl Command`.
pub fn command(input: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::new();
    let def = derive::command(&mut cx, input);
    let mut out = cx.into_compile_errors();
    if let Some(def) = def {
        out.extend(command_impl(&def));
    }
    out
}

fn command_impl(def: &CommandDef) -> TokenStream {
    if let Some(decision) = &def.decision {
        return decision_command_impl(def, decision);
    }
    let CommandDef {
        krate,
        ident,
        aggregate,
        name,
        id,
        ..
    } = def;
    let p = private(krate);
    let attrs = impl_attrs();
    // A type mismatch between the field and the aggregate's `Id` points at the field.
    let body = match id {
        Some((member, span)) => quote_spanned!(*span=> &self.#member),
        None => quote!(::core::unimplemented!("this command has no `#[id]` field")),
    };
    let type_name = type_name(ident);
    let schema = schema_fn(&p, &quote!(#ident));
    quote! {
        #attrs
        impl #p::Command for #ident {
            type Aggregate = #aggregate;
            const NAME: &'static str = #name;

            #[inline]
            fn aggregate_id(&self) -> &<<Self as #p::Command>::Aggregate as #p::Aggregate>::Id {
                #body
            }
        }

        #p::inventory::submit! {
            #p::CommandRegistration {
                name: <#ident as #p::Command>::NAME,
                type_name: #type_name,
                aggregate: <<#ident as #p::Command>::Aggregate as #p::Aggregate>::NAME,
                schema: #schema,
            }
        }
    }
}

/// `impl DecisionCommand`, `impl Execute` and `impl Issuable` (a process manager may issue it)
/// for a decision's command, and its registration.
fn decision_command_impl(def: &CommandDef, decision: &syn::Type) -> TokenStream {
    let CommandDef {
        krate,
        ident,
        name,
        tags,
        ..
    } = def;
    let p = private(krate);
    let attrs = impl_attrs();
    let fields = tag_fields_const(&p, tags);
    let arms = tags.iter().enumerate().map(|(i, t)| {
        let member = &t.member;
        // An `Option` field is an error already (one error for one mistake).
        let text = if t.optional {
            quote!(::std::string::String::new())
        } else {
            respan(quote!(#p::tag_text(&self.#member)), t.ty.span())
        };
        quote!(#i => #text,)
    });
    // A decision without a handler for this command fails here, once, on `decision = …`.
    let error = respan(
        quote!(<#decision as #p::Decides<#ident>>::Error),
        decision.span(),
    );
    let type_name = type_name(ident);
    let schema = schema_fn(&p, &quote!(#ident));
    quote! {
        #attrs
        impl #p::DecisionCommand for #ident {
            type Decision = #decision;
            const NAME: &'static str = #name;
            #fields

            fn tag_value(&self, __index: usize) -> ::std::string::String {
                match __index {
                    #(#arms)*
                    _ => ::std::string::String::new(),
                }
            }
        }

        #attrs
        impl #p::Execute for #ident {
            type Error = #error;

            #[inline]
            fn __execute<__S: #p::EventStore>(
                self,
                __app: &#p::Cqrs<__S>,
                __context: #p::CommandContext,
            ) -> #p::CommandFuture<'_, Self::Error> {
                __app.__execute_decision(self, __context)
            }
        }

        #attrs
        impl #p::Issuable for #ident {
            const NAME: &'static str = <#ident as #p::DecisionCommand>::NAME;

            fn __route<__S: #p::EventStore>(
                __router: &mut #p::Router<__S>,
            ) -> #p::Result<(), #p::DispatchError> {
                __router.__ensure_decision::<#decision>()
            }
        }

        #p::inventory::submit! {
            #p::CommandRegistration {
                name: <#ident as #p::DecisionCommand>::NAME,
                type_name: #type_name,
                aggregate: <#decision as #p::Decision>::NAME,
                schema: #schema,
            }
        }
    }
}

/// `impl Query`.
pub fn query(input: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::new();
    let def = derive::query(&mut cx, input);
    let mut out = cx.into_compile_errors();
    if let Some(def) = def {
        out.extend(query_impl(def));
    }
    out
}

fn query_impl(def: QueryDef) -> TokenStream {
    let QueryDef {
        krate,
        ident,
        mut generics,
        response,
        response_text,
    } = def;
    let p = private(&krate);
    let attrs = impl_attrs();
    // A query crosses tasks: its type parameters must be `Send + Sync + 'static` too.
    let params: Vec<_> = generics.type_params().map(|t| t.ident.clone()).collect();
    if !params.is_empty() {
        let where_clause = generics.make_where_clause();
        for param in params {
            where_clause.predicates.push(syn::parse_quote!(
                #param: ::core::marker::Send + ::core::marker::Sync + 'static
            ));
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    // A generic query cannot be registered (a registration names one type); nor can one
    // without a response type (already an error).
    let registration = match response_text {
        Some(text) if generics.params.is_empty() => {
            let type_name = type_name(&ident);
            let schema = schema_fn(&p, &quote!(#ident));
            let response_schema = schema_fn(&p, &quote!(#response));
            quote! {
                const _: () = {
                    fn __projection() -> ::core::option::Option<&'static str> {
                        #[allow(unused_imports)]
                        use #p::{NoRoute as _, RouteViaProjection as _};
                        (&&#p::RouteProbe::<#ident>::new()).projection()
                    }
                    #p::inventory::submit! {
                        #p::QueryRegistration {
                            type_name: #type_name,
                            response: #text,
                            projection: __projection,
                            schema: #schema,
                            response_schema: #response_schema,
                        }
                    }
                };
            }
        }
        _ => TokenStream::new(),
    };
    quote! {
        #attrs
        impl #impl_generics #p::Query for #ident #ty_generics #where_clause {
            type Response = #response;
        }
        #registration
    }
}

//! `#[projection]`: `impl Projection` and one `impl RoutedQuery` per `#[query]` method, or
//! for a durable projection `impl DurableProjection<U>`; and the registration.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{ItemImpl, Type};

use super::{
    ImplBlockMacro, event_infos, expand_impl_block, impl_attrs, private, respan, type_name,
};
use crate::attr::ProjectionArgs;
use crate::check;
use crate::ctxt::Ctxt;
use crate::model::State;
use crate::model::projection::{self, EventHandler, ProjectionDef, QueryMethod, ResetMethod, Unit};

/// Expands `#[projection(args)] item`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    expand_impl_block::<ProjectionDef>(args, input)
}

impl ImplBlockMacro for ProjectionDef {
    const NOT_ON_IMPL: &'static str = "`#[projection]` goes on the impl block that holds a read model's event handlers: `#[projection] impl Balances { … }`";

    fn parse(cx: &mut Ctxt, args: TokenStream, item: &mut ItemImpl) -> Option<Self> {
        let args = ProjectionArgs::parse(cx, args);
        projection::parse(cx, args, item)
    }

    fn check(&mut self, cx: &mut Ctxt) {
        check::distinct_projection_events(cx, self);
        check::distinct_queries(cx, self);
        check::single_reset(cx, self);
        check::same_unit(cx, self);
    }

    fn marked(&self) -> &[usize] {
        &self.marked
    }

    fn methods(&self) -> Vec<(usize, State)> {
        let handlers = self.handlers.iter().map(|h| (h.index, h.state));
        let queries = self.queries.iter().map(|q| (q.index, q.state));
        let resets = self.resets.iter().map(|r| (r.index, r.state));
        handlers.chain(queries).chain(resets).collect()
    }

    fn generate(&self) -> TokenStream {
        generate(self)
    }
}

fn generate(def: &ProjectionDef) -> TokenStream {
    let p = private(&def.krate);
    let handlers: Vec<&EventHandler> = def
        .handlers
        .iter()
        .filter(|h| h.state == State::Wired)
        .collect();
    let (infos, names) = event_infos(&p, handlers.iter().map(|h| &h.event));
    let handled: Vec<Handled> = handlers
        .iter()
        .zip(&names)
        .map(|(&handler, info)| Handled { handler, info })
        .collect();
    let mut out = if def.durable {
        durable_impl(def, &handled)
    } else {
        projection_impl(def, &handled)
    };
    out.extend(registration(def, &names));
    let mut out = quote! {
        const _: () = {
            #infos
            #out
        };
    };
    if !def.durable {
        for query in def.queries.iter().filter(|q| q.state != State::Dropped) {
            out.extend(routed_query(def, query));
        }
    }
    out
}

/// A wired event handler and the name of its event type's `EventInfo` constant.
struct Handled<'a> {
    handler: &'a EventHandler,
    info: &'a syn::Ident,
}

/// `impl Projection`: `handle` tries each handled event type in order.
fn projection_impl(def: &ProjectionDef, handled: &[Handled]) -> TokenStream {
    let p = private(&def.krate);
    let attrs = impl_attrs();
    let ProjectionDef { self_ty, name, .. } = def;
    let infos: Vec<_> = handled.iter().map(|h| h.info).collect();
    let arms = handled.iter().map(|&Handled { handler: h, info }| {
        let method = &h.method;
        let meta = h.with_meta.then(|| quote!(, __event.meta()));
        // Fails with `ProjectionOutcome`'s message, on the return type, for other return types.
        let span = h
            .returns
            .as_ref()
            .map_or_else(|| method.span(), |r| r.span());
        let outcome = respan(
            quote!(#p::ProjectionOutcome::into_failure(Self::#method(self, &*__decoded #meta))),
            span,
        );
        quote! {
            match (#info.decode)(&__event) {
                #p::Ok(::core::option::Option::Some(__decoded)) => {
                    return match #outcome {
                        ::core::option::Option::None => #p::Ok(()),
                        ::core::option::Option::Some(__failure) => {
                            #p::Err(__event.error(<Self as #p::Projection>::NAME, __failure))
                        }
                    };
                }
                #p::Ok(::core::option::Option::None) => {}
                #p::Err(__failure) => {
                    return #p::Err(__event.error(
                        <Self as #p::Projection>::NAME,
                        #p::ProjectionFailure::Decode(__failure),
                    ));
                }
            }
        }
    });
    quote! {
        #attrs
        impl #p::Projection for #self_ty {
            const NAME: &'static str = #name;
            const EVENTS: &'static [&'static str] = &[#(#infos.name),*];

            fn handle(
                &mut self,
                __event: #p::EventRef<'_>,
            ) -> #p::Result<(), #p::ProjectionError> {
                #(#arms)*
                #p::Ok(())
            }
        }
    }
}

/// `impl DurableProjection<U>`, for the unit of work `U` its methods take, or for every `U`
/// when none takes one. `handle` decodes the event to an owned value first: an `EventRef`
/// is not `Send`, and the handler's future may hold the value across an `.await`.
fn durable_impl(def: &ProjectionDef, handled: &[Handled]) -> TokenStream {
    let p = private(&def.krate);
    let attrs = impl_attrs();
    let ProjectionDef { self_ty, name, .. } = def;
    // A unit that is not `Sync` fails the trait's bound: reported on the user's `&Unit`, as is
    // the `async` block that borrows it.
    let (generics, unit, span) = match def.unit() {
        // `db: &impl Sql`: written once for every unit of work with those bounds (each SQL
        // sink's transaction), so one projection runs under any of them.
        Some(Unit {
            ty: Type::ImplTrait(bounds),
            ..
        }) => {
            let bounds = &bounds.bounds;
            (
                quote!(<__U: #bounds + ::core::marker::Sync>),
                quote!(__U),
                bounds.span(),
            )
        }
        Some(unit) => {
            let ty = &unit.ty;
            (quote!(), quote!(#ty), ty.span())
        }
        None => (
            quote!(<__U: ?::core::marker::Sized + ::core::marker::Sync>),
            quote!(__U),
            Span::call_site(),
        ),
    };
    let trait_ref = respan(quote!(#p::DurableProjection<#unit>), span);
    let infos: Vec<_> = handled.iter().map(|h| h.info).collect();
    let arms = handled.iter().map(|&Handled { handler: h, info }| {
        let meta = h.with_meta.then(|| quote!(, &__event.meta));
        let unit = h.unit.is_some().then(|| quote!(, __unit));
        let call = user_call(&p, &h.method, h.is_async, quote!(&__decoded #meta #unit));
        let outcome = outcome(&p, &h.method, h.returns.as_ref(), quote!(__returned));
        quote! {
            match (#info.decode_stored)(#name, __event) {
                #p::Ok(::core::option::Option::Some(__decoded)) => {
                    let __returned = #call;
                    return #p::handled(#name, __event, #outcome);
                }
                #p::Ok(::core::option::Option::None) => {}
                #p::Err(__error) => return #p::Err(__error),
            }
        }
    });
    let reset = def
        .resets
        .iter()
        .find(|r| r.state == State::Wired)
        .map(|r| reset_fn(&p, &unit, r));
    let mut block = Group::new(Delimiter::Brace, quote!(#(#arms)* #p::Ok(())));
    block.set_span(span);
    let body = respan(quote!(async move), span);
    let body = quote!(#body #block);
    let returns = respan(
        quote!(impl #p::Future<Output = #p::Result<(), #p::ProjectionError>> + #p::Send + '__a),
        span,
    );
    quote! {
        #attrs
        impl #generics #trait_ref for #self_ty {
            const NAME: &'static str = #name;
            const EVENTS: &'static [&'static str] = &[#(#infos.name),*];

            fn handle<'__a>(
                &'__a mut self,
                __unit: &'__a #unit,
                __event: &'__a #p::RecordedEvent,
            ) -> #returns {
                #body
            }

            #reset
        }
    }
}

/// `DurableProjection::reset`, calling the `#[reset]` method.
fn reset_fn(p: &TokenStream, unit: &TokenStream, reset: &ResetMethod) -> TokenStream {
    let args = reset.unit.is_some().then(|| quote!(__unit));
    let call = user_call(p, &reset.method, reset.is_async, quote!(#args));
    let outcome = outcome(p, &reset.method, reset.returns.as_ref(), quote!(__returned));
    quote! {
        fn reset<'__a>(
            &'__a mut self,
            __unit: &'__a #unit,
        ) -> impl #p::Future<Output = #p::Result<(), #p::ProjectionFailure>> + #p::Send + '__a {
            async move {
                let __returned = #call;
                #p::reset_done(#outcome)
            }
        }
    }
}

/// `Self::method(self, args)`, awaited if the method is `async`. The future is checked to be
/// `Send` on the method's name (the call and its `.await`), so a handler holding a non-`Send`
/// value across an `.await` is reported once, there.
fn user_call(
    p: &TokenStream,
    method: &syn::Ident,
    is_async: bool,
    args: TokenStream,
) -> TokenStream {
    if is_async {
        respan(
            quote!(#p::send_handler(Self::#method(self, #args)).await),
            method.span(),
        )
    } else {
        quote!(Self::#method(self, #args))
    }
}

/// `ProjectionOutcome::into_failure(returned)`, spanned on the return type (or the method's
/// name), so an unsupported return type fails with `ProjectionOutcome`'s message there.
fn outcome(
    p: &TokenStream,
    method: &syn::Ident,
    returns: Option<&syn::Type>,
    returned: TokenStream,
) -> TokenStream {
    let span = returns.map_or_else(|| method.span(), |r| r.span());
    respan(quote!(#p::ProjectionOutcome::into_failure(#returned)), span)
}

/// `impl RoutedQuery` for one `#[query]` method.
fn routed_query(def: &ProjectionDef, query: &QueryMethod) -> TokenStream {
    let p = private(&def.krate);
    let attrs = impl_attrs();
    let self_ty = &def.self_ty;
    let QueryMethod {
        method,
        query: ty,
        returns,
        state,
        ..
    } = query;
    // The user's return type is the signature's: one that differs from the query's response
    // is reported on it ("expected `Option<u64>`, found `u64`").
    let answer = match (state, returns) {
        (State::Wired, Some(returns)) => quote! {
            fn answer(__projection: &#self_ty, __query: &#ty) -> #returns {
                <#self_ty>::#method(__projection, __query)
            }
        },
        _ => quote! {
            fn answer(__projection: &#self_ty, __query: &#ty) -> <#ty as #p::Query>::Response {
                ::core::unimplemented!("this `#[query]` method has errors")
            }
        },
    };
    quote! {
        #attrs
        impl #p::RoutedQuery for #ty {
            type Projection = #self_ty;
            #answer
        }
    }
}

/// The link-time registration, with a constructor unless `discover = false` or the projection
/// is durable (a runner, not the application, holds a durable projection).
fn registration(def: &ProjectionDef, infos: &[syn::Ident]) -> TokenStream {
    let p = private(&def.krate);
    let ProjectionDef { self_ty, ident, .. } = def;
    let type_name = type_name(ident);
    if def.durable {
        // Not through the trait's constants: naming `DurableProjection<U>` would repeat the
        // error of a unit that is not `Sync`.
        let name = &def.name;
        return quote! {
            const _: () = {
                #p::inventory::submit! {
                    #p::ProjectionRegistration {
                        name: #name,
                        type_name: #type_name,
                        events: &[#(#infos.name),*],
                        kind: #p::ProjectionKind::Durable,
                        create: ::core::option::Option::None,
                    }
                }
            };
        };
    }
    let create = if def.discover {
        // Fails with `DiscoverableProjection`'s message, on the type, without `Default`.
        respan(
            quote!(::core::option::Option::Some(<#self_ty as #p::DiscoverableProjection>::create)),
            self_ty.span(),
        )
    } else {
        quote!(::core::option::Option::None)
    };
    quote! {
        const _: () = {
            #p::inventory::submit! {
                #p::ProjectionRegistration {
                    name: <#self_ty as #p::Projection>::NAME,
                    type_name: #type_name,
                    events: <#self_ty as #p::Projection>::EVENTS,
                    kind: #p::ProjectionKind::InMemory,
                    create: #create,
                }
            }
        };
    }
}

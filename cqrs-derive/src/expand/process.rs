//! `#[process_manager]`: `impl ProcessManager` (handlers chosen by the stored event name, the
//! `#[on_rejected]` compensation) and the registration.
//!
//! A process manager is registered twice: as a durable projection (so the runner's listing and the
//! name check see it) and as a process manager, with the commands declared in `issues = [...]`, for
//! the catalog.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemImpl;
use syn::spanned::Spanned;

use super::{
    ImplBlockMacro, event_infos, expand_impl_block, impl_attrs, private, respan, type_name,
};
use crate::attr::ProcessManagerArgs;
use crate::check;
use crate::ctxt::Ctxt;
use crate::model::State;
use crate::model::process::{self, Compensation, EventHandler, ProcessDef};

/// Expands `#[process_manager(args)] item`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    expand_impl_block::<ProcessDef>(args, input)
}

impl ImplBlockMacro for ProcessDef {
    const NOT_ON_IMPL: &'static str = "`#[process_manager]` goes on the impl block that holds a process manager's event handlers: `#[process_manager] impl Transfer { … }`";

    fn parse(cx: &mut Ctxt, args: TokenStream, item: &mut ItemImpl) -> Option<Self> {
        let args = ProcessManagerArgs::parse(cx, args);
        process::parse(cx, args, item)
    }

    fn check(&mut self, cx: &mut Ctxt) {
        check::distinct_process_events(cx, self);
        check::single_on_rejected(cx, self);
    }

    fn marked(&self) -> &[usize] {
        &self.marked
    }

    fn methods(&self) -> Vec<(usize, State)> {
        let handlers = self.handlers.iter().map(|h| (h.index, h.state));
        let compensations = self.compensations.iter().map(|c| (c.index, c.state));
        handlers.chain(compensations).collect()
    }

    fn generate(&self) -> TokenStream {
        let p = private(&self.krate);
        let (infos, names) = event_infos(&p, wired(self).into_iter().map(|h| &h.event));
        let issues = issues(self);
        let process = process_impl(self, &names);
        let registration = registration(self, &names);
        quote! {
            const _: () = {
                #infos
                #issues
                #process
                #registration
            };
        }
    }
}

fn wired(def: &ProcessDef) -> Vec<&EventHandler> {
    def.handlers
        .iter()
        .filter(|h| h.state == State::Wired)
        .collect()
}

/// `__ISSUES`: the names of the commands declared with `issues = [A, B]` (each checked to be a
/// command an aggregate or a decision handles, on the user's type), or `None`. The trait's
/// `ISSUES` and the registration both use it, so a type that is not a command is reported once.
fn issues(def: &ProcessDef) -> TokenStream {
    let p = private(&def.krate);
    let value = match &def.issues {
        Some(types) => {
            let names = types
                .iter()
                .map(|ty| respan(quote!(<#ty as #p::Issuable>::NAME), ty.span()));
            quote!(::core::option::Option::Some(&[#(#names),*]))
        }
        None => quote!(::core::option::Option::None),
    };
    quote! {
        const __ISSUES: ::core::option::Option<&'static [&'static str]> = #value;
    }
}

/// `impl ProcessManager`: `handle` picks the handler by the stored event name, decodes the
/// payload (upcasting older versions) and turns what the handler returned into issues.
fn process_impl(def: &ProcessDef, infos: &[syn::Ident]) -> TokenStream {
    let p = private(&def.krate);
    let attrs = impl_attrs();
    let ProcessDef { self_ty, name, .. } = def;
    let handlers = wired(def);
    let arms = handlers.iter().zip(infos).map(|(h, info)| {
        let event = &h.event;
        let method = &h.method;
        let meta = h.with_meta.then(|| quote!(, &__event.meta));
        // An unsupported return type fails with `ProcessOutcome`'s message, on the return type.
        let span = h
            .returns
            .as_ref()
            .map_or_else(|| method.span(), |r| r.span());
        let outcome = respan(quote!(#p::ProcessOutcome::into_outcome(__returned)), span);
        quote! {
            if __name == #info.name {
                let __decoded: #event = match (#info.decode_process)(__event) {
                    #p::Ok(__decoded) => __decoded,
                    #p::Err(__failure) => return #p::Err(__failure),
                };
                let __returned = Self::#method(self, &__decoded #meta);
                return #outcome;
            }
        }
    });
    let on_rejected = def
        .compensations
        .iter()
        .find(|c| c.state == State::Wired)
        .map(|c| on_rejected(&p, c));
    // The sink routes the aggregate or decision of each declared command (spanned like
    // `__ISSUES`, so a type that is not a command gives one error, not two).
    let routes = def.issues.iter().flatten().map(|ty| {
        respan(
            quote!(<#ty as #p::Issuable>::__route(__router)?;),
            ty.span(),
        )
    });
    // A state type without a supertrait (`Default`, `Serialize`, …) fails on the user's type.
    let trait_ref = respan(quote!(#p::ProcessManager), self_ty.span());
    quote! {
        #attrs
        impl #trait_ref for #self_ty {
            const NAME: &'static str = #name;
            const EVENTS: &'static [&'static str] = &[#(#infos.name),*];
            const ISSUES: ::core::option::Option<&'static [&'static str]> = __ISSUES;

            fn handle(
                &mut self,
                __event: &#p::RecordedEvent,
            ) -> #p::Result<#p::Vec<#p::Issue>, #p::ProjectionFailure> {
                let __name: &str = &__event.meta.event_name;
                #(#arms)*
                #p::Ok(#p::Vec::new())
            }

            fn __route_issues<__S: #p::EventStore>(
                __router: &mut #p::Router<__S>,
            ) -> #p::Result<(), #p::DispatchError> {
                let _ = &__router;
                #(#routes)*
                #p::Ok(())
            }

            #on_rejected
        }
    }
}

/// `ProcessManager::on_rejected`, calling the `#[on_rejected]` method. The rejection is passed
/// on the user's parameter type, so a parameter of another type is reported there.
fn on_rejected(p: &TokenStream, compensation: &Compensation) -> TokenStream {
    let method = &compensation.method;
    let argument = match &compensation.param {
        Some(param) => respan(quote!(__rejection), param.span()),
        None => quote!(__rejection),
    };
    let span = compensation
        .returns
        .as_ref()
        .map_or_else(|| method.span(), |r| r.span());
    let outcome = respan(
        quote!(#p::Compensation::into_compensation(__returned)),
        span,
    );
    quote! {
        fn on_rejected(&mut self, __rejection: &#p::Rejection) -> #p::Vec<#p::Issue> {
            let __returned = Self::#method(self, #argument);
            #outcome
        }
    }
}

/// The link-time registration. A process manager runs from a stored checkpoint under its name,
/// like a durable projection: it is listed as one (with its checkpoint and lag), and the
/// start-up checks refuse a projection of the same name (they would share the checkpoint).
/// Not through the trait's constants, so a state type that misses a supertrait is reported
/// once, on the impl.
fn registration(def: &ProcessDef, infos: &[syn::Ident]) -> TokenStream {
    let p = private(&def.krate);
    let name = &def.name;
    let type_name = type_name(&def.ident);
    quote! {
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
            #p::inventory::submit! {
                #p::ProcessManagerRegistration {
                    name: #name,
                    type_name: #type_name,
                    events: &[#(#infos.name),*],
                    issues: __ISSUES,
                }
            }
        };
    }
}

//! Procedural macros of the cqrs framework. Use them through `cqrs_core` (feature `derive`).
use proc_macro::TokenStream;

/// Stub.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
/// Stub.
#[proc_macro_derive(Command, attributes(command, id))]
pub fn derive_command(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
/// Stub.
#[proc_macro_derive(Query, attributes(query))]
pub fn derive_query(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
/// Stub.
#[proc_macro_attribute]
pub fn aggregate(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
/// Stub.
#[proc_macro_attribute]
pub fn projection(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}

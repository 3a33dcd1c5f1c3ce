//! Autoref probes the derives call from their registrations (re-exported by `__private`; not
//! public API). Each picks a branch at the user's derive, where the type is concrete:
//! `(&&Probe::<T>::new()).method()` resolves to the impl on `&Probe<T>` when its bound holds,
//! and to the fallback on `Probe<T>` otherwise. No bound reaches the user's type, so a probe
//! never adds a compile error.
//!
//! Schemas go through such a probe in `eventweave-core`, not a `cfg` in the user's crate. The
//! derives always emit `__private::schema_fn!(T)`, a `macro_rules!` that `eventweave-core`
//! defines from its own `schemars` feature: with it, a function calling
//! `(&&SchemaProbe::<T>::new()).json_schema()`, whose branch calling `schemars` applies only to
//! `T: JsonSchema`; without it, one shared function that finds no schema. A `#[cfg(feature = "schemars")]` emitted by the derive would test the *user's*
//! crate's features (which need not exist, and warn as unknown cfgs), and a `T: JsonSchema` bound
//! would break every crate whose types lack the derive as soon as some other crate in the tree
//! turned the feature on. The probe adds no bound, so feature unification can only turn schemas on.
//! The price: a schema is found only for a type whose `JsonSchema` impl is visible at its derive
//! (derived on it, or schemars' own impls), and only from schemars 1 (re-exported as
//! `eventweave_core::schemars` so versions agree). The registry stores `fn() ->
//! Option<serde_json::Value>`, so it does not name schemars either.

use std::marker::PhantomData;

use crate::projection::Projection;
use crate::query::RoutedQuery;

/// Probes whether `T` has a JSON Schema (see [`SchemaFn`](crate::registry::SchemaFn)).
pub struct SchemaProbe<T>(PhantomData<T>);

impl<T> SchemaProbe<T> {
    /// A probe for `T`.
    pub const fn new() -> Self {
        SchemaProbe(PhantomData)
    }
}

impl<T> Default for SchemaProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The branch taken when the runtime has its `schemars` feature and `T: JsonSchema`.
pub trait SchemaViaSchemars {
    /// `T`'s JSON Schema.
    fn json_schema(&self) -> Option<serde_json::Value>;
}

#[cfg(feature = "schemars")]
impl<T: schemars::JsonSchema> SchemaViaSchemars for &SchemaProbe<T> {
    fn json_schema(&self) -> Option<serde_json::Value> {
        Some(
            schemars::SchemaGenerator::default()
                .into_root_schema_for::<T>()
                .to_value(),
        )
    }
}

/// The branch taken otherwise.
pub trait NoSchema {
    /// `None`.
    fn json_schema(&self) -> Option<serde_json::Value>;
}

impl<T> NoSchema for SchemaProbe<T> {
    fn json_schema(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Probes which projection answers query `Q` (a `#[query]` method implements `RoutedQuery`
/// for it, in the same crate: the orphan rule leaves no other place).
pub struct RouteProbe<Q>(PhantomData<Q>);

impl<Q> RouteProbe<Q> {
    /// A probe for `Q`.
    pub const fn new() -> Self {
        RouteProbe(PhantomData)
    }
}

impl<Q> Default for RouteProbe<Q> {
    fn default() -> Self {
        Self::new()
    }
}

/// The branch taken when a projection answers `Q`.
pub trait RouteViaProjection {
    /// The projection's name.
    fn projection(&self) -> Option<&'static str>;
}

impl<Q: RoutedQuery> RouteViaProjection for &RouteProbe<Q> {
    fn projection(&self) -> Option<&'static str> {
        Some(<Q::Projection as Projection>::NAME)
    }
}

/// The branch taken when none does.
pub trait NoRoute {
    /// `None`.
    fn projection(&self) -> Option<&'static str>;
}

impl<Q> NoRoute for RouteProbe<Q> {
    fn projection(&self) -> Option<&'static str> {
        None
    }
}

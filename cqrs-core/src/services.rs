//! Services that handlers take by reference (`limits: &Limits`), registered once with
//! `CqrsBuilder::service` and looked up by type.
//!
//! A missing service is a typed `MissingService` error at run time. A compile-time alternative,
//! threading an HList of services through the builder's type, was judged too heavy for users' type
//! errors.

use crate::FastMap;
use std::any::{Any, TypeId};
use std::fmt;

/// A type-keyed set of shared services.
#[derive(Default)]
pub struct Services {
    by_type: FastMap<TypeId, (&'static str, Box<dyn Any + Send + Sync>)>,
}

impl Services {
    /// No services.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the service of type `T`.
    pub fn insert<T: Send + Sync + 'static>(&mut self, service: T) -> &mut Self {
        self.by_type.insert(
            TypeId::of::<T>(),
            (std::any::type_name::<T>(), Box::new(service)),
        );
        self
    }

    /// The service of type `T`, if registered.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.by_type
            .get(&TypeId::of::<T>())
            .and_then(|(_, s)| s.downcast_ref::<T>())
    }

    /// Whether no service is registered.
    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.by_type.values().map(|(name, _)| name))
            .finish()
    }
}

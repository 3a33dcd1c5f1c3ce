//! [`forward_event_store!`](crate::forward_event_store): the delegating methods of a store
//! wrapper, so a wrapper that changes one behaviour (counts or times calls, injects faults in a
//! test, holds an append) writes only the methods it changes.

/// Writes, inside an `impl EventStore for Wrapper` block, the listed [`EventStore`] methods as
/// calls of the same method on one field of the wrapper.
///
/// Methods not listed and not written by hand keep the trait's provided bodies, which for the
/// provided methods (`read_event`, the snapshots, `read_query`, `append_conditional`) is
/// rarely what a wrapper of a real store wants: list every method the wrapped store implements
/// that the wrapper does not change.
///
/// ```
/// use eventweave_core::{EventStore, MemoryStore, StoreError};
///
/// /// A store that cannot tell its head; everything else goes to the memory store.
/// #[derive(Clone)]
/// struct NoHead {
///     inner: MemoryStore,
/// }
///
/// impl EventStore for NoHead {
///     eventweave_core::forward_event_store!(inner: append, read_stream, read_all,
///         read_event, wait_for_events, read_query, append_conditional);
///
///     async fn head(&self) -> Result<eventweave_core::Position, StoreError> {
///         Err(StoreError::Unsupported { operation: "head" })
///     }
/// }
/// ```
///
/// [`EventStore`]: crate::EventStore
#[macro_export]
macro_rules! forward_event_store {
    ($field:tt : $($method:ident),+ $(,)?) => {
        $( $crate::forward_event_store!(@method $field $method); )+
    };
    (@method $f:tt append) => {
        async fn append(
            &self,
            stream: &$crate::StreamId,
            expected: $crate::ExpectedVersion,
            events: ::std::vec::Vec<$crate::NewEvent>,
        ) -> ::std::result::Result<::std::vec::Vec<$crate::RecordedEvent>, $crate::StoreError> {
            $crate::EventStore::append(&self.$f, stream, expected, events).await
        }
    };
    (@method $f:tt read_stream) => {
        async fn read_stream(
            &self,
            stream: &$crate::StreamId,
            from_version: u64,
            limit: usize,
        ) -> ::std::result::Result<::std::vec::Vec<$crate::RecordedEvent>, $crate::StoreError> {
            $crate::EventStore::read_stream(&self.$f, stream, from_version, limit).await
        }
    };
    (@method $f:tt read_all) => {
        async fn read_all(
            &self,
            from: $crate::Position,
            limit: usize,
        ) -> ::std::result::Result<::std::vec::Vec<$crate::RecordedEvent>, $crate::StoreError> {
            $crate::EventStore::read_all(&self.$f, from, limit).await
        }
    };
    (@method $f:tt head) => {
        async fn head(&self) -> ::std::result::Result<$crate::Position, $crate::StoreError> {
            $crate::EventStore::head(&self.$f).await
        }
    };
    (@method $f:tt read_event) => {
        async fn read_event(
            &self,
            event_id: $crate::Uuid,
        ) -> ::std::result::Result<::std::option::Option<$crate::RecordedEvent>, $crate::StoreError>
        {
            $crate::EventStore::read_event(&self.$f, event_id).await
        }
    };
    (@method $f:tt wait_for_events) => {
        async fn wait_for_events(&self, after: $crate::Position) {
            $crate::EventStore::wait_for_events(&self.$f, after).await
        }
    };
    (@method $f:tt load_snapshot) => {
        async fn load_snapshot(
            &self,
            stream: &$crate::StreamId,
        ) -> ::std::result::Result<::std::option::Option<$crate::Snapshot>, $crate::StoreError> {
            $crate::EventStore::load_snapshot(&self.$f, stream).await
        }
    };
    (@method $f:tt save_snapshot) => {
        async fn save_snapshot(
            &self,
            stream: &$crate::StreamId,
            snapshot: $crate::Snapshot,
        ) -> ::std::result::Result<(), $crate::StoreError> {
            $crate::EventStore::save_snapshot(&self.$f, stream, snapshot).await
        }
    };
    (@method $f:tt read_query) => {
        async fn read_query(
            &self,
            query: &$crate::EventQuery,
            from: $crate::Position,
            limit: usize,
        ) -> ::std::result::Result<$crate::QueryRead, $crate::StoreError> {
            $crate::EventStore::read_query(&self.$f, query, from, limit).await
        }
    };
    (@method $f:tt append_conditional) => {
        async fn append_conditional(
            &self,
            writes: ::std::vec::Vec<$crate::StreamWrite>,
            condition: ::std::option::Option<&$crate::AppendCondition>,
        ) -> ::std::result::Result<::std::vec::Vec<$crate::RecordedEvent>, $crate::StoreError> {
            $crate::EventStore::append_conditional(&self.$f, writes, condition).await
        }
    };
}

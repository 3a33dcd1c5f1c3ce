//! [`InspectStore`]: what an operator tool asks of a store beyond the [`EventStore`] contract.
//!
//! Listing streams is a capability of its own, a trait apart from `EventStore`, so third-party
//! stores keep compiling. It returns one page per call, keyed by the last stream id;
//! `MemoryStore`'s impl reads everything.

use std::future::Future;

use crate::error::StoreError;
use crate::ids::{Position, StreamId};
use crate::store::{EventStore, MemoryStore};

/// One stream, as [`InspectStore::list_streams`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSummary {
    /// The stream.
    pub stream: StreamId,
    /// How many events it holds: its last version (versions run from 1 without gaps).
    pub events: u64,
    /// Global position of its last event.
    pub last_position: Position,
}

/// Listing streams, for operator tools (`eventweave-cli`'s `streams`). A separate trait, so
/// stores written against [`EventStore`] alone keep compiling; `MemoryStore`, `SqliteStore` and
/// `PostgresStore` implement it.
///
/// It is not on any hot path: a store may answer from an index scan (SQLite and PostgreSQL read
/// their `(stream, version)` index) or, like `MemoryStore`, by reading everything.
pub trait InspectStore: EventStore {
    /// Streams after `after` (exclusive; `None` from the first), at most `limit`, in the
    /// store's order of stream ids: byte order on the memory store and SQLite, the database's
    /// collation on PostgreSQL. Pass the last stream of a page as `after` to get the next one.
    fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamSummary>, StoreError>> + Send;
}

impl InspectStore for MemoryStore {
    async fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        let mut streams = std::collections::BTreeMap::<String, StreamSummary>::new();
        for event in self.read_all(Position(1), usize::MAX).await? {
            let meta = event.meta;
            let key = meta.stream.as_str().to_owned();
            if after.is_some_and(|after| key.as_str() <= after.as_str()) {
                continue;
            }
            let entry = streams.entry(key).or_insert_with(|| StreamSummary {
                stream: meta.stream.clone(),
                events: 0,
                last_position: Position::ZERO,
            });
            entry.events = entry.events.max(meta.version);
            entry.last_position = entry.last_position.max(meta.position);
        }
        Ok(streams.into_values().take(limit).collect())
    }
}

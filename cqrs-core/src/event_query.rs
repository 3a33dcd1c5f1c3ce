//! Selecting events by type and tags ([`EventQuery`], [`QueryItem`]) and the condition a
//! decision appends under ([`AppendCondition`]): the vocabulary of dynamic consistency
//! boundaries (dcb.events).
//!
//! A query is a list of items; an event matches an item when its type is one of the item's
//! types (any type when the item names none) **and** it carries every tag of the item (no tag
//! needed when it names none); it matches the query when it matches **any** item. So "the
//! `SeatBooked` or `CourseDefined` events of course c1, and the `SeatBooked` events of student
//! s7" is two items. [`EventQuery::all`] matches every event.
//!
//! These types only describe; stores check their limits ([`check_query`](crate::check_query):
//! no query without items, no item without types and tags, at most [`MAX_QUERY_ITEMS`] items,
//! [`MAX_ITEM_TAGS`] tags and [`MAX_ITEM_TYPES`] types per item) and refuse the rest with
//! [`StoreError::InvalidQuery`](crate::StoreError::InvalidQuery).
//!
//! The names avoid the query bus's [`Query`](crate::Query): that one asks a projection, this one
//! selects stored events.

use std::borrow::Cow;

use crate::ids::Position;
use crate::tag::{Tag, Tags};

/// The most items a query may have.
pub const MAX_QUERY_ITEMS: usize = 32;

/// The most tags a query item may require (and an event may carry:
/// [`MAX_EVENT_TAGS`](crate::MAX_EVENT_TAGS) is the same bound).
pub const MAX_ITEM_TAGS: usize = 32;

/// The most event types a query item may name.
pub const MAX_ITEM_TYPES: usize = 64;

/// One alternative of an [`EventQuery`]: events of any of `types` carrying all of `tags`.
///
/// ```
/// use eventweave_core::{QueryItem, Tag, Tags};
///
/// let c1 = Tag::new("course", "c1").unwrap();
/// let item = QueryItem::types(["SeatBooked", "CourseDefined"]).with_tag(c1.clone());
/// assert!(item.matches("SeatBooked", &Tags::new([c1.clone()])));
/// assert!(!item.matches("SeatBooked", &Tags::empty()));
/// assert!(!item.matches("StudentJoined", &Tags::new([c1])));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueryItem {
    types: Vec<Cow<'static, str>>,
    tags: Vec<Tag>,
}

impl QueryItem {
    /// An item of no type and no tag: add one with [`with_type`](QueryItem::with_type) or
    /// [`with_tag`](QueryItem::with_tag) (stores refuse an item without either).
    pub fn new() -> Self {
        QueryItem::default()
    }

    /// Events of any of these types (stored names, `Event::NAME`).
    pub fn types<T: Into<Cow<'static, str>>>(types: impl IntoIterator<Item = T>) -> Self {
        QueryItem::new().with_types(types)
    }

    /// Events carrying all these tags, of any type.
    pub fn tags(tags: impl IntoIterator<Item = Tag>) -> Self {
        QueryItem::new().with_tags(tags)
    }

    /// Also matches events of this type.
    pub fn with_type(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        if !self.types.contains(&name) {
            self.types.push(name);
        }
        self
    }

    /// Also matches events of these types.
    pub fn with_types<T: Into<Cow<'static, str>>>(
        mut self,
        types: impl IntoIterator<Item = T>,
    ) -> Self {
        for name in types {
            self = self.with_type(name);
        }
        self
    }

    /// Requires this tag too.
    pub fn with_tag(mut self, tag: Tag) -> Self {
        if let Err(at) = self.tags.binary_search(&tag) {
            self.tags.insert(at, tag);
        }
        self
    }

    /// Requires these tags too.
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = Tag>) -> Self {
        for tag in tags {
            self = self.with_tag(tag);
        }
        self
    }

    /// The event types, each once, in the order given (empty: any type).
    pub fn event_types(&self) -> &[Cow<'static, str>] {
        &self.types
    }

    /// The required tags, sorted, each once (empty: no tag required).
    pub fn required_tags(&self) -> &[Tag] {
        &self.tags
    }

    /// Whether an event of type `event_name` carrying `tags` matches this item.
    pub fn matches(&self, event_name: &str, tags: &Tags) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event_name))
            && tags.contains_all(&self.tags)
    }
}

/// Which events a decision depends on: items OR'd, or every event ([`EventQuery::all`]).
///
/// ```
/// use eventweave_core::{EventQuery, QueryItem, Tag, Tags};
///
/// let c1 = Tag::new("course", "c1").unwrap();
/// let s7 = Tag::new("student", "s7").unwrap();
/// let query = EventQuery::from_items([
///     QueryItem::types(["SeatBooked", "CourseDefined"]).with_tag(c1.clone()),
///     QueryItem::types(["SeatBooked"]).with_tag(s7.clone()),
/// ]);
/// assert!(query.matches("SeatBooked", &Tags::new([s7.clone()])));
/// assert!(query.matches("CourseDefined", &Tags::new([c1])));
/// assert!(!query.matches("CourseDefined", &Tags::new([s7])));
/// assert!(EventQuery::all().matches("Anything", &Tags::empty()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventQuery {
    /// `None`: every event.
    items: Option<Vec<QueryItem>>,
}

impl EventQuery {
    /// Every event.
    pub fn all() -> Self {
        EventQuery { items: None }
    }

    /// Events matching any of `items` (stores refuse a query without items: use
    /// [`EventQuery::all`] to mean every event).
    pub fn from_items(items: impl IntoIterator<Item = QueryItem>) -> Self {
        EventQuery {
            items: Some(items.into_iter().collect()),
        }
    }

    /// Also matches events of `item`. On [`EventQuery::all`] it changes nothing.
    pub fn or(mut self, item: QueryItem) -> Self {
        if let Some(items) = &mut self.items
            && !items.contains(&item)
        {
            items.push(item);
        }
        self
    }

    /// The items (`None` for [`EventQuery::all`]).
    pub fn items(&self) -> Option<&[QueryItem]> {
        self.items.as_deref()
    }

    /// Whether it matches every event.
    pub fn is_all(&self) -> bool {
        self.items.is_none()
    }

    /// Whether an event of type `event_name` carrying `tags` matches.
    pub fn matches(&self, event_name: &str, tags: &Tags) -> bool {
        match &self.items {
            None => true,
            Some(items) => items.iter().any(|i| i.matches(event_name, tags)),
        }
    }
}

/// "Fail if any event matching `query` has a position after `after`": what a decision appends
/// under, with `after` the position its read of `query` was complete through
/// ([`QueryRead::through`]). Nothing it depends on changed since it decided, or nothing is
/// written ([`StoreError::ConditionFailed`](crate::StoreError::ConditionFailed)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppendCondition {
    /// The events the decision depends on.
    pub query: EventQuery,
    /// The position its read was complete through (`Position::ZERO`: no matching event may
    /// exist at all).
    pub after: Position,
}

impl AppendCondition {
    /// Fail if an event matching `query` exists after `after`.
    pub fn new(query: EventQuery, after: Position) -> Self {
        AppendCondition { query, after }
    }
}

/// The answer to [`EventStore::read_query`](crate::EventStore::read_query).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryRead {
    /// Matching events with positions from the read's start through [`QueryRead::through`], in
    /// position order.
    pub events: Vec<crate::envelope::RecordedEvent>,
    /// The position the read is complete through: every matching event from the start up to
    /// it is in `events`, and none after it is. When the read returned `limit` events, it is
    /// the last one's position (read on from the next); otherwise it is the head the store can
    /// vouch for (on PostgreSQL the gap-free head, since a transaction holding a lower position
    /// may still commit). An [`AppendCondition`] built from the read uses it as `after`.
    pub through: Position,
}

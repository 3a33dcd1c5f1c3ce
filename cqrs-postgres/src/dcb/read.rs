//! `read_query`: the events matching a query and a gap-free completeness position.
//!
//! One statement (`statements::read`), hence one snapshot S, returns S's horizon, the holes
//! after the store's frontier (a position known gap-free) and the matching events. The holes go
//! through the same bookkeeping as `read_all`'s (`holes.rs`): the first that may still fill
//! bounds the read, so `through` is the gap-free head of S, or the last event when the read was
//! cut by its limit. A read stopped at a hole an earlier read already saw looks at the appender
//! locks once and reads again, as `read_all` does.
//!
//! Matching events beyond the first pending hole are dropped: one below it could still commit,
//! and a later read returns them in order. The frontier moves up to each read's gap-free head,
//! so later reads scan only the positions written since (one index-only range scan).

use eventweave_core::{EventQuery, Position, QueryRead, RecordedEvent, StoreError, check_query};
use serde_json::{Value, json};

use crate::decode::{self, JsonParam};
use crate::error::backend;
use crate::holes::Snapshot;
use crate::store::Shared;

/// Columns before the event's in a row of `statements::read`.
const EVENT_AT: usize = 5;

/// A query as the statements take it: 2 for every event (no items), else 1 and the items as
/// `[{"d": driving tag, "t": tags, "y": types}]`.
pub(crate) fn encode_query(query: &EventQuery) -> (i32, Option<String>) {
    let Some(items) = query.items() else {
        return (query_kind(query), None);
    };
    let items: Vec<Value> = items
        .iter()
        .map(|item| {
            json!({
                "d": super::locks::driving_tag(item).map(|t| t.as_str()),
                "t": item.required_tags().iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                "y": item.event_types().iter().map(|t| t.as_ref()).collect::<Vec<&str>>(),
            })
        })
        .collect();
    (query_kind(query), Some(Value::Array(items).to_string()))
}

/// How the statements take a query: 1 by its items, 2 every event.
pub(crate) fn query_kind(query: &EventQuery) -> i32 {
    if query.items().is_some() { 1 } else { 2 }
}

fn int8(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Shared {
    pub async fn read_query(
        &self,
        query: &EventQuery,
        from: Position,
        limit: usize,
    ) -> Result<QueryRead, StoreError> {
        check_query(query)?;
        let from = from.0.max(1);
        if limit == 0 {
            // Nothing was read: complete through just before `from`.
            return Ok(QueryRead {
                events: Vec::new(),
                through: Position(from - 1),
            });
        }
        let (kind, items) = encode_query(query);
        let items = items.as_deref().map(JsonParam);
        let mut looked = false;
        loop {
            let frontier = self.dcb.frontier();
            // Holes below `from` do not concern this read; the frontier moves only when the
            // scan started at it.
            let scan_from = frontier.max(from - 1);
            let conn = self.pool.get().await?;
            let statement = conn.cached(&self.dcb.read).await.map_err(backend)?;
            let read = self.holes.begin_read();
            let rows = conn
                .client
                .query(
                    &statement,
                    &[
                        &int8(scan_from),
                        &int8(from),
                        &int8(limit as u64),
                        &kind,
                        &items,
                    ],
                )
                .await
                .map_err(backend)?;
            drop(conn);
            let Some(first) = rows.first() else {
                return Err(StoreError::Backend(
                    "the read by query returned no row".into(),
                ));
            };
            let column = |i: usize| first.try_get::<_, Option<i64>>(i).map_err(backend);
            let snapshot = Snapshot {
                xmin: column(0)?.unwrap_or(0) as u64,
                next_xid: column(1)?.unwrap_or(0) as u64,
            };
            let head = column(2)?.unwrap_or(0) as u64;
            let starts: Vec<i64> = first
                .try_get::<_, Option<Vec<i64>>>(3)
                .map_err(backend)?
                .unwrap_or_default();
            let ends: Vec<i64> = first
                .try_get::<_, Option<Vec<i64>>>(4)
                .map_err(backend)?
                .unwrap_or_default();
            let holes: Vec<(u64, u64)> = starts
                .iter()
                .zip(&ends)
                .map(|(&s, &e)| (s as u64, e as u64))
                .collect();
            let pending = self.holes.first_pending(read, &holes, snapshot);
            if let Some((_, true)) = pending
                && !looked
                && self.look_at_appenders().await?
            {
                looked = true;
                continue;
            }
            let gap_free = pending.map_or(head, |(start, _)| start - 1);
            if scan_from == frontier {
                self.dcb.advance(gap_free);
            }
            let mut events: Vec<RecordedEvent> = Vec::new();
            let mut last = None;
            for row in &rows {
                match decode::position(row, EVENT_AT)? {
                    Some(p) if p <= gap_free => {
                        events.push(decode::event(row, EVENT_AT, &mut last)?)
                    }
                    _ => {}
                }
            }
            let through = match events.last() {
                Some(e) if events.len() == limit => e.meta.position,
                _ => Position(gap_free.max(from - 1)),
            };
            return Ok(QueryRead { events, through });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventweave_core::{QueryItem, Tag};

    #[test]
    fn queries_travel_as_items_with_their_driving_tag() {
        let c = Tag::parse("course:c1").unwrap();
        let s = Tag::parse("student:s1").unwrap();
        let query = EventQuery::from_items([
            QueryItem::types(["booked"]).with_tags([s.clone(), c.clone()]),
            QueryItem::types(["defined", "renamed"]),
        ]);
        let (kind, items) = encode_query(&query);
        assert_eq!(kind, 1);
        let items: Value = serde_json::from_str(&items.unwrap()).unwrap();
        assert_eq!(
            items,
            json!([
                {"d": "course:c1", "t": ["course:c1", "student:s1"], "y": ["booked"]},
                {"d": null, "t": [], "y": ["defined", "renamed"]},
            ])
        );
        assert_eq!(encode_query(&EventQuery::all()), (2, None));
    }

    /// As `read_all`'s: the snapshot columns once per read, not once per matching event.
    #[tokio::test(flavor = "current_thread")]
    async fn snapshot_columns_are_computed_once_per_read_by_query() {
        crate::read::tests::assert_snapshot_columns_computed_once(
            "snapshot_columns_are_computed_once_per_read_by_query",
            super::super::statements::read,
            "int8, int8, int8, int4, text",
            "0, 1, 10, 2, NULL",
        )
        .await;
    }
}

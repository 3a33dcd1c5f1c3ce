//! The SQL of reading by query and of the conditional append to several streams, rendered once
//! per store from its [`Names`] and prepared on each connection when first used
//! (`Conn::cached`).
//!
//! A query travels as one `jsonb` parameter, an array of items `{"d": driving tag or null,
//! "t": [tags], "y": [types]}` (`jsonb_to_recordset` turns it into rows), so one prepared
//! statement serves every query shape. Per item, a `LATERAL` subquery finds its events in
//! position order:
//! - an item with tags scans the `event_tags` primary key `(tag, position)` for its driving tag
//!   from the bound on, and checks each candidate's other tags and type in its events row;
//! - an item with types only scans the events table by position from the bound on (there is no
//!   index by type: every append would pay for it). For a condition the bound is the read's
//!   position, so only the events since are scanned; a read from far back scans the table.

use crate::config::Names;
use crate::statements::{EVENT_COLUMNS, next_position};

/// The events of one item `q` with position `{op} {bound}`, at most `{limit}`, in position
/// order (a `LATERAL` subquery body).
fn item_positions(n: &Names, op: &str, bound: &str, limit: &str) -> String {
    format!(
        "(SELECT et.position FROM {tags} AS et JOIN {events} AS e ON e.position = et.position
          WHERE q.d IS NOT NULL AND et.tag = q.d AND et.position {op} {bound}
            AND e.tags @> q.t AND (cardinality(q.y) = 0 OR e.event_name = ANY(q.y))
          ORDER BY et.position LIMIT {limit})
         UNION ALL
         (SELECT e.position FROM {events} AS e
          WHERE q.d IS NULL AND e.position {op} {bound} AND e.event_name = ANY(q.y)
          ORDER BY e.position LIMIT {limit})",
        tags = n.event_tags,
        events = n.events,
    )
}

/// The items of the query parameter `param`, as rows `q`.
fn items(param: &str) -> String {
    format!("jsonb_to_recordset({param}::jsonb) AS q(d text, t text[], y text[])")
}

/// The conditional append to several streams, in one statement.
///
/// Parameters: `$1` the writes' streams, `$2` their expected versions (-1: any); per event `$3`
/// its write (from 1), `$4` its place in the write (from 1), `$5`–`$11` its columns; `$12`/`$13`
/// (event from 1, tag) pairs; `$14` the key texts of the shared dcb locks of all events; `$15`
/// the condition (0 none, 1 the items of `$17`, 2 every event) and `$16` its position.
///
/// Every check reads the statement's one snapshot, taken after the locks of the transaction's
/// earlier statement: the condition (the first matching position after `$16`) and each write's
/// version. Rows are inserted only if all hold (all or nothing); the answer has the inserted
/// rows (kind 0), the first conflicting position (kind 1, NULL if none) and each write's version
/// (kind 2), so a refusal needs no second round trip to be explained.
pub(crate) fn append(n: &Names) -> String {
    let next = next_position(
        n,
        &crate::dcb::locks::shared_locks(n, "SELECT unnest($14::text[])"),
    );
    format!(
        "WITH w AS MATERIALIZED (
             SELECT w.i, w.stream, w.expected,
                    (SELECT coalesce(max(v.version), 0) FROM {events} AS v
                     WHERE v.stream = w.stream) AS actual
             FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS w(stream, expected, i)
         ),
         cond AS MATERIALIZED (
             SELECT CASE $15::int4
                 WHEN 2 THEN (SELECT min(a.position) FROM {events} AS a WHERE a.position > $16::int8)
                 WHEN 1 THEN (SELECT min(m.position) FROM {items}
                              CROSS JOIN LATERAL ({first}) AS m)
             END AS conflicting
         ),
         go AS MATERIALIZED (
             SELECT (SELECT c.conflicting FROM cond AS c) IS NULL
                AND NOT EXISTS (SELECT 1 FROM w WHERE w.expected >= 0 AND w.expected <> w.actual)
                AS ok
         ),
         rows AS (
             SELECT e.ord, w.stream,
                    CASE WHEN w.expected >= 0 THEN w.expected ELSE w.actual END + e.nth AS version,
                    e.event_id, e.event_name, e.event_version, e.payload, e.metadata,
                    e.correlation_id, e.causation_id,
                    ARRAY(SELECT t.tag FROM unnest($12::int4[], $13::text[]) AS t(ev, tag)
                          WHERE t.ev = e.ord) AS tags
             FROM unnest($3::int4[], $4::int8[], $5::uuid[], $6::text[], $7::int4[], $8::jsonb[],
                         $9::jsonb[], $10::uuid[], $11::uuid[])
                  WITH ORDINALITY AS e(w, nth, event_id, event_name, event_version, payload,
                                       metadata, correlation_id, causation_id, ord)
             JOIN w ON w.i = e.w
             WHERE (SELECT g.ok FROM go AS g)
             ORDER BY e.ord
         ),
         ins AS (
             INSERT INTO {events} (position, stream, version, event_id, event_name, event_version,
                                   payload, metadata, correlation_id, causation_id, tags)
             SELECT {next}, r.stream, r.version, r.event_id, r.event_name, r.event_version,
                    r.payload, r.metadata, r.correlation_id, r.causation_id,
                    CASE WHEN cardinality(r.tags) > 0 THEN r.tags END
             FROM rows AS r
             RETURNING position, version, recorded_at, event_id, tags
         ),
         tagged AS (
             INSERT INTO {event_tags} (tag, position)
             SELECT t.tag, ins.position FROM ins CROSS JOIN LATERAL unnest(ins.tags) AS t(tag)
         )
         SELECT 0 AS kind, ins.position, ins.version, ins.recorded_at, ins.event_id FROM ins
         UNION ALL SELECT 1, c.conflicting, NULL, NULL, NULL FROM cond AS c
         UNION ALL SELECT 2, w.i, w.actual, NULL, NULL FROM w",
        events = n.events,
        event_tags = n.event_tags,
        items = items("$17"),
        first = item_positions(n, ">", "$16::int8", "1"),
    )
}

/// Reading by query, in one statement (one snapshot): the snapshot's horizon (`xmin`,
/// `next_xid`, as `read_all` reads it), the newest visible position after `$1` and the holes
/// after `$1` (ranges `[start, end)` ending at a visible row), and up to `$3` events from
/// position `$2` on that match the query (`$4`: 1 the items of `$5`, 2 every event), in
/// position order. `$1` is a position every position up to which is known committed or
/// permanently empty, so the holes scanned are those since.
pub(crate) fn read(n: &Names) -> String {
    format!(
        "SELECT s.xmin, s.next_xid, h.head, h.starts, h.ends, ev.*
         FROM (SELECT pg_snapshot_xmin(c)::text::int8 AS xmin,
                      pg_snapshot_xmin(c)::text::int8 + age(xid(pg_snapshot_xmin(c))) AS next_xid
               FROM pg_current_snapshot() AS c) AS s
         CROSS JOIN (
             SELECT coalesce(max(p.position), $1::int8) AS head,
                    array_agg(p.prev + 1 ORDER BY p.position)
                        FILTER (WHERE p.position > p.prev + 1) AS starts,
                    array_agg(p.position ORDER BY p.position)
                        FILTER (WHERE p.position > p.prev + 1) AS ends
             FROM (SELECT a.position, lag(a.position, 1, $1::int8) OVER (ORDER BY a.position) AS prev
                   FROM {events} AS a WHERE a.position > $1::int8) AS p
         ) AS h
         LEFT JOIN LATERAL (
             SELECT x.* FROM (
                 SELECT DISTINCT u.position FROM (
                     (SELECT a.position FROM {events} AS a
                      WHERE $4::int4 = 2 AND a.position >= $2::int8
                      ORDER BY a.position LIMIT $3::int8)
                     UNION ALL
                     (SELECT m.position FROM {items} CROSS JOIN LATERAL ({from}) AS m
                      WHERE $4::int4 = 1)
                 ) AS u
                 ORDER BY u.position LIMIT $3::int8
             ) AS mp
             CROSS JOIN LATERAL (
                 SELECT {EVENT_COLUMNS} FROM {events} WHERE position = mp.position
             ) AS x
             ORDER BY x.position
         ) AS ev ON true",
        events = n.events,
        items = items("$5"),
        from = item_positions(n, ">=", "$2::int8", "$3::int8"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_append_draws_positions_after_the_locks_and_only_once() {
        let names = crate::PostgresConfig::new("postgres://x").names().unwrap();
        let sql = append(&names);
        assert_eq!(sql.matches("nextval(").count(), 1, "{sql}");
        assert!(sql.contains("pg_advisory_xact_lock_shared("), "{sql}");
        assert!(sql.contains("pg_current_xact_id()"), "{sql}");
    }
}

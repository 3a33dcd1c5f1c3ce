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

/// The parameter types of [`function`], in order.
const PARAMS: &str = "text[], int8[], text[], int8[], int8[], uuid[], text[], int4[], jsonb[], \
     jsonb[], uuid[], uuid[], text[], text[], int4, int8, jsonb, bool[]";

/// The parameter types of migration 6's function, which migration 7 drops: per event its
/// write's number and its tags as (event, tag) pairs, where [`PARAMS`] sends each event's
/// stream, expected version and tags literal.
const PARAMS_6: &str = "text[], int8[], int4[], int8[], uuid[], text[], int4[], jsonb[], \
     jsonb[], uuid[], uuid[], int4[], text[], text[], int4, int8, jsonb, bool[]";

/// The function that runs an atomic append to several streams, with its condition, as one
/// statement in its caller's transaction (created by migrations 6 and 7, `schema.rs`; called by
/// [`call`]).
///
/// Parameters: `$1` the writes' streams, `$2` their expected versions (-1: any); per event `$3`
/// its write's stream, `$4` that write's expected version, `$5` its place in the write (from 1),
/// `$6`–`$12` its columns, `$13` its tags as the text of a `text[]` literal (NULL for none,
/// `group::tags_literal`); `$14` the key texts of the dcb locks and `$18` whether each is wanted
/// exclusively; `$15` the condition (0 none, 1 the items of `$17`, 2 every event) and `$16` its
/// position.
///
/// Three statements, in this order, each with its own snapshot (PL/pgSQL runs every statement
/// of a `VOLATILE` function with a fresh snapshot in `READ COMMITTED`):
/// 1. `LOCK TABLE … IN ROW EXCLUSIVE MODE` (`SHARE ROW EXCLUSIVE` for a condition on every
///    event), the lock an `INSERT` takes first;
/// 2. the lock pass (`locks::lock_pass`): every key in ascending order, exclusive or shared;
/// 3. one `INSERT` whose snapshot is therefore taken after every lock was granted: it checks the
///    condition (the first matching position after `$16`) and each write's version in one
///    uncorrelated `WHERE` (init plans, evaluated once), and inserts every row or none. Its rows
///    and tags are written as the group statement writes them; positions are drawn after the
///    appender lock (`statements::next_position`), the dcb keys being held already.
///
/// The events travel flat (each with its stream, expected version and tags literal) rather
/// than joined to their write and aggregated from (event, tag) pairs, as migration 6's version
/// did: the executor sets up every node of a statement's plan on each call, and the join, the
/// per-row tag subquery and their sorts were about a sixth of the function's server time
/// (backend CPU per call, 5 × 1,000 calls: 320–340 µs against 380–410 µs).
///
/// The rows returned are those inserted (kind 0: position, version, recorded_at, event_id). When
/// nothing was inserted, a fourth statement explains why, in a snapshot taken later but under
/// the same locks: the first conflicting position (kind 1, NULL if none) and each write's
/// version (kind 2). The locks keep every event matching the condition out meanwhile, so a
/// conflict the check saw is the one explained; a write's version may have moved on since, and
/// an explanation that finds nothing wrong makes the caller run the append again
/// (`append.rs`).
pub(crate) fn function(n: &Names) -> String {
    let events = &n.events;
    let conflicting_all = format!("SELECT a.position FROM {events} AS a WHERE a.position > $16");
    let conflicting_items = format!(
        "SELECT m.position FROM {items} CROSS JOIN LATERAL ({first}) AS m",
        items = items("$17"),
        first = item_positions(n, ">", "$16", "1"),
    );
    let actual = |w: &str| {
        format!(
            "(SELECT coalesce(max(v.version), 0) FROM {events} AS v WHERE v.stream = {w}.stream)"
        )
    };
    let body = format!(
        "BEGIN
  IF $15 = 2 THEN
    LOCK TABLE {events} IN SHARE ROW EXCLUSIVE MODE;
  ELSE
    LOCK TABLE {events} IN ROW EXCLUSIVE MODE;
  END IF;
  PERFORM {lock_pass};
  RETURN QUERY
  WITH ins AS (
      INSERT INTO {events} (position, stream, version, event_id, event_name, event_version,
                            payload, metadata, correlation_id, causation_id, tags)
      SELECT {next}, e.stream,
             CASE WHEN e.expected >= 0 THEN e.expected ELSE {actual_e} END + e.nth,
             e.event_id, e.event_name, e.event_version, e.payload, e.metadata,
             e.correlation_id, e.causation_id, e.tags::text[]
      FROM unnest($3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           WITH ORDINALITY AS e(stream, expected, nth, event_id, event_name, event_version,
                                payload, metadata, correlation_id, causation_id, tags, ord)
      WHERE ($15 <> 2 OR NOT EXISTS ({conflicting_all}))
        AND ($15 <> 1 OR NOT EXISTS ({conflicting_items}))
        AND NOT EXISTS (SELECT 1 FROM unnest($1, $2) AS c(stream, expected)
                        WHERE c.expected >= 0 AND c.expected <> {actual_c})
      ORDER BY e.ord
      RETURNING position, version, recorded_at, event_id, tags
  ),
  tagged AS (
      INSERT INTO {event_tags} (tag, position)
      SELECT t.tag, ins.position FROM ins CROSS JOIN LATERAL unnest(ins.tags) AS t(tag)
  )
  SELECT 0, ins.position, ins.version, ins.recorded_at, ins.event_id FROM ins;
  IF NOT FOUND THEN
    RETURN QUERY
    SELECT 1, CASE $15 WHEN 2 THEN (SELECT min(x.position) FROM ({conflicting_all}) AS x)
                       WHEN 1 THEN (SELECT min(x.position) FROM ({conflicting_items}) AS x)
              END,
           NULL::int8, NULL::timestamptz, NULL::uuid
    UNION ALL
    SELECT 2, w.i, {actual_w}, NULL::timestamptz, NULL::uuid
    FROM unnest($1, $2) WITH ORDINALITY AS w(stream, expected, i);
  END IF;
END",
        event_tags = n.event_tags,
        lock_pass = crate::dcb::locks::lock_pass(n, "$14", "$18"),
        next = next_position(n, "true"),
        actual_e = actual("e"),
        actual_w = actual("w"),
        actual_c = actual("c"),
    );
    let quote = dollar_quote(&body);
    format!(
        "DROP FUNCTION IF EXISTS {function}({PARAMS_6});
         CREATE OR REPLACE FUNCTION {function}({PARAMS})
         RETURNS TABLE (o_kind int4, o_value int8, o_version int8, o_recorded_at timestamptz,
                        o_event_id uuid)
         LANGUAGE plpgsql VOLATILE
         AS {quote}{body}{quote};
         COMMENT ON FUNCTION {function}({PARAMS})
             IS 'eventweave-postgres: the atomic, conditional append to several streams.';",
        function = n.dcb_append,
    )
}

/// A dollar quote `body` does not contain (a quoted name could hold any text).
fn dollar_quote(body: &str) -> String {
    let mut quote = "$eventweave$".to_owned();
    while body.contains(&quote) {
        quote.insert(quote.len() - 1, '_');
    }
    quote
}

/// The first event matching condition items with tags after position `$5`: for each item `q`
/// (`$1` its driving tag, `$2` the text of a `text[]` literal of all its tags or NULL when the
/// driving tag is its only one, `$3` likewise of its types or NULL for any type), the
/// `event_tags` primary key from `$5` on, each candidate checked in its events row.
fn first_by_tags(n: &Names) -> String {
    format!(
        "SELECT min(m.position) FROM unnest($1, $2, $3) AS q(d, t, y) CROSS JOIN LATERAL (
             {first}) AS m",
        first = first_of_item(n, "q.d", "q.t", "q.y"),
    )
}

/// The first event after `$5` of one item with tags: driving tag `d`, tags literal `t`, types
/// literal `y` (expressions).
fn first_of_item(n: &Names, d: &str, t: &str, y: &str) -> String {
    format!(
        "SELECT et.position FROM {tags} AS et JOIN {events} AS e ON e.position = et.position
         WHERE et.tag = {d} AND et.position > $5
           AND ({t} IS NULL OR e.tags @> {t}::text[])
           AND ({y} IS NULL OR e.event_name = ANY({y}::text[]))
         ORDER BY et.position LIMIT 1",
        tags = n.event_tags,
        events = n.events,
    )
}

/// The first event after `$5` whose type is in `$4` (the types of the items without tags, which
/// are OR'd, so one scan serves them all), by position. A scalar subquery keeps its `ORDER BY …
/// LIMIT 1`, so the generic plan walks the primary key from `$5` on (inside `EXISTS` the limit
/// is dropped and the plan became a sequential scan).
fn first_by_types(n: &Names) -> String {
    format!(
        "SELECT a.position FROM {events} AS a WHERE a.position > $5 AND a.event_name = ANY($4)
         ORDER BY a.position LIMIT 1",
        events = n.events,
    )
}

/// The parameter types of [`conflict_function`], in order.
const CONFLICT_PARAMS: &str = "text[], text[], text[], text[], int8";

/// The function that finds the first event after position `$5` matching a condition's items
/// (migration 8; parameters as [`first_by_tags`] and [`first_by_types`] take them), or NULL.
/// `VOLATILE` and PL/pgSQL, so never inlined and its query takes a snapshot of its own when it
/// runs (`READ COMMITTED`): called from [`append_one`] after that statement's lock pass, it sees
/// every transaction that ended before the locks were granted, which the statement's own
/// snapshot, taken when it started, does not. Only the scans the items need are planned and
/// run: one item with tags (the common decision; without the `unnest` and the lateral join its
/// check costs about half: backend CPU per statement 224–229 µs against 239–243 µs), several,
/// items by type alone, or both.
pub(crate) fn conflict_function(n: &Names) -> String {
    let body = format!(
        "BEGIN
  IF cardinality($4) = 0 AND cardinality($1) = 1 THEN
    RETURN ({one});
  ELSIF cardinality($4) = 0 THEN
    RETURN ({tags});
  ELSIF cardinality($1) = 0 THEN
    RETURN ({types});
  END IF;
  RETURN least(({tags}), ({types}));
END",
        one = first_of_item(n, "$1[1]", "$2[1]", "$3[1]"),
        tags = first_by_tags(n),
        types = first_by_types(n),
    );
    let quote = dollar_quote(&body);
    format!(
        "CREATE OR REPLACE FUNCTION {function}({CONFLICT_PARAMS}) RETURNS int8
         LANGUAGE plpgsql VOLATILE
         AS {quote}{body}{quote};
         COMMENT ON FUNCTION {function}({CONFLICT_PARAMS})
             IS 'eventweave-postgres: the first event matching an append condition, in a snapshot of its own.';",
        function = n.dcb_conflict,
    )
}

/// How a lone conditional event's version is checked, as the plain single-event statements
/// check it (`statements.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OneShape {
    /// At version `$2` + 1 with `$2` 0 (no stream): the unique constraint is the check.
    New,
    /// At expected version `$2` + 1, inserted only if version `$2` exists.
    Checked,
    /// At whatever version the stream has (`$2` is -1).
    Any,
}

/// A conditional append of one event to one stream, as one statement (no append function, no
/// `LOCK TABLE`): the common decision, which pays about a quarter less server time this way
/// than through [`function`] (backend CPU per execution, psql, generic plans: 206–219 µs against
/// 262–288 µs; the same tagged append without a condition 178–203 µs; BENCHMARKS.md).
///
/// Parameters: `$1` the stream, `$2` the expected version (as [`OneShape`] reads it), `$3`–`$9`
/// the event's columns, `$10` its tags as the text of a `text[]` literal (NULL for none), `$11`
/// the texts of its dcb keys, each once, and `$12` whether each is taken exclusively (the
/// condition's) or shared (the event's); `$13`–`$16` the condition's items as
/// [`conflict_function`] takes them and `$17` its position.
///
/// The order that makes it sound, as in [`function`]: the statement takes the events table's
/// `ROW EXCLUSIVE` lock when it starts; then `c`'s `CASE` takes every dcb key in one ascending
/// pass (`locks::locks_in_order`) and only then calls [`conflict_function`], whose query runs in
/// a snapshot taken after the keys were granted; the row is inserted only if it found nothing,
/// and its position is drawn after the appender lock. The answer is always one row: the
/// inserted row's position, version and time (NULL when nothing was inserted) and the first
/// conflicting position (NULL when none). Nothing inserted and no conflict means the version
/// check refused (`Checked`, `Any`); the caller then runs [`function`], which explains.
pub(crate) fn append_one(n: &Names, shape: OneShape) -> String {
    use crate::statements::{current_version, insert_columns, next_position, one, version_exists};
    let (from, check, version) = match shape {
        OneShape::New => (String::new(), String::new(), "$2::int8 + 1"),
        OneShape::Checked => (
            String::new(),
            format!(" AND ({})", version_exists(n)),
            "$2::int8 + 1",
        ),
        OneShape::Any => (
            format!(", {}", current_version(n)),
            " AND $2::int8 < 0".to_owned(),
            "base.version + 1",
        ),
    };
    format!(
        "WITH c AS (
             SELECT CASE WHEN {locks}
                         THEN {conflict}($13::text[], $14::text[], $15::text[], $16::text[], $17::int8)
                         ELSE 0 END AS conflict
         ),
         ins AS (
             INSERT INTO {events} ({columns}, tags)
             SELECT {next}, $1::text, {version}, {one}, $10::text::text[]
             FROM c{from}
             WHERE c.conflict IS NULL{check}
             RETURNING position, version, recorded_at, tags
         ),
         tagged AS (
             INSERT INTO {event_tags} (tag, position)
             SELECT t.tag, ins.position FROM ins CROSS JOIN LATERAL unnest(ins.tags) AS t(tag)
         )
         SELECT ins.position, ins.version, ins.recorded_at, c.conflict FROM c LEFT JOIN ins ON true",
        locks = crate::dcb::locks::locks_in_order(n, "$11::text[]", "$12::bool[]"),
        conflict = n.dcb_conflict,
        events = n.events,
        event_tags = n.event_tags,
        columns = insert_columns(),
        next = next_position(n, "true"),
        one = one(),
    )
}

/// The call of [`function`]: one statement, run in an implicit transaction of its own (or in
/// the caller's); the parameters are the function's.
pub(crate) fn call(n: &Names) -> String {
    let params: Vec<String> = PARAMS
        .split(", ")
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}", i + 1))
        .collect();
    format!(
        "SELECT o_kind, o_value, o_version, o_recorded_at, o_event_id FROM {}({})",
        n.dcb_append,
        params.join(", ")
    )
}

/// Reading by query, in one statement (one snapshot): the snapshot's horizon (`xmin`,
/// `next_xid`, as `read_all` reads it), the newest visible position after `$1` and the holes
/// after `$1` (ranges `[start, end)` ending at a visible row), and up to `$3` events from
/// position `$2` on that match the query (`$4`: 1 the items of `$5`, 2 every event), in
/// position order. `$1` is a position every position up to which is known committed or
/// permanently empty, so the holes scanned are those since. `OFFSET 0` keeps the snapshot
/// columns in their one-row scan (pulled up into the join they were computed per event, as
/// in `read_all`).
pub(crate) fn read(n: &Names) -> String {
    format!(
        "SELECT s.xmin, s.next_xid, h.head, h.starts, h.ends, ev.*
         FROM (SELECT pg_snapshot_xmin(c)::text::int8 AS xmin,
                      pg_snapshot_xmin(c)::text::int8 + age(xid(pg_snapshot_xmin(c))) AS next_xid
               FROM pg_current_snapshot() AS c OFFSET 0) AS s
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
    fn the_function_locks_before_the_statement_that_checks_and_draws_once() {
        let names = crate::PostgresConfig::new("postgres://x").names().unwrap();
        let sql = function(&names);
        assert_eq!(sql.matches("nextval(").count(), 1, "{sql}");
        assert!(sql.contains("pg_current_xact_id()"), "{sql}");
        // The lock pass is a statement of its own, before the one that checks and inserts.
        let lock = sql.find("PERFORM").unwrap();
        let check = sql.find("RETURN QUERY").unwrap();
        assert!(lock < check, "{sql}");
        assert!(sql[lock..check].contains("pg_advisory_xact_lock("), "{sql}");
        assert!(!sql[check..].contains("pg_advisory_xact_lock"), "{sql}");
        assert!(sql.contains("VOLATILE"), "{sql}");
    }

    #[test]
    fn a_lone_event_locks_then_checks_in_a_snapshot_of_its_own_then_draws() {
        let names = crate::PostgresConfig::new("postgres://x").names().unwrap();
        for shape in [OneShape::New, OneShape::Checked, OneShape::Any] {
            let sql = append_one(&names, shape);
            let lock = sql.find("pg_advisory_xact_lock(").unwrap();
            let check = sql.find(&format!("{}(", names.dcb_conflict)).unwrap();
            let insert = sql.find("INSERT INTO").unwrap();
            let draw = sql.find("nextval(").unwrap();
            assert!(lock < check && check < insert && insert < draw, "{sql}");
            assert_eq!(sql.matches("nextval(").count(), 1, "{sql}");
            assert!(sql.contains("WHERE c.conflict IS NULL"), "{sql}");
            assert!(!sql.contains("LOCK TABLE"), "{sql}");
        }
        let function = conflict_function(&names);
        assert!(function.contains("LANGUAGE plpgsql VOLATILE"), "{function}");
        assert!(!function.contains("pg_advisory"), "{function}");
    }

    #[test]
    fn the_dollar_quote_is_not_in_the_body() {
        let names = crate::PostgresConfig::new("postgres://x")
            .schema("a$eventweave$b")
            .names()
            .unwrap();
        let sql = function(&names);
        assert!(sql.contains("AS $eventweave_$BEGIN"), "{sql}");
    }
}

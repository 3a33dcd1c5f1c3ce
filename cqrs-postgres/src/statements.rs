//! The SQL the store runs, rendered once from the quoted [`Names`] and prepared on every pooled
//! connection.

use tokio_postgres::{Client, Statement};

use crate::config::Names;

/// The columns of an event row, in the order `decode::event` reads them.
pub(crate) const EVENT_COLUMNS: &str = "position, stream, version, event_id, event_name, \
     event_version, payload, metadata, correlation_id, causation_id, recorded_at, tags";

/// Statement texts, shared by every connection of a pool.
#[derive(Debug)]
pub(crate) struct Sql {
    /// One event at version `$2` + 1, where version `$2` is known to exist (or is 0): no check
    /// beyond the unique (stream, version) constraint.
    pub append_one_known: String,
    /// One event at expected version `$2` (0 for no stream).
    pub append_one: String,
    /// One event at whatever version the stream has (`$2` is -1).
    pub append_one_any: String,
    /// [`Sql::append_one_known`] for a tagged event: it also writes the `tags` column (`$10`)
    /// and the `event_tags` rows, and takes the dcb keys whose texts are `$11`.
    pub append_one_tagged_known: String,
    /// [`Sql::append_one`] for a tagged event (parameters as [`Sql::append_one_tagged_known`]).
    pub append_one_tagged: String,
    /// [`Sql::append_one_any`] for a tagged event (parameters as [`Sql::append_one_tagged_known`]).
    pub append_one_tagged_any: String,
    /// A batch at expected version `$2`.
    pub append_batch: String,
    /// A batch at whatever version the stream has.
    pub append_batch_any: String,
    /// The appends of a group, each with its own stream and expected version (`group.rs`).
    pub append_group: String,
    /// [`Sql::append_group`] for a group with tagged events: it also writes the `tags` column
    /// and the `event_tags` rows, and takes the dcb keys it is sent.
    pub append_group_tagged: String,
    pub read_stream: String,
    pub read_all: String,
    pub head: String,
    pub exists_after: String,
    pub by_ids: String,
    pub stream_version: String,
    /// The second keys of the appender locks of this store held now: the low 32 bits of the
    /// transaction ids of its appenders that are still running.
    pub appenders: String,
}

/// The columns of one event that an append sends, with their SQL types, in parameter order.
/// The one list of them: the single-event parameters, the batch's and the group's arrays and the
/// insert's column list are rendered from it, and `append::EventParams` fills it.
const EVENT_PARAMS: [(&str, &str); 7] = [
    ("event_id", "uuid"),
    ("event_name", "text"),
    ("event_version", "int4"),
    ("payload", "jsonb"),
    ("metadata", "jsonb"),
    ("correlation_id", "uuid"),
    ("causation_id", "uuid"),
];

/// The columns an append writes: the position, stream and version it computes, then the
/// event's own.
pub(crate) fn insert_columns() -> String {
    let mut columns = "position, stream, version".to_owned();
    for (name, _) in EVENT_PARAMS {
        columns.push_str(", ");
        columns.push_str(name);
    }
    columns
}

/// The values of a single event, as parameters from `$3` on.
pub(crate) fn one() -> String {
    let params: Vec<String> = EVENT_PARAMS
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{ty}", i + 3))
        .collect();
    params.join(", ")
}

/// The event arrays, parameters from `$first` on, as rows `e(<event columns>, <extra>, ord)`:
/// `extra` names further arrays (with their types) that follow the event's, `ord` numbers the
/// rows from 1.
fn unnest(first: usize, extra: &[(&str, &str)]) -> String {
    let all: Vec<(&str, &str)> = EVENT_PARAMS.iter().chain(extra).copied().collect();
    let arrays: Vec<String> = all
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{ty}[]", first + i))
        .collect();
    let names: Vec<&str> = all.iter().map(|(name, _)| *name).collect();
    format!(
        "unnest({}) WITH ORDINALITY AS e({}, ord)",
        arrays.join(", "),
        names.join(", ")
    )
}

/// The values of a batch's rows (`e` of [`unnest`]).
fn many() -> String {
    let values: Vec<String> = EVENT_PARAMS
        .iter()
        .map(|(name, _)| format!("e.{name}"))
        .collect();
    values.join(", ")
}

/// The position of a new row. PostgreSQL evaluates a `CASE` condition before its result, and
/// the result only if the condition holds, so the position is drawn only after the condition
/// has (1) given the transaction its id (`pg_current_xact_id()` assigns one if it has none yet)
/// and (2) taken the *appender lock* keyed by that id (see [`appender_lock_class`]), which the
/// transaction then holds until it ends. Gap-free reading depends on that order (see
/// `holes.rs`). The lock is keyed by the writer's own id, so no other session ever holds it and
/// `pg_try_advisory_xact_lock` always succeeds; were it ever to fail, the position would be NULL
/// and the insert would fail, writing nothing.
///
/// `dcb_locks` is a boolean expression, true, that takes the shared dcb locks of the rows'
/// event types (and tags) before the draw (`dcb/locks.rs`): an append whose rows a concurrent
/// append condition could match is seen by that condition's check or drawn after it.
pub(crate) fn next_position(n: &Names, dcb_locks: &str) -> String {
    format!(
        "CASE WHEN pg_try_advisory_xact_lock({class}, {key}) AND {dcb_locks} \
         THEN nextval({sequence}::regclass) END",
        class = appender_lock_class(n),
        key = APPENDER_LOCK_KEY,
        sequence = quote_literal(&n.position_sequence)
    )
}

/// [`next_position`] for statements that insert many rows (batches and groups): the appender
/// lock is taken by an uncorrelated subquery, which PostgreSQL runs once per statement (an init
/// plan, run when the first row's `CASE` condition needs it) instead of once per row, with its
/// `xid8`-to-text conversion: 0.14 µs of server time per row measured, 1–2 % of a 1,000-event
/// append. The order is the same: the first row's condition gives the transaction its id and
/// takes the lock (and the dcb locks) before its `nextval`, and every later row's condition
/// reads the same result, so no position is drawn before both are held.
pub(crate) fn next_position_once(n: &Names, dcb_locks: &str) -> String {
    format!(
        "CASE WHEN (SELECT pg_try_advisory_xact_lock({class}, {key})) AND {dcb_locks} \
         THEN nextval({sequence}::regclass) END",
        class = appender_lock_class(n),
        key = APPENDER_LOCK_KEY,
        sequence = quote_literal(&n.position_sequence)
    )
}

/// The second key of an appender lock: the low 32 bits of the transaction id, shifted into
/// `int4`'s range. `pg_locks` shows it as the unsigned `objid`, which is the low 32 bits with
/// the top bit flipped (`holes::xid_from_lock`).
const APPENDER_LOCK_KEY: &str =
    "(pg_current_xact_id()::text::int8 % 4294967296 - 2147483648)::int4";

/// The first key of this store's appender locks: a positive `int4` derived from the events
/// table's qualified name, so two stores never read each other's appenders (a collision would
/// only make a reader wait for the other store's writers, never skip).
pub(crate) fn appender_lock_class(n: &Names) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in "eventweave-postgres appenders\0"
        .bytes()
        .chain(n.events.bytes())
    {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    (hash & 0x7fff_ffff) as i32
}

/// The version check of an append at a known version `$2`: the rows go in only if version `$2`
/// exists (or is 0). A stream already beyond `$2` makes the insert of `$2 + 1` violate the
/// unique (stream, version) constraint instead.
pub(crate) fn version_exists(n: &Names) -> String {
    format!(
        "$2::int8 = 0 OR EXISTS (SELECT 1 FROM {} WHERE stream = $1::text AND version = $2::int8)",
        n.events
    )
}

/// The stream's current version, for appends that accept any (`$2` is then -1).
pub(crate) fn current_version(n: &Names) -> String {
    format!(
        "(SELECT coalesce(max(version), 0) AS version FROM {} WHERE stream = $1::text) AS base",
        n.events
    )
}

/// The appends of a group in one statement: every row carries its append's stream, expected
/// version (-1 for any), place in the append (`nth`, from 1) and whether its version must be
/// checked (`checked`). Each append's check reads the statement's snapshot, which does not see
/// the statement's own rows, so it holds for all rows of an append or for none: an append whose
/// check fails inserts nothing and the others go in. A checked version `v` must exist (or be 0)
/// and `v + 1` must not, so a stream that moved on is a refusal rather than a unique violation
/// that would fail the whole group. Versions known to exist (`versions.rs`, and 0) skip the
/// probes: a stream beyond them, or a concurrent uncommitted append, meets the unique
/// constraint, and the group is split (`group.rs`). Skipping also keeps the common case off the
/// probes' plan, which is generic and chosen once: planned while the table was tiny, a probe
/// is a sequential scan, per row, until the next `ANALYZE` (measured: 0.5–1.8 ms per row of a
/// group on a young table). Rows return the event id, which names their append.
///
/// Untagged (`tagged` false): one `INSERT`; every append locks its event types shared before it
/// draws (`dcb/locks.rs`), and the uncorrelated subquery takes the group's type keys once, in
/// ascending order, from the names array `$2`.
///
/// Tagged: each row also carries its tags as the text of a `text[]` literal (`$12`, NULL
/// without tags; `group::tags_literal`), written to the `tags` column; a second data-modifying
/// `WITH` query writes an `event_tags` row per tag of each *inserted* row (a refused append's
/// rows never reach it). `$13` is the key texts of every row's shared dcb locks (types, tags,
/// (tag, type) pairs: `locks::event_keys`), taken in one ascending, deduplicated pass by the
/// init plan in the position `CASE`: after the `ROW EXCLUSIVE` locks the statement takes when it
/// starts, before the first position is drawn, exactly as a lone tagged append takes them.
fn append_group(n: &Names, columns: &str, many: &str, tagged: bool) -> String {
    let events = &n.events;
    let mut extra = vec![
        ("stream", "text"),
        ("expected", "int8"),
        ("nth", "int8"),
        ("checked", "bool"),
    ];
    if tagged {
        extra.push(("tags", "text"));
    }
    let rows = unnest(1, &extra);
    let (locks, tags_column, tags_value, returning) = if tagged {
        (
            crate::dcb::locks::shared_locks(n, "SELECT unnest($13::text[])"),
            ", tags",
            ", e.tags::text[]",
            ", tags",
        )
    } else {
        (
            crate::dcb::locks::type_locks(n, "unnest($2::text[])"),
            "",
            "",
            "",
        )
    };
    let insert = format!(
        "INSERT INTO {events} ({columns}{tags_column})
         SELECT {next}, e.stream,
                CASE WHEN e.expected < 0
                     THEN (SELECT coalesce(max(v.version), 0) FROM {events} AS v
                           WHERE v.stream = e.stream)
                     ELSE e.expected END + e.nth,
                {many}{tags_value}
         FROM {rows}
         WHERE NOT e.checked
            OR e.expected < 0
            OR ((e.expected = 0
                 OR EXISTS (SELECT 1 FROM {events} AS v
                            WHERE v.stream = e.stream AND v.version = e.expected))
                AND NOT EXISTS (SELECT 1 FROM {events} AS v
                                WHERE v.stream = e.stream AND v.version = e.expected + 1))
         ORDER BY e.ord
         RETURNING position, version, recorded_at, event_id{returning}",
        next = next_position_once(n, &locks),
    );
    if !tagged {
        return insert;
    }
    format!(
        "WITH ins AS ({insert}),
         tagged AS (
             INSERT INTO {event_tags} (tag, position)
             SELECT t.tag, ins.position FROM ins CROSS JOIN LATERAL unnest(ins.tags) AS t(tag)
         )
         SELECT position, version, recorded_at, event_id FROM ins",
        event_tags = n.event_tags,
    )
}

/// The statements of one event, rendered with or without its tags: `locks` is the position's
/// dcb lock expression (`dcb/locks.rs`); a tagged event also writes the `tags` column, from the
/// text of a `text[]` literal (`$10`, as `group::tags_literal` writes it).
///
/// A tagged event has its own statements rather than taking the group statement with one
/// append: `VALUES` instead of thirteen one-element arrays unnested, ordered and checked row
/// by row. Measured on the server (backend CPU per execution, generic plans, 4 × 2,000 runs):
/// 170–180 µs against 230–305 µs for the group statement, and 100–165 µs for an untagged event.
struct Singles<'a> {
    n: &'a Names,
    columns: String,
}

impl Singles<'_> {
    /// The insert's column list, the tags value and the tags returned.
    fn tags(&self, tagged: bool) -> (String, &'static str, &'static str) {
        if !tagged {
            (self.columns.clone(), "", "")
        } else {
            (
                format!("{}, tags", self.columns),
                ", $10::text::text[]",
                ", tags",
            )
        }
    }

    /// At version `$2` + 1, known to exist.
    fn known(&self, locks: &str, tagged: bool) -> String {
        let (columns, value, returned) = self.tags(tagged);
        format!(
            "INSERT INTO {events} ({columns})
             VALUES ({next}, $1::text, $2::int8 + 1, {one}{value})
             RETURNING position, version, recorded_at{returned}",
            events = self.n.events,
            next = next_position(self.n, locks),
            one = one(),
        )
    }

    /// At expected version `$2`: inserts nothing when it does not exist.
    fn checked(&self, locks: &str, tagged: bool) -> String {
        let (columns, value, returned) = self.tags(tagged);
        format!(
            "INSERT INTO {events} ({columns})
             SELECT {next}, $1::text, $2::int8 + 1, {one}{value}
             WHERE {exists}
             RETURNING position, version, recorded_at{returned}",
            events = self.n.events,
            next = next_position(self.n, locks),
            one = one(),
            exists = version_exists(self.n),
        )
    }

    /// At whatever version the stream has (`$2` is -1).
    fn any(&self, locks: &str, tagged: bool) -> String {
        let (columns, value, returned) = self.tags(tagged);
        format!(
            "INSERT INTO {events} ({columns})
             SELECT {next}, $1::text, base.version + 1, {one}{value}
             FROM {current}
             WHERE $2::int8 < 0
             RETURNING position, version, recorded_at{returned}",
            events = self.n.events,
            next = next_position(self.n, locks),
            one = one(),
            current = current_version(self.n),
        )
    }
}

/// Wraps an insert that returns `position` and `tags` so that it also writes an `event_tags`
/// row per tag of each inserted row (a refused insert's rows never reach it); the statement
/// returns the insert's position, version and recorded_at.
fn tag_rows(n: &Names, insert: &str) -> String {
    format!(
        "WITH ins AS ({insert}),
         tagged AS (
             INSERT INTO {event_tags} (tag, position)
             SELECT t.tag, ins.position FROM ins CROSS JOIN LATERAL unnest(ins.tags) AS t(tag)
         )
         SELECT position, version, recorded_at FROM ins",
        event_tags = n.event_tags,
    )
}

impl Sql {
    pub fn new(n: &Names) -> Sql {
        let events = &n.events;
        // The event type of a single event is `$4`, a batch's types the array `$4`.
        let one_type = crate::dcb::locks::type_lock_one(n, "$4::text");
        let tag_locks = crate::dcb::locks::shared_locks(n, "SELECT unnest($11::text[])");
        let columns = insert_columns();
        let singles = Singles {
            n,
            columns: columns.clone(),
        };
        let batch_types = crate::dcb::locks::type_locks(n, "unnest($4::text[])");
        let many = many();
        let batch = unnest(3, &[]);
        Sql {
            append_one_known: singles.known(&one_type, false),
            append_one: singles.checked(&one_type, false),
            append_one_any: singles.any(&one_type, false),
            append_one_tagged_known: tag_rows(n, &singles.known(&tag_locks, true)),
            append_one_tagged: tag_rows(n, &singles.checked(&tag_locks, true)),
            append_one_tagged_any: tag_rows(n, &singles.any(&tag_locks, true)),
            append_batch: format!(
                "INSERT INTO {events} ({columns})
                 SELECT {next}, $1::text, $2::int8 + e.ord, {many}
                 FROM {batch}
                 WHERE {exists}
                 ORDER BY e.ord
                 RETURNING position, version, recorded_at",
                next = next_position_once(n, &batch_types),
                exists = version_exists(n),
            ),
            append_batch_any: format!(
                "INSERT INTO {events} ({columns})
                 SELECT {next}, $1::text, base.version + e.ord, {many}
                 FROM {current}, {batch}
                 WHERE $2::int8 < 0
                 ORDER BY e.ord
                 RETURNING position, version, recorded_at",
                next = next_position_once(n, &batch_types),
                current = current_version(n),
            ),
            append_group: append_group(n, &columns, &many, false),
            append_group_tagged: append_group(n, &columns, &many, true),
            read_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {events}
                 WHERE stream = $1::text AND version >= $2::int8
                 ORDER BY version LIMIT $3::int8"
            ),
            // The rows and the horizon come from one statement, hence one snapshot. `next_xid`
            // bounds every transaction id assigned before the snapshot: `age(x)` is the distance
            // from `x` to the next id to be assigned, read during execution (after the snapshot
            // was taken) without assigning one. The snapshot's `xmax` is no such bound: it is
            // one past the newest *completed* id, and a running transaction can hold a higher id.
            // The horizon comes once, as the first row (a plain `Append` returns its branches
            // in order; pooled sessions plan nothing parallel, `pool.rs`, and the reader
            // refuses a first row that is not the horizon): `xmin` in the `position` column, `next_xid` in the `version` column, every
            // other column NULL (an event row's stream never is). The event rows carry no
            // snapshot columns and pass through no join: a sixth less server time per row than
            // a `LATERAL` join under the snapshot.
            read_all: format!(
                "(SELECT pg_snapshot_xmin(c)::text::int8,
                         NULL::text,
                         pg_snapshot_xmin(c)::text::int8 + age(xid(pg_snapshot_xmin(c))),
                         NULL::uuid, NULL::text, NULL::int4, NULL::jsonb, NULL::jsonb,
                         NULL::uuid, NULL::uuid, NULL::timestamptz, NULL::text[]
                  FROM pg_current_snapshot() AS c)
                 UNION ALL
                 (SELECT {EVENT_COLUMNS} FROM {events}
                  WHERE position >= $1::int8 ORDER BY position LIMIT $2::int8)"
            ),
            head: format!("SELECT coalesce(max(position), 0) FROM {events}"),
            exists_after: format!(
                "SELECT EXISTS (SELECT 1 FROM {events} WHERE position > $1::int8)"
            ),
            by_ids: format!(
                "SELECT {EVENT_COLUMNS} FROM {events} WHERE event_id = ANY($1::uuid[]) ORDER BY position"
            ),
            stream_version: format!(
                "SELECT coalesce(max(version), 0) FROM {events} WHERE stream = $1::text"
            ),
            // `objid` of a two-key advisory lock is its second key as an unsigned number.
            appenders: format!(
                "SELECT l.objid::int8 FROM pg_locks AS l
                 WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
                   AND l.classid = {class}::int8::oid
                   AND l.database = (SELECT oid FROM pg_database
                                     WHERE datname = current_database())",
                class = appender_lock_class(n),
            ),
        }
    }
}

/// The statements of [`Sql`], prepared on one connection.
pub(crate) struct Prepared {
    pub append_one_known: Statement,
    pub append_one: Statement,
    pub append_one_any: Statement,
    pub append_one_tagged_known: Statement,
    pub append_one_tagged: Statement,
    pub append_one_tagged_any: Statement,
    pub append_batch: Statement,
    pub append_batch_any: Statement,
    pub append_group: Statement,
    pub append_group_tagged: Statement,
    pub read_stream: Statement,
    pub read_all: Statement,
    pub head: Statement,
    pub exists_after: Statement,
    pub by_ids: Statement,
    pub stream_version: Statement,
    pub appenders: Statement,
}

impl Prepared {
    /// Prepares every statement; the requests are pipelined, so this costs about one round trip.
    pub async fn new(client: &Client, sql: &Sql) -> Result<Prepared, tokio_postgres::Error> {
        let (
            known,
            one,
            one_any,
            tagged_known,
            tagged,
            tagged_any,
            batch,
            batch_any,
            group,
            group_tagged,
            read_stream,
            read_all,
            head,
            exists_after,
            by_ids,
            version,
            appenders,
        ) = tokio::join!(
            client.prepare(&sql.append_one_known),
            client.prepare(&sql.append_one),
            client.prepare(&sql.append_one_any),
            client.prepare(&sql.append_one_tagged_known),
            client.prepare(&sql.append_one_tagged),
            client.prepare(&sql.append_one_tagged_any),
            client.prepare(&sql.append_batch),
            client.prepare(&sql.append_batch_any),
            client.prepare(&sql.append_group),
            client.prepare(&sql.append_group_tagged),
            client.prepare(&sql.read_stream),
            client.prepare(&sql.read_all),
            client.prepare(&sql.head),
            client.prepare(&sql.exists_after),
            client.prepare(&sql.by_ids),
            client.prepare(&sql.stream_version),
            client.prepare(&sql.appenders),
        );
        Ok(Prepared {
            append_one_known: known?,
            append_one: one?,
            append_one_any: one_any?,
            append_one_tagged_known: tagged_known?,
            append_one_tagged: tagged?,
            append_one_tagged_any: tagged_any?,
            append_batch: batch?,
            append_batch_any: batch_any?,
            append_group: group?,
            append_group_tagged: group_tagged?,
            read_stream: read_stream?,
            read_all: read_all?,
            head: head?,
            exists_after: exists_after?,
            by_ids: by_ids?,
            stream_version: version?,
            appenders: appenders?,
        })
    }
}

/// `text` as a SQL string literal (single quotes doubled; the server's
/// `standard_conforming_strings`, on by default since PostgreSQL 9.1, keeps backslashes as is).
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_single_quotes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn positions_are_drawn_from_an_expression_that_reads_the_transaction_id() {
        let names = crate::PostgresConfig::new("postgres://x").names().unwrap();
        let sql = Sql::new(&names);
        for text in [
            &sql.append_one_known,
            &sql.append_one,
            &sql.append_one_any,
            &sql.append_one_tagged_known,
            &sql.append_one_tagged,
            &sql.append_one_tagged_any,
            &sql.append_batch,
            &sql.append_batch_any,
            &sql.append_group,
            &sql.append_group_tagged,
        ] {
            assert!(
                (text.contains("CASE WHEN pg_try_advisory_xact_lock(")
                    || text.contains("CASE WHEN (SELECT pg_try_advisory_xact_lock("))
                    && text.contains("pg_current_xact_id()")
                    && text.contains("pg_advisory_xact_lock_shared(")
                    && text.contains(" THEN nextval("),
                "{text}"
            );
            assert_eq!(text.matches("nextval(").count(), 1, "{text}");
        }
        // A single tagged event writes its tags and its `event_tags` rows with `VALUES`, and
        // takes the dcb keys it is sent (`$11`) before the draw, as the group statement does.
        for text in [
            &sql.append_one_tagged_known,
            &sql.append_one_tagged,
            &sql.append_one_tagged_any,
        ] {
            assert!(text.contains("$10::text::text[]"), "{text}");
            assert!(
                text.contains(&format!("INSERT INTO {}", names.event_tags)),
                "{text}"
            );
            assert!(text.contains("unnest($11::text[])"), "{text}");
            assert!(!text.contains("WITH ORDINALITY"), "{text}");
        }
        // Statements of many rows take the appender lock once, in an init plan.
        for text in [
            &sql.append_batch,
            &sql.append_batch_any,
            &sql.append_group,
            &sql.append_group_tagged,
        ] {
            assert!(
                text.contains("CASE WHEN (SELECT pg_try_advisory_xact_lock("),
                "{text}"
            );
        }
    }
}

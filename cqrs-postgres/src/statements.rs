//! The SQL the store runs, rendered once from the quoted [`Names`] and prepared on every pooled
//! connection.

use tokio_postgres::{Client, Statement};

use crate::config::Names;

/// The columns of an event row, in the order `decode::event` reads them.
pub(crate) const EVENT_COLUMNS: &str = "position, stream, version, event_id, event_name, \
     event_version, payload, metadata, correlation_id, causation_id, recorded_at";

/// Statement texts, shared by every connection of a pool.
#[derive(Debug)]
pub(crate) struct Sql {
    pub append_batch: String,
    pub append_one: String,
    pub read_stream: String,
    pub read_all: String,
    pub head: String,
    pub exists_after: String,
    pub by_ids: String,
    pub stream_version: String,
}

/// How an append computes its first version: `$2` is the expected version, or -1 for "any"
/// (then the stream's current version, read in the same statement). The append inserts rows
/// only if that version exists (or is 0); a stream already beyond it makes the insert of
/// version + 1 violate the unique (stream, version) constraint.
///
/// Ordering that gap-free reading depends on: `xact` assigns the transaction id first, and the
/// position is drawn by an expression that reads `xact.xid`, so no position can be drawn before
/// the transaction has its id (see `read.rs`).
fn append_prefix(n: &Names) -> String {
    format!(
        "WITH xact AS (SELECT pg_current_xact_id() AS xid),
         base AS (
             SELECT CASE WHEN $2::int8 >= 0 THEN $2::int8
                         ELSE (SELECT coalesce(max(version), 0) FROM {events} WHERE stream = $1::text)
                    END AS version
         )
         INSERT INTO {events} (position, stream, version, event_id, event_name, event_version,
                               payload, metadata, correlation_id, causation_id)",
        events = n.events
    )
}

fn append_guard(n: &Names) -> String {
    format!(
        "xact.xid IS NOT NULL
         AND (base.version = 0
              OR EXISTS (SELECT 1 FROM {events} WHERE stream = $1::text AND version = base.version))",
        events = n.events
    )
}

fn next_position(n: &Names) -> String {
    format!(
        "CASE WHEN xact.xid IS NOT NULL THEN nextval({}::regclass) END",
        quote_literal(&n.position_sequence)
    )
}

impl Sql {
    pub fn new(n: &Names) -> Sql {
        let events = &n.events;
        Sql {
            append_batch: format!(
                "{prefix}
                 SELECT {next}, $1::text, base.version + e.ord, e.event_id, e.event_name,
                        e.event_version, e.payload, e.metadata, e.correlation_id, e.causation_id
                 FROM xact, base,
                      unnest($3::uuid[], $4::text[], $5::int4[], $6::jsonb[], $7::jsonb[],
                             $8::uuid[], $9::uuid[])
                      WITH ORDINALITY AS e(event_id, event_name, event_version, payload, metadata,
                                           correlation_id, causation_id, ord)
                 WHERE {guard}
                 ORDER BY e.ord
                 RETURNING position, version, recorded_at",
                prefix = append_prefix(n),
                next = next_position(n),
                guard = append_guard(n),
            ),
            append_one: format!(
                "{prefix}
                 SELECT {next}, $1::text, base.version + 1, $3::uuid, $4::text, $5::int4,
                        $6::jsonb, $7::jsonb, $8::uuid, $9::uuid
                 FROM xact, base
                 WHERE {guard}
                 RETURNING position, version, recorded_at",
                prefix = append_prefix(n),
                next = next_position(n),
                guard = append_guard(n),
            ),
            read_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {events}
                 WHERE stream = $1::text AND version >= $2::int8
                 ORDER BY version LIMIT $3::int8"
            ),
            // The snapshot and the rows come from one statement, hence one snapshot.
            read_all: format!(
                "SELECT s.xmin, s.xmax, e.*
                 FROM (SELECT pg_snapshot_xmin(c)::text::int8 AS xmin,
                              pg_snapshot_xmax(c)::text::int8 AS xmax
                       FROM pg_current_snapshot() AS c) AS s
                 LEFT JOIN LATERAL (
                     SELECT {EVENT_COLUMNS} FROM {events}
                     WHERE position >= $1::int8 ORDER BY position LIMIT $2::int8
                 ) AS e ON true"
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
        }
    }
}

/// The statements of [`Sql`], prepared on one connection.
pub(crate) struct Prepared {
    pub append_batch: Statement,
    pub append_one: Statement,
    pub read_stream: Statement,
    pub read_all: Statement,
    pub head: Statement,
    pub exists_after: Statement,
    pub by_ids: Statement,
    pub stream_version: Statement,
}

impl Prepared {
    /// Prepares every statement; the requests are pipelined, so this costs about one round trip.
    pub async fn new(client: &Client, sql: &Sql) -> Result<Prepared, tokio_postgres::Error> {
        let (append_batch, append_one, read_stream, read_all, head, exists_after, by_ids, version) = tokio::join!(
            client.prepare(&sql.append_batch),
            client.prepare(&sql.append_one),
            client.prepare(&sql.read_stream),
            client.prepare(&sql.read_all),
            client.prepare(&sql.head),
            client.prepare(&sql.exists_after),
            client.prepare(&sql.by_ids),
            client.prepare(&sql.stream_version),
        );
        Ok(Prepared {
            append_batch: append_batch?,
            append_one: append_one?,
            read_stream: read_stream?,
            read_all: read_all?,
            head: head?,
            exists_after: exists_after?,
            by_ids: by_ids?,
            stream_version: version?,
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
        for text in [&sql.append_batch, &sql.append_one] {
            let xid = text.find("pg_current_xact_id()").expect("takes an xid");
            let draw = text.find("nextval(").expect("draws a position");
            assert!(xid < draw);
            assert!(text.contains("CASE WHEN xact.xid IS NOT NULL THEN nextval("));
        }
    }
}

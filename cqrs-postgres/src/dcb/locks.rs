//! The dcb locks: transaction-scoped advisory locks that make an append condition's check see
//! every event that could match it (the argument is in `dcb/mod.rs` and ARCHITECTURE.md).
//!
//! A lock is keyed by the store's class (a positive `int4` hashed from the events table, as the
//! appender locks' is, but another one) and `hashtext` of a key text:
//!
//! | key text | taken by |
//! |---|---|
//! | `T<type>` | every append, shared, per event type; a condition item with types and no tags, exclusive, per type |
//! | `G<tag>` | every append, shared, per tag; an item with tags and no types, exclusive, for one of its tags |
//! | `P<tag>\x01<type>` | every append, shared, per (type, tag) of an event; an item with both, exclusive, per type with one of its tags |
//!
//! An event matching an item therefore always holds, shared, the key the item's check holds
//! exclusively. Hashing is done by the server (`hashtext`), so the plain append statements,
//! which send event types and no keys, take the same `T` keys as a conditional append that sends
//! its key texts. Two texts with one hash only make more appends wait for each other.
//!
//! **No deadlock**: every transaction takes all its dcb locks in one pass in ascending key order
//! (exclusive where a key is wanted both ways), after the `ROW EXCLUSIVE` lock on the events
//! table (which an `INSERT` takes when it starts, and a conditional append takes first) and before
//! it inserts a row; so waits between appenders follow one order, and a transaction waiting on
//! another's row (a unique index) waits for one that holds all the locks it will ever take.

use eventweave_core::{QueryItem, Tag};

use crate::config::Names;

/// The first key of this store's dcb locks: a positive `int4` from the events table's qualified
/// name, another seed than the appender locks' class, so the two never meet.
pub(crate) fn class(n: &Names) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in "eventweave-postgres dcb\0".bytes().chain(n.events.bytes()) {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    (hash & 0x7fff_ffff) as i32
}

/// The key text of an event type.
pub(crate) fn type_key(name: &str) -> String {
    format!("T{name}")
}

/// The key text of a tag.
pub(crate) fn tag_key(tag: &Tag) -> String {
    format!("G{tag}")
}

/// The key text of an event type with one of its tags.
pub(crate) fn pair_key(name: &str, tag: &Tag) -> String {
    format!("P{tag}\u{1}{name}")
}

/// The key texts an event of type `name` carrying `tags` locks shared before it is drawn.
pub(crate) fn event_keys<'a>(
    name: &str,
    tags: impl IntoIterator<Item = &'a Tag>,
    out: &mut Vec<String>,
) {
    out.push(type_key(name));
    for tag in tags {
        out.push(tag_key(tag));
        out.push(pair_key(name, tag));
    }
}

/// The tag of an item that drives its lookups and its exclusive lock: the first in order. Any
/// tag of the item is sound (every matching event carries all of them); the first is stable.
pub(crate) fn driving_tag(item: &QueryItem) -> Option<&Tag> {
    item.required_tags().first()
}

/// The key texts a condition item locks exclusively: one per type with its driving tag, or its
/// types alone, or its driving tag alone.
pub(crate) fn item_keys(item: &QueryItem, out: &mut Vec<String>) {
    match driving_tag(item) {
        None => out.extend(item.event_types().iter().map(|t| type_key(t))),
        Some(tag) if item.event_types().is_empty() => out.push(tag_key(tag)),
        Some(tag) => out.extend(item.event_types().iter().map(|t| pair_key(t, tag))),
    }
}

/// A true boolean expression that takes, shared and in ascending key order, the `T` keys of the
/// event types produced by `names` (a set-returning expression, such as `unnest($4::text[])`).
/// Used inside the plain append statements' position `CASE`, before the draw.
pub(crate) fn type_locks(n: &Names, names: &str) -> String {
    shared_locks(n, &format!("SELECT 'T' || t FROM {names} AS t"))
}

/// [`type_locks`] for the single event type `name` (an expression).
pub(crate) fn type_lock_one(n: &Names, name: &str) -> String {
    format!(
        "pg_advisory_xact_lock_shared({class}, hashtext('T' || {name})) IS NOT NULL",
        class = class(n)
    )
}

/// A true boolean expression that takes, shared and in ascending key order, the keys whose
/// texts `texts` (a query of one text column) returns. The subquery is uncorrelated, so it runs
/// once per statement (an init plan). The locks are taken by the aggregate's `FILTER`, which
/// reads the sorted rows in order; `OFFSET 0` keeps the planner from pushing anything into the
/// sorted subquery (a `WHERE` there was pushed below the sort, and the locks were taken in hash
/// order: two appends deadlocked).
pub(crate) fn shared_locks(n: &Names, texts: &str) -> String {
    format!(
        "(SELECT count(*) FILTER (WHERE pg_advisory_xact_lock_shared({class}, s.h) IS NOT NULL)
          FROM (SELECT DISTINCT hashtext(k.t) AS h FROM ({texts}) AS k(t) ORDER BY h OFFSET 0) AS s)
         >= 0",
        class = class(n)
    )
}

/// The lock pass of an append to several streams (`statements::function`), without its
/// leading `SELECT` (it follows `PERFORM`): every key whose text is in the array `texts`, locked
/// in ascending order, exclusively where any of its entries in the array `exclusive` is true,
/// shared otherwise (taken in the aggregate's `FILTER` over the sorted keys, as in
/// [`shared_locks`]).
pub(crate) fn lock_pass(n: &Names, texts: &str, exclusive: &str) -> String {
    format!(
        "count(*) FILTER (WHERE CASE
                 WHEN s.x THEN pg_advisory_xact_lock({class}, s.h) IS NOT NULL
                 ELSE pg_advisory_xact_lock_shared({class}, s.h) IS NOT NULL END)
         FROM (
             SELECT hashtext(u.t) AS h, bool_or(u.x) AS x
             FROM unnest({texts}, {exclusive}) AS u(t, x)
             GROUP BY 1 ORDER BY 1 OFFSET 0
         ) AS s",
        class = class(n)
    )
}

/// A true boolean expression that takes, in ascending key order, every key whose text is in the
/// array `texts`, exclusively where the matching entry of the array `exclusive` is true, shared
/// otherwise: the lock pass of a lone conditional event's statement
/// (`statements::append_one`), an uncorrelated subquery run once (an init plan). The caller
/// sends each text once (`One::keys`); two texts with one hash are both taken, the exclusive
/// one first (`x DESC`), so no transaction asks to upgrade a key it holds shared, and the
/// second request for a key it already holds never waits. Without `GROUP BY` this is one sort
/// and no aggregate of pairs: a lone event locks five or six keys.
pub(crate) fn locks_in_order(n: &Names, texts: &str, exclusive: &str) -> String {
    format!(
        "(SELECT count(*) FILTER (WHERE CASE
                 WHEN s.x THEN pg_advisory_xact_lock({class}, s.h) IS NOT NULL
                 ELSE pg_advisory_xact_lock_shared({class}, s.h) IS NOT NULL END)
          FROM (SELECT hashtext(k.t) AS h, k.x FROM unnest({texts}, {exclusive}) AS k(t, x)
                ORDER BY 1, 2 DESC OFFSET 0) AS s)
         >= 0",
        class = class(n)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Tag {
        Tag::parse(s).unwrap()
    }

    #[test]
    fn an_event_holds_the_key_every_item_it_matches_locks() {
        let (c1, s1) = (tag("course:c1"), tag("student:s1"));
        let mut held = Vec::new();
        event_keys("booked", [&c1, &s1], &mut held);
        let items = [
            QueryItem::types(["booked"]),
            QueryItem::tags([c1.clone()]),
            QueryItem::tags([s1.clone(), c1.clone()]),
            QueryItem::types(["booked", "other"]).with_tag(s1.clone()),
            QueryItem::types(["booked"]).with_tags([c1.clone(), s1.clone()]),
        ];
        for item in &items {
            assert!(item.matches(
                "booked",
                &eventweave_core::Tags::new([c1.clone(), s1.clone()])
            ));
            let mut locked = Vec::new();
            item_keys(item, &mut locked);
            assert!(
                locked.iter().any(|k| held.contains(k)),
                "{item:?} locks {locked:?}, the event holds {held:?}"
            );
        }
        // An item the event does not match locks nothing it holds.
        let mut locked = Vec::new();
        item_keys(&QueryItem::types(["cancelled"]).with_tag(c1), &mut locked);
        assert!(locked.iter().all(|k| !held.contains(k)));
    }

    #[test]
    fn the_classes_of_two_stores_differ_and_are_positive() {
        let names = |table: &str| {
            crate::PostgresConfig::new("postgres://x")
                .events_table(table)
                .names()
                .unwrap()
        };
        let (a, b) = (class(&names("events")), class(&names("other_events")));
        assert!(a > 0 && b > 0 && a != b);
        assert_ne!(a, crate::statements::appender_lock_class(&names("events")));
    }
}

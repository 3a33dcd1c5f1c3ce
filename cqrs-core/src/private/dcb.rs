//! Support for the code `#[decision]`, `#[decision_state]` and the `#[tag]` derives generate:
//! the compile-time checks of dynamic consistency boundaries, as `const fn`s over the tag
//! descriptions the macros emit (`TagField`s, state tag keys and event names), so each check
//! fails in const evaluation with a message naming the user's types.

pub use crate::decision::{Decides, DecisionCommand};
use crate::tag::{Tag, TagValue};

pub use crate::app::{CommandFuture, Execute};
pub use crate::decision::{
    Decision, DecisionBus, DecisionCommandSet, DecisionState, Emits, InAggregate, IntoEmits,
    StateSet,
};
pub use crate::event_query::QueryItem;
pub use crate::tag::{TagError, TagField, Tags};

use super::str_eq;

/// The index of the `#[tag]` field called `field`, or `usize::MAX`.
pub const fn field_index(fields: &[TagField], field: &str) -> usize {
    let mut i = 0;
    while i < fields.len() {
        if str_eq(fields[i].field, field) {
            return i;
        }
        i += 1;
    }
    usize::MAX
}

/// The `#[tag]` field that fills a state's tag `key`: the one named by a binding
/// `(key, field)`, else the command's one field with that key (`usize::MAX`: none, or several).
pub const fn key_field(fields: &[TagField], key: &str, bound: &[(&str, &str)]) -> usize {
    let mut b = 0;
    while b < bound.len() {
        if str_eq(bound[b].0, key) {
            return field_index(fields, bound[b].1);
        }
        b += 1;
    }
    let mut found = usize::MAX;
    let mut i = 0;
    while i < fields.len() {
        if str_eq(fields[i].key, key) {
            if found != usize::MAX {
                return usize::MAX;
            }
            found = i;
        }
        i += 1;
    }
    found
}

/// For each of a state's tag keys, the command field that fills it (`usize::MAX`: none).
pub const fn key_fields<const N: usize>(
    keys: &[&str],
    fields: &[TagField],
    bound: &[(&str, &str)],
) -> [usize; N] {
    let mut out = [usize::MAX; N];
    let mut k = 0;
    while k < N && k < keys.len() {
        out[k] = key_field(fields, keys[k], bound);
        k += 1;
    }
    out
}

/// The first of a state's keys that no command field fills (`""`: every key is filled).
pub const fn unfilled_key(
    keys: &[&'static str],
    fields: &[TagField],
    bound: &[(&str, &str)],
) -> &'static str {
    let mut k = 0;
    while k < keys.len() {
        if key_field(fields, keys[k], bound) == usize::MAX {
            return keys[k];
        }
        k += 1;
    }
    ""
}

/// The first binding `(key, field)` naming a field that is not a `#[tag]` field (`""`: none).
pub const fn unknown_bound_field(
    fields: &[TagField],
    bound: &[(&'static str, &'static str)],
) -> &'static str {
    let mut b = 0;
    while b < bound.len() {
        if field_index(fields, bound[b].1) == usize::MAX {
            return bound[b].1;
        }
        b += 1;
    }
    ""
}

/// The first key whose filling field's type differs from the type the state's events give
/// it, as `(key index, field index)` (`(usize::MAX, usize::MAX)`: none differs). Types are
/// compared by their names as written; an unknown state type (`""`) matches anything.
pub const fn mistyped_key(
    keys: &[&str],
    types: &[&str],
    fields: &[TagField],
    bound: &[(&str, &str)],
) -> (usize, usize) {
    let mut k = 0;
    while k < keys.len() && k < types.len() {
        let f = key_field(fields, keys[k], bound);
        if f != usize::MAX && !types[k].is_empty() && !str_eq(fields[f].ty, types[k]) {
            return (k, f);
        }
        k += 1;
    }
    (usize::MAX, usize::MAX)
}

/// The first of `keys` that an event with tag fields `fields` does not carry (`""`: none).
pub const fn missing_event_tag(fields: &[TagField], keys: &[&'static str]) -> &'static str {
    let mut k = 0;
    while k < keys.len() {
        if !has_key(fields, None, keys[k]) {
            return keys[k];
        }
        k += 1;
    }
    ""
}

const fn has_key(fields: &[TagField], id_tag: Option<&str>, key: &str) -> bool {
    if let Some(id) = id_tag
        && str_eq(id, key)
    {
        return true;
    }
    let mut i = 0;
    while i < fields.len() {
        if str_eq(fields[i].key, key) {
            return true;
        }
        i += 1;
    }
    false
}

/// The type the first event of `events` carrying `key` gives it (`""`: none carries it).
pub const fn tag_type(events: &[&[TagField]], key: &str) -> &'static str {
    let mut e = 0;
    while e < events.len() {
        let fields = events[e];
        let mut i = 0;
        while i < fields.len() {
            if str_eq(fields[i].key, key) {
                return fields[i].ty;
            }
            i += 1;
        }
        e += 1;
    }
    ""
}

/// The type an event with `fields` gives `key`, if it carries it (`""` otherwise).
pub const fn own_tag_type(fields: &[TagField], key: &str) -> &'static str {
    tag_type(&[fields], key)
}

/// Whether any state `(event names, tag keys)` reads back an event named `name` with tag fields
/// `fields` (and, written into an aggregate's stream, the aggregate's id tag `id_tag`): the
/// state folds its type and the event carries every key of the state.
pub const fn read_back(
    name: &str,
    fields: &[TagField],
    id_tag: Option<&str>,
    states: &[(&[&str], &[&str])],
) -> bool {
    let mut s = 0;
    while s < states.len() {
        let (names, keys) = states[s];
        let mut folds = false;
        let mut n = 0;
        while n < names.len() {
            folds |= str_eq(names[n], name);
            n += 1;
        }
        let mut carries = true;
        let mut k = 0;
        while k < keys.len() {
            carries &= has_key(fields, id_tag, keys[k]);
            k += 1;
        }
        if folds && carries {
            return true;
        }
        s += 1;
    }
    false
}

/// `strings[i]`, or `""` beyond the end (for messages built whether or not a check failed).
pub const fn str_at(strings: &[&'static str], i: usize) -> &'static str {
    if i < strings.len() { strings[i] } else { "" }
}

/// The name of `fields[i]`, or `""`.
pub const fn field_at(fields: &[TagField], i: usize) -> &'static str {
    if i < fields.len() {
        fields[i].field
    } else {
        ""
    }
}

/// The type of `fields[i]`, or `""`.
pub const fn type_at(fields: &[TagField], i: usize) -> &'static str {
    if i < fields.len() { fields[i].ty } else { "" }
}

/// Compiles only when command `C` is decided by `D` (a handler of `D` for a command whose
/// `#[command(decision = …)]` names another decision fails here, on the command parameter).
pub fn decision_target<C: DecisionCommand<Decision = D>, D>() {}

/// The tag `key:<value of field>` of a command (the query's tags).
pub fn command_tag<C: DecisionCommand>(cmd: &C, key: &str, field: usize) -> Result<Tag, TagError> {
    Tag::new(key, &cmd.tag_value(field))
}

/// The tag `key:<value>` of an event's `#[tag]` field.
pub fn field_tag<T: TagValue + ?Sized>(key: &str, value: &T) -> Result<Tag, TagError> {
    Tag::new(key, &value.tag_text())
}

/// The text of a command's `#[tag]` field.
pub fn tag_text<T: TagValue + ?Sized>(value: &T) -> String {
    value.tag_text()
}

/// Runs a decision's command for untyped dispatch, with the business error boxed.
pub async fn execute_decision_routed<B: DecisionBus, C>(
    bus: &B,
    command: C,
    context: crate::CommandContext,
) -> Result<crate::CommandOutcome, crate::DispatchError>
where
    C: DecisionCommand,
    C::Decision: Decides<C>,
{
    bus.execute_decision(command, context)
        .await
        .map_err(super::box_command_error)
}

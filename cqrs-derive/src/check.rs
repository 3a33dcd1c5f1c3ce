//! Rules that involve several methods of one impl block. Each check records an error at the
//! later method and marks it [`State::Dropped`], so the expansion generates nothing for it and
//! rustc reports nothing more (no conflicting impls, no duplicate variants).

use std::collections::HashMap;

use syn::{Attribute, Ident, Type};

use crate::ctxt::Ctxt;
use crate::model::State;
use crate::model::aggregate::AggregateDef;
use crate::model::process::ProcessDef;
use crate::model::projection::ProjectionDef;
use crate::model::sig::{display, type_key};
use crate::naming::plain;

/// One `#[apply]` method per event type, and one variant name per event: the event enum
/// has a variant per event, named after the type.
pub fn distinct_events(cx: &mut Ctxt, def: &mut AggregateDef) {
    let mut by_type: HashMap<String, String> = HashMap::new();
    let mut by_variant: HashMap<String, String> = HashMap::new();
    for apply in def.applies.iter_mut().filter(|a| a.state != State::Dropped) {
        let key = type_key(&apply.event);
        let variant = plain(&apply.variant);
        if let Some(method) = by_type.get(&key) {
            cx.error_spanned_by(
                &apply.param,
                format!(
                    "`{}` is already applied by `{method}`: an aggregate has one `#[apply]` method per event type; remove this one",
                    display(&apply.event)
                ),
            );
            apply.state = State::Dropped;
        } else if let Some(other) = by_variant.get(&variant) {
            cx.error_spanned_by(
                &apply.param,
                format!(
                    "two events of `{}` are named `{variant}` (`{other}` and `{}`): the variants of the generated `{}` need distinct names; import one under another name (`use … as Other{variant};`)",
                    plain(&def.ident),
                    display(&apply.event),
                    plain(&def.event_enum)
                ),
            );
            apply.state = State::Dropped;
        } else {
            by_type.insert(key, plain(&apply.method));
            by_variant.insert(variant, display(&apply.event));
        }
    }
}

/// One `#[handle]` method per command (a second would be a conflicting `Handles` impl), and
/// one variant name per command in the command enum.
pub fn distinct_commands(cx: &mut Ctxt, def: &mut AggregateDef) {
    let mut by_type: HashMap<String, String> = HashMap::new();
    let mut by_variant: HashMap<String, String> = HashMap::new();
    for handler in def
        .handlers
        .iter_mut()
        .filter(|h| h.state != State::Dropped)
    {
        let key = type_key(&handler.command);
        let variant = plain(&handler.variant);
        if let Some(method) = by_type.get(&key) {
            cx.error_spanned_by(
                &handler.param,
                format!(
                    "`{}` already has a handler, `{method}`: an aggregate has one `#[handle]` method per command; remove this one or merge the two",
                    display(&handler.command)
                ),
            );
            handler.state = State::Dropped;
        } else if let Some(other) = by_variant.get(&variant) {
            cx.error_spanned_by(
                &handler.param,
                format!(
                    "two commands of `{}` are named `{variant}` (`{other}` and `{}`): the variants of the generated `{}` need distinct names; import one under another name (`use … as Other{variant};`)",
                    plain(&def.ident),
                    display(&handler.command),
                    plain(&def.command_enum)
                ),
            );
            handler.state = State::Dropped;
        } else {
            by_type.insert(key, plain(&handler.method));
            by_variant.insert(variant, display(&handler.command));
        }
    }
}

/// One handler per event type in a projection: the generated `handle` calls the first match.
pub fn distinct_projection_events(cx: &mut Ctxt, def: &mut ProjectionDef) {
    let handlers = def
        .handlers
        .iter_mut()
        .map(|h| (&h.event, &h.param, &h.method, &mut h.state));
    one_handler_per_event(cx, handlers, "a projection");
}

/// One `#[query]` method per query type: a query is routed to exactly one answer.
pub fn distinct_queries(cx: &mut Ctxt, def: &mut ProjectionDef) {
    let queries = def
        .queries
        .iter_mut()
        .map(|q| (&q.query, &q.param, &q.method, &mut q.state));
    one_method_per_type(cx, queries, |query, method| {
        format!(
            "`{query}` is already answered by `{method}`: a query has one `#[query]` method; remove this one"
        )
    });
}

/// One `#[reset]` method per projection: the runner calls one hook before a rebuild.
pub fn single_reset(cx: &mut Ctxt, def: &mut ProjectionDef) {
    let resets = def
        .resets
        .iter_mut()
        .map(|r| (&r.method, &r.attr, &mut r.state));
    only_first(cx, resets, |first| {
        format!(
            "`{first}` already resets this projection: a projection has one `#[reset]` method; merge the two"
        )
    });
}

/// One unit of work per durable projection: it implements `DurableProjection<U>` for one `U`,
/// the unit of the sink that runs it. The first method that takes a unit sets it.
pub fn same_unit(cx: &mut Ctxt, def: &mut ProjectionDef) {
    let handlers = def
        .handlers
        .iter_mut()
        .filter(|h| h.state == State::Wired)
        .filter_map(|h| {
            let unit = h.unit.as_ref()?;
            Some((h.index, &h.method, unit, &mut h.state))
        });
    let resets = def
        .resets
        .iter_mut()
        .filter(|r| r.state == State::Wired)
        .filter_map(|r| {
            let unit = r.unit.as_ref()?;
            Some((r.index, &r.method, unit, &mut r.state))
        });
    let mut methods: Vec<_> = handlers.chain(resets).collect();
    methods.sort_by_key(|(index, ..)| *index);
    let mut methods = methods.into_iter();
    let Some((_, first_method, first_unit, _)) = methods.next() else {
        return;
    };
    let key = type_key(&first_unit.ty);
    for (_, _, unit, state) in methods {
        if type_key(&unit.ty) != key {
            cx.error_spanned_by(
                &unit.param,
                format!(
                    "`{}` takes `{}`, so every method of this durable projection takes `&{}`: a projection runs over the unit of work of one kind of sink",
                    plain(first_method),
                    display(&first_unit.param),
                    display(&first_unit.ty)
                ),
            );
            *state = State::Fallback;
        }
    }
}

/// One handler per event type in a process manager: an event must issue one, predictable set of
/// commands.
pub fn distinct_process_events(cx: &mut Ctxt, def: &mut ProcessDef) {
    let handlers = def
        .handlers
        .iter_mut()
        .map(|h| (&h.event, &h.param, &h.method, &mut h.state));
    one_handler_per_event(cx, handlers, "a process manager");
}

/// One `#[on_rejected]` method per process manager: a rejection runs one compensation.
pub fn single_on_rejected(cx: &mut Ctxt, def: &mut ProcessDef) {
    let compensations = def
        .compensations
        .iter_mut()
        .map(|c| (&c.method, &c.attr, &mut c.state));
    only_first(cx, compensations, |first| {
        format!(
            "`{first}` already compensates rejections: a process manager has one `#[on_rejected]` method; merge the two"
        )
    });
}

/// A method as [`one_method_per_type`] sees it: the type it handles or answers (`Opened`), that
/// parameter as written (`&Opened`, where the error goes), its name and its state.
type Typed<'a> = (&'a Type, &'a Type, &'a Ident, &'a mut State);

/// One handler per event type in `owner` ("a projection", "a process manager").
fn one_handler_per_event<'a>(
    cx: &mut Ctxt,
    handlers: impl Iterator<Item = Typed<'a>>,
    owner: &str,
) {
    one_method_per_type(cx, handlers, |event, method| {
        format!(
            "`{event}` is already handled by `{method}`: {owner} has one handler per event type; merge the two"
        )
    });
}

/// Drops each method whose type an earlier method already has, with the error
/// `repeated(type, earlier method)` on its parameter: generated code routes a type to one
/// method.
fn one_method_per_type<'a>(
    cx: &mut Ctxt,
    methods: impl Iterator<Item = Typed<'a>>,
    repeated: impl Fn(&str, &str) -> String,
) {
    let mut by_type: HashMap<String, String> = HashMap::new();
    for (ty, param, method, state) in methods.filter(|(.., state)| **state != State::Dropped) {
        let key = type_key(ty);
        if let Some(earlier) = by_type.get(&key) {
            cx.error_spanned_by(param, repeated(&display(ty), earlier));
            *state = State::Dropped;
        } else {
            by_type.insert(key, plain(method));
        }
    }
}

/// Keeps the first of `methods` (name, helper attribute, state), which may appear once per impl
/// block, and drops the others with the error `repeated(first's name)` on their attribute.
fn only_first<'a>(
    cx: &mut Ctxt,
    mut methods: impl Iterator<Item = (&'a Ident, &'a Attribute, &'a mut State)>,
    repeated: impl Fn(&str) -> String,
) {
    let Some((first, ..)) = methods.next() else {
        return;
    };
    let message = repeated(&plain(first));
    for (_, attr, state) in methods {
        cx.error_spanned_by(attr, &message);
        *state = State::Dropped;
    }
}

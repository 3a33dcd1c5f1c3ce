//! The command bus for decisions: read the states' events by query, fold, decide, append under
//! the condition of the read, and decide again when the condition fails.
//!
//! Why the condition makes the decision safe: the read states the position `P` it is complete
//! through (every event matching the query up to `P` was folded). The append fails if any
//! event matching the same query has a position after `P`, atomically with the write. So when
//! the append succeeds, the events the handler decided on are exactly the matching events
//! before the new ones: no concurrent writer changed what the decision depended on. Writers
//! whose queries do not overlap (other courses, other students) never fail each other's
//! conditions.
//!
//! Event ids: from a given command id (`CommandContext::with_command_id`) the `i`-th event
//! gets `derive_id(id, "event", i)`, as for aggregates. A command id whose first event is
//! stored is answered with that run's events, without deciding again: a decision's states
//! span streams, so the state "just before the first run" cannot be rebuilt cheaply to compare
//! the decisions (unlike an aggregate's, see `earlier.rs`).

use std::future::Future;

use super::{CommandIds, Cqrs, LOAD_BATCH};
use crate::context::{CAUSED_BY_EVENT, CommandContext, CommandOutcome};
use crate::decision::{Decides, Decision, DecisionBus, DecisionCommand, StateSet, decision_stream};
use crate::envelope::{NewEvent, Payload};
use crate::error::{CommandError, DecodeError, StoreError};
use crate::event_query::{AppendCondition, EventQuery};
use crate::ids::{Position, derive_id, new_id_at, unix_millis};
use crate::store::{EventStore, ExpectedVersion, StreamWrite};
use crate::telemetry::{CommandSpan, CommandTelemetry};
use crate::unwind;

use super::futures::CommandFuture;

type Outcome<C> =
    Result<CommandOutcome, CommandError<<<C as DecisionCommand>::Decision as Decides<C>>::Error>>;

/// The bus the generated decision command enums dispatch through (untyped dispatch).
impl<S: EventStore> DecisionBus for Cqrs<S> {
    fn execute_decision<C>(
        &self,
        cmd: C,
        context: CommandContext,
    ) -> impl Future<
        Output = Result<CommandOutcome, CommandError<<C::Decision as Decides<C>>::Error>>,
    > + Send
    where
        C: DecisionCommand,
        C::Decision: Decides<C>,
    {
        self.__execute_decision(cmd, context)
    }
}

impl<S: EventStore> Cqrs<S> {
    /// Runs a command of a decision (what `Execute` does for `#[command(decision = …)]`).
    #[doc(hidden)]
    pub fn __execute_decision<C>(
        &self,
        cmd: C,
        context: CommandContext,
    ) -> CommandFuture<'_, <C::Decision as Decides<C>>::Error>
    where
        C: DecisionCommand,
        C::Decision: Decides<C>,
    {
        let millis = unix_millis();
        let command_id = context.command_id.unwrap_or_else(|| new_id_at(millis));
        let correlation_id = context.correlation_id.unwrap_or(command_id);
        let telemetry = CommandTelemetry::start(
            <C::Decision as Decision>::NAME,
            C::NAME,
            command_id,
            correlation_id,
            context.caused_by_event,
            context.trace.as_ref(),
        );
        let ids = CommandIds {
            millis,
            command_id,
            correlation_id,
        };
        CommandFuture::new(self.run_decision(cmd, context, ids), telemetry)
    }

    async fn run_decision<C>(&self, cmd: C, context: CommandContext, ids: CommandIds) -> Outcome<C>
    where
        C: DecisionCommand,
        C::Decision: Decides<C>,
    {
        let inner = &*self.inner;
        let store = &inner.store;
        let CommandIds {
            millis,
            command_id,
            correlation_id,
        } = ids;
        let derive_from = context.command_id;
        let mut metadata = context.metadata;
        if let Some(event_id) = context.caused_by_event {
            metadata.insert(CAUSED_BY_EVENT, event_id.to_string());
        }
        if let Some(trace) = &context.trace {
            trace.write_metadata(&mut metadata);
        }
        let own = decision_stream(&cmd);
        let items =
            <C::Decision as Decides<C>>::query_items(&cmd).map_err(|e| CommandError::Encode {
                event: C::NAME,
                message: format!("a `#[tag]` field makes no valid tag: {e}"),
            })?;
        let query = items
            .iter()
            .cloned()
            .fold(EventQuery::from_items([]), EventQuery::or);
        if let Some(base) = derive_from
            && let Some(first) = store.read_event(derive_id(base, "event", 0)).await?
        {
            CommandSpan::earlier_run(base);
            let mut events = vec![first];
            while let Some(next) = store
                .read_event(derive_id(base, "event", events.len() as u64))
                .await?
            {
                events.push(next);
            }
            let last = &events[events.len() - 1].meta;
            return Ok(CommandOutcome {
                command_id: base,
                correlation_id: events[0].meta.correlation_id.unwrap_or(correlation_id),
                stream: last.stream.clone(),
                version: last.version,
                attempts: 1,
                events,
            });
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut states = <<C::Decision as Decides<C>>::States>::default();
            let mut from = Position(1);
            let through = loop {
                let read = store.read_query(&query, from, LOAD_BATCH).await?;
                for event in &read.events {
                    let meta = &event.meta;
                    for (slot, item) in items.iter().enumerate() {
                        if !item.matches(&meta.event_name, &meta.tags) {
                            continue;
                        }
                        let folded = unwind::catch(|| states.fold(slot, event)).map_err(|m| {
                            CommandError::Panicked {
                                command: C::NAME,
                                stream: own.clone(),
                                message: m,
                            }
                        })?;
                        folded.map_err(|failure| {
                            CommandError::Decode(DecodeError {
                                stream: meta.stream.clone(),
                                version: meta.version,
                                event_name: meta.event_name.to_string(),
                                event_version: meta.event_version,
                                failure,
                            })
                        })?;
                    }
                }
                if read.events.len() < LOAD_BATCH {
                    break read.through;
                }
                from = read.through.next();
            };
            CommandSpan::deciding(attempts, &own, through.0);
            let emits = match unwind::catch(|| C::Decision::decide(&cmd, &states)) {
                Ok(Ok(emits)) => emits,
                Ok(Err(rejection)) => return Err(CommandError::Rejected(rejection)),
                Err(message) => {
                    return Err(CommandError::Panicked {
                        command: C::NAME,
                        stream: own,
                        message,
                    });
                }
            };
            crate::decision::check_read_back(C::NAME, &items, &emits)?;
            if emits.events.is_empty() {
                return Ok(CommandOutcome {
                    command_id,
                    correlation_id,
                    stream: own,
                    version: 0,
                    attempts,
                    events: Vec::new(),
                });
            }
            // Grouped by stream (in order of first appearance), each stream's events in order.
            let mut writes: Vec<StreamWrite> = Vec::new();
            let mut evictions = Vec::new();
            for (index, emitted) in emits.events.into_iter().enumerate() {
                evictions.extend(emitted.evict);
                let payload = emitted.payload.map_err(|message| CommandError::Encode {
                    event: emitted.name,
                    message,
                })?;
                let event = NewEvent {
                    event_id: match derive_from {
                        None => new_id_at(millis),
                        Some(base) => derive_id(base, "event", index as u64),
                    },
                    event_name: emitted.name.into(),
                    event_version: emitted.version,
                    payload: Payload::serialized(payload),
                    correlation_id: Some(correlation_id),
                    causation_id: Some(command_id),
                    metadata: metadata.clone(),
                    tags: emitted.tags,
                };
                let stream = emitted.stream.unwrap_or_else(|| own.clone());
                match writes.iter_mut().find(|w| w.stream == stream) {
                    Some(write) => write.events.push(event),
                    None => {
                        writes.push(StreamWrite::new(stream, ExpectedVersion::Any, vec![event]))
                    }
                }
            }
            let condition = AppendCondition::new(query.clone(), through);
            let writing = inner.read_side.start_write();
            match store.append_conditional(writes, Some(&condition)).await {
                Ok(recorded) => {
                    // The aggregates written to have stale cached states now.
                    for evict in &evictions {
                        evict.run(&inner.caches);
                    }
                    inner.read_side.deliver_stored(store, &recorded).await;
                    writing.finish(store).await;
                    let mine = recorded.iter().rev().find(|e| e.meta.stream == own);
                    let last = mine.unwrap_or(&recorded[recorded.len() - 1]);
                    return Ok(CommandOutcome {
                        command_id,
                        correlation_id,
                        stream: last.meta.stream.clone(),
                        version: last.meta.version,
                        attempts,
                        events: recorded,
                    });
                }
                Err(error) => {
                    writing.finish(store).await;
                    match error {
                        StoreError::ConditionFailed { after, conflicting } => {
                            let retrying = attempts <= inner.max_retries;
                            let decision = <C::Decision as Decision>::NAME;
                            CommandSpan::conflict(
                                decision,
                                &own,
                                after.0,
                                conflicting.0,
                                attempts,
                                retrying,
                            );
                            if !retrying {
                                return Err(CommandError::Conflict {
                                    stream: own,
                                    attempts,
                                });
                            }
                        }
                        StoreError::IdempotencyConflict { mismatch, .. } => {
                            return Err(CommandError::CommandIdReused {
                                command_id,
                                stream: own,
                                mismatch,
                            });
                        }
                        other => return Err(other.into()),
                    }
                }
            }
        }
    }
}

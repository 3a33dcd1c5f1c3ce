//! A command sent again with a command id that already recorded events: the command is run
//! again on the state the first run saw, and its events compared with the stored ones. The same
//! events return the first run's outcome (whether the first run's reply was lost or not, and
//! whatever the cache holds now); other events are `CommandError::CommandIdReused`.
//!
//! Running the handler on the *current* state instead would be wrong both ways: a creation
//! command would meet its own stream (`AlreadyExists`), and an update whose events carry
//! derived values (a balance after a deposit) would decide other events than the first time.
//!
//! Ordinary commands keep random UUIDv7 event ids and pay nothing. A command with an id first looks
//! its first derived event id up (`EventStore::read_event`, one index lookup); if it is stored, the
//! replay up to just before those events is bounded, and uses a snapshot only if the snapshot is
//! older. The comparison is of events, not of command bodies (commands need not be serializable),
//! so handlers must be deterministic.

use std::pin::pin;

use super::{Cqrs, EventIds, Hydrated, LOAD_BATCH, encode, tags_of_id};
use crate::aggregate::{Aggregate, Command, HandlerError, HandlerKind, Handles};
use crate::context::CommandOutcome;
use crate::envelope::{RecordedEvent, UserMetadata};
use crate::error::{CommandError, Mismatch, StoreError};
use crate::ids::Uuid;
use crate::ids::derive_id;
use crate::store::{EventStore, check_retry};
use crate::unwind::CatchUnwind;

/// What the command bus knows of the earlier run when it finds its first event.
pub(super) struct EarlierRun<'a> {
    /// The command id given now (and then).
    pub command_id: Uuid,
    /// The correlation id of the command sent now.
    pub correlation_id: Uuid,
    /// The metadata its events would carry.
    pub metadata: &'a UserMetadata,
    /// The stored event with the command's first derived id.
    pub first: RecordedEvent,
}

type Outcome<C> =
    Result<CommandOutcome, CommandError<<<C as Command>::Aggregate as Handles<C>>::Error>>;

impl<S: EventStore> Cqrs<S> {
    /// The first run's outcome if `cmd` decides, on the state before the first run's events,
    /// the events that run recorded; otherwise `CommandIdReused`.
    pub(super) async fn earlier_run<C>(&self, cmd: &C, earlier: EarlierRun<'_>) -> Outcome<C>
    where
        C: Command,
        C::Aggregate: Handles<C>,
    {
        let EarlierRun {
            command_id,
            correlation_id,
            metadata,
            first,
        } = earlier;
        let id = cmd.aggregate_id();
        let stream = C::Aggregate::stream_id(id);
        let reused = |stream, mismatch| CommandError::CommandIdReused {
            command_id,
            stream,
            mismatch,
        };
        if first.meta.stream != stream {
            let stored = first.meta.stream.clone();
            return Err(reused(stream, Mismatch::Stream { stored }));
        }
        let before = first.meta.version - 1;
        let stored = self.command_events(&first, command_id).await?;
        let Hydrated { state, version, .. } =
            self.hydrate_until::<C::Aggregate, _>(id, before).await?;
        let kind_fits = match <C::Aggregate as Handles<C>>::KIND {
            HandlerKind::Create => version == 0,
            HandlerKind::Update => version > 0,
            HandlerKind::CreateOrUpdate => true,
        };
        let decided = if kind_fits {
            let services = &self.inner.services;
            match CatchUnwind(pin!(state.handle(cmd, services, version))).await {
                Ok(Ok(events)) => events,
                // Rejected now, recorded then: the command is not the same.
                Ok(Err(HandlerError::Rejected(_))) => Vec::new(),
                Ok(Err(HandlerError::MissingService(service))) => {
                    return Err(CommandError::MissingService {
                        command: C::NAME,
                        service,
                    });
                }
                Err(message) => {
                    return Err(CommandError::Panicked {
                        command: C::NAME,
                        stream,
                        message,
                    });
                }
            }
        } else {
            Vec::new()
        };
        if decided.len() != stored.len() {
            let mismatch = Mismatch::EventCount {
                stored: stored.len(),
                sent: decided.len(),
            };
            return Err(reused(stream, mismatch));
        }
        let ids = EventIds {
            millis: 0,
            derive_from: Some(command_id),
        };
        let id_tags = tags_of_id::<C::Aggregate, _>(id)?;
        let sent = encode(
            &decided,
            ids,
            command_id,
            correlation_id,
            metadata,
            &id_tags,
        )?;
        match check_retry(&stream, &stored, &sent) {
            Ok(()) => {}
            Err(StoreError::IdempotencyConflict { mismatch, .. }) => {
                return Err(reused(stream, mismatch));
            }
            Err(other) => return Err(other.into()),
        }
        let version = stored.last().map_or(before, |e| e.meta.version);
        Ok(CommandOutcome {
            command_id,
            correlation_id: first.meta.correlation_id.unwrap_or(correlation_id),
            stream,
            version,
            attempts: 1,
            events: stored,
        })
    }

    /// The events the earlier run recorded: from `first` on, those carrying the command's
    /// derived ids in order (one append holds consecutive versions).
    async fn command_events<E>(
        &self,
        first: &RecordedEvent,
        command_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, CommandError<E>> {
        let read = self
            .inner
            .store
            .read_stream(&first.meta.stream, first.meta.version, LOAD_BATCH)
            .await?;
        Ok(read
            .into_iter()
            .zip(0..)
            .take_while(|(e, i)| e.meta.event_id == derive_id(command_id, "event", *i))
            .map(|(e, _)| e)
            .collect())
    }
}

//! The checks run after each scenario: the store held to the client-side ledger, and every read
//! model held to a replay.
//!
//! - every acknowledged command is stored exactly once (its events carry the command id as
//!   causation id), with the stream and amount it asked for; uncertain ones at most once;
//!   refused ones not at all; no event belongs to a command no client sent;
//! - event ids are unique, versions of each stream are 1, 2, 3, … and positions strictly
//!   increase in `read_all` order;
//! - `read_all` reaches the head the store reported before the checks began (a reader that stops
//!   short, at a hole it never resolves, fails here);
//! - read models (in memory, SQLite, PostgreSQL) equal the [`Totals`] of a replay.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use eventweave_core::{EventRef, EventStore, Position, RecordedEvent, StreamId, Uuid};

use crate::domain::{Deposited, Opened, Totals, fold};
use crate::ledger::{Fate, Ledger};

/// What the checks found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Events read.
    pub events: u64,
    /// Acknowledged commands (each verified stored once).
    pub acknowledged: u64,
    /// Uncertain commands that turned out to be stored (once).
    pub uncertain_stored: u64,
    /// Uncertain commands not stored.
    pub uncertain_absent: u64,
    /// Every broken promise, in words.
    pub failures: Vec<String>,
    /// The replay's totals (for comparing read models).
    pub replay: Totals,
    /// The head the events were read up to.
    pub head: Position,
    /// Whether every event up to the head was read (otherwise the replay is empty and read
    /// models cannot be compared with it).
    pub complete: bool,
}

/// Reads every event up to the head reported now, waiting (up to `deadline`) where `read_all`
/// pauses. `Err` names where it stopped.
pub async fn read_everything<S: EventStore>(
    store: &S,
    deadline: Duration,
) -> Result<(Vec<RecordedEvent>, Position), String> {
    let head = store
        .head()
        .await
        .map_err(|e| format!("head() failed: {e}"))?;
    let started = Instant::now();
    let mut events = Vec::new();
    let mut next = Position(1);
    while next <= head {
        let batch = store
            .read_all(next, 2_000)
            .await
            .map_err(|e| format!("read_all({next}) failed: {e}"))?;
        match batch.last() {
            Some(last) => {
                next = Position(last.meta.position.0 + 1);
                events.extend(batch);
            }
            None => {
                if started.elapsed() > deadline {
                    return Err(format!(
                        "read_all stays empty at position {next} below the head {head} for {deadline:?}"
                    ));
                }
                let _ = tokio::time::timeout(
                    Duration::from_millis(100),
                    store.wait_for_events(Position(next.0 - 1)),
                )
                .await;
            }
        }
    }
    Ok((events, head))
}

/// Holds `events` (all of them, in `read_all` order) to `ledger`.
pub fn check_events(events: &[RecordedEvent], ledger: &Ledger) -> Verdict {
    let mut verdict = Verdict {
        events: events.len() as u64,
        ..Verdict::default()
    };
    let mut failures = Vec::new();
    let mut last = Position::ZERO;
    let mut ids = HashSet::with_capacity(events.len());
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut by_command: HashMap<Uuid, Vec<Stored>> = HashMap::new();
    for event in events {
        let meta = &event.meta;
        if meta.position <= last {
            failures.push(format!(
                "position {} follows {last}: not strictly increasing",
                meta.position
            ));
        }
        last = meta.position;
        if !ids.insert(meta.event_id) {
            failures.push(format!("event id {} is stored twice", meta.event_id));
        }
        let version = versions.entry(meta.stream.clone()).or_default();
        if meta.version != *version + 1 {
            failures.push(format!(
                "stream {} jumps from version {version} to {} at position {}",
                meta.stream, meta.version, meta.position
            ));
        }
        *version = meta.version;
        let amount = match amount_of(event) {
            Ok(amount) => amount,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        fold(&mut verdict.replay, meta.stream.as_str(), amount);
        match meta.causation_id {
            Some(command) => by_command.entry(command).or_default().push(Stored {
                stream: meta.stream.to_string(),
                version: meta.version,
                amount,
            }),
            None => failures.push(format!(
                "event at position {} has no command id",
                meta.position
            )),
        }
    }
    let commands = ledger.commands();
    for (id, (entry, fate)) in &commands {
        let stored = by_command.get(id).map_or(&[][..], Vec::as_slice);
        let times = match stored_times(stored, entry) {
            Ok(times) => times,
            Err(how) => {
                failures.push(format!("command {id} asked for {entry:?} but {how}"));
                continue;
            }
        };
        match fate {
            Fate::Acknowledged => {
                verdict.acknowledged += 1;
                if times != 1 {
                    failures.push(format!(
                        "acknowledged command {id} ({} +{}) is stored {times} times",
                        entry.stream, entry.amount
                    ));
                }
            }
            Fate::Uncertain => match times {
                0 => verdict.uncertain_absent += 1,
                1 => verdict.uncertain_stored += 1,
                n => failures.push(format!("uncertain command {id} is stored {n} times")),
            },
            Fate::Refused(why) => {
                if times != 0 {
                    failures.push(format!(
                        "command {id} was refused ({why}) but is stored {times} times"
                    ));
                }
            }
        }
    }
    let strangers = by_command
        .keys()
        .filter(|id| !commands.contains_key(id))
        .count();
    if strangers > 0 {
        failures.push(format!(
            "{strangers} stored commands were never sent by a client"
        ));
    }
    for lost in ledger.lost_outcomes() {
        failures.push(format!(
            "a retry with the same command id after an unknown outcome was refused: {lost}"
        ));
    }
    // Many identical failures (one per event) are summarised after the first few.
    if failures.len() > 20 {
        let more = failures.len() - 20;
        failures.truncate(20);
        failures.push(format!("… and {more} more"));
    }
    verdict.failures = failures;
    verdict
}

/// One stored event of a command.
#[derive(Debug)]
struct Stored {
    stream: String,
    version: u64,
    amount: u64,
}

/// How many times a command's events are stored: 0, or 1 when they are exactly its events in
/// one stream at consecutive versions (a whole batch), or `n` for `n` whole copies. `Err` when
/// they are anything else (part of a batch, another stream, other amounts).
fn stored_times(stored: &[Stored], entry: &crate::ledger::Entry) -> Result<u64, String> {
    if stored.is_empty() {
        return Ok(0);
    }
    let per_copy = entry.events.max(1) as usize;
    if !stored.len().is_multiple_of(per_copy) {
        return Err(format!(
            "{} of its {} events are stored: {stored:?}",
            stored.len(),
            entry.events
        ));
    }
    for copy in stored.chunks(per_copy) {
        let sum: u64 = copy.iter().map(|s| s.amount).sum();
        let whole = copy
            .iter()
            .enumerate()
            .all(|(k, s)| s.stream == entry.stream && s.version == copy[0].version + k as u64);
        if !whole || sum != entry.amount {
            return Err(format!("stored {copy:?}"));
        }
    }
    Ok((stored.len() / per_copy) as u64)
}

/// The deposit an event of the domain carries (0 for an opening).
fn amount_of(event: &RecordedEvent) -> Result<u64, String> {
    let stored = EventRef::stored(event);
    let failed = |e: &dyn std::fmt::Display| {
        format!(
            "event at position {} does not decode: {e}",
            event.meta.position
        )
    };
    if let Some(deposit) = stored
        .decode::<Deposited>()
        .map_err(|e| failed(&format!("{e:?}")))?
    {
        return Ok(deposit.amount);
    }
    if stored
        .decode::<Opened>()
        .map_err(|e| failed(&format!("{e:?}")))?
        .is_some()
    {
        return Ok(0);
    }
    Err(failed(&format!(
        "unknown event `{}`",
        event.meta.event_name
    )))
}

/// Reads everything and checks it; a read that cannot reach the head is one failure.
pub async fn verify<S: EventStore>(store: &S, ledger: &Ledger) -> Verdict {
    match read_everything(store, crate::harness::deadline()).await {
        Ok((events, head)) => {
            let mut verdict = check_events(&events, ledger);
            verdict.head = head;
            verdict.complete = true;
            verdict
        }
        Err(e) => Verdict {
            failures: vec![e],
            ..Verdict::default()
        },
    }
}

/// Compares a read model with the replay, naming the first few differences.
pub fn compare(model: &str, found: &Totals, replay: &Totals) -> Option<String> {
    if found == replay {
        return None;
    }
    let mut differences = Vec::new();
    for (stream, expected) in replay {
        match found.get(stream) {
            Some(got) if got == expected => {}
            got => differences.push(format!("{stream}: {got:?} instead of {expected:?}")),
        }
    }
    for stream in found.keys().filter(|s| !replay.contains_key(*s)) {
        differences.push(format!("{stream}: present, not in the replay"));
    }
    let count = differences.len();
    differences.truncate(5);
    Some(format!(
        "{model} differs from a replay on {count} streams: {}",
        differences.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    //! Each check fires on the history that breaks it (a check that cannot fail proves nothing).

    use eventweave_core::{NewEvent, Payload, Timestamp, UserMetadata};

    use super::*;
    use crate::ledger::Entry;

    /// A deposit event of command `command`, as stored at `stream`/`version`/`position`.
    fn stored(
        command: Uuid,
        stream: &str,
        version: u64,
        position: u64,
        amount: u64,
    ) -> RecordedEvent {
        NewEvent {
            event_id: eventweave_core::new_id(),
            event_name: "faults.deposited".into(),
            event_version: 1,
            payload: Payload::from_json(format!(r#"{{"amount":{amount}}}"#)),
            correlation_id: Some(command),
            causation_id: Some(command),
            metadata: UserMetadata::empty(),
            tags: eventweave_core::Tags::empty(),
        }
        .record(stream.into(), version, Position(position), Timestamp::now())
    }

    fn acknowledged(ledger: &Ledger, id: Uuid, stream: &str, amount: u64) {
        ledger.record(id, Entry::one(stream, amount), Fate::Acknowledged);
    }

    fn failures(events: &[RecordedEvent], ledger: &Ledger) -> Vec<String> {
        check_events(events, ledger).failures
    }

    #[test]
    fn a_clean_history_passes_and_replays() {
        let ledger = Ledger::new();
        let (a, b) = (eventweave_core::new_id(), eventweave_core::new_id());
        acknowledged(&ledger, a, "vault-1", 5);
        acknowledged(&ledger, b, "vault-1", 7);
        let events = [stored(a, "vault-1", 1, 1, 5), stored(b, "vault-1", 2, 3, 7)];
        let verdict = check_events(&events, &ledger);
        assert!(verdict.failures.is_empty(), "{:?}", verdict.failures);
        assert_eq!(verdict.replay["vault-1"], (2, 12));
    }

    #[test]
    fn a_lost_acknowledged_command_fails() {
        let ledger = Ledger::new();
        let (a, lost) = (eventweave_core::new_id(), eventweave_core::new_id());
        acknowledged(&ledger, a, "vault-1", 5);
        acknowledged(&ledger, lost, "vault-1", 7);
        let found = failures(&[stored(a, "vault-1", 1, 1, 5)], &ledger);
        assert!(
            found.iter().any(|f| f.contains("stored 0 times")),
            "{found:?}"
        );
    }

    #[test]
    fn a_command_stored_twice_fails() {
        let ledger = Ledger::new();
        let a = eventweave_core::new_id();
        acknowledged(&ledger, a, "vault-1", 5);
        let events = [stored(a, "vault-1", 1, 1, 5), stored(a, "vault-1", 2, 2, 5)];
        let found = failures(&events, &ledger);
        assert!(
            found.iter().any(|f| f.contains("stored 2 times")),
            "{found:?}"
        );
    }

    #[test]
    fn gaps_in_versions_and_positions_out_of_order_fail() {
        let ledger = Ledger::new();
        let (a, b) = (eventweave_core::new_id(), eventweave_core::new_id());
        acknowledged(&ledger, a, "vault-1", 5);
        acknowledged(&ledger, b, "vault-1", 7);
        let events = [stored(a, "vault-1", 1, 4, 5), stored(b, "vault-1", 3, 2, 7)];
        let found = failures(&events, &ledger);
        assert!(
            found
                .iter()
                .any(|f| f.contains("jumps from version 1 to 3")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.contains("not strictly increasing")),
            "{found:?}"
        );
    }

    #[test]
    fn refused_stored_strangers_and_wrong_amounts_fail() {
        let ledger = Ledger::new();
        let (refused, stranger, wrong) = (
            eventweave_core::new_id(),
            eventweave_core::new_id(),
            eventweave_core::new_id(),
        );
        ledger.record(
            refused,
            Entry::one("vault-1", 1),
            Fate::Refused("no".into()),
        );
        acknowledged(&ledger, wrong, "vault-2", 9);
        let events = [
            stored(refused, "vault-1", 1, 1, 1),
            stored(stranger, "vault-1", 2, 2, 1),
            stored(wrong, "vault-2", 1, 3, 8),
        ];
        let found = failures(&events, &ledger);
        assert!(found.iter().any(|f| f.contains("was refused")), "{found:?}");
        assert!(
            found.iter().any(|f| f.contains("never sent by a client")),
            "{found:?}"
        );
        assert!(found.iter().any(|f| f.contains("asked for")), "{found:?}");
    }

    #[test]
    fn part_of_a_batch_fails() {
        let ledger = Ledger::new();
        let a = eventweave_core::new_id();
        let entry = Entry {
            stream: "vault-1".into(),
            amount: 6,
            events: 3,
        };
        ledger.record(a, entry, Fate::Acknowledged);
        let events = [stored(a, "vault-1", 1, 1, 2), stored(a, "vault-1", 2, 2, 2)];
        let found = failures(&events, &ledger);
        assert!(
            found.iter().any(|f| f.contains("2 of its 3 events")),
            "{found:?}"
        );
    }

    #[test]
    fn a_model_that_differs_from_the_replay_is_named() {
        let replay: Totals = [("vault-1".to_owned(), (2, 12))].into();
        let double: Totals = [("vault-1".to_owned(), (3, 17))].into();
        assert!(compare("m", &replay, &replay).is_none());
        let found = compare("m", &double, &replay).expect("a difference");
        assert!(found.contains("vault-1"), "{found}");
    }
}

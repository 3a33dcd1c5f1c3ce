//! The client-side ledger: what each command's client was told. The checks hold the store to it.
//!
//! A command is *acknowledged* (`Ok` from `Cqrs::execute`: it must be stored exactly once),
//! *uncertain* (the client gave up after a reply it could not interpret, a dropped future or a
//! killed process: stored at most once), or *refused* (an error that says nothing was written:
//! stored zero times). Worker processes report the same facts as text lines ([`Ledger::apply_line`]).

use std::collections::HashMap;
use std::sync::Mutex;

use eventweave_core::Uuid;

/// What one command asked for: its stream, its deposits' sum (0 for an opening) and how many
/// events it records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The stream it targets.
    pub stream: String,
    /// The sum of the deposits it carries (0 for an opening).
    pub amount: u64,
    /// The events it records (all in one append).
    pub events: u64,
}

impl Entry {
    /// A command recording one event.
    pub fn one(stream: impl Into<String>, amount: u64) -> Self {
        Entry {
            stream: stream.into(),
            amount,
            events: 1,
        }
    }
}

/// How a command ended, as far as its client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// `Ok`: stored exactly once.
    Acknowledged,
    /// No answer the client could rely on: stored at most once.
    Uncertain,
    /// An error that says nothing was written (the message): stored zero times.
    Refused(String),
}

/// Retries and their causes, counted over every command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retries {
    /// `Retry::Safe` store errors (nothing written).
    pub unavailable: u64,
    /// `Retry::SameIds` store errors (outcome unknown).
    pub outcome_unknown: u64,
    /// `CommandError::Conflict` after the bus's own retries.
    pub conflict: u64,
    /// Futures dropped by the caller before they finished.
    pub dropped: u64,
    /// Handler re-runs inside `Cqrs::execute` after a version conflict (another writer had
    /// appended first; the bus reloaded and decided again): the contention the scenario made.
    pub reruns: u64,
    /// A `Retry::Never` error after an attempt whose outcome was unknown: the client cannot
    /// learn whether its command was stored (each one is also a failed check).
    pub never_after_unknown: u64,
}

impl Retries {
    fn add(&mut self, other: &Retries) {
        self.unavailable += other.unavailable;
        self.outcome_unknown += other.outcome_unknown;
        self.conflict += other.conflict;
        self.dropped += other.dropped;
        self.reruns += other.reruns;
        self.never_after_unknown += other.never_after_unknown;
    }
}

#[derive(Default)]
struct Inner {
    commands: HashMap<Uuid, (Entry, Fate)>,
    retries: Retries,
    /// Messages of `Retry::Never` errors that followed an unknown outcome.
    lost_outcomes: Vec<String>,
}

/// The ledger of one scenario, shared by its writers.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A writer that panicked cannot leave the maps inconsistent (single inserts).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records how command `id` ended. An acknowledgement is final; otherwise the later fact wins
    /// (a process's `try` line is followed by its `ack`).
    pub fn record(&self, id: Uuid, entry: Entry, fate: Fate) {
        let mut inner = self.lock();
        match inner.commands.get(&id) {
            Some((_, Fate::Acknowledged)) => {}
            _ => {
                inner.commands.insert(id, (entry, fate));
            }
        }
    }

    /// Counts the retries of one command.
    pub fn count(&self, retries: &Retries) {
        self.lock().retries.add(retries);
    }

    /// Records a `Retry::Never` error that followed an unknown outcome.
    pub fn lost_outcome(&self, message: String) {
        let mut inner = self.lock();
        inner.retries.never_after_unknown += 1;
        inner.lost_outcomes.push(message);
    }

    /// Every command and its fate.
    pub fn commands(&self) -> HashMap<Uuid, (Entry, Fate)> {
        self.lock().commands.clone()
    }

    /// The retry counts.
    pub fn retries(&self) -> Retries {
        self.lock().retries.clone()
    }

    /// The `Retry::Never` errors that followed an unknown outcome.
    pub fn lost_outcomes(&self) -> Vec<String> {
        self.lock().lost_outcomes.clone()
    }

    /// How many commands were acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.lock()
            .commands
            .values()
            .filter(|(_, fate)| *fate == Fate::Acknowledged)
            .count() as u64
    }

    /// Applies one line of a worker's report (see [`line()`]); other lines are ignored.
    pub fn apply_line(&self, text: &str) {
        let mut parts = text.splitn(6, ' ');
        let (Some(kind), Some(id), Some(stream), Some(amount), Some(events)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return;
        };
        let (Ok(id), Ok(amount), Ok(events)) = (
            id.parse::<Uuid>(),
            amount.parse::<u64>(),
            events.parse::<u64>(),
        ) else {
            return;
        };
        let entry = Entry {
            stream: stream.to_owned(),
            amount,
            events,
        };
        let rest = parts.next().unwrap_or_default().to_owned();
        match kind {
            // Sent but not answered (yet): uncertain until an `ack` or `refused` line follows.
            "try" | "unknown" => self.record(id, entry, Fate::Uncertain),
            "ack" => self.record(id, entry, Fate::Acknowledged),
            "refused" => self.record(id, entry, Fate::Refused(rest)),
            "lost" => {
                self.record(id, entry, Fate::Uncertain);
                self.lost_outcome(rest);
            }
            _ => {}
        }
    }

    /// Applies a worker's `retries u o c d r` line.
    pub fn apply_retries_line(&self, text: &str) {
        let Some(rest) = text.strip_prefix("retries ") else {
            return;
        };
        let n: Vec<u64> = rest.split(' ').filter_map(|n| n.parse().ok()).collect();
        if let [unavailable, outcome_unknown, conflict, dropped, reruns] = n[..] {
            self.count(&Retries {
                unavailable,
                outcome_unknown,
                conflict,
                dropped,
                reruns,
                never_after_unknown: 0,
            });
        }
    }
}

/// A worker's report line: `<kind> <command id> <stream> <amount> <events>[ <message>]`.
pub fn line(kind: &str, id: Uuid, entry: &Entry, message: Option<&str>) -> String {
    let head = format!(
        "{kind} {id} {} {} {}",
        entry.stream, entry.amount, entry.events
    );
    match message {
        Some(m) => format!("{head} {}", m.replace('\n', " ")),
        None => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledgement_is_final_and_lines_round_trip() {
        let ledger = Ledger::new();
        let id = eventweave_core::new_id();
        let entry = Entry {
            stream: "vault-1".into(),
            amount: 7,
            events: 2,
        };
        ledger.apply_line(&line("try", id, &entry, None));
        assert_eq!(ledger.commands()[&id].1, Fate::Uncertain);
        ledger.apply_line(&line("ack", id, &entry, None));
        ledger.apply_line(&line("refused", id, &entry, Some("late")));
        assert_eq!(ledger.commands()[&id], (entry, Fate::Acknowledged));
        ledger.apply_retries_line("retries 1 2 3 4 5");
        assert_eq!(ledger.retries().dropped, 4);
    }
}

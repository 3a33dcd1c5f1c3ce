//! Identifiers and positions: stream ids, global positions, timestamps and event ids.

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use uuid::Uuid;

/// The name of one event stream, e.g. `account-42`.
///
/// Cheap to clone (a reference-counted string). The command bus names an aggregate's stream
/// `"{Aggregate::NAME}-{id}"`; stores accept any non-empty UTF-8 string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(Arc<str>);

impl StreamId {
    /// Wraps a stream name.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        StreamId(name.into())
    }

    /// The stream's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StreamId {
    fn from(s: &str) -> Self {
        StreamId(Arc::from(s))
    }
}

impl From<String> for StreamId {
    fn from(s: String) -> Self {
        StreamId(Arc::from(s))
    }
}

impl Borrow<str> for StreamId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A global position in the store's total order of events.
///
/// Positions start at 1 and grow by one per committed event (stores may leave holes only for
/// transactions that never committed). [`Position::ZERO`] means "before the first event": reading
/// all events from `Position::ZERO` or from `Position(1)` returns the same thing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position(pub u64);

impl Position {
    /// Before the first event.
    pub const ZERO: Position = Position(0);

    /// The position right after this one.
    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A point in wall-clock time, in microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp::from(SystemTime::now())
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(self) -> i64 {
        self.0
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        if t.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(t.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(t.0.unsigned_abs())
        }
    }
}

/// A new time-ordered (version 7) UUID, used for event ids, command ids and correlation ids.
///
/// Time-ordered ids keep B-tree indexes of SQL stores append-only. The random part comes from a
/// per-thread generator seeded from the operating system once, so no system call happens per id.
pub fn new_id() -> Uuid {
    new_id_at(unix_millis())
}

/// Milliseconds since the Unix epoch, for [`new_id_at`].
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new version 7 UUID stamped with `millis`: ids made together share one clock reading.
pub(crate) fn new_id_at(millis: u64) -> Uuid {
    let a = next_random();
    let b = next_random();
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

thread_local! {
    static RNG_STATE: Cell<u64> = Cell::new(seed());
}

/// 64 bits of operating-system entropy, through std's randomly keyed hasher.
fn seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish() | 1
}

/// wyrand: a small, fast generator with a full 2^64 period; ids need uniqueness, not secrecy.
fn next_random() -> u64 {
    RNG_STATE.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_version_7() {
        let ids: HashSet<Uuid> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
    }

    #[test]
    fn ids_from_two_threads_differ() {
        let a = std::thread::spawn(|| (0..1000).map(|_| new_id()).collect::<Vec<_>>());
        let b = std::thread::spawn(|| (0..1000).map(|_| new_id()).collect::<Vec<_>>());
        let mut all: HashSet<Uuid> = a.join().unwrap().into_iter().collect();
        all.extend(b.join().unwrap());
        assert_eq!(all.len(), 2000);
    }

    #[test]
    fn timestamp_round_trips_through_system_time() {
        let t = Timestamp(1_700_000_000_123_456);
        assert_eq!(Timestamp::from(SystemTime::from(t)), t);
        let before = Timestamp(-5);
        assert_eq!(Timestamp::from(SystemTime::from(before)), before);
    }
}

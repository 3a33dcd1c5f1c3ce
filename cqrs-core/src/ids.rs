//! Identifiers and positions: stream ids, global positions, timestamps and event ids.
//!
//! Event ids are UUIDv7, generated from one clock reading per command and a per-thread wyrand
//! seeded from OS entropy: time-ordered for B-tree indexes, with no entropy system call per id. The
//! generator is fork-safe: it keeps the process id it was seeded in and seeds again (from
//! `getrandom` through `Uuid::new_v4`, not from std's `RandomState`, whose keys a forked child
//! copies) when `std::process::id()` differs. That `getpid` (≈ 130–230 ns on the benchmark VM,
//! against ≈ 20 ns for an id) is read once per thread and millisecond, not per id: per id it cost
//! every command hundreds of nanoseconds. The window left (a child forked within the millisecond of
//! its parent's last id, making an id in that millisecond) repeats an id that a store refuses
//! (`IdempotencyConflict`), never merges two events. `pthread_atfork` would close it but needs
//! `unsafe`.
//!
//! Derived ids (`derive_id`) are name-based UUIDs (v5, SHA-1, namespace `DERIVED_ID_NAMESPACE`,
//! name `base ‖ index (8 bytes BE) ‖ salt`): distinct inputs are distinct names, so two derived ids
//! collide only if SHA-1 does, whatever ids and salts clients choose. Changing the function or its
//! namespace changes every derived id: an upgrade hazard (drain process managers first; see the
//! changelog).

use std::borrow::Borrow;
use std::cell::Cell;
use std::fmt;
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
/// per-thread generator seeded from the operating system's entropy, so no entropy system call
/// happens per id. The generator is fork-safe: it remembers the process id it was seeded in
/// and seeds again when that changes, so a process and the children it `fork()`s do not make
/// the same ids. The process id (a system call) is read once per thread and millisecond, not
/// per id: a child forked within the millisecond of its parent's last id, that makes an id in
/// that same millisecond, could repeat the parent's; a store refuses such a repeated event id
/// (`StoreError::IdempotencyConflict`), it never silently merges two events.
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
    id_from(millis, random_pair(millis, std::process::id))
}

/// The version 7 UUID of `millis` and 80 of the random bits.
fn id_from(millis: u64, (a, b): (u64, u64)) -> Uuid {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

/// The per-thread generator: its state, the process it was seeded in, and when that was last
/// checked.
#[derive(Clone, Copy)]
struct Rng {
    /// The process id at seeding; 0 (no user process has it) means not seeded yet.
    pid: u32,
    state: u64,
    /// The millisecond of the last process-id check.
    checked_at: u64,
}

thread_local! {
    static RNG: Cell<Rng> = const { Cell::new(Rng {
        pid: 0,
        state: 0,
        checked_at: u64::MAX,
    }) };
}

/// 64 bits of operating-system entropy (through the `uuid` crate's `getrandom`). A forked
/// child gets its own, unlike a seed derived from state copied from its parent (std's
/// `RandomState` keys, say, which two children of one thread would share).
fn seed() -> u64 {
    let (hi, lo) = Uuid::new_v4().as_u64_pair();
    hi ^ lo.rotate_left(32)
}

/// Two random words from this thread's generator for an id stamped `millis`. On the first id
/// of a millisecond it reads the process id (`pid`: `std::process::id`, or a stand-in in
/// tests) and seeds again if it changed since seeding.
fn random_pair(millis: u64, pid: impl FnOnce() -> u32) -> (u64, u64) {
    RNG.with(|cell| {
        let mut rng = cell.get();
        if rng.checked_at != millis {
            let pid = pid();
            if rng.pid != pid {
                rng = Rng {
                    pid,
                    state: seed(),
                    checked_at: millis,
                };
            }
            rng.checked_at = millis;
        }
        let a = wyrand(&mut rng.state);
        let b = wyrand(&mut rng.state);
        cell.set(rng);
        (a, b)
    })
}

/// wyrand: a small, fast generator with a full 2^64 period; ids need uniqueness, not secrecy.
fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state) * u128::from(*state ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64) ^ (t as u64)
}

// Derived ids live with the ids (not in `process`, their first user) so that the command bus
// can derive event ids without importing the process-manager layer above it.
/// The namespace of [`derive_id`]'s name-based UUIDs (generated once, at random, for this
/// crate: `ea4e9682-eeb2-4299-8239-12a17c50fc4f`). Changing it changes every derived id.
pub const DERIVED_ID_NAMESPACE: Uuid = Uuid::from_u128(0xea4e9682_eeb2_4299_8239_12a17c50fc4f);

/// A deterministic id: the name-based UUID (version 5, RFC 9562: SHA-1 of
/// [`DERIVED_ID_NAMESPACE`] and the name) of the name `base ‖ index ‖ salt`, where `base` is
/// its 16 bytes, `index` 8 bytes big-endian and `salt` its UTF-8 bytes. The first two have a
/// fixed length and the salt comes last, so distinct inputs are distinct names, and distinct
/// names collide only if SHA-1 does (as the ids of a 122-bit random UUID would).
///
/// Command ids of process managers and the event ids of commands run with a given command id
/// are derived this way, which is what makes running them again detectable.
///
/// ```
/// # use eventweave_core::Uuid;
/// # use eventweave_core::process::derive_id;
/// let command = Uuid::from_u128(42);
/// let first_event = derive_id(command, "event", 0);
/// assert_eq!(first_event, derive_id(command, "event", 0));
/// assert_eq!(first_event.get_version_num(), 5);
/// ```
pub fn derive_id(base: Uuid, salt: &str, index: u64) -> Uuid {
    /// Names up to this long are built on the stack (salts up to 104 bytes).
    const ON_STACK: usize = 128;
    let len = 24 + salt.len();
    let mut stack = [0u8; ON_STACK];
    let mut heap = Vec::new();
    let name: &mut [u8] = if len <= ON_STACK {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    name[..16].copy_from_slice(base.as_bytes());
    name[16..24].copy_from_slice(&index.to_be_bytes());
    name[24..].copy_from_slice(salt.as_bytes());
    Uuid::new_v5(&DERIVED_ID_NAMESPACE, name)
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

    /// A forked child starts with a copy of its parent's generator: with the same process id
    /// it would go on with the parent's sequence; with its own it is seeded again.
    #[test]
    fn a_new_process_id_seeds_the_generator_again() {
        let parent = std::process::id();
        let at = |millis: u64, pid: u32| random_pair(millis, move || pid);
        at(1, parent);
        let copied = RNG.with(Cell::get);
        let in_parent: Vec<_> = (2..6).map(|ms| at(ms, parent)).collect();

        // The same state and process id repeat the sequence: that is what a fork copied.
        RNG.with(|cell| cell.set(copied));
        let again: Vec<_> = (2..6).map(|ms| at(ms, parent)).collect();
        assert_eq!(again, in_parent);

        // Two children (other process ids) from the same copied state: each its own sequence
        // from their first millisecond on.
        RNG.with(|cell| cell.set(copied));
        let child: Vec<_> = (2..6).map(|ms| at(ms, parent.wrapping_add(1))).collect();
        RNG.with(|cell| cell.set(copied));
        let sibling: Vec<_> = (2..6).map(|ms| at(ms, parent.wrapping_add(2))).collect();
        assert!(child.iter().all(|pair| !in_parent.contains(pair)));
        assert!(
            sibling
                .iter()
                .all(|pair| !in_parent.contains(pair) && !child.contains(pair))
        );

        // Back in the parent's process id, the generator seeds again rather than reuse a child's.
        let later = at(7, parent);
        assert!(!in_parent.contains(&later) && !child.contains(&later));

        // Within one millisecond the process id is read once.
        let reads = std::cell::Cell::new(0);
        for _ in 0..3 {
            random_pair(8, || {
                reads.set(reads.get() + 1);
                parent
            });
        }
        assert_eq!(reads.get(), 1);
        let ids: HashSet<Uuid> = [in_parent, child, sibling]
            .concat()
            .into_iter()
            .map(|pair| id_from(1_700_000_000_000, pair))
            .collect();
        assert_eq!(ids.len(), 12, "one clock reading, twelve distinct ids");
    }

    /// Costs per call on this machine, for the record (not a check):
    /// `cargo test -p eventweave-core --release --lib -- --ignored --nocapture id_costs`
    #[test]
    #[ignore = "timing, run by hand in release mode"]
    fn id_costs() {
        fn per_call<T>(label: &str, mut f: impl FnMut(u64) -> T) {
            const N: u64 = 2_000_000;
            for i in 0..N / 10 {
                std::hint::black_box(f(i));
            }
            let started = std::time::Instant::now();
            for i in 0..N {
                std::hint::black_box(f(i));
            }
            let ns = started.elapsed().as_nanos() as f64 / N as f64;
            println!("{label}: {ns:.0} ns/call");
        }
        let base = new_id();
        for _ in 0..3 {
            per_call("new_id", |_| new_id());
            per_call("new_id_at (one clock reading)", |i| {
                new_id_at(std::hint::black_box(1_700_000_000_000 + (i >> 10)))
            });
            per_call("std::process::id", |_| std::process::id());
            per_call("derive_id, salt \"event\"", |i| {
                crate::process::derive_id(base, "event", i)
            });
            per_call("derive_id, salt \"fulfilment/command\"", |i| {
                crate::process::derive_id(base, "fulfilment/command", i)
            });
        }
    }

    #[test]
    fn timestamp_round_trips_through_system_time() {
        let t = Timestamp(1_700_000_000_123_456);
        assert_eq!(Timestamp::from(SystemTime::from(t)), t);
        let before = Timestamp(-5);
        assert_eq!(Timestamp::from(SystemTime::from(before)), before);
    }
}

//! The snapshot cases every store must pass, run by
//! [`snapshot_conformance_tests!`](crate::snapshot_conformance_tests): the store contract
//! (save, load, overwrite, per stream) and, through [`Cqrs`], loads from snapshots that are
//! current, of an older state shape, or corrupt. [`Tally`] is the aggregate they use (built with
//! `#[aggregate(snapshot_every = 3)]`), and [`load_equals_replay`] is the property that a
//! store's property tests drive with random command sequences.

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::{Aggregate, Cqrs, EventSet, EventStore, Snapshot, StreamId, Timestamp, Warning};

/// Opened a tally.
#[derive(crate::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "snapshot_test.opened")]
pub struct TallyOpened;

/// Added `n`.
#[derive(crate::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "snapshot_test.added")]
pub struct TallyAdded {
    /// The amount.
    pub n: u32,
}

/// Reset to zero.
#[derive(crate::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "snapshot_test.reset")]
pub struct TallyReset;

/// Creates a tally.
#[derive(crate::Command, Debug, Clone)]
#[command(aggregate = Tally)]
pub struct OpenTally {
    /// Which one.
    #[id]
    pub id: u64,
}

/// Adds `n` once per element (one command may record several events).
#[derive(crate::Command, Debug, Clone)]
#[command(aggregate = Tally)]
pub struct AddToTally {
    /// Which one.
    #[id]
    pub id: u64,
    /// The amounts.
    pub amounts: Vec<u32>,
}

/// Resets a tally (the order of events matters to the state).
#[derive(crate::Command, Debug, Clone)]
#[command(aggregate = Tally)]
pub struct ResetTally {
    /// Which one.
    #[id]
    pub id: u64,
}

/// A tally whose state depends on every event and their order: the sum since the last reset,
/// the number of events, and the last few amounts.
#[derive(Default, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Tally {
    /// Sum since the last reset.
    pub sum: u64,
    /// Events applied.
    pub events: u64,
    /// Resets applied.
    pub resets: u32,
    /// The last three amounts, newest last.
    pub recent: Vec<u32>,
}

/// The `Tally` rule set: nothing can fail.
#[crate::aggregate(id = u64, name = "snapshot_tally", snapshot_every = 3, snapshot_version = 2)]
impl Tally {
    #[handle]
    fn open(cmd: &OpenTally) -> Result<TallyOpened, std::convert::Infallible> {
        let _ = cmd;
        Ok(TallyOpened)
    }

    #[handle]
    fn add(&self, cmd: &AddToTally) -> Result<Vec<TallyAdded>, std::convert::Infallible> {
        Ok(cmd.amounts.iter().map(|&n| TallyAdded { n }).collect())
    }

    #[handle]
    fn reset(&self, cmd: &ResetTally) -> Result<TallyReset, std::convert::Infallible> {
        let _ = cmd;
        Ok(TallyReset)
    }

    #[apply]
    fn opened(&mut self, _: &TallyOpened) {
        self.events += 1;
    }

    #[apply]
    fn added(&mut self, e: &TallyAdded) {
        self.events += 1;
        self.sum += u64::from(e.n);
        self.recent.push(e.n);
        if self.recent.len() > 3 {
            self.recent.remove(0);
        }
    }

    #[apply]
    fn was_reset(&mut self, _: &TallyReset) {
        self.events += 1;
        self.resets += 1;
        self.sum = 0;
    }
}

/// One step of a random command sequence.
#[derive(Clone, Debug)]
pub enum Step {
    /// `AddToTally` with these amounts (empty: a command that records nothing).
    Add(Vec<u32>),
    /// `ResetTally`.
    Reset,
    /// Drop the aggregate cache (a cold load at the next command).
    Cold,
}

/// The state of aggregate `id` folded by hand from every stored event, without snapshots.
pub async fn replay<A: Aggregate, S: EventStore>(store: &S, id: &A::Id) -> (A, u64) {
    let stream = A::stream_id(id);
    let mut state = A::default();
    let mut version = 0;
    for stored in store.read_stream(&stream, 1, usize::MAX).await.unwrap() {
        let meta = &stored.meta;
        let event = A::Event::decode(
            &meta.event_name,
            meta.event_version,
            stored.payload.as_str(),
        )
        .unwrap();
        state.apply(&event);
        version = meta.version;
    }
    (state, version)
}

/// Warnings collected by a test's `on_warning` hook.
pub type Warnings = Arc<Mutex<Vec<String>>>;

/// An application over `store` whose warnings are collected, not printed.
pub async fn app_with_warnings<S: EventStore>(store: S, cache: usize) -> (Cqrs<S>, Warnings) {
    let warnings = Warnings::default();
    let sink = Arc::clone(&warnings);
    let app = Cqrs::builder(store)
        .cache_capacity(cache)
        .on_warning(move |w: &Warning| sink.lock().unwrap().push(w.to_string()))
        .build()
        .await
        .unwrap();
    (app, warnings)
}

/// The property: after running `steps` on tally `id` (with cold loads where the steps say), a
/// load that starts from snapshots equals the full replay of the stream, at every step, and
/// the stored snapshot never claims more than the stream holds.
pub async fn load_equals_replay<S: EventStore>(store: S, id: u64, steps: &[Step]) {
    // Cache of one entry: `Cold` evicts it by touching another tally.
    let (app, warnings) = app_with_warnings(store.clone(), 1).await;
    app.execute(OpenTally { id }).await.unwrap();
    let mut other = id.wrapping_add(1_000_000);
    for step in steps {
        match step {
            Step::Add(amounts) => {
                app.execute(AddToTally {
                    id,
                    amounts: amounts.clone(),
                })
                .await
                .unwrap();
            }
            Step::Reset => {
                app.execute(ResetTally { id }).await.unwrap();
            }
            Step::Cold => {
                other += 1;
                app.execute(OpenTally { id: other }).await.unwrap();
            }
        }
        let loaded = app.load::<Tally>(&id).await.unwrap();
        let replayed = replay::<Tally, _>(&store, &id).await;
        assert_eq!(loaded, replayed, "after {step:?}");
        let kept = store.load_snapshot(&Tally::stream_id(&id)).await.unwrap();
        if let Some(kept) = kept {
            assert!(kept.version <= replayed.1, "{kept:?} beyond the stream");
            assert_eq!(kept.snapshot_version, 2);
        }
    }
    assert!(warnings.lock().unwrap().is_empty(), "{warnings:?}");
}

fn snapshot(version: u64, snapshot_version: u32, payload: &str) -> Snapshot {
    Snapshot {
        version,
        snapshot_version,
        payload: payload.to_owned(),
        taken_at: Timestamp::now(),
    }
}

/// A stream without a snapshot has none; a saved one comes back as saved.
pub async fn save_and_load<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = &make().await;
    let stream = StreamId::from("snap-1");
    assert_eq!(store.load_snapshot(&stream).await.unwrap(), None);
    let saved = snapshot(7, 1, r#"{"a":[1,2,3],"b":"é \"q\""}"#);
    store.save_snapshot(&stream, saved.clone()).await.unwrap();
    let loaded = store.load_snapshot(&stream).await.unwrap().unwrap();
    assert_eq!(
        (loaded.version, loaded.snapshot_version, &loaded.payload),
        (7, 1, &saved.payload)
    );
    // Stores keep at least millisecond precision.
    assert!((loaded.taken_at.unix_micros() - saved.taken_at.unix_micros()).abs() < 1_000);
}

/// The latest snapshot replaces the kept one; an older one of the same shape does not, one of
/// another shape does (in either direction).
pub async fn newer_replaces_older_never_back<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = &make().await;
    let stream = StreamId::from("snap-2");
    let kept = || async { store.load_snapshot(&stream).await.unwrap().unwrap() };
    store
        .save_snapshot(&stream, snapshot(10, 1, "10"))
        .await
        .unwrap();
    store
        .save_snapshot(&stream, snapshot(20, 1, "20"))
        .await
        .unwrap();
    assert_eq!(kept().await.payload, "20");
    store
        .save_snapshot(&stream, snapshot(15, 1, "15"))
        .await
        .unwrap();
    assert_eq!(kept().await.payload, "20", "a snapshot never moves back");
    store
        .save_snapshot(&stream, snapshot(20, 1, "20 again"))
        .await
        .unwrap();
    assert_eq!(kept().await.payload, "20 again", "same version: replaced");
    store
        .save_snapshot(&stream, snapshot(12, 2, "12 of shape 2"))
        .await
        .unwrap();
    let now = kept().await;
    assert_eq!((now.version, now.snapshot_version), (12, 2));
    store
        .save_snapshot(&stream, snapshot(3, 1, "3 of shape 1"))
        .await
        .unwrap();
    assert_eq!(
        kept().await.snapshot_version,
        1,
        "a rollback replaces it too"
    );
}

/// Each stream has its own snapshot.
pub async fn snapshots_are_per_stream<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = &make().await;
    let (a, b) = (StreamId::from("snap-a"), StreamId::from("snap-b"));
    store.save_snapshot(&a, snapshot(3, 1, "a")).await.unwrap();
    store.save_snapshot(&b, snapshot(9, 1, "b")).await.unwrap();
    assert_eq!(store.load_snapshot(&a).await.unwrap().unwrap().payload, "a");
    assert_eq!(store.load_snapshot(&b).await.unwrap().unwrap().payload, "b");
    assert_eq!(
        store
            .load_snapshot(&StreamId::from("snap-c"))
            .await
            .unwrap(),
        None
    );
}

/// Commands take a snapshot when their append crosses a multiple of `snapshot_every`, and a
/// cold load starts from it (it reads only the events after it).
pub async fn commands_take_snapshots_and_loads_use_them<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let (app, warnings) = app_with_warnings(store.clone(), 0).await;
    let stream = Tally::stream_id(&1);
    app.execute(OpenTally { id: 1 }).await.unwrap();
    app.execute(AddToTally {
        id: 1,
        amounts: vec![1],
    })
    .await
    .unwrap();
    assert_eq!(store.load_snapshot(&stream).await.unwrap(), None);
    app.execute(AddToTally {
        id: 1,
        amounts: vec![2, 3, 4, 5],
    })
    .await
    .unwrap();
    let kept = store.load_snapshot(&stream).await.unwrap().unwrap();
    assert_eq!((kept.version, kept.snapshot_version), (6, 2));
    // Rewrite the snapshot's state: a load that uses it shows the rewritten sum.
    let mut state: Tally = serde_json::from_str(&kept.payload).unwrap();
    assert_eq!(state.sum, 15);
    state.sum = 1_000;
    let marked = Snapshot {
        payload: serde_json::to_string(&state).unwrap(),
        ..kept
    };
    store.save_snapshot(&stream, marked).await.unwrap();
    let (loaded, version) = app.load::<Tally>(&1).await.unwrap();
    assert_eq!(
        (loaded.sum, version),
        (1_000, 6),
        "the load started from it"
    );
    assert!(warnings.lock().unwrap().is_empty());
}

/// A snapshot of another `snapshot_version` is ignored (the state comes from the events) and
/// replaced by the load.
pub async fn older_shape_is_ignored_and_replaced<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let (app, warnings) = app_with_warnings(store.clone(), 0).await;
    let stream = Tally::stream_id(&2);
    app.execute(OpenTally { id: 2 }).await.unwrap();
    app.execute(AddToTally {
        id: 2,
        amounts: vec![5, 6, 7],
    })
    .await
    .unwrap();
    // Shape 1 at the stream's head, with a payload that decodes into a wrong state.
    let wrong = Tally {
        sum: 999,
        ..Tally::default()
    };
    let old = snapshot(4, 1, &serde_json::to_string(&wrong).unwrap());
    store.save_snapshot(&stream, old).await.unwrap();
    let (loaded, version) = app.load::<Tally>(&2).await.unwrap();
    assert_eq!((loaded.sum, version), (18, 4));
    assert_eq!(
        (loaded, version),
        replay::<Tally, _>(&store, &2).await,
        "the old shape was not used"
    );
    let kept = store.load_snapshot(&stream).await.unwrap().unwrap();
    assert_eq!((kept.version, kept.snapshot_version), (4, 2), "replaced");
    assert!(
        warnings.lock().unwrap().is_empty(),
        "no warning for a new shape"
    );
}

/// A snapshot whose payload does not decode is discarded with a warning, the state rebuilt
/// from the events, and a fresh snapshot saved in its place.
pub async fn corrupt_snapshot_is_discarded_with_a_warning<S, F, Fut>(make: &F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let (app, warnings) = app_with_warnings(store.clone(), 0).await;
    for (id, garbage) in [(3, r#"{"sum": "not a number"}"#), (4, "not json at all")] {
        let stream = Tally::stream_id(&id);
        app.execute(OpenTally { id }).await.unwrap();
        app.execute(AddToTally {
            id,
            amounts: vec![1, 2, 3, 4],
        })
        .await
        .unwrap();
        store
            .save_snapshot(&stream, snapshot(5, 2, garbage))
            .await
            .unwrap();
        let (loaded, version) = app.load::<Tally>(&id).await.unwrap();
        assert_eq!((loaded.sum, version), (10, 5));
        let seen = std::mem::take(&mut *warnings.lock().unwrap());
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].contains(stream.as_str()) && seen[0].contains("discarded"),
            "{seen:?}"
        );
        let kept = store.load_snapshot(&stream).await.unwrap().unwrap();
        assert_ne!(kept.payload, garbage, "replaced by a good one");
        // A command that loads past a corrupt snapshot decides on the right state too.
        store
            .save_snapshot(&stream, snapshot(5, 2, garbage))
            .await
            .unwrap();
        let outcome = app.execute(ResetTally { id }).await.unwrap();
        assert_eq!(outcome.version, 6);
        assert_eq!(std::mem::take(&mut *warnings.lock().unwrap()).len(), 1);
        let (after, version) = app.load::<Tally>(&id).await.unwrap();
        assert_eq!((after, version), replay::<Tally, _>(&store, &id).await);
    }
}

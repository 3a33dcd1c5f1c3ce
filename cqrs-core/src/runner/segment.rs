//! Segments: one durable projection's work shared by stream among several runners.
//!
//! A projection in a layout of `N` segments is run by `N` runners (in one process or in
//! several), each applying only the events of the streams its [`Segment`] owns, each from its
//! own checkpoint and under its own lease. Segment `k` of `N` owns the streams whose
//! [`stream_hash`] is `k` modulo `N`, so every stream (and with it every event) belongs to
//! exactly one segment, and one segment applies a stream's events in order.
//!
//! # What is stored
//!
//! - The checkpoint of segment `k` of `N` is kept under the name `{projection}#{k}/{N}`; the
//!   single segment of the layout `1` uses the projection's own name, so an unsegmented
//!   projection is the layout `1` and needs no migration.
//! - The layout (`N`) is a checkpoint record named `{projection}#segments` whose position is
//!   `N` (no record: `1`). Runners compare it with their own `N` after taking each lease
//!   ([`SegmentLeases`]), so a process started with another `N` stands by instead of applying
//!   events a segment of the stored layout applies too.
//! - [`stream_hash`] is FNV-1a 64 over the stream name's UTF-8 bytes. **It is part of the stored
//!   format and must never change**: a different hash would hand streams to other segments
//!   whose checkpoints do not cover their events.
//!
//! # Split and merge without a rebuild
//!
//! [`resegment`] moves a projection from its stored layout to another: it takes the leases of
//! every segment of the old layout, checks that the layout is still the one it read, brings
//! every old segment to one common position `P` (the highest of their checkpoints) by applying
//! each segment's own events up to `P` through its sink, then saves the checkpoint of every new
//! segment at `P` and, last, the layout record. Saving the layout record is the commit point:
//! before it, runners of the new layout stand by (their leases refuse) and the new checkpoints
//! are unread; after it, runners of the old layout stand by. Why no event is applied twice or
//! skipped: every event up to `P` belongs to one old segment, whose checkpoint `P` says its
//! effects are committed; no old segment committed an effect after `P` (an exactly-once sink's
//! effects commit with its checkpoint, and the leases kept every old runner out); every event
//! after `P` belongs to one new segment, which starts at `P`.
//!
//! Reading all events and dropping other segments' in the process is what each segment does:
//! on a workload bound by one round trip per applied event (an awaited statement per event),
//! reading is a small share, and segments multiply what is bound by round trips.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use crate::envelope::RecordedEvent;
use crate::error::{ProjectionError, StoreError};
use crate::ids::{Position, StreamId};
use crate::runner::lease::{Lease, Leases};
use crate::runner::sink::{ApplyError, ProjectionSink};
use crate::store::{Checkpoints, EventStore};

/// The stable hash that assigns streams to segments: FNV-1a 64 over the UTF-8 bytes of the
/// stream name. Part of the stored format (see the module docs): it never changes.
pub fn stream_hash(stream: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    stream.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// One segment of a projection's layout: the streams whose [`stream_hash`] is `index` modulo
/// `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Segment {
    index: u32,
    count: u32,
}

impl Segment {
    /// The one segment of the layout `1`: every stream (an unsegmented projection).
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// Segment `index` of `count` (`index < count`, `count >= 1`).
    pub fn new(index: u32, count: u32) -> Result<Segment, SegmentError> {
        if count == 0 || index >= count {
            return Err(SegmentError::Invalid { index, count });
        }
        Ok(Segment { index, count })
    }

    /// Every segment of the layout `count`, in order (none for `0`).
    pub fn all(count: u32) -> impl Iterator<Item = Segment> {
        (0..count).map(move |index| Segment { index, count })
    }

    /// Its index in the layout.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The number of segments of the layout.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this segment applies the events of `stream`.
    pub fn owns(self, stream: &StreamId) -> bool {
        self.count == 1
            || stream_hash(stream.as_str()) % u64::from(self.count) == u64::from(self.index)
    }

    /// The name its checkpoint and its lease are kept under: `projection` for
    /// [`Segment::WHOLE`], `{projection}#{index}/{count}` otherwise.
    pub fn key(self, projection: &str) -> String {
        if self.count == 1 {
            projection.to_owned()
        } else {
            format!("{projection}#{}/{}", self.index, self.count)
        }
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The name of the checkpoint record that holds the layout of `projection`.
pub fn layout_key(projection: &str) -> String {
    format!("{projection}#segments")
}

/// The stored layout of `projection`: its number of segments (`1` when none is stored).
pub async fn load_layout<C: Checkpoints>(
    checkpoints: &C,
    projection: &str,
) -> Result<u32, StoreError> {
    let stored = checkpoints.load_checkpoint(&layout_key(projection)).await?;
    match u32::try_from(stored.0) {
        Ok(0) => Ok(1),
        Ok(count) => Ok(count),
        Err(_) => Err(StoreError::Backend(
            format!(
                "the stored layout of projection `{projection}` is {} segments, which is not a \
                 layout this version writes",
                stored.0
            )
            .into(),
        )),
    }
}

/// The checkpoint of every segment of the stored layout of `projection`, in order.
pub async fn segment_checkpoints<C: Checkpoints>(
    checkpoints: &C,
    projection: &str,
) -> Result<Vec<(Segment, Position)>, StoreError> {
    let count = load_layout(checkpoints, projection).await?;
    let mut found = Vec::with_capacity(count as usize);
    for segment in Segment::all(count) {
        let position = checkpoints
            .load_checkpoint(&segment.key(projection))
            .await?;
        found.push((segment, position));
    }
    Ok(found)
}

/// Why segments could not start, or a layout could not change.
#[derive(Debug)]
#[non_exhaustive]
pub enum SegmentError {
    /// `index` is not a segment of a layout of `count` (`count` must be at least 1).
    Invalid {
        /// The index asked for.
        index: u32,
        /// The layout asked for.
        count: u32,
    },
    /// The stored layout of the projection is not the one asked for: run
    /// [`resegment`] to change it, or start the runners with the stored number.
    LayoutMismatch {
        /// The projection.
        projection: &'static str,
        /// Its stored number of segments.
        stored: u32,
        /// The number asked for.
        requested: u32,
    },
    /// A sink made for one segment says it applies another (it ignores segments, or the
    /// factory built the wrong one): running it would apply events twice.
    WrongSink {
        /// The segment asked for.
        expected: Segment,
        /// The segment the sink reports.
        found: Segment,
    },
    /// Another holder kept the lease of this segment for the whole wait.
    Busy {
        /// The segment's checkpoint and lease name.
        segment: String,
    },
    /// A handler failed while an old segment was brought to the common position; the layout
    /// is unchanged (what was applied before is committed as usual).
    Projection(ProjectionError),
    /// The store or a sink's storage failed; the layout is unchanged.
    Store(StoreError),
}

impl std::fmt::Display for SegmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentError::Invalid { index, count } => {
                write!(
                    f,
                    "{index} is not a segment of a layout of {count} segments"
                )
            }
            SegmentError::LayoutMismatch {
                projection,
                stored,
                requested,
            } => write!(
                f,
                "projection `{projection}` is stored in {stored} segment(s), not {requested}: \
                 change the layout with `resegment` first, or run {stored} segment(s)"
            ),
            SegmentError::WrongSink { expected, found } => write!(
                f,
                "the sink made for segment {expected} applies segment {found} (give it the \
                 segment, e.g. `PgSink::segment`)"
            ),
            SegmentError::Busy { segment } => {
                write!(f, "the lease of `{segment}` is held by another runner")
            }
            SegmentError::Projection(e) => write!(f, "changing the layout failed: {e}"),
            SegmentError::Store(e) => write!(f, "changing the layout failed: {e}"),
        }
    }
}

impl std::error::Error for SegmentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SegmentError::Projection(e) => Some(e),
            SegmentError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for SegmentError {
    fn from(e: StoreError) -> Self {
        SegmentError::Store(e)
    }
}

impl From<ApplyError> for SegmentError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Handler(e) => SegmentError::Projection(e),
            ApplyError::Store(e) => SegmentError::Store(e),
        }
    }
}

/// The sink of `segment`, checked to say so.
pub(crate) fn checked_sink<K: ProjectionSink>(
    segment: Segment,
    sink: K,
) -> Result<K, SegmentError> {
    match sink.segment() {
        found if found == segment => Ok(sink),
        found => Err(SegmentError::WrongSink {
            expected: segment,
            found,
        }),
    }
}

/// Leases of the segments of one layout: a lease of the inner [`Leases`] that is granted only
/// while the stored layout is this one, and only while this process holds fewer than its
/// maximum of segments.
///
/// The layout is read after the inner lease is taken: a [`resegment`] holds every lease of the
/// old layout while it changes the record, so a runner that reads the old layout under its
/// lease runs before the change, and one that takes a lease afterwards reads the new layout.
#[derive(Clone)]
pub struct SegmentLeases<L, C> {
    inner: L,
    checkpoints: C,
    projection: &'static str,
    count: u32,
    /// Segments held in this process, and the most it may hold.
    held: Arc<AtomicUsize>,
    max: usize,
    /// The layout found at the last refusal for a mismatch (0: none).
    mismatch: Arc<AtomicU32>,
}

impl<L: Leases, C: Checkpoints> SegmentLeases<L, C> {
    /// Leases of `projection`'s segments in a layout of `count`, at most `max` held at once by
    /// this value and its clones.
    pub fn new(inner: L, checkpoints: C, projection: &'static str, count: u32, max: usize) -> Self {
        SegmentLeases {
            inner,
            checkpoints,
            projection,
            count,
            held: Arc::new(AtomicUsize::new(0)),
            max: max.max(1),
            mismatch: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The segments held now by this value and its clones.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// The stored layout found the last time a lease was refused because it differs from this
    /// one (`None` when that has not happened).
    pub fn mismatch(&self) -> Option<u32> {
        match self.mismatch.load(Ordering::SeqCst) {
            0 => None,
            stored => Some(stored),
        }
    }
}

impl<L: Leases, C: Checkpoints> Leases for SegmentLeases<L, C> {
    type Lease = SegmentLease<L::Lease>;

    async fn try_acquire(&self, key: &str) -> Result<Option<Self::Lease>, StoreError> {
        // Reserve a place first, so that concurrent tries of one process never exceed `max`.
        if self.held.fetch_add(1, Ordering::SeqCst) >= self.max {
            self.held.fetch_sub(1, Ordering::SeqCst);
            return Ok(None);
        }
        let place = Place(Arc::clone(&self.held));
        let Some(inner) = self.inner.try_acquire(key).await? else {
            return Ok(None);
        };
        let stored = load_layout(&self.checkpoints, self.projection).await?;
        if stored != self.count {
            self.mismatch.store(stored, Ordering::SeqCst);
            return Ok(None);
        }
        self.mismatch.store(0, Ordering::SeqCst);
        Ok(Some(SegmentLease {
            inner,
            _place: place,
        }))
    }

    async fn held_elsewhere(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.held_elsewhere(key).await
    }
}

/// A place among a process's held segments, given back on drop.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A held [`SegmentLeases`] lease.
pub struct SegmentLease<T> {
    inner: T,
    _place: Place,
}

impl<T: Lease> Lease for SegmentLease<T> {
    fn lost(&mut self) -> impl Future<Output = ()> + Send {
        self.inner.lost()
    }
}

/// How [`resegment`] waits and reads.
#[derive(Clone, Debug)]
pub struct ResegmentOptions {
    /// How long to wait for each old segment's lease (default 30 s).
    pub lease_wait: Duration,
    /// Events read per round trip while old segments are brought to the common position
    /// (default 512).
    pub batch_size: usize,
}

impl Default for ResegmentOptions {
    fn default() -> Self {
        ResegmentOptions {
            lease_wait: Duration::from_secs(30),
            batch_size: 512,
        }
    }
}

/// Changes the layout of a projection to `count` segments without a rebuild (split or merge;
/// from the unsegmented layout `1` too), as the module docs describe; returns the common
/// position the new segments start from.
///
/// `sink` makes the sink of a segment (it is asked for each segment of the stored layout);
/// `leases` are the leases the projection's runners take (a [`LocalLease`] grants everything:
/// with it, stop the projection's runners first). Fails with [`SegmentError::Busy`] when a
/// runner keeps an old segment's lease for `options.lease_wait`: stop the runners of the old
/// layout first, and start those of the new one after.
///
/// [`LocalLease`]: crate::runner::LocalLease
pub async fn resegment<S, K, L, F>(
    store: &S,
    leases: &L,
    mut sink: F,
    count: u32,
    options: ResegmentOptions,
) -> Result<Position, SegmentError>
where
    S: EventStore + Checkpoints,
    K: ProjectionSink,
    L: Leases,
    F: FnMut(Segment) -> K,
{
    if count == 0 {
        return Err(SegmentError::Invalid { index: 0, count });
    }
    let name = sink(Segment::WHOLE).name();
    let from = load_layout(store, name).await?;
    let mut old = Vec::with_capacity(from as usize);
    for segment in Segment::all(from) {
        let made = checked_sink(segment, sink(segment))?;
        let lease = wait_for_lease(leases, &segment.key(name), options.lease_wait).await?;
        old.push((segment, made, lease));
    }
    // Another change may have committed before the leases were all taken.
    let stored = load_layout(store, name).await?;
    if stored != from {
        return Err(SegmentError::LayoutMismatch {
            projection: name,
            stored,
            requested: from,
        });
    }
    let mut common = Position::ZERO;
    let mut reached = Vec::with_capacity(old.len());
    for (_, sink, _) in &mut old {
        let checkpoint = sink.checkpoint().await?;
        common = common.max(checkpoint);
        reached.push(checkpoint);
    }
    for ((segment, sink, _), checkpoint) in old.iter_mut().zip(reached) {
        catch_up_to(
            store,
            sink,
            *segment,
            checkpoint,
            common,
            options.batch_size,
        )
        .await?;
    }
    if count != from {
        for segment in Segment::all(count) {
            store.save_checkpoint(&segment.key(name), common).await?;
        }
        // The commit point: from here the new layout's leases grant and the old one's refuse.
        store
            .save_checkpoint(&layout_key(name), Position(u64::from(count)))
            .await?;
    }
    drop(old);
    Ok(common)
}

async fn wait_for_lease<L: Leases>(
    leases: &L,
    key: &str,
    wait: Duration,
) -> Result<L::Lease, SegmentError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(lease) = leases.try_acquire(key).await? {
            return Ok(lease);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SegmentError::Busy {
                segment: key.to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Applies `segment`'s events after `checkpoint` up to `target` through `sink`, leaving its
/// checkpoint at `target`.
async fn catch_up_to<S: EventStore, K: ProjectionSink>(
    store: &S,
    sink: &mut K,
    segment: Segment,
    mut checkpoint: Position,
    target: Position,
    batch_size: usize,
) -> Result<(), SegmentError> {
    let events = sink.events();
    while checkpoint < target {
        let batch = store.read_all(checkpoint.next(), batch_size.max(1)).await?;
        let Some(last) = batch.last() else {
            // Every position up to `target` was readable to the segment that reached it; a
            // store that lags (a replica, a cache) catches up shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let through = last.meta.position.min(target);
        let mine: Vec<RecordedEvent> = batch
            .into_iter()
            .filter(|e| {
                e.meta.position <= through
                    && events.contains(&&*e.meta.event_name)
                    && segment.owns(&e.meta.stream)
            })
            .collect();
        sink.apply(&mine, through).await?;
        checkpoint = through;
    }
    Ok(())
}

//! The subcommands, generic over the store (and its leases).
//!
//! # Choices
//!
//! - **`rebuild` holds the lease itself** for the whole rebuild and runs the projection without
//!   leases: while it holds it, no other process can start the projection; while another holds it,
//!   the command refuses (or polls every 500 ms with `--wait`). On SQLite the leases are
//!   `SqliteLeases` (a row renewed by its holder), which the application's runners must take
//!   for the command to see them (documented in the crate docs).
//! - **`projections` derives a state** from what a separate process can know: the lease (held
//!   elsewhere or free, through `Leases::held_elsewhere`, which reads the SQLite row without
//!   taking it) and the lag. A runner's own `RunnerState` lives in the
//!   process that runs it.
//! - **A projection stored in segments** is listed with its slowest segment's checkpoint, then
//!   one line per segment (checkpoint, lag, parked events and lease of `{name}#{k}/{n}`).
//! - **`replay-parked` goes through the projection's own sink** (`ProjectionSink::replay_parked`,
//!   made by the function `Admin::durable` registered), so each sink keeps its guarantee: on the
//!   SQL sinks the parked record is deleted in the transaction that applies the event, so two
//!   operators replaying at once apply it once. It takes no lease: it does not move the
//!   checkpoint, and a running runner never touches parked events. Events are read back by id
//!   (`read_event`); one that is gone is reported, not fatal.
//! - **`Admin::durable` takes a function** that builds the runner on the opened store
//!   (registrations erased behind `&dyn Any`), and is refused with a clear line on a store of
//!   another type (the bank's balances table lives in SQLite).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use eventweave_core::registry::{self, ProjectionKind};
use eventweave_core::runner::{
    Checkpoints, Lease, Leases, Segment, list_projections, load_layout, segment_checkpoints,
};
use eventweave_core::{EventStore, InspectStore, Position, StreamId, Uuid};

use crate::output::{self, BAD, BOLD, DIM, GOOD, WARN, out, paint};
use crate::progress::ProgressBar;
use crate::{Admin, AdminCommand, Failure, Mounted};

/// How often `rebuild --wait` tries the lease again.
const LEASE_POLL: Duration = Duration::from_millis(500);

/// Runs `command` on `store`, whose leases are `leases` (`None`: the store has no leases
/// across processes, so nobody can be seen holding one).
pub(crate) async fn run<S, L>(
    admin: &Admin,
    store: S,
    leases: Option<L>,
    command: AdminCommand,
) -> Result<(), Failure>
where
    S: EventStore + Checkpoints + InspectStore,
    L: Leases,
{
    match command {
        AdminCommand::Streams { prefix, limit } => streams(&store, prefix.as_deref(), limit).await,
        AdminCommand::Stream { id, from } => stream(&store, &id, from).await,
        AdminCommand::Tail { from } => tail(store, from).await,
        AdminCommand::Projections => projections(&store, leases.as_ref()).await,
        AdminCommand::Rebuild { name, wait } => {
            rebuild(admin, &store, leases.as_ref(), &name, wait).await
        }
        AdminCommand::Parked { name } => parked(&store, &name).await,
        AdminCommand::ReplayParked { name, event } => {
            replay_parked(admin, &store, &name, event.as_deref()).await
        }
        AdminCommand::Catalog { .. } => unreachable!("the catalog needs no store"),
    }
}

async fn streams<S: InspectStore>(
    store: &S,
    prefix: Option<&str>,
    limit: usize,
) -> Result<(), Failure> {
    const PAGE: usize = 500;
    // Streams sort by id, so those with the prefix follow the largest id below it.
    let mut after = None::<StreamId>;
    let mut shown = 0;
    out(paint(
        BOLD,
        format!("{:<40} {:>10} {:>14}", "stream", "events", "last position"),
    ));
    'pages: loop {
        let page = store.list_streams(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.stream.clone());
        for summary in &page {
            let id = summary.stream.as_str();
            if prefix.is_some_and(|p| !id.starts_with(p)) {
                if prefix.is_some_and(|p| id > p) && shown > 0 {
                    break 'pages;
                }
                continue;
            }
            if shown == limit {
                out(paint(DIM, format!("… more (raise --limit above {limit})")));
                break 'pages;
            }
            out(format!(
                "{:<40} {:>10} {:>14}",
                id, summary.events, summary.last_position
            ));
            shown += 1;
        }
        if page.len() < PAGE {
            break;
        }
    }
    if shown == 0 {
        out(paint(DIM, "no streams"));
    }
    Ok(())
}

async fn stream<S: EventStore>(store: &S, id: &str, from: u64) -> Result<(), Failure> {
    const PAGE: usize = 500;
    let stream = StreamId::from(id);
    let mut next = from.max(1);
    let mut any = false;
    loop {
        let events = store.read_stream(&stream, next, PAGE).await?;
        for event in &events {
            output::event(event);
            next = event.meta.version + 1;
            any = true;
        }
        if events.len() < PAGE {
            break;
        }
    }
    if !any {
        return Err(if from > 1 {
            format!("stream `{id}` has no events from version {from} on")
        } else {
            format!("no stream `{id}` (it has no events); `streams` lists them")
        }
        .into());
    }
    Ok(())
}

async fn tail<S: EventStore>(store: S, from: Option<u64>) -> Result<(), Failure> {
    let after = match from {
        Some(position) => Position(position),
        None => store.head().await?,
    };
    anstream::eprintln!(
        "{}",
        paint(
            DIM,
            format!("following $all after position {after} (Ctrl-C to stop)")
        )
    );
    let mut subscription = store.subscribe(after.next());
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            event = subscription.next() => output::event(&event?),
        }
    }
}

async fn projections<S, L>(store: &S, leases: Option<&L>) -> Result<(), Failure>
where
    S: EventStore + Checkpoints,
    L: Leases,
{
    let listing = list_projections(store).await?;
    if listing.is_empty() {
        out(paint(DIM, "no projections registered"));
        return Ok(());
    }
    let pms: Vec<&str> = registry::process_managers()
        .iter()
        .map(|p| p.name)
        .collect();
    out(paint(
        BOLD,
        format!(
            "{:<24} {:<16} {:>10} {:>8} {:>7}  state",
            "projection", "kind", "checkpoint", "lag", "parked"
        ),
    ));
    for p in listing {
        let durable = p.kind == ProjectionKind::Durable;
        let kind = match (durable, pms.contains(&p.name)) {
            (true, true) => "process manager",
            (true, false) => "durable",
            (false, _) => "in memory",
        };
        // A projection stored in segments: its row shows the slowest segment, and a line per
        // segment follows.
        let segments = if durable {
            segment_checkpoints(store, p.name).await?
        } else {
            Vec::new()
        };
        let head = p.checkpoint.0 + p.lag;
        let mut p = p;
        if segments.len() > 1
            && let Some(slowest) = segments.iter().map(|(_, c)| *c).min()
        {
            p.checkpoint = slowest;
            p.lag = head.saturating_sub(slowest.0);
        }
        let (checkpoint, lag, parked, state) = if durable {
            let parked = store.parked_events(p.name).await?.len();
            let running = match leases {
                Some(leases) => Some(leases.held_elsewhere(p.name).await?),
                None => None,
            };
            let state = match (running, p.lag) {
                (Some(true), 0) => paint(GOOD, "running elsewhere, caught up"),
                (Some(true), _) => paint(WARN, "running elsewhere, behind"),
                (Some(false), _) => paint(WARN, "not running"),
                (None, 0) => paint(GOOD, "caught up"),
                (None, _) => paint(WARN, "behind"),
            };
            let parked_text = if parked > 0 {
                paint(BAD, format!("{parked:>7}"))
            } else {
                format!("{parked:>7}")
            };
            (
                p.checkpoint.to_string(),
                p.lag.to_string(),
                parked_text,
                state,
            )
        } else {
            let dash = || "-".to_owned();
            let state = paint(DIM, "rebuilt in each process at start-up");
            (dash(), dash(), format!("{:>7}", "-"), state)
        };
        out(format!(
            "{:<24} {:<16} {checkpoint:>10} {lag:>8} {parked}  {state}",
            p.name, kind
        ));
        if segments.len() > 1 {
            list_segments(store, leases, p.name, &segments, head).await?;
        }
    }
    if leases.is_none() {
        out(paint(
            DIM,
            "(this store has no leases across processes: whether a projection runs elsewhere is unknown)",
        ));
    }
    Ok(())
}

/// One line per segment of a projection stored in segments: its checkpoint, lag, parked
/// events and lease.
async fn list_segments<S, L>(
    store: &S,
    leases: Option<&L>,
    name: &str,
    segments: &[(Segment, Position)],
    head: u64,
) -> Result<(), Failure>
where
    S: EventStore + Checkpoints,
    L: Leases,
{
    for (segment, checkpoint) in segments {
        let key = segment.key(name);
        let lag = head.saturating_sub(checkpoint.0);
        let parked = store.parked_events(&key).await?.len();
        let state = match (leases, lag) {
            (Some(leases), lag) => match (leases.held_elsewhere(&key).await?, lag) {
                (true, 0) => paint(GOOD, "running elsewhere, caught up"),
                (true, _) => paint(WARN, "running elsewhere, behind"),
                (false, _) => paint(WARN, "not running"),
            },
            (None, 0) => paint(GOOD, "caught up"),
            (None, _) => paint(WARN, "behind"),
        };
        out(format!(
            "  {:<22} {:<16} {:>10} {lag:>8} {parked:>7}  {state}",
            format!("segment {segment}"),
            "",
            checkpoint.to_string()
        ));
    }
    Ok(())
}

/// The registration of the durable projection `name`, or the error that says why not.
fn durable(name: &str) -> Result<&'static registry::ProjectionRegistration, Failure> {
    let all = registry::projections();
    let Some(found) = all.iter().find(|p| p.name == name) else {
        let known: Vec<&str> = all.iter().map(|p| p.name).collect();
        return Err(format!(
            "no projection named `{name}` (registered: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )
        .into());
    };
    if found.kind != ProjectionKind::Durable {
        return Err(format!(
            "`{name}` is an in-memory projection: every process rebuilds it at start-up, so it \
             has no checkpoint or parked events"
        )
        .into());
    }
    Ok(found)
}

async fn rebuild<S, L>(
    admin: &Admin,
    store: &S,
    leases: Option<&L>,
    name: &str,
    wait: bool,
) -> Result<(), Failure>
where
    S: EventStore + Checkpoints,
    L: Leases,
{
    let registration = durable(name)?;
    let name = registration.name;
    // In segments, other processes run the segments under their own leases: resetting the read
    // model under the whole projection's lease would have them apply events a second time.
    let segments = load_layout(store, name).await?;
    if segments > 1 {
        return Err(format!(
            "`{name}` runs in {segments} segments: merge it to one segment first \
             (`eventweave_core::runner::resegment` to 1), then rebuild"
        )
        .into());
    }
    // Held until the rebuild ends, so no other process starts the projection meanwhile.
    let _lease = match leases {
        Some(leases) => Some(take_lease(leases, name, wait).await?),
        None => None,
    };
    let mounted = mounted(admin, name, "rebuilt")?;
    let bar = Arc::new(ProgressBar::new(name, 0));
    let report = Arc::clone(&bar);
    let progress: eventweave_core::runner::ProgressFn = Arc::new(move |p| report.report(p));
    let Some(running) = mounted
        .iter()
        .find_map(|m| (m.rebuild)(store as &dyn Any, Arc::clone(&progress)))
    else {
        return Err(other_store(name, "rebuilt"));
    };
    let through = running.await?;
    out(format!(
        "{} `{name}` through position {through}: {}",
        paint(GOOD, "rebuilt"),
        bar.summary()
    ));
    Ok(())
}

/// What the application mounted for `name`, or the error that says it did not (`done`: what
/// the command would have done, for the message).
fn mounted<'a>(admin: &'a Admin, name: &str, done: &str) -> Result<&'a [Mounted], Failure> {
    match admin.mounted.get(name) {
        Some(mounted) => Ok(mounted),
        None => Err(format!(
            "`{name}` cannot be {done} from here: the application did not mount it \
             (`Admin::durable(\"{name}\", …)`)"
        )
        .into()),
    }
}

fn other_store(name: &str, done: &str) -> Failure {
    format!(
        "`{name}` cannot be {done} on this store: the application mounted it for another kind of store"
    )
    .into()
}

async fn take_lease<L: Leases>(leases: &L, name: &str, wait: bool) -> Result<L::Lease, Failure> {
    let mut said = false;
    loop {
        if let Some(mut lease) = leases.try_acquire(name).await? {
            // A lease lost at once (its connection failed) is not held.
            let lost = tokio::time::timeout(Duration::ZERO, lease.lost()).await;
            if lost.is_err() {
                return Ok(lease);
            }
        }
        if !wait {
            return Err(format!(
                "`{name}` is running in another process (it holds the projection's lease): stop \
                 it first, or pass --wait to wait until it lets go"
            )
            .into());
        }
        if !said {
            anstream::eprintln!(
                "{}",
                paint(
                    DIM,
                    format!("waiting for the lease of `{name}` (another process holds it)…")
                )
            );
            said = true;
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

async fn parked<S: Checkpoints>(store: &S, name: &str) -> Result<(), Failure> {
    let name = durable(name)?.name;
    let parked = store.parked_events(name).await?;
    if parked.is_empty() {
        out(paint(DIM, format!("`{name}` parked no events")));
        return Ok(());
    }
    for p in parked {
        out(format!(
            "{} {} {} {}",
            paint(DIM, format!("@{}", p.position)),
            paint(BOLD, format!("{} v{}", p.stream, p.version)),
            paint(output::EVENT, &p.event_name),
            paint(DIM, output::rfc3339(p.parked_at)),
        ));
        out(paint(DIM, format!("  event {}", p.event_id)));
        out(format!("  {} {}", paint(BAD, "!"), p.error));
    }
    Ok(())
}

/// `replay-parked name [--event ID]`: applies the parked events again through the mounted
/// sink, one line each; those that fail again stay parked and make the command fail.
async fn replay_parked<S>(
    admin: &Admin,
    store: &S,
    name: &str,
    event: Option<&str>,
) -> Result<(), Failure>
where
    S: EventStore + Checkpoints,
{
    let name = durable(name)?.name;
    let wanted = match event {
        Some(text) => Some(Uuid::parse_str(text.trim()).map_err(|e| {
            format!("--event `{text}` is not an event id (a UUID, as `parked {name}` shows): {e}")
        })?),
        None => None,
    };
    let mut parked = store.parked_events(name).await?;
    if parked.is_empty() {
        return Err(format!("`{name}` has no parked events: nothing to replay").into());
    }
    if let Some(id) = wanted {
        parked.retain(|p| p.event_id == id);
        if parked.is_empty() {
            return Err(format!(
                "`{name}` has no parked event {id} (`parked {name}` lists those it has)"
            )
            .into());
        }
    }
    let mounted = mounted(admin, name, "replayed")?;
    let Some(sink) = mounted.iter().find_map(|m| (m.sink)(store as &dyn Any)) else {
        return Err(other_store(name, "replayed"));
    };
    let mut sink = sink?;
    let total = parked.len();
    anstream::eprintln!(
        "{}",
        paint(
            DIM,
            format!("replaying {total} parked event(s) of `{name}` in position order")
        )
    );
    let mut failed = 0;
    for (i, p) in parked.iter().enumerate() {
        let label = format!(
            "[{}/{total}] @{} {} v{} {}",
            i + 1,
            p.position,
            p.stream,
            p.version,
            p.event_name
        );
        let result = match store.read_event(p.event_id).await? {
            Some(event) => sink.replay(&event).await.map_err(|e| crate::one_line(&e)),
            None => Err(format!("event {} is no longer in the store", p.event_id)),
        };
        match result {
            Ok(()) => out(format!("{} {label}", paint(GOOD, "replayed"))),
            Err(error) => {
                failed += 1;
                out(format!("{} {label}: {error}", paint(BAD, "failed again")));
            }
        }
    }
    if failed > 0 {
        return Err(format!(
            "{failed} of {total} parked event(s) of `{name}` failed again and stay parked"
        )
        .into());
    }
    out(format!(
        "{} {total} parked event(s) of `{name}`; the checkpoint did not move",
        paint(GOOD, "replayed")
    ));
    Ok(())
}

//! Dynamic consistency boundaries on `MemoryStore` (issue 15): the conditional append beside
//! the plain append of the same tagged events, and the racing-seats workload (16 tasks
//! subscribing students to the same few courses through the `courses` example's decision)
//! beside the same subscriptions on disjoint courses, with its conflict rate.
//!
//! `cargo run -p cqrs-bench --release -- --dcb`. The store-generic workloads take any
//! `EventStore`, so the SQL stores can run them too.

use std::time::Instant;

use courses::{DefineCourse, SubscribeStudent, course, student};
use eventweave_core::{
    AppendCondition, CommandError, Cqrs, EventQuery, EventStore, ExpectedVersion, MemoryStore,
    NewEvent, Payload, QueryItem, StreamId, StreamWrite, Tag, Tags, UserMetadata, new_id,
};

use crate::{Mode, Row, median};

/// Events per round of the append rows.
fn appends(mode: Mode) -> usize {
    match mode {
        Mode::Full => 100_000,
        Mode::Quick => 200,
    }
}

/// Tasks racing in the seats rows.
const RACERS: usize = 16;

/// Courses (of [`SEATS`] seats) the racers share.
fn courses(mode: Mode) -> usize {
    match mode {
        Mode::Full => 200,
        Mode::Quick => 4,
    }
}

/// Seats per course.
const SEATS: u32 = 40;

fn tagged(course: usize) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: "bench.booked".into(),
        event_version: 1,
        payload: Payload::from_json(r#"{"seat":1}"#),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::empty(),
        tags: Tags::new([Tag::new("course", &course.to_string()).expect("a tag")]),
    }
}

/// Appends `n` tagged events one by one, with or without a condition on their course's
/// events after the head it just read (one read and one conditional append per event, the
/// work of a decision without its fold), and returns events per second.
async fn append_rate<S: EventStore>(store: &S, n: usize, conditional: bool) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        let course = i % 64;
        let stream = StreamId::from(format!("bench-course-{course}"));
        if conditional {
            let tag = Tag::new("course", &course.to_string()).expect("a tag");
            let query = EventQuery::from_items([QueryItem::types(["bench.booked"]).with_tag(tag)]);
            let through = store.head().await.expect("head");
            let condition = AppendCondition::new(query, through);
            let write = StreamWrite::new(stream, ExpectedVersion::Any, vec![tagged(course)]);
            store
                .append_conditional(vec![write], Some(&condition))
                .await
                .expect("no concurrent writer: the condition holds");
        } else {
            store
                .append(&stream, ExpectedVersion::Any, vec![tagged(course)])
                .await
                .expect("append");
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `RACERS` tasks subscribe students to courses until every seat is taken. With `shared`,
/// every task tries every course (all race for the same seats); otherwise each task has its own
/// courses. Returns subscriptions per second and the share of attempts refused by a failed
/// condition.
async fn seats_rate(mode: Mode, shared: bool) -> (f64, f64) {
    let app = Cqrs::builder(MemoryStore::new())
        .max_retries(10_000)
        .build()
        .await
        .expect("build");
    let n = courses(mode);
    for c in 0..n {
        app.execute(DefineCourse {
            course: course(&format!("c{c}")),
            capacity: SEATS,
        })
        .await
        .expect("define");
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..RACERS)
        .map(|t| {
            let app = app.clone();
            tokio::spawn(async move {
                let (mut booked, mut attempts) = (0u64, 0u64);
                let mine: Vec<usize> = if shared {
                    (0..n).collect()
                } else {
                    (0..n).filter(|c| c % RACERS == t).collect()
                };
                for &c in &mine {
                    for s in 0.. {
                        let cmd = SubscribeStudent {
                            course: course(&format!("c{c}")),
                            student: student(&format!("t{t}-c{c}-s{s}")),
                        };
                        let outcome = app.execute(cmd).await;
                        // `MemoryStore` never makes a task wait: yield, as a task waiting on a
                        // network store would, so the racers interleave instead of one task
                        // filling every course before the next one runs.
                        tokio::task::yield_now().await;
                        match outcome {
                            Ok(outcome) => {
                                booked += 1;
                                attempts += u64::from(outcome.attempts);
                            }
                            Err(CommandError::Rejected(_)) => break,
                            Err(other) => panic!("subscription failed: {other}"),
                        }
                    }
                }
                (booked, attempts)
            })
        })
        .collect();
    let (mut booked, mut attempts) = (0, 0);
    for task in tasks {
        let (b, a) = task.await.expect("racer");
        booked += b;
        attempts += a;
    }
    let seconds = start.elapsed().as_secs_f64();
    // Shared courses: every seat taken exactly once; disjoint: the same, per task.
    assert_eq!(booked, n as u64 * u64::from(SEATS), "every seat taken once");
    let conflict_rate = (attempts - booked) as f64 / attempts as f64;
    (booked as f64 / seconds, conflict_rate)
}

/// The rows (on a multi-thread runtime of 2 workers of its own, for real races).
pub fn run(mode: Mode) -> Vec<Row> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (mut plain, mut conditional) = (Vec::new(), Vec::new());
        let (mut racing, mut disjoint, mut conflicts) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..mode.rounds() {
            // Fresh stores, alternating which goes first.
            plain.push(append_rate(&MemoryStore::new(), appends(mode), false).await);
            conditional.push(append_rate(&MemoryStore::new(), appends(mode), true).await);
            let (rate, conflict) = seats_rate(mode, true).await;
            racing.push(rate);
            conflicts.push(conflict);
            disjoint.push(seats_rate(mode, false).await.0);
        }
        let conflict = median(&mut conflicts);
        vec![
            Row {
                workload: "memory: read + conditional append of 1 tagged event".into(),
                rate: median(&mut conditional),
                unit: "events/s",
                baseline: None,
                peer: None,
                target: "(informative; PostgreSQL: >= 80% of plain)".into(),
            }
            .with_baseline(Some((
                "plain append of the same events".into(),
                median(&mut plain),
            ))),
            Row {
                workload: format!(
                    "memory: {RACERS} tasks racing for the seats of {} courses (conflict rate {:.1}%)",
                    courses(mode),
                    conflict * 100.0
                ),
                rate: median(&mut racing),
                unit: "subscriptions/s",
                baseline: None,
                peer: None,
                target: "(informative)".into(),
            }
            .with_baseline(Some((
                "same subscriptions, each task on its own courses".into(),
                median(&mut disjoint),
            ))),
        ]
    })
}

//! Crash safety: a writer killed with `SIGKILL` in the middle of its appends, 20 times on the
//! same file. After every restart, each batch the writer acknowledged is present, no batch is
//! partly present, and stream versions are contiguous.
//!
//! The test re-executes its own binary as the writer (the `crash_child` test, which does
//! nothing unless `CRASH_CHILD_DB` is set). The writer appends batches of three events and
//! prints `ack <batch>` once an append has returned; the parent kills it after a random
//! number of acknowledgements, then reads every line it had printed.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use eventweave_core::{
    EventStore, ExpectedVersion, NewEvent, Payload, Position, StreamId, UserMetadata, new_id,
};
use eventweave_sqlite::SqliteStore;
use serde_json::json;

const CHILD_DB: &str = "CRASH_CHILD_DB";
const CHILD_RUN: &str = "CRASH_CHILD_RUN";
const RUNS: u32 = 20;
const BATCH: usize = 3;
const STREAMS: usize = 4;

/// The writer: appends batches until it is killed (or has written 100,000 of them).
#[tokio::test(flavor = "current_thread")]
async fn crash_child() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return; // an ordinary test run: nothing to do
    };
    let run = std::env::var(CHILD_RUN).unwrap();
    let store = SqliteStore::open(&path).expect("the writer opens the store");
    let mut out = std::io::stdout().lock();
    for k in 0..100_000usize {
        let batch = format!("{run}-{k}");
        let stream = StreamId::from(format!("crash-{}", k % STREAMS));
        let events = (0..BATCH)
            .map(|part| NewEvent {
                event_id: new_id(),
                event_name: "crash.part".into(),
                event_version: 1,
                payload: Payload::from_json(json!({ "batch": batch, "part": part }).to_string()),
                correlation_id: None,
                causation_id: None,
                metadata: UserMetadata::empty(),
                tags: eventweave_core::Tags::empty(),
            })
            .collect();
        store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .expect("append");
        // A write error means the parent is gone: stop.
        if writeln!(out, "ack {batch}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn acknowledged_batches_survive_sigkill_and_no_batch_is_split() {
    let file = Removed(std::env::temp_dir().join(format!(
        "eventweave-sqlite-crash-{}-{}.db",
        std::process::id(),
        new_id().simple()
    )));
    let path = &file.0;
    let mut seed = (new_id().as_u128() as u64) | 1;
    println!("seed {seed}");
    let mut acknowledged = HashSet::new();
    for run in 0..RUNS {
        let kill_after = 1 + (xorshift(&mut seed) % 40) as usize;
        let acks = kill_writer_after(path, run, kill_after);
        assert!(
            acks.len() >= kill_after,
            "run {run}: the writer stopped by itself after {} acks",
            acks.len()
        );
        acknowledged.extend(acks);
        // Every restart sees everything acknowledged so far, whole.
        verify(path, &acknowledged);
    }
    assert!(acknowledged.len() >= RUNS as usize);
}

/// Runs one writer, kills it with SIGKILL after `kill_after` acks, and returns every batch it
/// acknowledged (including acks still in the pipe when it died).
fn kill_writer_after(path: &Path, run: u32, kill_after: usize) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, path)
        .env(CHILD_RUN, run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the test binary runs again as the writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = Vec::new();
    while acks.len() < kill_after {
        match lines.next() {
            Some(line) => acks.extend(ack(&line.unwrap())),
            None => break,
        }
    }
    child.kill().expect("SIGKILL"); // `Child::kill` sends SIGKILL on Unix
    child.wait().unwrap();
    for line in lines {
        acks.extend(ack(&line.unwrap()));
    }
    acks
}

fn ack(line: &str) -> Option<String> {
    line.strip_prefix("ack ").map(str::to_owned)
}

/// Opens the store as a restarted process would and checks every promise.
fn verify(path: &Path, acknowledged: &HashSet<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(path).expect("the store reopens after SIGKILL");
        let all = store.read_all(Position::ZERO, usize::MAX).await.unwrap();
        assert_eq!(
            store.head().await.unwrap(),
            Position(all.len() as u64),
            "positions are gap-free"
        );
        let mut batches: BTreeMap<String, Vec<(u64, usize, StreamId, u64)>> = BTreeMap::new();
        let mut versions: BTreeMap<StreamId, Vec<u64>> = BTreeMap::new();
        for event in &all {
            let body: serde_json::Value = serde_json::from_str(event.payload.as_str()).unwrap();
            let batch = body["batch"].as_str().unwrap().to_owned();
            let part = body["part"].as_u64().unwrap() as usize;
            let meta = &event.meta;
            batches.entry(batch).or_default().push((
                meta.position.0,
                part,
                meta.stream.clone(),
                meta.version,
            ));
            versions
                .entry(meta.stream.clone())
                .or_default()
                .push(meta.version);
        }
        for (batch, parts) in &batches {
            assert_eq!(
                parts.len(),
                BATCH,
                "batch {batch} is partly present: {parts:?}"
            );
            for (i, (position, part, stream, version)) in parts.iter().enumerate() {
                assert_eq!(*part, i, "batch {batch} in order");
                assert_eq!(
                    *position,
                    parts[0].0 + i as u64,
                    "batch {batch} is contiguous"
                );
                assert_eq!(*stream, parts[0].2, "batch {batch} in one stream");
                assert_eq!(*version, parts[0].3 + i as u64, "batch {batch} versions");
            }
        }
        println!(
            "{} batches stored, {} acknowledged",
            batches.len(),
            acknowledged.len()
        );
        for batch in acknowledged {
            assert!(
                batches.contains_key(batch),
                "acknowledged batch {batch} is lost"
            );
        }
        for (stream, versions) in versions {
            assert_eq!(
                versions,
                (1..=versions.len() as u64).collect::<Vec<_>>(),
                "versions of {stream} are contiguous"
            );
        }
        let conn = eventweave_sqlite::rusqlite::Connection::open(path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    });
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The store's files, removed when the test ends, passed or not.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

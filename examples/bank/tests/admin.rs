//! `bank admin …`: the operator CLI mounted in the bank, run as the real binary against SQLite
//! and PostgreSQL, its output checked; bad input is one line on stderr and a non-zero exit code.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bank::{AccountId, BalancesTable, Deposit, Limits, OpenAccount, balances};
use eventweave_core::runner::{
    Checkpoints, Leases, OnFailure, ProjectionRunner, ProjectionSink, RetryPolicy,
};
use eventweave_core::{Cqrs, EventStore, Position};
use eventweave_postgres::tokio_postgres::NoTls;
use eventweave_postgres::{PgLeases, PgSink, PostgresConfig, PostgresStore};
use eventweave_sqlite::{SqliteLeases, SqliteSink, SqliteStore};

const BANK: &str = env!("CARGO_BIN_EXE_bank");

/// A SQLite file in the temporary directory, removed (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        TempDb(std::env::temp_dir().join(format!(
            "bank-admin-{name}-{}-{}.db",
            std::process::id(),
            eventweave_core::new_id().simple()
        )))
    }

    fn store_arg(&self) -> String {
        format!("sqlite:{}", self.0.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BANK)
        .args(args)
        .env_remove("EVENTWEAVE_STORE")
        .env_remove("EVENTWEAVE_SCHEMA")
        .output()
        .expect("the bank binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `bank admin args…` and returns its stdout, failing with its stderr unless it succeeded.
fn ok(args: &[&str]) -> String {
    let out = run(&[&["admin"], args].concat());
    assert!(
        out.status.success(),
        "`bank admin {}` failed ({}): {}",
        args.join(" "),
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `bank admin args…`, which must fail with exit code 1 and one line on stderr that
/// contains `says`.
fn refused(args: &[&str], says: &str) {
    let out = run(&[&["admin"], args].concat());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "`{}`: {stderr}", args.join(" "));
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(says), "`{says}` in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A bank written by the binary itself (its transcript: accounts, transfers, the process
/// manager).
fn sqlite_bank() -> TempDb {
    let db = TempDb::new("sqlite");
    let out = Command::new(BANK)
        .env("BANK_DB", &db.0)
        .output()
        .expect("the bank runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    db
}

#[test]
fn inspects_and_rebuilds_a_sqlite_bank() {
    let db = sqlite_bank();
    let store = db.store_arg();
    let store = store.as_str();

    let streams = ok(&["--store", store, "streams"]);
    let account_1 = streams
        .lines()
        .find(|l| l.starts_with("account-1 "))
        .unwrap_or_else(|| panic!("account-1 listed: {streams}"));
    let columns: Vec<&str> = account_1.split_whitespace().collect();
    assert_eq!(columns[1], "6", "account-1 has 6 events: {account_1}");
    assert!(streams.lines().any(|l| l.starts_with("pm-transfer-")));
    let only = ok(&["--store", store, "streams", "--prefix", "account-"]);
    assert_eq!(
        only.lines().count(),
        4,
        "heading and three accounts: {only}"
    );

    let events = ok(&["--store", store, "stream", "account-1"]);
    assert!(
        events.starts_with("@1 account-1 v1 account.opened (v1) "),
        "{events}"
    );
    assert!(
        events.contains("\"owner\": \"Ada\""),
        "decoded payload: {events}"
    );
    assert!(events.contains("correlation "), "metadata: {events}");
    assert!(!events.contains('\u{1b}'), "no colours into a pipe");

    let projections = ok(&["--store", store, "projections"]);
    let line = |name: &str| {
        projections
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {projections}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // The bank released its leases when it stopped.
    assert_eq!(line("balances"), "balances durable 18 0 0 not running");
    assert_eq!(
        line("transfer"),
        "transfer process manager 18 0 0 not running"
    );
    assert!(line("account-history").starts_with("account-history in memory - - -"));

    // Another process runs `balances` (here, this test holds its lease): `projections` says so
    // and `rebuild` refuses.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let file = SqliteStore::open(&db.0).unwrap();
    let leases = SqliteLeases::new(&file);
    let held = runtime
        .block_on(leases.try_acquire("balances"))
        .unwrap()
        .expect("free");
    let listed = ok(&["--store", store, "projections"]);
    let balances = listed
        .lines()
        .find(|l| l.starts_with("balances "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        balances.ends_with("running elsewhere, caught up"),
        "{balances}"
    );
    refused(
        &["--store", store, "rebuild", "balances"],
        "`balances` is running in another process",
    );
    runtime.block_on(async move { drop(held) });

    let rebuilt = ok(&["--store", store, "rebuild", "balances"]);
    assert!(
        rebuilt
            .starts_with("rebuilt `balances` through position 18: balances: read 18 stored events"),
        "{rebuilt}"
    );
    assert_eq!(
        ok(&["--store", store, "parked", "balances"]).trim(),
        "`balances` parked no events"
    );

    refused(
        &["--store", store, "stream", "account-99"],
        "no stream `account-99`",
    );
    refused(
        &["--store", store, "rebuild", "nope"],
        "no projection named `nope` (registered: ",
    );
    refused(
        &["--store", store, "parked", "account-history"],
        "in-memory projection",
    );
    refused(
        &["--store", store, "rebuild", "transfer"],
        "the application did not mount it",
    );
    refused(
        &["--store", "sqlite:/nonexistent/bank.db", "streams"],
        "no SQLite store at",
    );
    refused(&["streams"], "no store: pass --store");
    refused(
        &["--store", "mysql://x", "streams"],
        "cannot tell which store",
    );
}

#[test]
fn the_catalog_is_the_committed_one() {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    for (format, file) in [
        ("mermaid", "bank-catalog.mmd"),
        ("json", "bank-catalog.json"),
        ("schema", "bank-catalog.schema.json"),
    ] {
        let committed = std::fs::read_to_string(docs.join(file)).unwrap();
        assert_eq!(ok(&["catalog", "--format", format]), committed, "{format}");
    }
    let out = run(&["admin", "catalog", "--format", "svg"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown format");
}

#[test]
fn tail_follows_until_interrupted() {
    let db = sqlite_bank();
    let mut child = Command::new(BANK)
        .args(["admin", "--store", &db.store_arg(), "tail", "--from", "16"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("@17 "), "starts after --from: {first}");
    let second = lines.find(|l| l.as_ref().is_ok_and(|l| l.starts_with('@')));
    assert!(second.unwrap().unwrap().starts_with("@18 "));
    // Still following: nothing more is stored, so it waits until interrupted.
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "tail keeps following");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tail stops on Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "Ctrl-C ends tail cleanly: {status}");
}

#[test]
fn an_unreachable_database_is_one_line() {
    refused(
        &["--store", "postgres://postgres@127.0.0.1:1/test", "streams"],
        "cannot open the PostgreSQL store",
    );
}

/// A bank of two accounts written to a fresh PostgreSQL schema, or `None` without a database.
async fn postgres_bank() -> Option<(String, String, PostgresStore)> {
    let Ok(url) = std::env::var("CQRS_POSTGRES_URL") else {
        eprintln!("SKIPPED: CQRS_POSTGRES_URL is not set");
        return None;
    };
    let schema = format!(
        "cqrs_test_{}_{:08x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        eventweave_core::new_id().as_u128() as u32
    );
    // The balances table lives in the schema too: the sink's statements find it through
    // `search_path`, in this process and in the binary's.
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-csearch_path%3D{schema}");
    let store = PostgresStore::open(
        PostgresConfig::parse(&url)
            .unwrap()
            .schema(&schema)
            .pool_size(2),
    )
    .await
    .unwrap();
    PgSink::new(&store, BalancesTable)
        .setup(balances::CREATE_TABLE)
        .await
        .unwrap();
    let app = Cqrs::builder(store.clone())
        .service(Limits {
            max_withdrawal: 1_000,
        })
        .build()
        .await
        .unwrap();
    for id in [1, 2] {
        app.execute(OpenAccount {
            account: AccountId(id),
            owner: format!("owner {id}"),
        })
        .await
        .unwrap();
    }
    app.execute(Deposit {
        account: AccountId(2),
        amount: 70,
    })
    .await
    .unwrap();
    Some((url, schema, store))
}

async fn drop_schema(url: &str, schema: &str) {
    let (client, connection) = eventweave_postgres::tokio_postgres::connect(url, NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn inspects_a_postgres_bank_and_respects_leases() {
    let Some((url, schema, store)) = postgres_bank().await else {
        return;
    };
    let args = |rest: &[&str]| -> Vec<String> {
        ["--store", url.as_str(), "--schema", schema.as_str()]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    let admin = |rest: &[&str]| {
        let args = args(rest);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            (ok(&args), ())
        })
    };
    let (streams, ()) = admin(&["streams"]).await.unwrap();
    let rows: Vec<Vec<&str>> = streams
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, [["account-1", "1", "1"], ["account-2", "2", "3"]]);
    let (events, ()) = admin(&["stream", "account-2"]).await.unwrap();
    assert!(events.contains("account.deposited (v1)"), "{events}");
    assert!(events.contains("\"amount\": 70"), "{events}");

    // Another process runs `balances`: its lease is taken.
    let leases = PgLeases::new(&store);
    let held = leases.try_acquire("balances").await.unwrap().expect("free");
    let (projections, ()) = admin(&["projections"]).await.unwrap();
    let balances = projections
        .lines()
        .find(|l| l.starts_with("balances "))
        .unwrap_or_else(|| panic!("{projections}"));
    assert!(
        balances.ends_with("running elsewhere, behind"),
        "{balances}"
    );
    let transfer = projections
        .lines()
        .find(|l| l.starts_with("transfer "))
        .unwrap();
    assert!(transfer.ends_with("not running"), "{transfer}");

    let refusal = args(&["rebuild", "balances"]);
    tokio::task::spawn_blocking(move || {
        let refusal: Vec<&str> = refusal.iter().map(String::as_str).collect();
        refused(&refusal, "`balances` is running in another process");
    })
    .await
    .unwrap();

    // With --wait, it waits for the lease, then rebuilds (the bank mounts its balances
    // projection for PostgreSQL too).
    let waiting = args(&["rebuild", "balances", "--wait"]);
    let child = tokio::task::spawn_blocking(move || {
        Command::new(BANK)
            .arg("admin")
            .args(&waiting)
            .output()
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!child.is_finished(), "--wait waits while the lease is held");
    drop(held);
    let out = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("--wait ends once the lease is free")
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("waiting for the lease of `balances`"),
        "{stderr}"
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        text(&out.stdout).starts_with("rebuilt `balances` through position 3: "),
        "{}",
        text(&out.stdout)
    );
    let reader = store.reader();
    let rebuilt = balances::accounts(&reader).await.unwrap();
    let rows: Vec<(u64, u64)> = rebuilt.iter().map(|a| (a.account.0, a.balance)).collect();
    assert_eq!(rows, [(1, 0), (2, 70)]);

    let missing = args(&["stream", "account-9"]);
    tokio::task::spawn_blocking(move || {
        let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
        refused(&missing, "no stream `account-9`");
    })
    .await
    .unwrap();

    drop(store);
    drop_schema(&url, &schema).await;
}

/// The fault the replay tests inject into the balances table: any change to account 2's row
/// fails, until it is dropped.
const SQLITE_FAULT: &str = "CREATE TRIGGER fault BEFORE UPDATE ON balances WHEN NEW.account = 2
    BEGIN SELECT RAISE(ABORT, 'injected fault on account 2'); END";

/// Opens accounts 1 and 2 and deposits into both: with the fault in place, the balances
/// projection (parking after one try) parks the deposit to account 2 and goes on. Returns the
/// parked event's id and the position the projection reached.
async fn park_a_deposit<S, K>(store: &S, sink: K) -> (eventweave_core::Uuid, Position)
where
    S: EventStore + Checkpoints + Clone,
    K: ProjectionSink,
{
    let app = Cqrs::builder(store.clone())
        .service(Limits {
            max_withdrawal: 1_000,
        })
        .build()
        .await
        .unwrap();
    for id in [1, 2] {
        app.execute(OpenAccount {
            account: AccountId(id),
            owner: format!("owner {id}"),
        })
        .await
        .unwrap();
    }
    for (id, amount) in [(1, 10), (2, 70), (1, 5)] {
        app.execute(Deposit {
            account: AccountId(id),
            amount,
        })
        .await
        .unwrap();
    }
    let head = store.head().await.unwrap();
    let running = ProjectionRunner::new(store.clone(), sink)
        .retry(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
        .on_failure(OnFailure::Park)
        .spawn();
    running
        .wait_for(head, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(running.status().parked, 1);
    running.stop().await;
    let parked = store.parked_events("balances").await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(
        (parked[0].stream.as_str(), parked[0].version),
        ("account-2", 2)
    );
    assert!(parked[0].error.contains("injected fault"), "{parked:?}");
    assert_eq!(store.load_checkpoint("balances").await.unwrap(), head);
    (parked[0].event_id, head)
}

/// `replay-parked` against a store: fails again while the fault is there (the record stays),
/// refuses bad input with one line, replays once `fix` removed the fault (the record goes, the
/// checkpoint stays), and then finds nothing to replay. `balance_2` reads account 2's balance
/// from the read model.
async fn replay_scenario<S, B, F>(
    store: &S,
    args: &[String],
    (event_id, head): (eventweave_core::Uuid, Position),
    fix: F,
    balance_2: impl Fn() -> B,
) where
    S: EventStore + Checkpoints,
    B: std::future::Future<Output = Option<u64>>,
    F: std::future::Future<Output = ()>,
{
    let admin = |rest: &[&str]| {
        let words: Vec<String> = args
            .iter()
            .cloned()
            .chain(rest.iter().map(|s| s.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            run(&[&["admin"], &words[..]].concat())
        })
    };
    let refused_with = |out: Output, says: &str| {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error: ")).count(),
            1,
            "{stderr}"
        );
        assert!(
            stderr.lines().last().unwrap().contains(says),
            "`{says}` in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        text(&out.stdout)
    };
    let event = event_id.to_string();

    // The fault is still there: the event fails again and stays parked.
    let out = admin(&["replay-parked", "balances"]).await.unwrap();
    let stdout = refused_with(
        out,
        "1 of 1 parked event(s) of `balances` failed again and stay parked",
    );
    assert!(
        stdout.starts_with("failed again [1/1] @4 account-2 v2 account.deposited: "),
        "{stdout}"
    );
    assert!(stdout.contains("injected fault on account 2"), "{stdout}");
    assert_eq!(store.parked_events("balances").await.unwrap().len(), 1);
    assert_eq!(balance_2().await, Some(0));

    // Bad input: one line each, nothing changes.
    for (rest, says) in [
        (vec!["replay-parked", "nope"], "no projection named `nope`"),
        (
            vec!["replay-parked", "account-history"],
            "in-memory projection",
        ),
        (
            vec!["replay-parked", "transfer"],
            "`transfer` has no parked events",
        ),
        (
            vec!["replay-parked", "balances", "--event", "not-an-id"],
            "--event `not-an-id` is not an event id",
        ),
        (
            vec![
                "replay-parked",
                "balances",
                "--event",
                "0191e0a4-7c1e-7000-8000-000000000000",
            ],
            "`balances` has no parked event 0191e0a4-7c1e-7000-8000-000000000000",
        ),
    ] {
        refused_with(admin(&rest).await.unwrap(), says);
    }

    fix.await;
    let out = admin(&["replay-parked", "balances", "--event", &event])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "replayed [1/1] @4 account-2 v2 account.deposited\n\
         replayed 1 parked event(s) of `balances`; the checkpoint did not move\n"
    );
    assert!(text(&out.stderr).contains("replaying 1 parked event(s) of `balances`"));
    assert_eq!(balance_2().await, Some(70));
    assert!(store.parked_events("balances").await.unwrap().is_empty());
    assert_eq!(store.load_checkpoint("balances").await.unwrap(), head);
    let out = admin(&["parked", "balances"]).await.unwrap();
    assert_eq!(text(&out.stdout).trim(), "`balances` parked no events");

    // Replayed once: a second replay has nothing to do (and applies nothing twice).
    refused_with(
        admin(&["replay-parked", "balances"]).await.unwrap(),
        "`balances` has no parked events: nothing to replay",
    );
    assert_eq!(balance_2().await, Some(70));
}

#[tokio::test]
async fn replays_a_parked_event_on_sqlite_once_the_fault_is_fixed() {
    let db = TempDb::new("replay");
    let store = SqliteStore::open(&db.0).unwrap();
    let sink = || SqliteSink::new(&store, BalancesTable).unwrap();
    sink().setup(balances::CREATE_TABLE).await.unwrap();
    sink().setup(SQLITE_FAULT).await.unwrap();
    let parked = park_a_deposit(&store, sink()).await;
    let args = vec!["--store".to_owned(), db.store_arg()];
    let fix = async { sink().setup("DROP TRIGGER fault").await.unwrap() };
    let reader = &store.reader();
    let balance_2 = move || async move { balances::balance(reader, AccountId(2)).await.unwrap() };
    replay_scenario(&store, &args, parked, fix, balance_2).await;
    assert_eq!(
        balances::balance(reader, AccountId(1)).await.unwrap(),
        Some(15)
    );
}

#[tokio::test]
async fn replays_a_parked_event_on_postgres_once_the_fault_is_fixed() {
    let Ok(url) = std::env::var("CQRS_POSTGRES_URL") else {
        eprintln!("SKIPPED: CQRS_POSTGRES_URL is not set");
        return;
    };
    let schema = format!(
        "bank_replay_{:x}",
        eventweave_core::new_id().as_u128() as u32
    );
    // The sink's statements find the balances table through `search_path`.
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-csearch_path%3D{schema}");
    let store = PostgresStore::open(
        PostgresConfig::parse(&url)
            .unwrap()
            .schema(&schema)
            .pool_size(2),
    )
    .await
    .unwrap();
    let sink = || PgSink::new(&store, BalancesTable);
    sink().setup(balances::CREATE_TABLE).await.unwrap();
    sink()
        .setup(
            "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'injected fault on account 2'; END $$;
             CREATE TRIGGER fault BEFORE UPDATE ON balances
             FOR EACH ROW WHEN (NEW.account = 2) EXECUTE FUNCTION fault()",
        )
        .await
        .unwrap();
    let parked = park_a_deposit(&store, sink()).await;
    let args: Vec<String> = ["--store", url.as_str(), "--schema", schema.as_str()]
        .map(str::to_owned)
        .into();
    let fix = async {
        sink()
            .setup("DROP TRIGGER fault ON balances")
            .await
            .unwrap()
    };
    let reader = &store.reader();
    let balance_2 = move || async move { balances::balance(reader, AccountId(2)).await.unwrap() };
    replay_scenario(&store, &args, parked, fix, balance_2).await;

    // An unreachable database is one line too.
    tokio::task::spawn_blocking(|| {
        refused(
            &[
                "--store",
                "postgres://postgres@127.0.0.1:1/test",
                "replay-parked",
                "balances",
            ],
            "cannot open the PostgreSQL store",
        )
    })
    .await
    .unwrap();
    drop(store);
    drop_schema(&url, &schema).await;
}

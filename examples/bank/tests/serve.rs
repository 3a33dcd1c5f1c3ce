//! The bank as an HTTP service, end to end: a real server on 127.0.0.1 (a task of the test's
//! runtime) and a real HTTP/1.1 client (hyper's connection API, `tests/http`), covering every
//! command, query and problem status, idempotency keys, correlation, read-your-writes,
//! concurrency, body limits, the live feed (resume, slow client) and graceful shutdown.

mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bank::serve::{self, Server};
use bank::*;
use eventweave_axum::Api;
use eventweave_core::{
    BackendError, Cqrs, EventStore, ExpectedVersion, MemoryStore, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Uuid,
};
use http::{Client, SseReader};
use hyper::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// The bank's service (as `cargo run -p bank -- serve --memory` runs it) on `store`.
async fn start<S: EventStore>(store: S) -> Server<S> {
    let app = serve::app(store).await.unwrap();
    serve::spawn(listener().await, serve::api(app).unwrap()).unwrap()
}

async fn bank() -> (Server<MemoryStore>, Client) {
    let server = start(MemoryStore::new()).await;
    let client = Client::connect(server.addr).await;
    (server, client)
}

async fn open(client: &mut Client, account: u64) -> Value {
    let reply = client
        .post(
            "/commands/OpenAccount",
            &[],
            &format!(r#"{{"account":{account},"owner":"Ada"}}"#),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.json()
}

async fn deposit(
    client: &mut Client,
    account: u64,
    amount: u64,
    headers: &[(&str, &str)],
) -> http::Reply {
    client
        .post(
            "/commands/Deposit",
            headers,
            &format!(r#"{{"account":{account},"amount":{amount}}}"#),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_by_name_and_typed_report_their_outcome() {
    let (server, mut client) = bank().await;
    let opened = open(&mut client, 1).await;
    assert_eq!(opened["stream"], "account-1");
    assert_eq!(opened["version"], 1);
    assert_eq!(opened["position"], 1);
    assert_eq!(opened["events"], 1);
    let command_id: Uuid = opened["command_id"].as_str().unwrap().parse().unwrap();
    // A new business transaction: its correlation id is the command id.
    assert_eq!(opened["correlation_id"], opened["command_id"]);

    // A typed route of the same kind of command.
    let reply = client
        .post("/deposits", &[], r#"{"account":1,"amount":700}"#)
        .await;
    assert_eq!(reply.status, 200);
    let deposited = reply.json();
    assert_eq!(deposited["version"], 2);
    assert_eq!(deposited["position"], 2);
    assert_eq!(reply.header("x-position"), Some("2"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let reply = client
        .post("/accounts", &[], r#"{"account":2,"owner":"Bob"}"#)
        .await;
    assert_eq!(reply.json()["stream"], "account-2");
    let reply = client
        .post("/withdrawals", &[], r#"{"account":1,"amount":200}"#)
        .await;
    assert_eq!(reply.json()["version"], 3);

    // What is stored: the command id is the causation id of its event.
    let events = server
        .api
        .app()
        .store()
        .read_all(Position(1), 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].meta.causation_id, Some(command_id));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_by_name_and_typed_read_your_writes() {
    let (server, mut client) = bank().await;
    open(&mut client, 1).await;
    let position = deposit(&mut client, 1, 700, &[]).await.json()["position"].to_string();

    let after = [("x-after-position", position.as_str())];
    let reply = client.get("/accounts/1/balance", &after).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!(700));
    let reply = client
        .post("/queries/GetBalance", &after, r#"{"account":1}"#)
        .await;
    assert_eq!(reply.json(), json!(700));
    let reply = client
        .get(&format!("/queries/TotalHoldings?after={position}"), &[])
        .await;
    assert_eq!(reply.json(), json!(700));
    let reply = client.get("/queries/ListAccounts", &after).await;
    assert_eq!(
        reply.json(),
        json!([{"account": 1, "owner": "Ada", "balance": 700, "open": true}])
    );
    let reply = client.get("/accounts", &after).await;
    assert_eq!(reply.json()[0]["balance"], 700);
    let statement = client.get("/accounts/1/statement", &after).await.json();
    assert_eq!(statement.as_array().unwrap().len(), 2);
    assert_eq!(statement[1]["balance"], 700);
    // An account nobody opened: `null`, not an error.
    assert_eq!(
        client.get("/accounts/9/balance", &[]).await.json(),
        Value::Null
    );

    // Problems of queries.
    let reply = client.get("/queries/GetWeather", &[]).await;
    let problem = reply.problem(400, "unknown-query");
    assert_eq!(
        problem["known"],
        json!([
            "GetBalance",
            "GetStatement",
            "ListAccounts",
            "TotalHoldings"
        ])
    );
    client
        .post("/queries/GetBalance", &[], r#"{"account":"one"}"#)
        .await
        .problem(400, "invalid-body");
    client
        .get("/accounts/one/balance", &[])
        .await
        .problem(400, "invalid-header");
    client
        .get("/accounts", &[("x-after-position", "soon")])
        .await
        .problem(400, "invalid-header");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_after_a_position_never_reached_times_out_with_503() {
    let app = Cqrs::builder(MemoryStore::new())
        .projection(Balances::default())
        .query_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let server = serve::spawn(listener().await, serve::api(app).unwrap()).unwrap();
    let mut client = Client::connect(server.addr).await;
    let reply = client
        .get("/accounts/1/balance", &[("x-after-position", "1000")])
        .await;
    let problem = reply.problem(503, "query-timeout");
    assert_eq!(problem["target"], 1000);
    assert_eq!(problem["retry"], "safe");
    assert_eq!(reply.header("retry-after"), Some("1"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_problem_has_its_status_and_type() {
    let (server, mut client) = bank().await;
    open(&mut client, 1).await;
    deposit(&mut client, 1, 100, &[]).await;

    // Rejected by the domain: 422 with the error's text and data.
    let reply = client
        .post("/commands/Withdraw", &[], r#"{"account":1,"amount":500}"#)
        .await;
    let problem = reply.problem(422, "rejected");
    assert_eq!(
        problem["detail"],
        "insufficient funds: balance 100, requested 500"
    );
    assert_eq!(
        problem["data"],
        json!({"kind": "insufficient_funds", "balance": 100, "requested": 500})
    );
    assert_eq!(problem["command"], "Withdraw");
    assert_eq!(problem["retry"], "never");
    let reply = client
        .post("/deposits", &[], r#"{"account":1,"amount":0}"#)
        .await;
    assert_eq!(
        reply.problem(422, "rejected")["data"],
        json!({"kind": "zero_amount"})
    );

    // Not found, already exists.
    let problem = deposit(&mut client, 99, 5, &[])
        .await
        .problem(404, "not-found");
    assert_eq!(problem["stream"], "account-99");
    let reply = client
        .post(
            "/commands/OpenAccount",
            &[],
            r#"{"account":1,"owner":"Mallory"}"#,
        )
        .await;
    assert_eq!(reply.problem(409, "already-exists")["version"], 2);

    // Unknown command: 400 listing the known ones.
    let problem = client
        .post("/commands/Teleport", &[], "{}")
        .await
        .problem(400, "unknown-command");
    let known = problem["known"].as_array().unwrap();
    assert!(known.contains(&json!("Deposit")) && known.contains(&json!("OpenAccount")));
    // The accounts' commands and the transfer decision's `TransferFunds`.
    assert!(known.contains(&json!("TransferFunds")));
    assert_eq!(known.len(), 8);

    // Malformed bodies.
    for body in [r#"{"account": 1, "amount": "#, r#"{"account":1}"#, "[]", ""] {
        let problem = client
            .post("/commands/Deposit", &[], body)
            .await
            .problem(400, "invalid-body");
        assert_eq!(problem["command"], "Deposit", "{body}");
    }
    client
        .post("/deposits", &[], "not json")
        .await
        .problem(400, "invalid-body");
    client
        .send(Method::POST, "/commands/Deposit", &[], vec![0xff, 0xfe])
        .await
        .problem(400, "invalid-body");

    // Oversized: rejected on its Content-Length, and (chunked, no length) while read.
    let big = format!(
        r#"{{"account":1,"amount":1,"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let problem = client
        .post("/commands/Deposit", &[], &big)
        .await
        .problem(413, "body-too-large");
    assert_eq!(problem["limit"], 64 * 1024);
    // Without a length, on a connection of its own: the server stops reading at the limit and
    // answers (a client still sending may see the connection close instead).
    let mut chunked = Client::connect(server.addr).await;
    let sent = chunked
        .try_start(
            Method::POST,
            "/commands/Deposit",
            &[("transfer-encoding", "chunked")],
            big.clone(),
        )
        .await;
    if let Ok(response) = sent {
        assert_eq!(response.status(), 413);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }

    // The server does not read the rest of a refused body: it closes the connection.
    let mut client = Client::connect(server.addr).await;

    // Headers that cannot be read.
    let long_key = "k".repeat(300);
    deposit(&mut client, 1, 1, &[("idempotency-key", &long_key)])
        .await
        .problem(400, "invalid-header");

    // No such route.
    client.get("/nowhere", &[]).await.problem(404, "not-found");

    // Nothing of the above was recorded.
    let events = server
        .api
        .app()
        .store()
        .read_all(Position(1), 100)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_hook_denies_withdraw_to_the_guest() {
    let (server, mut client) = bank().await;
    open(&mut client, 1).await;
    deposit(&mut client, 1, 100, &[("x-caller", "guest")]).await;
    let guest = [("x-caller", "guest")];
    let withdraw = r#"{"account":1,"amount":10}"#;
    let problem = client
        .post("/commands/Withdraw", &guest, withdraw)
        .await
        .problem(403, "forbidden");
    assert_eq!(problem["detail"], "the caller `guest` may not withdraw");
    client
        .post("/withdrawals", &guest, withdraw)
        .await
        .problem(403, "forbidden");
    // Another caller may.
    let reply = client
        .post("/commands/Withdraw", &[("x-caller", "ada")], withdraw)
        .await;
    assert_eq!(reply.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_records_a_command_once() {
    let (server, mut client) = bank().await;
    open(&mut client, 1).await;
    let key = [("idempotency-key", "deposit-42")];
    let first = deposit(&mut client, 1, 250, &key).await.json();
    // The retry (a lost reply, a client that timed out): the first outcome, nothing new.
    let again = deposit(&mut client, 1, 250, &key).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), first);
    // The same key with another body.
    let problem = deposit(&mut client, 1, 300, &key)
        .await
        .problem(422, "idempotency-key-reused");
    assert_eq!(problem["command_id"], first["command_id"]);
    // The same key with another command.
    client
        .post("/commands/Withdraw", &key, r#"{"account":1,"amount":250}"#)
        .await
        .problem(422, "idempotency-key-reused");
    // Keys are the caller's: another caller's "deposit-42" is another command.
    let other = deposit(
        &mut client,
        1,
        250,
        &[("idempotency-key", "deposit-42"), ("x-caller", "bob")],
    )
    .await
    .json();
    assert_ne!(other["command_id"], first["command_id"]);

    let balance = client
        .get("/accounts/1/balance", &[("x-after-position", "3")])
        .await
        .json();
    assert_eq!(balance, json!(500), "one deposit per key and caller");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_ids_come_from_the_headers_and_are_echoed() {
    let (server, mut client) = bank().await;
    let correlation = "0191b7a4-3c1e-7cc4-8b5e-3b1f1f0e2a11";
    let reply = client
        .post(
            "/commands/OpenAccount",
            &[("x-correlation-id", correlation)],
            r#"{"account":1,"owner":"Ada"}"#,
        )
        .await;
    assert_eq!(reply.header("x-correlation-id"), Some(correlation));
    assert_eq!(reply.json()["correlation_id"], correlation);

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = deposit(&mut client, 1, 5, &[("traceparent", traceparent)]).await;
    assert_eq!(reply.header("traceparent"), Some(traceparent));
    let trace = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
    assert_eq!(reply.header("x-correlation-id"), Some(trace));
    assert_eq!(reply.json()["correlation_id"], trace);

    // Echoed on problems too.
    let reply = deposit(&mut client, 7, 5, &[("x-correlation-id", "order-17")]).await;
    reply.problem(404, "not-found");
    assert_eq!(reply.header("x-correlation-id"), Some("order-17"));

    let events = server
        .api
        .app()
        .store()
        .read_all(Position(1), 10)
        .await
        .unwrap();
    assert_eq!(
        events[0].meta.correlation_id,
        Some(correlation.parse().unwrap())
    );
    assert_eq!(events[1].meta.correlation_id, Some(trace.parse().unwrap()));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deposits_on_one_account_lose_no_update() {
    let (server, mut client) = bank().await;
    open(&mut client, 1).await;
    let (clients, each) = (16, 25);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut retries = 0;
            for i in 0..each {
                let key = format!("c{c}-d{i}");
                loop {
                    let reply = deposit(&mut client, 1, 1, &[("idempotency-key", &key)]).await;
                    match reply.status.as_u16() {
                        200 => break,
                        // Every attempt met another writer: retry is safe (the problem says so).
                        409 => {
                            assert_eq!(reply.problem(409, "conflict")["retry"], "safe");
                            retries += 1;
                        }
                        other => panic!("{other}: {:?}", reply.body),
                    }
                }
            }
            retries
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let head = server.api.app().store().head().await.unwrap();
    assert_eq!(head.0, 1 + clients * each);
    let reply = client
        .get(
            "/accounts/1/balance",
            &[("x-after-position", &head.0.to_string())],
        )
        .await;
    assert_eq!(reply.json(), json!(clients * each));
    server.stop().await.unwrap();
}

/// A `MemoryStore` whose next append can be made to fail as a store would.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryStore,
    /// 0: normal; 1: the next append is refused (`Unavailable`); 2: the next append is written
    /// and its reply lost (`OutcomeUnknown`).
    fault: Arc<AtomicU8>,
}

impl EventStore for Flaky {
    eventweave_core::forward_event_store!(
        inner: read_stream, read_all, head, read_event, wait_for_events
    );

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        match self.fault.swap(0, Ordering::SeqCst) {
            1 => Err(StoreError::Unavailable(BackendError::new(
                "connection refused",
            ))),
            2 => {
                self.inner.append(stream, expected, events).await?;
                Err(StoreError::OutcomeUnknown(BackendError::new(
                    "connection reset after the append was sent",
                )))
            }
            _ => self.inner.append(stream, expected, events).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_say_whether_and_how_to_retry() {
    let store = Flaky::default();
    let server = start(store.clone()).await;
    let mut client = Client::connect(server.addr).await;
    open(&mut client, 1).await;

    // Unavailable: 503, Retry-After, safe to send again.
    store.fault.store(1, Ordering::SeqCst);
    let reply = deposit(&mut client, 1, 10, &[]).await;
    assert_eq!(reply.problem(503, "unavailable")["retry"], "safe");
    assert_eq!(reply.header("retry-after"), Some("1"));

    // Outcome unknown with a key: 503, retry with the same key; the retry finds the first run.
    store.fault.store(2, Ordering::SeqCst);
    let key = [("idempotency-key", "lost-reply")];
    let reply = deposit(&mut client, 1, 10, &key).await;
    let problem = reply.problem(503, "outcome-unknown");
    assert_eq!(problem["retry"], "same-idempotency-key");
    assert_eq!(reply.header("retry-after"), Some("1"));
    let retried = deposit(&mut client, 1, 10, &key).await;
    assert_eq!(retried.status, 200);
    assert_eq!(
        retried.json()["version"],
        2,
        "recorded once, by the first attempt"
    );

    // Outcome unknown without a key: 500, not to be retried blindly.
    store.fault.store(2, Ordering::SeqCst);
    let reply = deposit(&mut client, 1, 10, &[]).await;
    let problem = reply.problem(500, "outcome-unknown");
    assert_eq!(problem["retry"], "never");
    assert_eq!(reply.header("retry-after"), None);

    let balance = client
        .get("/accounts/1/balance", &[("x-after-position", "3")])
        .await;
    assert_eq!(balance.json(), json!(20));
    server.stop().await.unwrap();
}

fn ids(events: &[http::SseEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.id.as_ref().unwrap().parse().unwrap())
        .collect()
}

async fn take(reader: &mut SseReader, n: usize) -> Vec<http::SseEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(10), reader.next())
            .await
            .expect("an event within 10 s")
            .expect("the feed goes on");
        events.push(event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_catches_up_goes_live_and_resumes_with_last_event_id() {
    let (server, mut client) = bank().await;
    open(&mut client, 1).await;
    open(&mut client, 2).await;
    deposit(&mut client, 1, 5, &[]).await;

    let mut feed_client = Client::connect(server.addr).await;
    let response = feed_client.start(Method::GET, "/events", &[], "").await;
    let mut feed = SseReader::new(response);
    let caught_up = take(&mut feed, 3).await;
    assert_eq!(ids(&caught_up), [1, 2, 3]);
    let first = caught_up[0].json();
    assert_eq!(first["stream"], "account-1");
    assert_eq!(first["event_name"], "account.opened");
    assert_eq!(first["payload"], json!({"owner": "Ada"}));
    assert_eq!(first["position"], 1);
    assert_eq!(first["version"], 1);
    assert!(first["correlation_id"].is_string() && first["recorded_at"].is_i64());

    // Live: recorded after the feed caught up.
    deposit(&mut client, 2, 7, &[]).await;
    let live = take(&mut feed, 1).await;
    assert_eq!(ids(&live), [4]);
    assert_eq!(live[0].json()["payload"], json!({"amount": 7}));
    drop(feed);

    // Resume after event 2 (what a browser's EventSource sends when it reconnects).
    let mut resumed_client = Client::connect(server.addr).await;
    let response = resumed_client
        .start(Method::GET, "/events?from=1", &[("last-event-id", "2")], "")
        .await;
    let mut resumed = SseReader::new(response);
    assert_eq!(ids(&take(&mut resumed, 2).await), [3, 4]);

    // One stream's feed: ids are its versions; `from` is inclusive.
    let mut stream_client = Client::connect(server.addr).await;
    let response = stream_client
        .start(Method::GET, "/streams/account-1/events?from=2", &[], "")
        .await;
    let mut stream = SseReader::new(response);
    let events = take(&mut stream, 1).await;
    assert_eq!(ids(&events), [2]);
    assert_eq!(events[0].json()["position"], 3);
    deposit(&mut client, 2, 1, &[]).await; // another stream: not in this feed
    deposit(&mut client, 1, 9, &[]).await;
    let live = take(&mut stream, 1).await;
    assert_eq!(ids(&live), [3]);
    assert_eq!(live[0].json()["payload"], json!({"amount": 9}));

    client
        .get("/events", &[("last-event-id", "x")])
        .await
        .problem(400, "invalid-header");

    // Graceful shutdown: feeds end with a `shutdown` event, the server stops.
    let stop = tokio::spawn(server.stop());
    let last = take(&mut stream, 1).await;
    assert_eq!(last[0].event.as_deref(), Some("shutdown"));
    assert_eq!(last[0].json()["last_event_id"], 3);
    assert_eq!(stream.next().await, None);
    take(&mut resumed, 2).await; // the two deposits above
    assert_eq!(
        take(&mut resumed, 1).await[0].event.as_deref(),
        Some("shutdown")
    );
    drop(resumed);
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_feed_client_is_cut_off_with_a_lagged_event() {
    let app = serve::app(MemoryStore::new()).await.unwrap();
    let api = Api::builder(app.clone()).feed_buffer(16).build().unwrap();
    let server = serve::spawn(listener().await, api).unwrap();
    let mut slow = Client::connect_with_small_buffer(server.addr, 4096).await;
    let response = slow.start(Method::GET, "/events", &[], "").await;
    let mut feed = SseReader::new(response);
    // Nothing read from here on, while the feed's events outgrow every buffer on the way
    // (sockets, hyper's) and the hub's 16 events.
    let owner = "o".repeat(16 * 1024);
    for account in 0..1500 {
        app.execute(OpenAccount {
            account: AccountId(account),
            owner: owner.clone(),
        })
        .await
        .unwrap();
    }
    let mut delivered = 0u64;
    let last = loop {
        let event = tokio::time::timeout(Duration::from_secs(20), feed.next())
            .await
            .expect("the feed moves")
            .expect("a final event before the end");
        match event.event.as_deref() {
            None => {
                delivered += 1;
                assert_eq!(
                    event.id.unwrap(),
                    delivered.to_string(),
                    "in order, none skipped"
                );
            }
            Some(_) => break event,
        }
    };
    assert_eq!(last.event.as_deref(), Some("lagged"));
    assert!(
        delivered < 1500,
        "cut off before the end ({delivered} delivered)"
    );
    assert_eq!(last.json()["last_event_id"], delivered);
    assert!(
        last.json()["detail"]
            .as_str()
            .unwrap()
            .contains("Last-Event-ID")
    );
    assert_eq!(feed.next().await, None, "the feed ends after `lagged`");

    // Reconnecting where it stopped catches up from the store: nothing lost.
    let mut again = Client::connect(server.addr).await;
    let id = delivered.to_string();
    let response = again
        .start(Method::GET, "/events", &[("last-event-id", &id)], "")
        .await;
    let mut rest = SseReader::new(response);
    let events = take(&mut rest, (1500 - delivered) as usize).await;
    assert_eq!(ids(&events).last(), Some(&1500));
    drop(rest);
    server.stop().await.unwrap();
}

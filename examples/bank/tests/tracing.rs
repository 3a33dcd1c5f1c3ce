//! The transfer process manager's spans and events, captured by a small `tracing` layer: a
//! credit refused by a closed account shows as a rejected `process.command` with its
//! compensation event, the commands it runs nest under it, and the whole chain under the
//! runner's batch.

mod transfer_bank;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bank::*;
use eventweave_core::EventStore;
use eventweave_core::runner::ProjectionRunner;
use tracing::span;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span or event: its name, level, fields and enclosing span (an index into the spans).
#[derive(Clone, Debug)]
struct Seen {
    name: &'static str,
    level: tracing::Level,
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Captured {
    spans: Arc<Mutex<Vec<Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

/// A span's index in `Captured::spans` (span ids are reused, indexes are not).
struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

fn index<S: for<'a> LookupSpan<'a>>(
    span: Option<tracing_subscriber::registry::SpanRef<'_, S>>,
) -> Option<usize> {
    span.and_then(|s| s.extensions().get::<Index>().map(|i| i.0))
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Captured {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(Seen {
            name: attrs.metadata().name(),
            level: *attrs.metadata().level(),
            parent: index(span.parent()),
            fields,
        });
        span.extensions_mut().insert(Index(spans.len() - 1));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let i = index(ctx.span(id)).unwrap();
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[i].fields));
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(Seen {
            name: event.metadata().name(),
            level: *event.metadata().level(),
            parent: index(ctx.event_span(event)),
            fields,
        });
    }
}

fn field<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.fields
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` in {seen:?}"))
}

#[tokio::test]
async fn a_refused_credit_shows_its_compensation_and_the_chain_nests() {
    let captured = Captured::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(captured.clone()));
    let (store, app) = transfer_bank::transfer_bank(&[(1, "Ada"), (3, "Cy")]).await;
    let running = ProjectionRunner::new(store.clone(), transfer_process(&app).unwrap()).spawn();
    let debit = start_transfer(&app, TransferId(1), AccountId(1), AccountId(3), 30)
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    running.settle(head, Duration::from_secs(10)).await.unwrap();
    running.stop().await;

    let spans = captured.spans.lock().unwrap().clone();
    let issued: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "process.command")
        .collect();
    let summary: Vec<_> = issued
        .iter()
        .map(|s| {
            (
                field(s, "process"),
                field(s, "command"),
                field(s, "outcome"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("transfer", "ReceiveTransfer", "rejected"),
            ("transfer", "RefundTransfer", "ok"),
        ]
    );
    // Each issued command's own `command` span sits inside its `process.command` span, and
    // carries the debit event as its cause; the issued commands run inside a runner batch.
    let debit_event = debit.events[0].meta.event_id.to_string();
    for (i, s) in spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.name == "process.command")
    {
        let command = spans
            .iter()
            .find(|c| c.name == "command" && c.parent == Some(i))
            .unwrap_or_else(|| panic!("no command span inside {s:?}"));
        assert_eq!(field(command, "command"), field(s, "command"));
        assert_eq!(field(command, "causation_id"), debit_event);
        assert_eq!(
            field(command, "correlation_id"),
            debit.correlation_id.to_string()
        );
        let batch = &spans[s.parent.expect("inside a batch")];
        assert_eq!(
            (batch.name, field(batch, "projection")),
            ("projection.batch", "transfer")
        );
    }
    let events = captured.events.lock().unwrap().clone();
    let compensating: Vec<_> = events
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m == "command rejected, compensating")
        })
        .collect();
    assert_eq!(compensating.len(), 1, "{events:?}");
    let event = compensating[0];
    assert_eq!(event.level, tracing::Level::INFO);
    assert_eq!(field(event, "command"), "ReceiveTransfer");
    assert_eq!(field(event, "error"), "the account is closed");
    assert_eq!(field(event, "issued"), "1");
    let parent = &spans[event.parent.expect("inside the process.command span")];
    assert_eq!(field(parent, "command"), "ReceiveTransfer");
    // The refused credit is also a failed command at info, with its outcome.
    let failed: Vec<_> = events
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m == "command failed")
        })
        .map(|e| (field(e, "command"), field(e, "outcome")))
        .collect();
    assert_eq!(failed, [("ReceiveTransfer", "rejected")]);
    assert!(
        spans
            .iter()
            .all(|s| s.name != "command" || s.level == tracing::Level::DEBUG)
    );
}

/// Traces across processes, at the metadata level: each transfer is sent with its own W3C
/// `traceparent`; its debit, its credit (issued by the process manager from the debit event)
/// and its refund (the compensation of a refused credit) all carry that trace id, and the
/// `command` span of each records it as `trace_id`.
#[tokio::test]
async fn a_transfer_s_debit_credit_and_refund_share_the_sender_s_trace() {
    use eventweave_core::{CommandContext, Position, TRACEPARENT, TRACESTATE, TraceContext};

    let captured = Captured::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(captured.clone()));
    let (store, app) = transfer_bank::transfer_bank(&[(1, "Ada"), (2, "Bo"), (3, "Cy")]).await;
    let running = ProjectionRunner::new(store.clone(), transfer_process(&app).unwrap()).spawn();
    // Transfer 1 is credited (to Bo); transfer 2 is refused (Cy's account is closed) and refunded.
    let traces = [
        (
            1,
            2,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Some("vendor=abc"),
        ),
        (
            2,
            3,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            None,
        ),
    ];
    for (transfer, to, traceparent, tracestate) in traces {
        let trace = TraceContext::from_headers(traceparent, tracestate).unwrap();
        app.execute_with(
            SendTransfer {
                account: AccountId(1),
                transfer: TransferId(transfer),
                to: AccountId(to),
                amount: 10,
            },
            CommandContext::new().with_trace(trace),
        )
        .await
        .unwrap();
    }
    let head = store.head().await.unwrap();
    running.settle(head, Duration::from_secs(10)).await.unwrap();
    running.stop().await;

    let events = store.read_all(Position::ZERO, 10_000).await.unwrap();
    let mut seen = Vec::new();
    for event in &events {
        let name = &*event.meta.event_name;
        if !name.starts_with("transfer.") {
            continue;
        }
        let payload: serde_json::Value = serde_json::from_str(event.payload.as_str()).unwrap();
        let transfer = payload["transfer"].as_u64().expect("a transfer id");
        let metadata = &event.meta.metadata;
        let traceparent = metadata.get(TRACEPARENT).and_then(|v| v.as_str());
        let tracestate = metadata.get(TRACESTATE).and_then(|v| v.as_str());
        seen.push((transfer, name.to_owned(), traceparent, tracestate));
    }
    let (one, two) = (traces[0].2, traces[1].2);
    assert_eq!(
        seen,
        [
            (1, "transfer.sent".to_owned(), Some(one), Some("vendor=abc")),
            (2, "transfer.sent".to_owned(), Some(two), None),
            (
                1,
                "transfer.received".to_owned(),
                Some(one),
                Some("vendor=abc")
            ),
            (2, "transfer.refunded".to_owned(), Some(two), None),
        ],
        "{events:#?}"
    );
    // Every command span, the refused credit's included, names the trace it joined.
    let spans = captured.spans.lock().unwrap().clone();
    let mut commands: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "command" && field(s, "command").contains("Transfer"))
        .map(|s| (field(s, "command"), field(s, "trace_id")))
        .collect();
    commands.sort();
    let (one, two) = (
        "0af7651916cd43dd8448eb211c80319c",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    );
    assert_eq!(
        commands,
        [
            ("ReceiveTransfer", one),
            ("ReceiveTransfer", two),
            ("RefundTransfer", two),
            ("SendTransfer", one),
            ("SendTransfer", two),
        ]
    );
}

//! Traces across processes with OpenTelemetry (feature `opentelemetry`): with a
//! `tracing-opentelemetry` layer exporting to an in-memory exporter, a transfer's debit, credit
//! and refund are spans of one trace, each a child of what caused it, and a command without a
//! `traceparent` starts a trace of its own that the process manager's commands then join.
//!
//! Run with `cargo test -p bank --features opentelemetry --test opentelemetry` (`.ci/run`
//! does).

#![cfg(feature = "opentelemetry")]

mod transfer_bank;

use std::time::Duration;

use bank::*;
use eventweave_core::runner::ProjectionRunner;
use eventweave_core::{
    CommandContext, EventStore, MemoryStore, Position, TRACEPARENT, TraceContext,
};
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

/// The trace the first transfer is sent in (sampled), and the caller's span.
const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// The one finished span named `name` whose `command` attribute is `command`, in `trace`.
fn span<'a>(spans: &'a [SpanData], name: &str, command: &str, trace: TraceId) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| {
            s.name == name
                && attribute(s, "command").as_deref() == Some(command)
                && s.span_context.trace_id() == trace
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one `{name}` span of {command} in {trace}: {spans:#?}"
    );
    found[0]
}

fn id(span: &SpanData) -> SpanId {
    span.span_context.span_id()
}

/// The `traceparent` a stored event of `stream` named `event` carries.
async fn carried(store: &MemoryStore, stream: &str, event: &str) -> String {
    let events = store.read_all(Position::ZERO, 10_000).await.unwrap();
    let found = events
        .iter()
        .find(|e| e.meta.stream.as_str() == stream && &*e.meta.event_name == event)
        .unwrap_or_else(|| panic!("{event} in {stream}"));
    found
        .meta
        .metadata
        .get(TRACEPARENT)
        .and_then(|v| v.as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_transfer_s_debit_credit_and_refund_are_one_trace_of_parent_and_child_spans() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bank-test"));
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let (store, app) = transfer_bank::transfer_bank(&[(1, "Ada"), (2, "Bo"), (3, "Cy")]).await;
    let running = ProjectionRunner::new(store.clone(), transfer_process(&app).unwrap()).spawn();
    // Transfer 1 comes with the caller's trace and is credited to Bo; transfer 2 comes without
    // one, is refused (Cy's account is closed) and refunded.
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let sent = [
        (1, 2, TraceContext::from_headers(&traceparent, None)),
        (2, 3, None),
    ];
    for (transfer, to, trace) in sent {
        let command = SendTransfer {
            account: AccountId(1),
            transfer: TransferId(transfer),
            to: AccountId(to),
            amount: 10,
        };
        let context = match trace {
            Some(trace) => CommandContext::new().with_trace(trace),
            None => CommandContext::new(),
        };
        app.execute_with(command, context).await.unwrap();
    }
    let head = store.head().await.unwrap();
    running.settle(head, Duration::from_secs(10)).await.unwrap();
    running.stop().await;
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    // Transfer 1: the debit's span is a child of the caller's (remote) span, the credit's
    // `process.command` a child of the debit, the credit's `command` a child of that.
    let one = TraceId::from_hex(CALLER_TRACE).unwrap();
    let debit = span(&spans, "command", "SendTransfer", one);
    assert_eq!(debit.parent_span_id, SpanId::from_hex(CALLER_SPAN).unwrap());
    let issued = span(&spans, "process.command", "ReceiveTransfer", one);
    assert_eq!(issued.parent_span_id, id(debit));
    let credit = span(&spans, "command", "ReceiveTransfer", one);
    assert_eq!(credit.parent_span_id, id(issued));
    // The debit's events carry the debit's own span (what the process manager joined).
    assert_eq!(
        carried(&store, "account-1", "transfer.sent").await,
        format!("00-{CALLER_TRACE}-{}-01", id(debit))
    );

    // Transfer 2: no traceparent, so the debit starts a trace of its own (a root span) …
    let roots: Vec<&SpanData> = spans
        .iter()
        .filter(|s| {
            s.name == "command"
                && attribute(s, "command").as_deref() == Some("SendTransfer")
                && s.span_context.trace_id() != one
        })
        .collect();
    assert_eq!(roots.len(), 1, "{spans:#?}");
    let debit = roots[0];
    let two = debit.span_context.trace_id();
    assert_eq!(debit.parent_span_id, SpanId::INVALID, "a root span");
    // … which the refused credit and the refund join, each under what caused it.
    let issued = span(&spans, "process.command", "ReceiveTransfer", two);
    assert_eq!(issued.parent_span_id, id(debit));
    let refused = span(&spans, "command", "ReceiveTransfer", two);
    assert_eq!(refused.parent_span_id, id(issued));
    assert_eq!(attribute(refused, "outcome").as_deref(), Some("rejected"));
    let compensation = span(&spans, "process.command", "RefundTransfer", two);
    assert_eq!(
        compensation.parent_span_id,
        id(issued),
        "the refund answers the refused credit"
    );
    let refund = span(&spans, "command", "RefundTransfer", two);
    assert_eq!(refund.parent_span_id, id(compensation));
    assert_eq!(
        carried(&store, "account-1", "transfer.refunded").await,
        format!("00-{two}-{}-01", id(refund))
    );

    // The other commands were sent without a traceparent: each is a trace of its own.
    let mut others: Vec<TraceId> = spans
        .iter()
        .filter(|s| {
            s.name == "command"
                && matches!(
                    attribute(s, "command").as_deref(),
                    Some("OpenAccount" | "Deposit" | "CloseAccount")
                )
        })
        .map(|s| {
            assert_eq!(s.parent_span_id, SpanId::INVALID);
            s.span_context.trace_id()
        })
        .collect();
    assert_eq!(others.len(), 5);
    others.sort_by_key(|t| t.to_string());
    others.dedup();
    assert_eq!(others.len(), 5, "five traces");
    assert!(!others.contains(&one) && !others.contains(&two));
}

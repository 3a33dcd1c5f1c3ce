//! The transfer process manager's spans and events, captured by a small `tracing` layer: a
//! credit refused by a closed account shows as a rejected `process.command` with its
//! compensation event, the commands it runs nest under it, and the whole chain under the
//! runner's batch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bank::*;
use eventweave_core::runner::ProjectionRunner;
use eventweave_core::{Cqrs, EventStore, MemoryStore};
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
    let store = MemoryStore::new();
    let app = Cqrs::builder(store.clone())
        .service(Limits {
            max_withdrawal: 1_000,
        })
        .build()
        .await
        .unwrap();
    for (account, owner) in [(1, "Ada"), (3, "Cy")] {
        let account = AccountId(account);
        app.execute(OpenAccount {
            account,
            owner: owner.into(),
        })
        .await
        .unwrap();
    }
    app.execute(Deposit {
        account: AccountId(1),
        amount: 100,
    })
    .await
    .unwrap();
    app.execute(CloseAccount {
        account: AccountId(3),
    })
    .await
    .unwrap();
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

//! `#[process_manager]`: a checkout written with the macro, driven by `ProcessFixture`
//! (commands, deadlines, the compensation of a rejection, a failing handler), and the
//! generated constants and registration.

use std::fmt;
use std::time::Duration;

use eventweave_core::fixture::ProcessFixture;
use eventweave_core::prelude::*;
use eventweave_core::process::{Issue, ProcessManager, Rejection};
use eventweave_core::registry::{self, ProjectionKind};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test-pm.ordered")]
pub struct Ordered {
    pub order: u64,
    pub item: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test-pm.paid")]
pub struct Paid {
    pub order: u64,
}

/// The timeout the checkout schedules when an order is placed.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test-pm.payment_due")]
pub struct PaymentDue {
    pub order: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test-pm.refunded")]
pub struct Refunded {
    pub order: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test-pm.reserved")]
pub struct Reserved {
    pub order: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test-pm.released")]
pub struct Released {
    pub order: u64,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[command(aggregate = Stock)]
pub struct Reserve {
    #[id]
    pub item: String,
    pub order: u64,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[command(aggregate = Stock)]
pub struct Release {
    #[id]
    pub item: String,
    pub order: u64,
}

#[derive(Default)]
pub struct Stock;

#[aggregate(id = String, name = "test-pm-stock")]
impl Stock {
    #[handle]
    fn reserve(cmd: &Reserve) -> Reserved {
        Reserved { order: cmd.order }
    }

    #[handle]
    fn release(&self, cmd: &Release) -> Released {
        Released { order: cmd.order }
    }

    #[apply]
    fn reserved(&mut self, _: &Reserved) {}

    #[apply]
    fn released(&mut self, _: &Released) {}
}

const PAY_WITHIN: Duration = Duration::from_secs(15 * 60);

/// Why the stock refuses (the tests reject with it through the fixture).
#[derive(Debug, PartialEq)]
pub enum StockError {
    OutOfStock,
    Discontinued,
}

impl fmt::Display for StockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StockError::OutOfStock => "out of stock",
            StockError::Discontinued => "discontinued",
        })
    }
}

impl std::error::Error for StockError {}

#[derive(Debug)]
pub struct RefundBeforePayment(u64);

impl fmt::Display for RefundBeforePayment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "order {} was refunded before it was paid", self.0)
    }
}

impl std::error::Error for RefundBeforePayment {}

/// One order from placement to payment: reserve the item, release it if the payment is late.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkout {
    order: u64,
    item: String,
    stream: String,
    paid: bool,
    released: bool,
    backordered: bool,
}

#[process_manager(name = "test-pm-checkout")]
impl Checkout {
    fn on_ordered(&mut self, e: &Ordered, meta: &EventMeta) -> Vec<Issue> {
        self.order = e.order;
        self.item = e.item.clone();
        self.stream = meta.stream.to_string();
        vec![
            Issue::command(Reserve {
                item: e.item.clone(),
                order: e.order,
            }),
            Issue::deadline(PAY_WITHIN, PaymentDue { order: e.order }),
        ]
    }

    fn on_paid(&mut self, _: &Paid) {
        self.paid = true;
    }

    fn on_payment_due(&mut self, _: &PaymentDue) -> Option<Issue> {
        if self.paid || self.released {
            return None;
        }
        self.released = true;
        Some(self.release())
    }

    fn on_refunded(&mut self, e: &Refunded) -> Result<(), RefundBeforePayment> {
        if self.paid {
            Ok(())
        } else {
            Err(RefundBeforePayment(e.order))
        }
    }

    /// Out of stock: backorder (typed, by matching the stock's error). Anything else: nothing.
    #[on_rejected]
    fn backorder(&mut self, rejection: &Rejection) -> Option<Issue> {
        let reserve = rejection.command::<Reserve>()?;
        if rejection.error::<StockError>() != Some(&StockError::OutOfStock) {
            return None;
        }
        self.backordered = true;
        Some(Issue::deadline(
            PAY_WITHIN,
            PaymentDue {
                order: reserve.order,
            },
        ))
    }

    /// Not a handler (`&self`): kept as written.
    fn release(&self) -> Issue {
        Issue::command(Release {
            item: self.item.clone(),
            order: self.order,
        })
    }
}

fn ordered() -> Ordered {
    Ordered {
        order: 7,
        item: "lamp".into(),
    }
}

#[test]
fn the_generated_impl_names_the_handled_events() {
    assert_eq!(Checkout::NAME, "test-pm-checkout");
    assert_eq!(
        Checkout::EVENTS,
        [
            "test-pm.ordered",
            "test-pm.paid",
            "test-pm.payment_due",
            "test-pm.refunded"
        ]
    );
    let registration = registry::projections()
        .into_iter()
        .find(|r| r.name == "test-pm-checkout")
        .expect("registered");
    assert_eq!(registration.kind, ProjectionKind::Durable);
    assert_eq!(registration.events, Checkout::EVENTS);
    assert_eq!(registration.type_name, "macros::process::Checkout");
    assert!(registration.create.is_none());
    registry::check().unwrap();
}

#[test]
fn an_order_issues_the_reservation_and_schedules_the_payment_deadline() {
    let then = ProcessFixture::<Checkout>::new()
        .when_in("order-7", ordered())
        .expect_issued([
            Issue::command(Reserve {
                item: "lamp".into(),
                order: 7,
            }),
            Issue::deadline(PAY_WITHIN, PaymentDue { order: 7 }),
        ])
        .expect_commands([Issue::command(Reserve {
            item: "lamp".into(),
            order: 7,
        })])
        .expect_deadline(Issue::deadline(PAY_WITHIN, PaymentDue { order: 7 }));
    // The metadata reached the handler.
    assert_eq!(then.state().stream, "order-7");
}

#[test]
fn a_late_payment_releases_the_item_once_and_a_paid_order_keeps_it() {
    let then = ProcessFixture::<Checkout>::new()
        .given(ordered())
        .when(PaymentDue { order: 7 })
        .expect_commands([Issue::command(Release {
            item: "lamp".into(),
            order: 7,
        })]);
    assert!(then.state().released);
    ProcessFixture::<Checkout>::new()
        .given(ordered())
        .given(PaymentDue { order: 7 })
        .when(PaymentDue { order: 7 })
        .expect_nothing();
    ProcessFixture::<Checkout>::new()
        .given(ordered())
        .given(Paid { order: 7 })
        .when(PaymentDue { order: 7 })
        .expect_nothing();
}

#[test]
fn a_rejected_reservation_runs_the_compensation() {
    let then = ProcessFixture::<Checkout>::new()
        .given(ordered())
        .when_rejected(
            Reserve {
                item: "lamp".into(),
                order: 7,
            },
            StockError::OutOfStock,
        )
        .expect_commands([])
        .expect_deadline(Issue::deadline(PAY_WITHIN, PaymentDue { order: 7 }));
    assert!(then.state().backordered);
    // Another rejected command: the compensation issues nothing.
    ProcessFixture::<Checkout>::new()
        .given(ordered())
        .when_rejected(
            Release {
                item: "lamp".into(),
                order: 7,
            },
            StockError::OutOfStock,
        )
        .expect_nothing();
    // The same command refused for another reason: matched on the typed error, nothing.
    ProcessFixture::<Checkout>::new()
        .given(ordered())
        .when_rejected(
            Reserve {
                item: "lamp".into(),
                order: 7,
            },
            StockError::Discontinued,
        )
        .expect_nothing();
}

#[test]
fn a_handler_that_returns_ok_issues_nothing() {
    ProcessFixture::<Checkout>::new()
        .given(ordered())
        .given(Paid { order: 7 })
        .when(Refunded { order: 7 })
        .expect_nothing();
}

#[test]
#[should_panic(expected = "handler failed: order 7 was refunded before it was paid")]
fn a_handler_error_is_a_handler_failure() {
    ProcessFixture::<Checkout>::new()
        .given(ordered())
        .when(Refunded { order: 7 });
}

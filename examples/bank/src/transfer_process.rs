//! The transfer as a process manager: once the sender's account records `TransferSent`, credit
//! the receiver; if the receiver rejects the credit, refund the sender. Every step inherits the
//! first command's correlation id, and each command records the event that caused it.
//!
//! Run it with [`transfer_process`] in a `ProjectionRunner`; start a transfer with
//! [`start_transfer`] (the debit, an ordinary command).

use cqrs_core::process::{Issue, ProcessManager, ProcessManagerSink, Rejection, decode};
use cqrs_core::runner::Checkpoints;
use cqrs_core::{
    CommandError, CommandOutcome, Cqrs, DispatchError, Event, EventStore, ProjectionFailure,
    RecordedEvent,
};
use serde::{Deserialize, Serialize};

use crate::account::*;

/// Where one transfer stands (the state of one process-manager instance).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferProcess {
    /// No event yet.
    #[default]
    Idle,
    /// Debited; the credit was issued.
    Crediting {
        /// The transfer.
        transfer: TransferId,
        /// The debited account.
        from: AccountId,
        /// The account to credit.
        to: AccountId,
        /// Amount in cents.
        amount: u64,
    },
    /// The receiver refused; the refund was issued.
    Refunding {
        /// The transfer.
        transfer: TransferId,
        /// Why the receiver refused.
        reason: String,
    },
    /// The receiver was credited.
    Completed,
    /// The sender got the money back.
    Refunded,
}

/// The account id of an account stream (`account-{id}`).
fn account_of(stream: &str) -> Option<AccountId> {
    let id = stream.strip_prefix(<Account as cqrs_core::Aggregate>::NAME)?;
    id.strip_prefix('-')?.parse().ok().map(AccountId)
}

impl ProcessManager for TransferProcess {
    const NAME: &'static str = "transfer";
    const EVENTS: &'static [&'static str] = &[
        TransferSent::NAME,
        TransferReceived::NAME,
        TransferRefunded::NAME,
    ];

    fn handle(&mut self, event: &RecordedEvent) -> Result<Vec<Issue>, ProjectionFailure> {
        match &*event.meta.event_name {
            TransferSent::NAME => {
                let sent: TransferSent = decode(event)?;
                let from = account_of(event.meta.stream.as_str()).ok_or_else(|| {
                    ProjectionFailure::Panicked(format!(
                        "`{}` is not an account stream",
                        event.meta.stream
                    ))
                })?;
                *self = TransferProcess::Crediting {
                    transfer: sent.transfer,
                    from,
                    to: sent.to,
                    amount: sent.amount,
                };
                Ok(vec![Issue::command(ReceiveTransfer {
                    account: sent.to,
                    transfer: sent.transfer,
                    from,
                    amount: sent.amount,
                })])
            }
            TransferReceived::NAME => {
                *self = TransferProcess::Completed;
                Ok(Vec::new())
            }
            TransferRefunded::NAME => {
                *self = TransferProcess::Refunded;
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn on_rejected(&mut self, rejection: &Rejection) -> Vec<Issue> {
        match (&*self, rejection.command::<ReceiveTransfer>()) {
            (
                TransferProcess::Crediting {
                    transfer,
                    from,
                    amount,
                    ..
                },
                Some(_),
            ) => {
                let refund = Issue::command(RefundTransfer {
                    account: *from,
                    transfer: *transfer,
                    amount: *amount,
                });
                *self = TransferProcess::Refunding {
                    transfer: *transfer,
                    reason: rejection.error.clone(),
                };
                vec![refund]
            }
            // A refund is never rejected; anything else needs a human (recorded in the stream).
            _ => Vec::new(),
        }
    }
}

/// The sink that runs [`TransferProcess`] over `app` (give it to a `ProjectionRunner`).
pub fn transfer_process<S: EventStore + Checkpoints>(
    app: &Cqrs<S>,
) -> Result<ProcessManagerSink<TransferProcess, S>, DispatchError> {
    ProcessManagerSink::new(app.clone()).aggregate::<Account>()
}

/// Starts a transfer: debits `from` (an ordinary command, a new business transaction whose
/// correlation id the process manager's commands inherit).
pub async fn start_transfer<S: EventStore>(
    app: &Cqrs<S>,
    transfer: TransferId,
    from: AccountId,
    to: AccountId,
    amount: u64,
) -> Result<CommandOutcome, CommandError<BankError>> {
    app.execute(SendTransfer {
        account: from,
        transfer,
        to,
        amount,
    })
    .await
}

//! The transfer as a process manager: once the sender's account records `TransferSent`, credit
//! the receiver; if the receiver rejects the credit, refund the sender. Every step inherits the
//! first command's correlation id, and each command records the event that caused it.
//!
//! The handlers are plain methods of the state type; `#[process_manager]` generates the
//! `ProcessManager` impl that picks them by the stored event name.
//!
//! Run it with [`transfer_process`] in a `ProjectionRunner`; start a transfer with
//! [`start_transfer`] (the debit, an ordinary command).

use eventweave_core::process::{Issue, ProcessManagerSink, Rejection};
use eventweave_core::process_manager;
use eventweave_core::runner::Checkpoints;
use eventweave_core::{
    AggregateIdError, CommandError, CommandOutcome, Cqrs, DispatchError, EventMeta, EventStore,
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

// `issues` declares the commands the handlers issue, for the event catalog (a handler returns
// `Issue`, which does not say which command it carries); `ProcessFixture` tests hold it true.
#[process_manager(name = "transfer", issues = [ReceiveTransfer, RefundTransfer])]
impl TransferProcess {
    /// The sender was debited: credit the receiver.
    fn on_sent(
        &mut self,
        sent: &TransferSent,
        meta: &EventMeta,
    ) -> Result<Issue, AggregateIdError> {
        // The sender's id, typed, from the account stream that recorded the debit; a
        // `TransferSent` recorded elsewhere fails the handler (the runner retries, then stops
        // or parks it).
        let from: AccountId = meta.aggregate_id(sent)?;
        *self = TransferProcess::Crediting {
            transfer: sent.transfer,
            from,
            to: sent.to,
            amount: sent.amount,
        };
        Ok(Issue::command(ReceiveTransfer {
            account: sent.to,
            transfer: sent.transfer,
            from,
            amount: sent.amount,
        }))
    }

    /// The receiver was credited: done.
    fn on_received(&mut self, _: &TransferReceived) {
        *self = TransferProcess::Completed;
    }

    /// The sender got the money back: done.
    fn on_refunded(&mut self, _: &TransferRefunded) {
        *self = TransferProcess::Refunded;
    }

    /// The receiver refused the credit: refund the sender. A refund is never rejected;
    /// anything else needs a human (the rejection is recorded in the instance stream).
    #[on_rejected]
    fn refund(&mut self, rejection: &Rejection) -> Option<Issue> {
        let TransferProcess::Crediting {
            transfer,
            from,
            amount,
            ..
        } = *self
        else {
            return None;
        };
        rejection.command::<ReceiveTransfer>()?;
        *self = TransferProcess::Refunding {
            transfer,
            reason: rejection.message(),
        };
        Some(Issue::command(RefundTransfer {
            account: from,
            transfer,
            amount,
        }))
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

//! A transfer between two accounts: debit the sender, credit the receiver, and refund the
//! sender if the receiver refuses. Each step is a command on one aggregate; the steps share a
//! correlation id and each records the event that caused it.

use eventweave_core::{CommandContext, CommandError, CommandOutcome, Cqrs, EventStore};

use crate::account::*;

/// How a transfer ended.
#[derive(Debug)]
pub enum TransferOutcome {
    /// Both halves happened.
    Completed {
        /// The debit.
        sent: CommandOutcome,
        /// The credit.
        received: CommandOutcome,
    },
    /// The receiver refused; the sender got the money back.
    Refunded {
        /// The debit.
        sent: CommandOutcome,
        /// Why the receiver refused.
        reason: CommandError<BankError>,
        /// The refund.
        refund: CommandOutcome,
    },
}

impl TransferOutcome {
    /// The position of the last event of the transfer, for read-your-writes.
    pub fn position(&self) -> eventweave_core::Position {
        match self {
            TransferOutcome::Completed { received, .. } => received.position(),
            TransferOutcome::Refunded { refund, .. } => refund.position(),
        }
    }
}

/// Why a transfer did not start, or could not be refunded. The command's error is the
/// `source()`, not repeated in the message, so an error chain prints each cause once.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The sender refused (nothing happened).
    #[error("transfer refused")]
    Refused(#[source] CommandError<BankError>),
    /// The receiver refused and the refund failed too: needs a human.
    #[error("refund failed")]
    RefundFailed(#[source] CommandError<std::convert::Infallible>),
}

/// Moves `amount` from `from` to `to`.
pub async fn transfer<S: EventStore>(
    app: &Cqrs<S>,
    transfer: TransferId,
    from: AccountId,
    to: AccountId,
    amount: u64,
) -> Result<TransferOutcome, TransferError> {
    let sent = app
        .execute(SendTransfer {
            account: from,
            transfer,
            to,
            amount,
        })
        .await
        .map_err(TransferError::Refused)?;
    let cause = CommandContext::new().caused_by(&sent.events[0].meta);
    let credit = ReceiveTransfer {
        account: to,
        transfer,
        from,
        amount,
    };
    match app.execute_with(credit, cause.clone()).await {
        Ok(received) => Ok(TransferOutcome::Completed { sent, received }),
        Err(reason) => {
            let refund = app
                .execute_with(
                    RefundTransfer {
                        account: from,
                        transfer,
                        amount,
                    },
                    cause,
                )
                .await
                .map_err(TransferError::RefundFailed)?;
            Ok(TransferOutcome::Refunded {
                sent,
                reason,
                refund,
            })
        }
    }
}

//! `--seed N`: fills the store with `N` deposits quickly, to see a long start-up catch-up (and
//! its progress bar) without waiting for `N` commands.
//!
//! The deposits are written straight to the store in batches of [`BATCH`] events per append,
//! as an import would, instead of one command (one transaction) each. They are ordinary
//! events: the aggregate, the projections and the balances table treat them like any deposit.
//! Going around the command bus is only safe because the rules hold by construction here: the
//! seed account is opened first and never closed, and a deposit of 1 cent is always valid.

use eventweave_core::{
    Event, EventStore, ExpectedVersion, NewEvent, Payload, Position, StoreError, StreamId,
    UserMetadata, new_id,
};

use crate::account::*;

/// The account that receives the seeded deposits.
pub const SEED_ACCOUNT: AccountId = AccountId(1000);

/// Events per append.
pub const BATCH: u64 = 5_000;

fn new_event<E: Event + serde::Serialize>(event: &E) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_name: E::NAME.into(),
        event_version: E::VERSION,
        payload: Payload::from_json(
            serde_json::to_string(event).expect("bank events serialize to JSON"),
        ),
        correlation_id: None,
        causation_id: None,
        metadata: UserMetadata::default(),
        tags: eventweave_core::Tags::empty(),
    }
}

/// Opens [`SEED_ACCOUNT`] unless it exists, then appends `count` deposits of 1 cent to it.
/// Returns the store's head.
pub async fn seed_deposits<S: EventStore>(store: &S, count: u64) -> Result<Position, StoreError> {
    let stream = StreamId::new(format!("account-{SEED_ACCOUNT}"));
    if store.read_stream(&stream, 1, 1).await?.is_empty() {
        let opened = AccountOpened {
            owner: "Seed".into(),
        };
        store
            .append(&stream, ExpectedVersion::NoStream, vec![new_event(&opened)])
            .await?;
    }
    let deposit = MoneyDeposited { amount: 1 };
    let mut left = count;
    while left > 0 {
        let n = left.min(BATCH);
        let batch = (0..n).map(|_| new_event(&deposit)).collect();
        store.append(&stream, ExpectedVersion::Any, batch).await?;
        left -= n;
    }
    store.head().await
}

//! `SqliteLeases`: one holder per projection among the handles (standing for processes) on one
//! file; a released lease is free at once, an expired one is taken over, and the holder whose
//! row was taken learns that it lost the lease; `held_elsewhere` reads without taking.

use std::time::Duration;

use eventweave_core::runner::{Lease, Leases};
use eventweave_sqlite::{SqliteLeases, SqliteStore, rusqlite};

#[tokio::test]
async fn one_holder_at_a_time_released_on_drop_taken_over_when_expired() {
    let store = SqliteStore::temporary().unwrap();
    // Two owners, as two processes would be.
    let a = SqliteLeases::new(&store).ttl(Duration::from_millis(600));
    let b = SqliteLeases::new(&store).ttl(Duration::from_millis(600));
    assert_ne!(a.owner(), b.owner());
    assert!(!b.held_elsewhere("p").await.unwrap(), "nobody holds it yet");

    let held = a.try_acquire("p").await.unwrap().expect("free");
    assert!(b.try_acquire("p").await.unwrap().is_none(), "a holds it");
    assert!(b.held_elsewhere("p").await.unwrap());
    assert!(
        !a.held_elsewhere("p").await.unwrap(),
        "not elsewhere for its holder"
    );
    // Other projections are independent.
    let other = b.try_acquire("q").await.unwrap().expect("q is free");
    // Renewals keep it past its time to live.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(b.try_acquire("p").await.unwrap().is_none(), "renewed");
    drop(held);
    let mut taken = b.try_acquire("p").await.unwrap().expect("released at once");
    assert!(a.held_elsewhere("p").await.unwrap());
    drop(other);

    // The holder stalls past its expiry (its row is made to look expired) and `a` takes over:
    // `b` hears that it lost the lease.
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute(
        "UPDATE leases SET expires_at = 0 WHERE projection = 'p'",
        [],
    )
    .unwrap();
    assert!(
        !a.held_elsewhere("p").await.unwrap(),
        "an expired lease is free"
    );
    let _taken_over = a.try_acquire("p").await.unwrap().expect("expired");
    tokio::time::timeout(Duration::from_secs(5), taken.lost())
        .await
        .expect("the old holder learns it lost the lease");
}

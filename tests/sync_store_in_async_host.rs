//! A synchronous store (SQLite) used from an async host without blocking its
//! runtime: the host runs each blocking driver call on the runtime's blocking
//! pool (`tokio::task::spawn_blocking`), as the README shows. While a call
//! waits on a locked database, the runtime's own thread keeps serving other
//! tasks.

#![cfg(feature = "sqlite")]

mod flows;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flows::{T0, TempDir, enrol, portal_on};
use portal_mfa::{
    ManualClock, UserId,
    store::{SqliteOptions, SqliteStore},
};

#[test]
fn a_blocking_sign_in_on_the_blocking_pool_leaves_the_runtime_free() {
    let dir = TempDir::new("async-host");
    let path = dir.file("mfa.db");
    let clock = ManualClock::at(T0);
    let store = SqliteStore::open_with(&path, SqliteOptions::new().busy_timeout(Duration::from_secs(10))).unwrap();
    let portal = Arc::new(portal_on(flows::bytes(store), &clock));
    let user = UserId::customer("alice");
    let (phone, _) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
    let code = phone.code(&clock);

    // One runtime thread: if the sign-in blocked it, nothing else could run.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicU32::new(0));
    // Another process holds the database, so the sign-in waits inside SQLite's busy handler.
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let verified = runtime.block_on(async {
        let heartbeat = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let sign_in = {
            let (portal, user, code) = (portal.clone(), user.clone(), code.clone());
            tokio::task::spawn_blocking(move || portal.verify_sign_in(&user, &code).run())
        };
        // Ten heartbeats, however long they take here: counted, not timed.
        while ticks.load(Ordering::SeqCst) < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!sign_in.is_finished(), "the sign-in is still waiting for the lock");
        holder.execute_batch("COMMIT").unwrap();
        let verified = sign_in.await.unwrap();
        heartbeat.abort();
        verified
    });
    assert!(verified.is_ok(), "{verified:?}");
}

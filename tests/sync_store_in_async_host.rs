//! A synchronous store (SQLite) used from an async host without blocking its
//! runtime, both ways a host can: awaiting operations on the store served
//! through `store::OffRuntime`, as the README shows, or running each blocking
//! call on the runtime's blocking pool (`tokio::task::spawn_blocking`). While
//! a call waits on a locked database, the runtime keeps serving other tasks.

#![cfg(feature = "sqlite")]

mod flows;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flows::{T0, TempDir, TestPortal, enrol, portal_on};
use portal_mfa::{
    ManualClock, UserId,
    store::{SqliteOptions, SqliteStore},
};

/// An enrolled user on SQLite (their portal, id and a fresh code), and another
/// connection holding the database, so that a sign-in waits inside SQLite's
/// busy handler; the directory goes last.
fn locked() -> (Arc<TestPortal>, UserId, String, rusqlite::Connection, TempDir) {
    let dir = TempDir::new("async-host");
    let path = dir.file("mfa.db");
    let clock = ManualClock::at(T0);
    let store = SqliteStore::open_with(&path, SqliteOptions::new().busy_timeout(flows::PATIENCE)).unwrap();
    let portal = Arc::new(portal_on(flows::bytes(store), &clock));
    let user = UserId::customer("alice");
    let (phone, _) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
    let code = phone.code(&clock);
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    (portal, user, code, holder, dir)
}

/// Heartbeats every 5 ms on `runtime` while `sign_in` (spawned there) waits
/// for the database `holder` has locked; after ten of them (counted, not
/// timed) the lock is released and the sign-in's answer awaited.
fn heartbeats_while_the_sign_in_waits<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    holder: &rusqlite::Connection,
    sign_in: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let ticks = Arc::new(AtomicU32::new(0));
    runtime.block_on(async {
        let heartbeat = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let sign_in = tokio::spawn(sign_in);
        let ten = async {
            while ticks.load(Ordering::SeqCst) < 10 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        // A bound so that a blocked runtime fails the test instead of hanging it.
        tokio::time::timeout(flows::PATIENCE, ten)
            .await
            .expect("the runtime went on serving other tasks");
        assert!(!sign_in.is_finished(), "the sign-in is still waiting for the lock");
        holder.execute_batch("COMMIT").unwrap();
        let answer = sign_in.await.unwrap();
        heartbeat.abort();
        answer
    })
}

#[test]
fn an_awaited_sign_in_on_off_runtime_leaves_the_runtime_free() {
    let (portal, user, code, holder, _dir) = locked();
    // One worker thread: if the sign-in blocked it, the heartbeat could not run.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let verified =
        heartbeats_while_the_sign_in_waits(
            &runtime,
            &holder,
            async move { portal.verify_sign_in(&user, &code).await },
        );
    assert!(verified.is_ok(), "{verified:?}");
}

#[test]
fn a_blocking_sign_in_on_the_blocking_pool_leaves_the_runtime_free() {
    let (portal, user, code, holder, _dir) = locked();
    // One runtime thread: if the sign-in blocked it, nothing else could run.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let verified = heartbeats_while_the_sign_in_waits(&runtime, &holder, async move {
        tokio::task::spawn_blocking(move || portal.verify_sign_in(&user, &code).run())
            .await
            .unwrap()
    });
    assert!(verified.is_ok(), "{verified:?}");
}

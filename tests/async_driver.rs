//! The async ex in an async host: operations are `Send` futures, a store
//! held as `Arc<dyn AsyncMfaStore>` works, tasks racing on a multi-threaded
//! runtime accept one code once, and the retry loop (shared with the blocking
//! ex) backs off through the host's timer and gives up when told to.
//!
//! Every seed-flow scenario also runs on this ex: see `nonblocking::*`
//! in `tests/seed_flows.rs` and `tests/sqlite_seed_flows.rs`.

mod flows;

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flows::{ADMIN, Executor, Go, Phone, T0, enrol, portal_on};
use portal_mfa::store::AsyncMfaStore;
use portal_mfa::{
    Enforcement, EnrolmentOptions, Error, ManualClock, Portal, PortalId, UserId,
    admin::{ResetMode, ResetReason},
    audit::EventQuery,
    store::MemoryStore,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn assert_send<T: Send>(_: &T) {}

fn shared_store() -> Arc<dyn AsyncMfaStore> {
    flows::faulty_kv()
}

fn portal<S>(store: S, clock: &ManualClock) -> Portal<S, ManualClock, StdRng> {
    Portal::new(PortalId::new("acme-portal"), "Acme Portal", store)
        .unwrap()
        .with_keyring(flows::keyring())
        .with_clock(clock.clone())
        .with_rng(StdRng::seed_from_u64(9))
}

#[test]
fn operations_are_send_futures_on_every_async_store() {
    let clock = ManualClock::at(T0);
    let user = UserId::customer("c1");
    let memory = portal(MemoryStore::new(), &clock);
    assert_send(&memory.begin_sign_in(&user).into_future());
    assert_send(&memory.verify_sign_in(&user, "123456").into_future());
    let session = flows::runtime()
        .block_on(memory.begin_sign_in(&user).into_future())
        .unwrap()
        .session()
        .unwrap();
    assert_send(
        &memory
            .start_enrolment(&user, &session, "c1", "phone", EnrolmentOptions::default())
            .into_future(),
    );
    assert_send(
        &memory
            .admin_reset(&ADMIN, &user, ResetReason::LostDevice, ResetMode::default())
            .into_future(),
    );
    assert_send(
        &memory
            .set_enforcement(&ADMIN, Enforcement::SelfConfigured)
            .into_future(),
    );
    assert_send(&memory.reseal(None, 10).into_future());
    let shared = portal(shared_store(), &clock);
    assert_send(&shared.verify_sign_in(&user, "123456").into_future());
    assert_send(&shared.audit_events(EventQuery::portal(shared.id())).into_future());
}

/// Eight tasks on a four-thread runtime race one code over a trait-object
/// store with compare-and-swap; the runtime's timer does the back-off.
#[test]
fn tasks_racing_on_a_multithreaded_runtime_accept_one_code_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    let clock = ManualClock::at(T0);
    let portal = Arc::new(
        portal(shared_store(), &clock)
            .with_max_attempts(64)
            .with_async_sleep(tokio::time::sleep),
    );
    for trial in 0..40 {
        // One user races a TOTP code, another a backup code (the losers' replays
        // count toward lockout, so one user would lock before the second race).
        let users = [
            UserId::customer(format!("t{trial}")),
            UserId::vendor(format!("b{trial}")),
        ];
        let mut races = Vec::new();
        for (i, user) in users.iter().enumerate() {
            let (phone, backup) = runtime.block_on(async {
                let session = portal.begin_sign_in(user).await.unwrap().session().unwrap();
                let started = portal
                    .start_enrolment(user, &session, "c", "phone", EnrolmentOptions::default())
                    .await
                    .unwrap();
                let phone = Phone::scan(&started.uri);
                let confirmed = portal
                    .confirm_enrolment(user, &session, &phone.code(&clock))
                    .await
                    .unwrap();
                (
                    phone,
                    confirmed.backup_codes.unwrap().expose().next().unwrap().to_owned(),
                )
            });
            races.push((user.clone(), if i == 0 { None } else { Some(backup) }, phone));
        }
        clock.advance(30);
        for (user, backup, phone) in races {
            let code = backup.unwrap_or_else(|| phone.code(&clock));
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (portal, user, code) = (portal.clone(), user.clone(), code.clone());
                    runtime.spawn(async move { portal.verify_sign_in(&user, &code).await.is_ok() })
                })
                .collect();
            let accepted = runtime.block_on(async {
                let mut accepted = 0;
                for task in tasks {
                    accepted += usize::from(task.await.unwrap());
                }
                accepted
            });
            assert_eq!(accepted, 1, "trial {trial}: {user:?} accepted {accepted} times");
        }
    }
}

/// The one retry loop, on both executors: it retries a conflict on the fresh
/// record, sleeps through the host's timer after the first quick retries, and
/// answers `Conflict` with the attempts made once the budget is spent,
/// having written nothing.
#[test]
fn the_shared_retry_loop_backs_off_then_gives_up_on_both_executors() {
    for ex in [Executor::Blocking, Executor::Async] {
        let clock = ManualClock::at(T0);
        let store = flows::faulty_kv();
        let sleeps = Arc::new(AtomicU32::new(0));
        let counted = {
            let sleeps = sleeps.clone();
            move |_: Duration| {
                sleeps.fetch_add(1, Ordering::SeqCst);
                std::future::ready(())
            }
        };
        let portal = portal_on(store.clone(), &clock)
            .with_max_attempts(6)
            .with_async_sleep(counted);
        let user = UserId::customer("c1");
        let (phone, _) = enrol(ex, &portal, &clock, &user);

        // Five lost commits, then a win on the sixth and last attempt.
        store.get_ref().conflicts.store(5, Ordering::SeqCst);
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
        assert_eq!(store.get_ref().conflicts.load(Ordering::SeqCst), 0);
        // The first two retries only yield; the other three wait (on the host's timer when async).
        let expected_sleeps = if ex == Executor::Async { 3 } else { 0 };
        assert_eq!(sleeps.swap(0, Ordering::SeqCst), expected_sleeps, "{ex:?}");

        // Six lost commits: the budget is spent, nothing was written.
        clock.advance(30);
        let before = flows::all_pages(ex, &portal, EventQuery::portal(portal.id())).len();
        store.get_ref().conflicts.store(6, Ordering::SeqCst);
        let answer = portal.verify_sign_in(&user, &phone.code(&clock)).go(ex);
        assert!(
            matches!(answer, Err(Error::Conflict { attempts: 6 })),
            "{ex:?}: {answer:?}"
        );
        let after = flows::all_pages(ex, &portal, EventQuery::portal(portal.id())).len();
        assert_eq!(before, after, "{ex:?}: a conflict wrote nothing");
        // And the code was not spent: it still signs in.
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
    }
}

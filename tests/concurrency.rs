//! Many app instances racing on one user: the store's compare-and-swap must
//! let exactly one of them accept a code, and count every failure. Every race
//! runs on every store (locking memory, compare-and-swap key-value, SQLite
//! transactions) through both executors.

#![cfg(feature = "sqlite")]

mod flows;

use std::sync::{Arc, Barrier, Mutex};

use flows::{Executor, Go, Phone, TestPortal, TestStore, each_store_and_executor, enrol, portal_on};
use portal_mfa::{Error, ManualClock, UserId};

const THREADS: usize = 32;
const TRIALS: usize = 200;

/// Runs `attempt(trial)` on THREADS threads at once, TRIALS times; returns each trial's results.
fn race<T: Send>(attempt: impl Fn(usize) -> T + Sync) -> Vec<Vec<T>> {
    let results: Vec<Mutex<Vec<T>>> = (0..TRIALS).map(|_| Mutex::new(Vec::new())).collect();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for (trial, slot) in results.iter().enumerate() {
                    barrier.wait();
                    let outcome = attempt(trial);
                    slot.lock().unwrap().push(outcome);
                }
            });
        }
    });
    results.into_iter().map(|m| m.into_inner().unwrap()).collect()
}

fn setup(store: Arc<dyn TestStore>) -> (TestPortal, ManualClock) {
    let clock = ManualClock::at(flows::T0);
    (portal_on(store, &clock).with_max_attempts(64), clock)
}

#[test]
fn the_same_totp_code_is_accepted_exactly_once() {
    each_store_and_executor(same_totp_code);
}

fn same_totp_code(kind: &str, ex: Executor, store: Arc<dyn TestStore>) {
    let (portal, clock) = setup(store);
    let enrolled: Vec<(UserId, Phone)> = (0..TRIALS)
        .map(|i| {
            let user = UserId::customer(format!("c{i}"));
            let (phone, _) = enrol(ex, &portal, &clock, &user);
            (user, phone)
        })
        .collect();
    // Enrolment moved the clock on; every code is taken now, in one unused step.
    let users: Vec<(UserId, String)> = enrolled.into_iter().map(|(u, p)| (u, p.code(&clock))).collect();
    let results = race(|trial| {
        let (user, code) = &users[trial];
        portal.verify_sign_in(user, code).go(ex)
    });
    for (trial, outcomes) in results.iter().enumerate() {
        let accepted = outcomes.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            accepted, 1,
            "{kind}, trial {trial}: {accepted} of {THREADS} accepted the same code"
        );
        for r in outcomes.iter().filter(|r| r.is_err()) {
            assert!(
                matches!(
                    r,
                    Err(Error::ReplayedCode | Error::Conflict { .. } | Error::LockedOut { .. })
                ),
                "{r:?}"
            );
        }
    }
}

#[test]
fn the_same_backup_code_is_accepted_exactly_once() {
    each_store_and_executor(same_backup_code);
}

fn same_backup_code(kind: &str, ex: Executor, store: Arc<dyn TestStore>) {
    let (portal, clock) = setup(store);
    let users: Vec<(UserId, String)> = (0..TRIALS)
        .map(|i| {
            let user = UserId::vendor(format!("v{i}"));
            let (_, codes) = enrol(ex, &portal, &clock, &user);
            (user, codes[i % codes.len()].clone())
        })
        .collect();
    let results = race(|trial| {
        let (user, code) = &users[trial];
        portal.verify_sign_in(user, code).go(ex)
    });
    for (trial, outcomes) in results.iter().enumerate() {
        assert_eq!(
            outcomes.iter().filter(|r| r.is_ok()).count(),
            1,
            "{kind}, trial {trial}"
        );
        let remaining = portal
            .record(&users[trial].0)
            .go(ex)
            .unwrap()
            .backup_codes()
            .unwrap()
            .remaining();
        assert_eq!(remaining, 9, "trial {trial}: exactly one code consumed");
    }
}

#[test]
fn concurrent_wrong_codes_are_all_counted_and_lock_at_the_limit() {
    each_store_and_executor(wrong_codes);
}

fn wrong_codes(kind: &str, ex: Executor, store: Arc<dyn TestStore>) {
    let (portal, clock) = setup(store);
    let users: Vec<(UserId, Phone)> = (0..TRIALS)
        .map(|i| {
            let user = UserId::contact(format!("h{i}"));
            let (phone, _) = enrol(ex, &portal, &clock, &user);
            (user, phone)
        })
        .collect();
    let results = race(|trial| {
        let (user, phone) = &users[trial];
        let right = phone.code(&clock);
        let wrong = if right == "000000" { "111111" } else { "000000" };
        portal.verify_sign_in(user, wrong).go(ex)
    });
    for (trial, outcomes) in results.iter().enumerate() {
        let record = portal.record(&users[trial].0).go(ex).unwrap();
        // Five failures are committed, then the lock refuses everything else unread.
        assert_eq!(record.failures().consecutive(), 5, "{kind}, trial {trial}");
        assert!(record.failures().locked_until().is_some());
        let wrong = outcomes
            .iter()
            .filter(|r| matches!(r, Err(Error::WrongCode { .. })))
            .count();
        let locked = outcomes
            .iter()
            .filter(|r| matches!(r, Err(Error::LockedOut { .. })))
            .count();
        assert_eq!(wrong, 4, "trial {trial}: {outcomes:?}");
        assert!(locked >= 1);
        assert!(outcomes.iter().all(|r| r.is_err()));
    }
}

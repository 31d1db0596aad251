//! Many app instances racing on one user: the store's compare-and-swap must
//! let exactly one of them accept a code, and count every failure. Every race
//! runs on every store (locking memory, compare-and-swap key-value, SQLite
//! transactions) through both executors.

#![cfg(feature = "sqlite")]

mod flows;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use flows::{Executor, Go, Phone, TestPortal, TestStore, each_store_and_executor, enrol, portal_on};
use portal_mfa::admin::{ResetMode, ResetReason};
use portal_mfa::audit::EventKind;
use portal_mfa::{Error, ManualClock, SessionStamp, SignInStep, UserId};

const THREADS: usize = 32;
const TRIALS: usize = 200;

/// Runs `attempt(trial)` on THREADS threads at once, TRIALS times; returns each trial's results.
fn race<T: Send>(attempt: impl Fn(usize) -> T + Sync) -> Vec<Vec<T>> {
    race_roles(TRIALS, |trial, _| attempt(trial))
}

/// Runs `attempt(trial, thread)` on THREADS threads at once, `trials` times;
/// returns each trial's results (in no particular order).
fn race_roles<T: Send>(trials: usize, attempt: impl Fn(usize, usize) -> T + Sync) -> Vec<Vec<T>> {
    let results: Vec<Mutex<Vec<T>>> = (0..trials).map(|_| Mutex::new(Vec::new())).collect();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let (results, barrier, attempt) = (&results, &barrier, &attempt);
            s.spawn(move || {
                for (trial, slot) in results.iter().enumerate() {
                    barrier.wait();
                    let outcome = attempt(trial, thread);
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

#[test]
fn a_reset_racing_trusted_browser_sign_ins_and_session_checks_has_one_order() {
    each_store_and_executor(reset_race);
}

/// What a racing thread saw: whether the reset had returned before it asked,
/// and the answer.
enum Seen {
    Reset,
    Browser(bool, Result<SignInStep, Error>),
    Check(bool, Result<(), Error>),
}

/// Per trial, one thread resets the user while the others, half and half,
/// sign in with the user's trusted browser and check a session the user
/// signed in with a code. A sign-in or a check that began after the reset
/// returned must fail; one that succeeded was committed (its event is in the
/// trail) before the reset; every stamp it answered has ended since.
fn reset_race(kind: &str, ex: Executor, store: Arc<dyn TestStore>) {
    const RESET_TRIALS: usize = 25;
    let (portal, clock) = setup(store);
    portal
        .update_policy(&flows::ADMIN, |p| p.with_trusted_browser_days(30))
        .go(ex)
        .unwrap();
    let users: Vec<(UserId, SessionStamp, String)> = (0..RESET_TRIALS)
        .map(|i| {
            let user = UserId::customer(format!("r{i}"));
            let (phone, _) = enrol(ex, &portal, &clock, &user);
            let session = portal
                .verify_sign_in(&user, &phone.code(&clock))
                .go(ex)
                .unwrap()
                .session;
            let token = portal.trust_browser(&user, &session, "race").go(ex).unwrap().token;
            (user, session, token.expose().to_owned())
        })
        .collect();
    let reset_done: Vec<AtomicBool> = (0..RESET_TRIALS).map(|_| AtomicBool::new(false)).collect();
    let results = race_roles(RESET_TRIALS, |trial, thread| {
        let (user, session, token) = &users[trial];
        let before = reset_done[trial].load(Ordering::SeqCst);
        match thread {
            0 => {
                portal
                    .admin_reset(
                        &flows::ADMIN,
                        user,
                        ResetReason::LostDevice,
                        ResetMode::ForceReenrolment,
                    )
                    .go(ex)
                    .unwrap();
                reset_done[trial].store(true, Ordering::SeqCst);
                Seen::Reset
            }
            t if t % 2 == 1 => Seen::Browser(before, portal.begin_sign_in_with_browser(user, token).go(ex)),
            _ => Seen::Check(before, portal.check_session(user, session).go(ex)),
        }
    });
    let (mut signed_in, mut refused, mut late) = (0, 0, 0);
    for (trial, seen) in results.into_iter().enumerate() {
        let (user, session, _) = &users[trial];
        let mut granted = Vec::new();
        for outcome in seen {
            match outcome {
                Seen::Reset => {}
                Seen::Browser(after_reset, Ok(SignInStep::TrustedBrowser { session, .. })) => {
                    assert!(
                        !after_reset,
                        "{kind}, trial {trial}: a trusted browser signed in after the reset"
                    );
                    granted.push(session);
                }
                Seen::Browser(after_reset, answer) => {
                    late += usize::from(after_reset);
                    refused += 1;
                    assert!(
                        matches!(answer, Ok(SignInStep::MustEnrol { .. }) | Err(Error::Conflict { .. })),
                        "{kind}, trial {trial}: {answer:?}"
                    );
                }
                Seen::Check(after_reset, answer) => {
                    if after_reset {
                        assert!(
                            matches!(answer, Err(Error::SessionEnded)),
                            "{kind}, trial {trial}: a session check after the reset said {answer:?}"
                        );
                    }
                    assert!(matches!(answer, Ok(()) | Err(Error::SessionEnded)), "{answer:?}");
                }
            }
        }
        signed_in += granted.len();
        // Every session granted, and the one signed in with a code, has ended.
        for stamp in granted.iter().chain([session]) {
            assert!(matches!(
                portal.check_session(user, stamp).go(ex),
                Err(Error::SessionEnded)
            ));
        }
        // A sign-in answered is in the trail, before the reset (the clock stands
        // still, so the first use is recorded and the rest, within the hour, are reads).
        let trail = flows::trail_of(ex, &portal, user);
        let reset_at = trail
            .iter()
            .position(|e| matches!(e.kind, EventKind::MfaReset { .. }))
            .unwrap();
        let used: Vec<usize> = trail
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.kind, EventKind::TrustedBrowserUsed { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            used.len(),
            usize::from(!granted.is_empty()),
            "{kind}, trial {trial}: answers and events agree"
        );
        assert!(used.iter().all(|&i| i < reset_at), "{kind}, trial {trial}: {trail:?}");
    }
    println!("{kind}: {signed_in} trusted sign-ins before the reset, {refused} refused ({late} begun after it)");
}

#[test]
fn a_reset_and_each_self_service_change_take_one_order() {
    each_store_and_executor(change_race);
}

/// Per trial, one thread resets the user while three make one self-service
/// change from the user's session (each change in turn): see
/// `flows::change_race` for what every order must show.
fn change_race(kind: &str, ex: Executor, store: Arc<dyn TestStore>) {
    const CHANGE_THREADS: usize = 4;
    let trials = 3 * flows::change_race::CHANGES.len();
    let (portal, clock) = setup(store);
    let jobs = flows::change_race::jobs(ex, &portal, &clock, trials);
    let marks = flows::TempDir::new("change-race-marks");
    let results: Vec<Mutex<Vec<String>>> = (0..trials).map(|_| Mutex::new(Vec::new())).collect();
    let barrier = Barrier::new(CHANGE_THREADS);
    std::thread::scope(|s| {
        for role in 0..CHANGE_THREADS {
            let (results, barrier, portal, jobs, marks) = (&results, &barrier, &portal, &jobs, &marks);
            s.spawn(move || {
                for (trial, job) in jobs.iter().enumerate() {
                    barrier.wait();
                    let verdict = flows::process::run_marked(portal, ex, &job.line, role, trial, &marks.0);
                    results[trial].lock().unwrap().push(verdict);
                }
            });
        }
    });
    let verdicts: Vec<Vec<String>> = results.into_iter().map(|m| m.into_inner().unwrap()).collect();
    let (made, refused) = flows::change_race::assert_one_order(ex, &portal, &jobs, &verdicts);
    println!("{kind} {ex:?}: {made} changes before the reset, {refused} refused");
    assert_eq!(made + refused, trials * (CHANGE_THREADS - 1));
}

/// Fewer trials than the code races: each response costs a signature check per thread.
#[cfg(feature = "webauthn")]
const PASSKEY_TRIALS: usize = 24;

#[cfg(feature = "webauthn")]
#[test]
fn the_same_passkey_response_is_accepted_exactly_once() {
    each_store_and_executor(same_passkey_response);
}

#[cfg(feature = "webauthn")]
fn same_passkey_response(kind: &str, ex: Executor, store: Arc<dyn TestStore>) {
    use flows::passkeys::{SoftKey, passkey_user, sign_in_options};
    use portal_mfa::PasskeyRefusal;
    let (portal, _clock) = setup(store);
    let users: Vec<(UserId, String)> = (0..PASSKEY_TRIALS)
        .map(|i| {
            let user = UserId::contact(format!("p{i}"));
            let (mut key, _, _) = passkey_user(ex, &portal, &user, SoftKey::security_key());
            let response = key.sign(&sign_in_options(ex, &portal, &user, 0, 1)).unwrap();
            (user, response)
        })
        .collect();
    let results = race_roles(PASSKEY_TRIALS, |trial, _| {
        let (user, response) = &users[trial];
        portal.verify_sign_in(user, response).go(ex)
    });
    for (trial, outcomes) in results.iter().enumerate() {
        let accepted = outcomes.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            accepted, 1,
            "{kind}, trial {trial}: {accepted} of {THREADS} accepted one response"
        );
        for r in outcomes.iter().filter(|r| r.is_err()) {
            assert!(
                matches!(
                    r,
                    Err(Error::PasskeyRefused {
                        reason: PasskeyRefusal::NoChallenge,
                        ..
                    } | Error::Conflict { .. }
                        | Error::LockedOut { .. })
                ),
                "{kind}: {r:?}"
            );
        }
        // Refusals after the answer count toward the lock (five), as a replayed code's do.
        let record = portal.record(&users[trial].0).go(ex).unwrap();
        assert!(
            record.passkeys()[0].last_used_at().is_some(),
            "{kind}: the one answer was recorded"
        );
        assert!(record.failures().consecutive() <= 5, "{kind}");
    }
}

#[test]
fn a_reset_request_raced_by_its_approval_and_a_sign_in_goes_one_way() {
    each_store_and_executor(request_race);
}

/// Half the threads approve the user's open request, half sign in with the
/// user's current code: either the sign-in withdraws the request first (every
/// approval then finds none open) or one approval resets first (every code
/// is then refused). Never both, and never two resets.
fn request_race(kind: &str, ex: Executor, store: Arc<dyn TestStore>) {
    const REQUEST_TRIALS: usize = 40;
    let (portal, clock) = setup(store);
    let enrolled: Vec<(UserId, Phone)> = (0..REQUEST_TRIALS)
        .map(|i| {
            let user = UserId::customer(format!("r{i}"));
            let (phone, _) = enrol(ex, &portal, &clock, &user);
            portal.request_reset(&user, "lost my phone").go(ex).unwrap();
            (user, phone)
        })
        .collect();
    clock.advance(30);
    let codes: Vec<String> = enrolled.iter().map(|(_, phone)| phone.code(&clock)).collect();
    let results = race_roles(REQUEST_TRIALS, |trial, thread| {
        let user = &enrolled[trial].0;
        if thread % 2 == 0 {
            (
                true,
                portal
                    .approve_reset_request(&flows::ADMIN, user, ResetMode::default())
                    .go(ex)
                    .is_ok(),
            )
        } else {
            (false, portal.verify_sign_in(user, &codes[trial]).go(ex).is_ok())
        }
    });
    let (mut sign_in_first, mut approved_first) = (0, 0);
    for (trial, outcomes) in results.iter().enumerate() {
        let approvals = outcomes.iter().filter(|&&(approve, ok)| approve && ok).count();
        let sign_ins = outcomes.iter().filter(|&&(approve, ok)| !approve && ok).count();
        assert_eq!(
            approvals + sign_ins,
            1,
            "{kind}/{ex:?} trial {trial}: {approvals} approvals and {sign_ins} sign-ins succeeded"
        );
        let user = &enrolled[trial].0;
        let record = portal.record(user).go(ex).unwrap();
        assert!(
            record.reset_request().is_none(),
            "{kind}: the request is decided either way"
        );
        let trail = flows::trail_of(ex, &portal, user);
        let resets = trail
            .iter()
            .filter(|e| matches!(e.kind, EventKind::MfaReset { .. }))
            .count();
        let withdrawn = trail
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ResetRequestWithdrawn))
            .count();
        assert_eq!((resets, withdrawn), (approvals, sign_ins), "{kind}: the trail agrees");
        if approvals == 1 {
            approved_first += 1;
            assert_eq!(record.factor_count(), 0);
        } else {
            sign_in_first += 1;
            assert_eq!(record.factor_count(), 1);
        }
    }
    println!("{kind}/{ex:?}: sign-in first {sign_in_first}, approval first {approved_first}");
}

//! Regression tests named after MFA failures other projects shipped. Each one
//! asserts the behaviour that would have prevented it.

mod flows;

use std::sync::{Arc, Barrier};

use flows::TestStore;
use flows::{ADMIN, Phone, T0, enrol, portal_on};
use portal_mfa::{
    EnrolmentOptions, Error, ManualClock, SignInStep, UserId,
    admin::{ResetMode, ResetReason},
    otp::{Secret, Totp, TotpParams, Window},
};

fn setup() -> (flows::TestPortal, ManualClock) {
    let clock = ManualClock::at(T0);
    let store: Arc<dyn TestStore> = flows::memory();
    (portal_on(store, &clock).with_max_attempts(64), clock)
}

fn wrong_code_for(phone: &Phone, clock: &ManualClock) -> String {
    let now = portal_mfa::Clock::now(clock);
    let window: Vec<String> = [now - 30, now, now + 30].iter().map(|&t| phone.code_at(t)).collect();
    (0..)
        .map(|n: u32| format!("{:06}", n * 104_729 % 1_000_000))
        .find(|c| !window.contains(c))
        .unwrap()
}

/// devise-two-factor CVE-2021-43177: a code stayed valid for the whole drift
/// window, so an observed code could be replayed a few seconds later.
#[test]
fn replay_inside_the_drift_window_is_refused() {
    let (portal, clock) = setup();
    let user = UserId::customer("c1");
    let (phone, _) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
    let earlier = phone.code(&clock);
    clock.advance(30);
    let code = phone.code(&clock);
    portal.verify_sign_in(&user, &code).run().unwrap();
    // The same code later in its step, and in the next step (still inside the ±1 window).
    clock.advance(10);
    assert!(matches!(
        portal.verify_sign_in(&user, &code).run(),
        Err(Error::ReplayedCode)
    ));
    clock.advance(30);
    assert!(matches!(
        portal.verify_sign_in(&user, &code).run(),
        Err(Error::ReplayedCode)
    ));
    // An older, never-used code from inside the window is refused too.
    clock.set(T0 + 30 + 30 + 5);
    assert!(matches!(
        portal.verify_sign_in(&user, &earlier).run(),
        Err(Error::ReplayedCode | Error::WrongCode { .. })
    ));
}

/// An app can show the same six digits two steps running (one step in a
/// million). The portal cannot tell which step they were typed for and
/// records the newest, so the second time they are refused as already used;
/// the person waits for the next code. The scenarios' phone does the same,
/// so a run of sign-ins of any length never meets the refusal by chance
/// (a test whose loop ran until a prune ended met it at its 60 935th step).
#[test]
fn the_same_digits_two_steps_running_are_refused_the_second_time_and_the_next_code_works() {
    // RFC 6238's SHA-1 key shows 963181 at this step and at the one before.
    const REPEAT_AT: u64 = 1_771_837_230;
    let secret = Secret::from_bytes(b"12345678901234567890", 128).unwrap();
    let totp = Totp::new(&secret, TotpParams::standard());
    let repeated = totp.generate(REPEAT_AT).unwrap().expose().to_string();
    assert_eq!(repeated, "963181");
    assert_eq!(totp.generate(REPEAT_AT - 30).unwrap().expose().to_string(), repeated);

    let clock = ManualClock::at(REPEAT_AT - 30);
    let portal = portal_on(flows::memory(), &clock);
    let user = UserId::customer("c1");
    portal
        .import_authenticator(&flows::ADMIN, &user, "phone", secret.clone(), TotpParams::standard())
        .run()
        .unwrap();
    portal.verify_sign_in(&user, &repeated).run().unwrap();
    clock.advance(30);
    assert!(matches!(
        portal.verify_sign_in(&user, &repeated).run(),
        Err(Error::ReplayedCode)
    ));
    // The phone of the scenarios waits for the next code instead of typing the repeat.
    let phone = Phone::with_secret(&secret);
    let next = phone.code(&clock);
    assert_eq!(portal_mfa::Clock::now(&clock), REPEAT_AT + 30);
    assert_ne!(next, repeated);
    portal.verify_sign_in(&user, &next).run().unwrap();
}

/// The code that confirmed an enrolment must not also sign the user in.
#[test]
fn the_confirming_enrolment_code_cannot_sign_in() {
    let (portal, clock) = setup();
    let user = UserId::customer("c1");
    let session = flows::password_step(flows::Executor::Blocking, &portal, &user);
    let phone = flows::start_enrolment_with(flows::Executor::Blocking, &portal, &user, &session);
    let code = phone.code(&clock);
    portal.confirm_enrolment(&user, &session, &code).run().unwrap();
    assert!(matches!(
        portal.verify_sign_in(&user, &code).run(),
        Err(Error::ReplayedCode)
    ));
}

/// Keycloak CVE-2024-4629: parallel requests each read the failure count before
/// any wrote it, so far more guesses than the limit got through.
#[test]
fn parallel_wrong_codes_cannot_race_past_the_failure_limit() {
    let (portal, clock) = setup();
    let user = UserId::customer("c1");
    let (phone, _) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
    let guesses: Vec<String> = (0..64)
        .map(|i| format!("{:06}", (i * 15_485_863 + 7) % 1_000_000))
        .collect();
    let right = phone.code(&clock);
    let barrier = Barrier::new(guesses.len());
    let checked = std::thread::scope(|s| {
        let handles: Vec<_> = guesses
            .iter()
            .filter(|g| **g != right)
            .map(|guess| {
                let (portal, user, barrier) = (&portal, &user, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    portal.verify_sign_in(user, guess).run()
                })
            })
            .collect();
        let n = handles.len();
        for _ in n..guesses.len() {
            barrier.wait();
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    // Only five guesses were ever compared with the secret; all others met the lock.
    let compared = checked
        .iter()
        .filter(|r| matches!(r, Err(Error::WrongCode { .. })))
        .count()
        + 1;
    assert_eq!(compared, 5, "{checked:?}");
    assert_eq!(portal.record(&user).run().unwrap().failures().consecutive(), 5);
}

/// AuthQuake (2024): the failure count lived in the session, so opening a new
/// session reset it and brute force could go on for ever.
#[test]
fn a_new_session_does_not_reset_the_failure_count() {
    let clock = ManualClock::at(T0);
    let store: Arc<dyn TestStore> = flows::memory();
    let user = UserId::customer("c1");
    let (phone, _) = enrol(
        flows::Executor::Blocking,
        &portal_on(store.clone(), &clock),
        &clock,
        &user,
    );
    let wrong = wrong_code_for(&phone, &clock);
    // Every attempt from a brand-new driver (a new session, a new app instance).
    for attempt in 1..=4 {
        let fresh = portal_on(store.clone(), &clock);
        assert!(
            matches!(fresh.verify_sign_in(&user, &wrong).run(), Err(Error::WrongCode { attempts_left: Some(l) }) if l == 5 - attempt)
        );
    }
    let fresh = portal_on(store.clone(), &clock);
    assert!(matches!(
        fresh.verify_sign_in(&user, &wrong).run(),
        Err(Error::LockedOut { until: Some(_) })
    ));
    let fresh = portal_on(store, &clock);
    assert!(matches!(
        fresh.verify_sign_in(&user, &phone.code(&clock)).run(),
        Err(Error::LockedOut { .. })
    ));
}

/// A backup code redeemed by two requests at once must count once.
#[test]
fn a_backup_code_used_twice_in_parallel_is_accepted_once() {
    let (portal, clock) = setup();
    for n in 0..10 {
        // A fresh user each round: the losing duplicates count as failures and would lock the next round.
        let user = UserId::customer(format!("c{n}"));
        let (_, codes) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
        let barrier = Barrier::new(16);
        let accepted = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        portal.verify_sign_in(&user, &codes[n]).run().is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok())
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(accepted, 1, "round {n}");
        assert_eq!(
            portal.record(&user).run().unwrap().backup_codes().unwrap().remaining(),
            9
        );
    }
}

/// Gogs CVE-2025-64175: a recovery code was looked up without the user, so one
/// user's code unlocked another account.
#[test]
fn one_users_backup_code_is_refused_for_another_user() {
    let (portal, clock) = setup();
    let alice = UserId::customer("alice");
    let mallory = UserId::customer("mallory");
    let (_, alice_codes) = enrol(flows::Executor::Blocking, &portal, &clock, &alice);
    enrol(flows::Executor::Blocking, &portal, &clock, &mallory);
    for code in &alice_codes {
        assert!(matches!(
            portal.verify_sign_in(&mallory, code).run(),
            Err(Error::WrongCode { .. } | Error::LockedOut { .. })
        ));
    }
    // Alice's codes are untouched and still hers.
    portal.verify_sign_in(&alice, &alice_codes[0]).run().unwrap();
}

/// MISP #10116: the OTP secret was written to logs. Nothing this crate prints
/// or returns as an error or event may carry a secret, a code or a backup code.
#[test]
fn secrets_and_codes_never_appear_in_debug_display_errors_or_events() {
    let (portal, clock) = setup();
    let user = UserId::customer("c1");
    let session = flows::password_step(flows::Executor::Blocking, &portal, &user);
    let started = portal
        .start_enrolment(&user, &session, "c1", "phone", EnrolmentOptions::default())
        .run()
        .unwrap();
    let secret = started.uri.secret().clone();
    let phone = Phone::scan(&started.uri);
    let code = phone.code(&clock);
    let confirmed = portal.confirm_enrolment(&user, &session, &code).run().unwrap();
    let codes: Vec<String> = confirmed
        .backup_codes
        .as_ref()
        .unwrap()
        .expose()
        .map(str::to_owned)
        .collect();

    let mut shown = vec![
        format!("{started:?}"),
        format!("{confirmed:?}"),
        format!("{secret:?}"),
        format!("{:?}", started.uri),
        format!("{:?}", portal.record(&user).run().unwrap()),
        format!("{:?}", portal.record(&user).run().unwrap().authenticators()),
        format!("{:?}", Totp::new(&secret, TotpParams::standard())),
        format!(
            "{:?}",
            portal_mfa::otp::Code::parse(&code, portal_mfa::otp::Digits::SIX).unwrap()
        ),
    ];
    // Every error path a code or secret passes through.
    let errors = [
        portal.verify_sign_in(&user, &code).run().unwrap_err(),
        portal.verify_sign_in(&user, &codes[0][..10]).run().unwrap_err(),
        portal.confirm_enrolment(&user, &session, &code).run().unwrap_err(),
        Secret::from_base32(&format!("{}!", secret.to_base32().as_str())).unwrap_err(),
        portal_mfa::otp::OtpAuthUri::parse(&started.uri.to_uri().replace("issuer=", "issuer=x")).unwrap_err(),
        portal_mfa::otp::Code::parse(&format!("{code}0"), portal_mfa::otp::Digits::SIX).unwrap_err(),
    ];
    shown.extend(errors.iter().map(|e| format!("{e} {e:?}")));
    // A trusted browser: its token in no answer, record, listing, error or event.
    portal
        .update_policy(&ADMIN, |p| p.with_trusted_browser_days(30))
        .run()
        .unwrap();
    clock.advance(30);
    let stamp = portal.verify_sign_in(&user, &phone.code(&clock)).run().unwrap().session;
    let trusted = portal.trust_browser(&user, &stamp, "Firefox").run().unwrap();
    let token = trusted.token.expose().to_owned();
    shown.push(format!("{trusted:?}"));
    shown.push(format!("{:?}", portal.record(&user).run().unwrap()));
    shown.push(format!("{:?}", portal.trusted_browsers(&user).run().unwrap()));
    shown.push(format!("{:?}", portal.begin_sign_in_with_browser(&user, &token).run()));
    let wrong = portal
        .begin_sign_in_with_browser(&user, &token[..51])
        .run()
        .unwrap_err();
    shown.push(format!("{wrong} {wrong:?}"));
    portal.verify_sign_in(&user, &codes[1]).run().unwrap();
    portal
        .admin_reset(&ADMIN, &user, ResetReason::LostDevice, ResetMode::default())
        .run()
        .unwrap();
    for event in portal
        .audit_events(portal_mfa::audit::EventQuery::portal(portal.id()))
        .run()
        .unwrap()
        .items
    {
        shown.push(format!("{event:?}"));
    }
    let base32 = secret.to_base32().to_string();
    let hex: String = secret.expose_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let bytes = format!("{:?}", secret.expose_bytes());
    for text in &shown {
        assert!(!text.contains(&base32[..16]), "secret (base32) in {text}");
        assert!(!text.to_lowercase().contains(&hex[..16]), "secret (hex) in {text}");
        assert!(!text.contains(&bytes[1..bytes.len() / 2]), "secret (bytes) in {text}");
        assert!(
            !text.contains(&format!("\"{code}\"")) && !text.contains(&format!("({code})")),
            "code in {text}"
        );
        for c in &codes {
            assert!(!text.contains(&c[..9]), "backup code in {text}");
        }
        assert!(!text.contains(&token[..16]), "trusted-browser token in {text}");
    }
}

/// A portal trusting browsers for 30 days, with `user` enrolled and one
/// browser trusted after a code; the phone, the backup codes and the token.
fn trusting(portal: &flows::TestPortal, clock: &ManualClock, user: &UserId) -> (Phone, Vec<String>, String) {
    portal
        .update_policy(&ADMIN, |p| p.with_trusted_browser_days(30))
        .run()
        .unwrap();
    let (phone, codes) = enrol(flows::Executor::Blocking, portal, clock, user);
    let stamp = portal.verify_sign_in(user, &phone.code(clock)).run().unwrap().session;
    let issued = portal.trust_browser(user, &stamp, "Chrome").run().unwrap();
    flows::issued(issued.token.expose());
    clock.advance(30);
    (phone, codes, issued.token.expose().to_owned())
}

fn skips_the_code(portal: &flows::TestPortal, user: &UserId, token: &str) -> bool {
    matches!(
        portal.begin_sign_in_with_browser(user, token).run(),
        Ok(SignInStep::TrustedBrowser { .. })
    )
}

/// Vaultwarden #6929: the remember token was refreshed on each use, so a
/// browser used often enough was remembered forever.
#[test]
fn vaultwarden_6929_use_never_extends_a_trusted_browser() {
    let (portal, clock) = setup();
    let user = UserId::customer("c1");
    let (_, _, token) = trusting(&portal, &clock, &user);
    let expires = portal.trusted_browsers(&user).run().unwrap()[0].expires_at();
    // Used every hour up to its last second, and nothing moves its end.
    while portal_mfa::Clock::now(&clock) + 3_600 < expires {
        clock.advance(3_600);
        assert!(skips_the_code(&portal, &user, &token));
        assert_eq!(portal.trusted_browsers(&user).run().unwrap()[0].expires_at(), expires);
    }
    clock.set(expires - 1);
    assert!(skips_the_code(&portal, &user, &token));
    clock.set(expires);
    assert!(!skips_the_code(&portal, &user, &token));
}

/// Vaultwarden #7682: a remembered browser survived a password change, TOTP
/// removal, re-enrolment, disabling 2FA and recovery-code use, for up to 30 days.
#[test]
fn vaultwarden_7682_a_trusted_browser_ends_with_every_change_to_the_factors() {
    type Change = fn(&flows::TestPortal, &ManualClock, &UserId, &Phone, &[String]);
    let changes: [(&str, Change); 5] = [
        ("password change", |portal, _, user, _, _| {
            portal.end_sessions(user, None).run().map(drop).unwrap()
        }),
        ("TOTP removal (a second one stays)", |portal, clock, user, phone, _| {
            let session = flows::signed_in(flows::Executor::Blocking, portal, clock, user, phone);
            let proof = phone.code(clock);
            let options = EnrolmentOptions::default().with_proof(&proof);
            let started = portal
                .start_enrolment(user, &session, "c1", "spare", options)
                .run()
                .unwrap();
            let spare = Phone::scan(&started.uri);
            let id = portal
                .confirm_enrolment(user, &session, &spare.code(clock))
                .run()
                .unwrap()
                .authenticator;
            clock.advance(30);
            portal
                .delete_authenticator(user, &session, id, &phone.code(clock))
                .run()
                .map(drop)
                .unwrap()
        }),
        ("re-enrolment after a reset", |portal, clock, user, _, _| {
            portal
                .admin_reset(&ADMIN, user, ResetReason::NewDevice, ResetMode::default())
                .run()
                .unwrap();
            enrol(flows::Executor::Blocking, portal, clock, user);
        }),
        ("2FA disabled, then enabled again", |portal, clock, user, phone, _| {
            let id = portal.record(user).run().unwrap().authenticators()[0].id();
            let session = flows::signed_in(flows::Executor::Blocking, portal, clock, user, phone);
            portal
                .delete_authenticator(user, &session, id, &phone.code(clock))
                .run()
                .map(drop)
                .unwrap();
            enrol(flows::Executor::Blocking, portal, clock, user);
        }),
        ("a recovery code used", |portal, _, user, _, codes| {
            portal.verify_sign_in(user, &codes[0]).run().map(drop).unwrap()
        }),
    ];
    for (change, apply) in changes {
        let (portal, clock) = setup();
        let user = UserId::customer("c1");
        let (phone, codes, token) = trusting(&portal, &clock, &user);
        assert!(skips_the_code(&portal, &user, &token), "{change}");
        apply(&portal, &clock, &user, &phone, &codes);
        assert!(portal.record(&user).run().unwrap().mfa_enabled(), "{change}");
        assert!(
            matches!(
                portal.begin_sign_in_with_browser(&user, &token).run(),
                Err(Error::UntrustedBrowser { .. })
            ),
            "the browser was still trusted after {change}"
        );
    }
}

/// authentik #2828: once the real user signed in, any browser could skip MFA.
/// Trust belongs to the one browser holding the token, never to the user.
#[test]
fn authentik_2828_another_browser_must_still_enter_a_code() {
    let (portal, clock) = setup();
    let user = UserId::customer("c1");
    let (_, _, token) = trusting(&portal, &clock, &user);
    assert!(skips_the_code(&portal, &user, &token));
    // A browser with no token is asked for a code; one with a made-up token is refused.
    assert!(matches!(
        portal.begin_sign_in(&user).run().unwrap(),
        SignInStep::EnterCode { .. }
    ));
    let made_up = "a".repeat(52);
    assert!(!skips_the_code(&portal, &user, &made_up));
    // Another user's sign-in gains nothing from this user's token.
    let other = UserId::customer("c2");
    trusting(&portal, &clock, &other);
    assert!(!skips_the_code(&portal, &other, &token));
}

/// A comparison that stops at the first match tells an attacker, by timing,
/// how close a guess was. Counted in instructions under valgrind (repeatable,
/// unlike wall time): verifying a right code and a wrong one costs the same.
#[test]
fn verification_does_the_same_work_for_right_and_wrong_codes() {
    let Some(ours_right) = instructions("ours-right") else {
        return;
    };
    let ours_wrong = instructions("ours-wrong").unwrap();
    let peer_right = instructions("peer-right").unwrap();
    let peer_wrong = instructions("peer-wrong").unwrap();
    let spread = |a: u64, b: u64| a.abs_diff(b) as f64 / a.max(b) as f64;
    eprintln!("instructions: ours {ours_right} / {ours_wrong}, totp-rs {peer_right} / {peer_wrong}");
    assert!(
        spread(ours_right, ours_wrong) < 0.002,
        "ours: {ours_right} vs {ours_wrong}"
    );
    // The method sees the leak in an early-exit comparison (totp-rs stops at the first match).
    assert!(
        spread(peer_right, peer_wrong) > 0.05,
        "totp-rs: {peer_right} vs {peer_wrong}"
    );
}

/// Runs `timing_worker` under callgrind; `None` (skipped) where valgrind is missing outside CI.
fn instructions(mode: &str) -> Option<u64> {
    let output = std::process::Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "timing_worker", "--ignored", "--test-threads=1"])
        .env("PORTAL_MFA_TIMING", mode)
        .output();
    let Ok(output) = output else {
        assert!(std::env::var("CI").is_err(), "valgrind is not installed (CI=true)");
        eprintln!("SKIPPED: valgrind is not installed");
        return None;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let collected = stderr.lines().find_map(|l| l.split("Collected : ").nth(1))?;
    Some(collected.trim().parse().unwrap())
}

#[test]
#[ignore = "run under valgrind by verification_does_the_same_work_for_right_and_wrong_codes"]
fn timing_worker() {
    let Ok(mode) = std::env::var("PORTAL_MFA_TIMING") else {
        return;
    };
    let key = [0x42u8; 20];
    let now = 1_763_800_000;
    let ours = Totp::new(&Secret::from_bytes(&key, 128).unwrap(), TotpParams::standard());
    let peer = totp_rs::Builder::new().with_secret(key.to_vec()).build().unwrap();
    // The oldest step of the window: where an early exit would save the most.
    let right = ours.generate(now - 30).unwrap().expose().to_string();
    let window: Vec<String> = (0..3)
        .map(|i| ours.generate(now - 30 + i * 30).unwrap().expose().to_string())
        .collect();
    let wrong = (0..)
        .map(|n: u32| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .unwrap();
    let code = if mode.ends_with("right") { &right } else { &wrong };
    for _ in 0..2_000 {
        if mode.starts_with("ours") {
            std::hint::black_box(
                ours.verify_str(std::hint::black_box(code), now, Window::default())
                    .unwrap(),
            );
        } else {
            std::hint::black_box(peer.check(std::hint::black_box(code), now));
        }
    }
}

/// An admin reset must leave nothing usable: no backup code, no authenticator
/// or its last used step, no pending secret.
#[test]
fn an_admin_reset_leaves_no_backup_code_or_used_step_behind() {
    let (portal, clock) = setup();
    let user = UserId::customer("c1");
    let (old_phone, old_codes) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
    let session = portal
        .verify_sign_in(&user, &old_phone.code(&clock))
        .run()
        .unwrap()
        .session;
    portal
        .start_enrolment(
            &user,
            &session,
            "c1",
            "spare",
            EnrolmentOptions::default().with_proof(&old_codes[0]),
        )
        .run()
        .unwrap();
    portal
        .admin_reset(
            &ADMIN,
            &user,
            ResetReason::SecurityIncident,
            ResetMode::ForceReenrolment,
        )
        .run()
        .unwrap();
    let record = portal.record(&user).run().unwrap();
    assert!(record.authenticators().is_empty() && record.pending().is_none() && record.backup_codes().is_none());
    assert_eq!(portal_mfa::store::RecordSummary::of(&record).authenticators, 0);
    let (new_phone, new_codes) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
    clock.advance(30);
    for code in &old_codes {
        assert!(
            portal.verify_sign_in(&user, code).run().is_err(),
            "old backup code survived the reset"
        );
    }
    assert!(matches!(
        portal.verify_sign_in(&user, &old_phone.code(&clock)).run(),
        Err(Error::WrongCode { .. } | Error::LockedOut { .. })
    ));
    portal
        .admin_reset(&ADMIN, &user, ResetReason::LockedOut, ResetMode::ForceReenrolment)
        .run()
        .unwrap();
    let (newest, _) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
    // The new authenticator's history starts at its own confirmation.
    portal.verify_sign_in(&user, &newest.code(&clock)).run().unwrap();
    let _ = (new_phone, new_codes);
}

/// With a sign-in challenge pending (the password was right, the code not yet
/// given), starting an enrolment must not let the password alone replace or add
/// a factor.
#[test]
fn enrolment_restarted_while_a_challenge_is_pending_needs_a_fresh_code() {
    let (portal, clock) = setup();
    let user = UserId::customer("c1");
    // A session of the user's, signed in earlier with a code: not a fresh one.
    let (phone, _, session) = flows::enrol_signed_in(flows::Executor::Blocking, &portal, &clock, &user);
    assert!(matches!(
        portal.begin_sign_in(&user).run().unwrap(),
        portal_mfa::SignInStep::EnterCode { .. }
    ));
    let id = portal.record(&user).run().unwrap().authenticators()[0].id();
    for base in [EnrolmentOptions::default(), EnrolmentOptions::default().replacing(id)] {
        let attempt = portal.start_enrolment(&user, &session, "c1", "attacker", base).run();
        assert!(matches!(attempt, Err(Error::ProofRequired)), "{attempt:?}");
        let wrong = wrong_code_for(&phone, &clock);
        let attempt = portal
            .start_enrolment(&user, &session, "c1", "attacker", base.with_proof(&wrong))
            .run();
        assert!(matches!(attempt, Err(Error::WrongCode { .. })));
    }
    let record = portal.record(&user).run().unwrap();
    assert!(record.pending().is_none());
    assert_eq!(record.authenticators().len(), 1);
    // A restarted enrolment replaces the pending secret: the first one stops working.
    let restart = || {
        let proof = phone.code(&clock);
        let options = EnrolmentOptions::default().with_proof(&proof);
        portal
            .start_enrolment(&user, &session, "c1", "new", options)
            .run()
            .unwrap()
    };
    let first = restart();
    clock.advance(30);
    let second = restart();
    let stale = Phone::scan(&first.uri).code(&clock);
    if stale != Phone::scan(&second.uri).code(&clock) {
        assert!(portal.confirm_enrolment(&user, &session, &stale).run().is_err());
    }
}

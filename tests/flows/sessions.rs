//! What a sign-in grants past the code check, on every store and executor:
//! session stamps that end with the factors that granted them, and trusted
//! browsers that skip the code until they expire or are revoked.

use std::sync::{Arc, Mutex};

use portal_mfa::admin::{ResetMode, ResetReason, UserQuery};
use portal_mfa::audit::{AuditEvent, EventKind};
use portal_mfa::session::{ForgetCause, SessionEndCause, SessionProof, TrustedBrowserIssued};
use portal_mfa::{EnrolmentOptions, Error, ManualClock, PolicyRefusal, SessionStamp, SignInStep, UserId};

use super::{ADMIN, Executor, Go, Phone, StoreFactory, T0, TestPortal, enrol, portal_on, setup, trail_of};

const DAY: u64 = 86_400;

/// A sign-in with the phone's code; answers the session's stamp.
fn sign_in(ex: Executor, portal: &TestPortal, clock: &ManualClock, user: &UserId, phone: &Phone) -> SessionStamp {
    clock.advance(30);
    portal.verify_sign_in(user, &phone.code(clock)).go(ex).unwrap().session
}

fn good(ex: Executor, portal: &TestPortal, user: &UserId, stamp: &SessionStamp) -> bool {
    match portal.check_session(user, stamp).go(ex) {
        Ok(()) => true,
        Err(Error::SessionEnded) => false,
        Err(e) => panic!("a session check failed: {e}"),
    }
}

fn trust_for(ex: Executor, portal: &TestPortal, days: u8) {
    portal
        .update_policy(&ADMIN, move |p| p.with_trusted_browser_days(days))
        .go(ex)
        .unwrap();
}

/// Signs in with a code and trusts the browser.
fn trusted_browser(
    ex: Executor,
    portal: &TestPortal,
    clock: &ManualClock,
    user: &UserId,
    phone: &Phone,
) -> TrustedBrowserIssued {
    let stamp = sign_in(ex, portal, clock, user, phone);
    let issued = portal.trust_browser(user, &stamp, "Firefox on Linux").go(ex).unwrap();
    super::issued(issued.token.expose());
    issued
}

/// What a browser presenting `token` is told at sign-in.
fn with_browser(ex: Executor, portal: &TestPortal, user: &UserId, token: &str) -> Result<SignInStep, Error> {
    portal.begin_sign_in_with_browser(user, token).go(ex)
}

fn skips_the_code(ex: Executor, portal: &TestPortal, user: &UserId, token: &str) -> bool {
    match with_browser(ex, portal, user, token) {
        Ok(SignInStep::TrustedBrowser { .. }) => true,
        Err(Error::UntrustedBrowser { .. }) => false,
        other => panic!("unexpected answer to a trusted-browser sign-in: {other:?}"),
    }
}

fn session_end_causes(trail: &[AuditEvent]) -> Vec<SessionEndCause> {
    trail
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::SessionsEnded { cause, .. } => Some(cause),
            _ => None,
        })
        .collect()
}

pub fn a_stamp_holds_until_a_factor_is_taken_away_and_the_changing_session_keeps_going(
    make: &StoreFactory,
    ex: Executor,
) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let laptop = sign_in(ex, &portal, &clock, &user, &phone);
    let tablet = sign_in(ex, &portal, &clock, &user, &phone);
    assert_eq!(laptop.proof(), SessionProof::Code);
    assert!(good(ex, &portal, &user, &laptop) && good(ex, &portal, &user, &tablet));
    // A second authenticator takes nothing away: every session goes on.
    clock.advance(30);
    let proof = phone.code(&clock);
    let options = EnrolmentOptions::default().with_proof(&proof);
    let started = portal
        .start_enrolment(&user, &laptop, "c1", "spare", options)
        .go(ex)
        .unwrap();
    let spare = Phone::scan(&started.uri);
    let confirmed = portal
        .confirm_enrolment(&user, &laptop, &spare.code(&clock))
        .go(ex)
        .unwrap();
    assert!(good(ex, &portal, &user, &laptop) && good(ex, &portal, &user, &tablet));
    assert!(good(ex, &portal, &user, &confirmed.session));
    // Deleting one ends every session but the one that proved the fresh code.
    clock.advance(30);
    let kept = portal
        .delete_authenticator(&user, &confirmed.session, confirmed.authenticator, &phone.code(&clock))
        .go(ex)
        .unwrap();
    assert!(good(ex, &portal, &user, &kept));
    assert!(!good(ex, &portal, &user, &laptop) && !good(ex, &portal, &user, &tablet));
    let trail = trail_of(ex, &portal, &user);
    assert_eq!(session_end_causes(&trail), [SessionEndCause::AuthenticatorRemoved]);
}

pub fn admin_reset_ends_every_session_in_either_mode(make: &StoreFactory, ex: Executor) {
    for mode in [ResetMode::ForceReenrolment, ResetMode::RemoveOnly] {
        let (portal, clock) = setup(make);
        let user = UserId::customer("c1");
        let (phone, _) = enrol(ex, &portal, &clock, &user);
        let session = sign_in(ex, &portal, &clock, &user, &phone);
        portal
            .admin_reset(&ADMIN, &user, ResetReason::LostDevice, mode)
            .go(ex)
            .unwrap();
        assert!(!good(ex, &portal, &user, &session), "{mode:?}");
        let trail = trail_of(ex, &portal, &user);
        assert_eq!(session_end_causes(&trail), [SessionEndCause::AdminReset], "{mode:?}");
    }
}

pub fn replacing_the_authenticator_ends_the_other_sessions(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let old_session = sign_in(ex, &portal, &clock, &user, &phone);
    let record = portal.record(&user).go(ex).unwrap();
    let old = record.authenticators()[0].id();
    clock.advance(30);
    let proof = phone.code(&clock);
    let options = EnrolmentOptions::default().replacing(old).with_proof(&proof);
    let started = portal
        .start_enrolment(&user, &old_session, "c1", "new phone", options)
        .go(ex)
        .unwrap();
    // Until the new one is confirmed, nothing is taken away.
    assert!(good(ex, &portal, &user, &old_session));
    let new_phone = Phone::scan(&started.uri);
    let confirmed = portal
        .confirm_enrolment(&user, &old_session, &new_phone.code(&clock))
        .go(ex)
        .unwrap();
    assert!(good(ex, &portal, &user, &confirmed.session));
    assert!(!good(ex, &portal, &user, &old_session));
    let trail = trail_of(ex, &portal, &user);
    assert_eq!(session_end_causes(&trail), [SessionEndCause::AuthenticatorReplaced]);
}

pub fn turning_mfa_off_and_regenerating_backup_codes_end_the_other_sessions(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let other = sign_in(ex, &portal, &clock, &user, &phone);
    let here = sign_in(ex, &portal, &clock, &user, &phone);
    clock.advance(30);
    let regenerated = portal
        .regenerate_backup_codes(&user, &here, &phone.code(&clock))
        .go(ex)
        .unwrap();
    super::issued_all(regenerated.codes.expose());
    assert!(good(ex, &portal, &user, &regenerated.session));
    assert!(!good(ex, &portal, &user, &other));
    let other = sign_in(ex, &portal, &clock, &user, &phone);
    let id = portal.record(&user).go(ex).unwrap().authenticators()[0].id();
    clock.advance(30);
    let kept = portal
        .delete_authenticator(&user, &regenerated.session, id, &phone.code(&clock))
        .go(ex)
        .unwrap();
    assert!(!portal.record(&user).go(ex).unwrap().mfa_enabled());
    assert!(good(ex, &portal, &user, &kept));
    assert!(!good(ex, &portal, &user, &other));
    let trail = trail_of(ex, &portal, &user);
    assert_eq!(
        session_end_causes(&trail),
        [SessionEndCause::BackupCodesRegenerated, SessionEndCause::MfaTurnedOff]
    );
}

pub fn the_host_ends_sessions_for_what_only_it_knows(make: &StoreFactory, ex: Executor) {
    let clock = ManualClock::at(T0);
    let heard: Arc<Mutex<Vec<AuditEvent>>> = Arc::default();
    let sink = heard.clone();
    let portal = portal_on(make(), &clock).with_notifier(move |e: &AuditEvent| sink.lock().unwrap().push(e.clone()));
    // A user without MFA has sessions too: a password change must end them.
    let plain = UserId::customer("no-mfa");
    let SignInStep::NoMfaNeeded { session: here } = portal.begin_sign_in(&plain).go(ex).unwrap() else {
        panic!("MFA is off by default");
    };
    let SignInStep::NoMfaNeeded { session: elsewhere } = portal.begin_sign_in(&plain).go(ex).unwrap() else {
        panic!("MFA is off by default");
    };
    assert_eq!(here.proof(), SessionProof::NoSecondFactor);
    // The password changed in `here`: it stays, every other session ends.
    let renewed = portal.end_sessions(&plain, Some(&here)).go(ex).unwrap().unwrap();
    assert!(good(ex, &portal, &plain, &renewed) && !good(ex, &portal, &plain, &here));
    assert!(!good(ex, &portal, &plain, &elsewhere));
    assert_eq!((renewed.proof(), renewed.proven_at()), (here.proof(), here.proven_at()));
    // A stale session cannot keep itself.
    assert!(matches!(
        portal.end_sessions(&plain, Some(&here)).go(ex),
        Err(Error::SessionEnded)
    ));
    // The account is disabled: every session ends.
    assert_eq!(portal.end_sessions(&plain, None).go(ex).unwrap(), None);
    assert!(!good(ex, &portal, &plain, &renewed));
    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 2, "the user hears each time: {heard:?}");
    assert!(heard.iter().all(|e| matches!(
        e.kind,
        EventKind::SessionsEnded {
            cause: SessionEndCause::Host,
            ..
        }
    )));
}

pub fn a_grace_sign_in_has_a_stamp_and_a_reset_ends_it(make: &StoreFactory, ex: Executor) {
    let (portal, _clock) = setup(make);
    let grace = portal_mfa::Grace::new(None, Some(3));
    portal
        .set_enforcement(&ADMIN, portal_mfa::Enforcement::Enforced { grace: Some(grace) })
        .go(ex)
        .unwrap();
    let user = UserId::customer("c1");
    let spent = portal.complete_grace_sign_in(&user).go(ex).unwrap();
    assert_eq!(spent.session.proof(), SessionProof::NoSecondFactor);
    assert!(good(ex, &portal, &user, &spent.session));
    portal
        .admin_reset(&ADMIN, &user, ResetReason::SecurityIncident, ResetMode::default())
        .go(ex)
        .unwrap();
    assert!(!good(ex, &portal, &user, &spent.session));
}

pub fn a_trusted_browser_skips_the_code_until_a_fixed_expiry(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    // Off by default.
    let stamp = sign_in(ex, &portal, &clock, &user, &phone);
    assert!(matches!(
        portal.trust_browser(&user, &stamp, "x").go(ex),
        Err(Error::NotAllowed(PolicyRefusal::TrustedBrowsersOff))
    ));
    trust_for(ex, &portal, 30);
    let issued = trusted_browser(ex, &portal, &clock, &user, &phone);
    let trusted_at = portal_mfa::Clock::now(&clock);
    assert_eq!(issued.expires_at, trusted_at + 30 * DAY);
    assert!(issued.token.expose().len() >= 26, "at least 128 bits");
    // Used every day, it still ends 30 days after it was trusted.
    for day in 1..30 {
        clock.set(trusted_at + day * DAY);
        match with_browser(ex, &portal, &user, issued.token.expose()).unwrap() {
            SignInStep::TrustedBrowser { browser, session } => {
                assert_eq!(browser, issued.browser);
                assert_eq!(session.proof(), SessionProof::TrustedBrowser(issued.browser));
                assert!(good(ex, &portal, &user, &session));
            }
            other => panic!("day {day}: {other:?}"),
        }
    }
    // A use within the hour of the last one recorded is a read: nothing is written.
    clock.set(trusted_at + 29 * DAY + 1_800);
    let before = trail_of(ex, &portal, &user).len();
    assert!(skips_the_code(ex, &portal, &user, issued.token.expose()));
    assert_eq!(trail_of(ex, &portal, &user).len(), before);
    let listed = portal.trusted_browsers(&user).go(ex).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label(), "Firefox on Linux");
    assert_eq!(listed[0].created_at(), trusted_at);
    assert_eq!(listed[0].last_used_at(), Some(trusted_at + 29 * DAY));
    assert_eq!(listed[0].expires_at(), trusted_at + 30 * DAY);
    clock.set(trusted_at + 30 * DAY);
    assert!(!skips_the_code(ex, &portal, &user, issued.token.expose()));
    assert!(portal.trusted_browsers(&user).go(ex).unwrap().is_empty());
    // The admin list counted it (until the record's next change drops it).
    let page = portal.users(UserQuery::new()).go(ex).unwrap();
    assert_eq!(page.items[0].trusted_browsers, 1);
}

pub fn everything_that_ends_sessions_forgets_trusted_browsers(make: &StoreFactory, ex: Executor) {
    type Revoke = fn(Executor, &TestPortal, &ManualClock, &UserId, &Phone, &[String]);
    let causes: [(&str, Revoke); 8] = [
        ("admin reset", |ex, portal, _, user, _, _| {
            portal
                .admin_reset(&ADMIN, user, ResetReason::LostDevice, ResetMode::RemoveOnly)
                .go(ex)
                .map(drop)
                .unwrap()
        }),
        ("regenerated backup codes", |ex, portal, clock, user, phone, _| {
            let here = sign_in(ex, portal, clock, user, phone);
            clock.advance(30);
            let new = portal
                .regenerate_backup_codes(user, &here, &phone.code(clock))
                .go(ex)
                .unwrap();
            super::issued_all(new.codes.expose());
        }),
        ("a backup code used", |ex, portal, _, user, _, codes| {
            portal.verify_sign_in(user, &codes[0]).go(ex).map(drop).unwrap()
        }),
        ("host ends sessions", |ex, portal, _, user, _, _| {
            portal.end_sessions(user, None).go(ex).map(drop).unwrap()
        }),
        ("forget all", |ex, portal, clock, user, phone, _| {
            let here = sign_in(ex, portal, clock, user, phone);
            assert_eq!(portal.forget_browsers(user, &here).go(ex).unwrap(), 1)
        }),
        ("forget this one", |ex, portal, clock, user, phone, _| {
            let here = sign_in(ex, portal, clock, user, phone);
            let id = portal.trusted_browsers(user).go(ex).unwrap()[0].id();
            assert_eq!(portal.forget_browser(user, &here, id).go(ex).unwrap(), 1);
            assert!(matches!(
                portal.forget_browser(user, &here, id).go(ex),
                Err(Error::UnknownBrowser)
            ));
        }),
        ("trusting turned off", |ex, portal, _, _, _, _| trust_for(ex, portal, 0)),
        ("MFA turned off, then on again", |ex, portal, clock, user, phone, _| {
            let id = portal.record(user).go(ex).unwrap().authenticators()[0].id();
            let here = sign_in(ex, portal, clock, user, phone);
            clock.advance(30);
            portal
                .delete_authenticator(user, &here, id, &phone.code(clock))
                .go(ex)
                .unwrap();
            enrol(ex, portal, clock, user);
        }),
    ];
    for (cause, revoke) in causes {
        let (portal, clock) = setup(make);
        trust_for(ex, &portal, 30);
        let user = UserId::customer("c1");
        let (phone, codes) = enrol(ex, &portal, &clock, &user);
        let issued = trusted_browser(ex, &portal, &clock, &user, &phone);
        assert!(skips_the_code(ex, &portal, &user, issued.token.expose()), "{cause}");
        revoke(ex, &portal, &clock, &user, &phone, &codes);
        let record = portal.record(&user).go(ex).unwrap();
        if !record.mfa_enabled() {
            // Nothing to skip: the token is not even read.
            assert!(!matches!(
                with_browser(ex, &portal, &user, issued.token.expose()),
                Ok(SignInStep::TrustedBrowser { .. })
            ));
            continue;
        }
        assert!(!skips_the_code(ex, &portal, &user, issued.token.expose()), "{cause}");
        assert!(portal.trusted_browsers(&user).go(ex).unwrap().is_empty(), "{cause}");
        // The refusal was counted like a wrong code.
        assert_eq!(
            portal.record(&user).go(ex).unwrap().failures().consecutive(),
            1,
            "{cause}"
        );
    }
}

pub fn a_lower_lifetime_shortens_trusted_browsers_and_a_higher_one_never_lengthens_them(
    make: &StoreFactory,
    ex: Executor,
) {
    let (portal, clock) = setup(make);
    trust_for(ex, &portal, 30);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let issued = trusted_browser(ex, &portal, &clock, &user, &phone);
    let trusted_at = portal_mfa::Clock::now(&clock);
    trust_for(ex, &portal, 2);
    assert_eq!(
        portal.trusted_browsers(&user).go(ex).unwrap()[0].expires_at(),
        trusted_at + 2 * DAY
    );
    trust_for(ex, &portal, 180);
    assert_eq!(
        portal.trusted_browsers(&user).go(ex).unwrap()[0].expires_at(),
        trusted_at + 30 * DAY
    );
    trust_for(ex, &portal, 2);
    clock.set(trusted_at + 2 * DAY - 1);
    assert!(skips_the_code(ex, &portal, &user, issued.token.expose()));
    clock.set(trusted_at + 2 * DAY);
    assert!(!skips_the_code(ex, &portal, &user, issued.token.expose()));
    assert!(matches!(
        portal
            .update_policy(&ADMIN, |p| p.with_trusted_browser_days(181))
            .go(ex),
        Err(Error::InvalidPolicy {
            field: "trusted_browser_days",
            ..
        })
    ));
}

pub fn a_token_not_this_users_is_a_failed_factor_counted_toward_lockout(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    trust_for(ex, &portal, 30);
    let (alice, bob) = (UserId::customer("alice"), UserId::customer("bob"));
    let (alice_phone, _) = enrol(ex, &portal, &clock, &alice);
    let (bob_phone, _) = enrol(ex, &portal, &clock, &bob);
    let alices = trusted_browser(ex, &portal, &clock, &alice, &alice_phone);
    trusted_browser(ex, &portal, &clock, &bob, &bob_phone);
    // Alice's token in Bob's sign-in, garbage, an empty one, one a character short.
    let short = &alices.token.expose()[1..];
    let tries = [alices.token.expose(), "not a token", "", short];
    for (i, token) in tries.iter().enumerate() {
        let answer = with_browser(ex, &portal, &bob, token);
        let left = 4 - i as u32;
        assert!(
            matches!(answer, Err(Error::UntrustedBrowser { attempts_left: Some(n) }) if n == left),
            "{answer:?}"
        );
    }
    assert!(matches!(
        with_browser(ex, &portal, &bob, "0".repeat(52).as_str()),
        Err(Error::LockedOut { .. })
    ));
    // Locked means locked, even for a browser Bob trusts.
    assert!(matches!(
        portal.begin_sign_in(&bob).go(ex).unwrap(),
        SignInStep::LockedOut { until: Some(_) }
    ));
    let trail = trail_of(ex, &portal, &bob);
    let refused = trail
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TrustedBrowserRefused))
        .count();
    assert_eq!(refused, 5);
    // Alice's token still works for Alice.
    assert!(skips_the_code(ex, &portal, &alice, alices.token.expose()));
}

pub fn only_a_fresh_code_may_trust_a_browser(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    trust_for(ex, &portal, 30);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let issued = trusted_browser(ex, &portal, &clock, &user, &phone);
    // A session the trusted browser signed in cannot renew its own trust.
    let Ok(SignInStep::TrustedBrowser { session, .. }) = with_browser(ex, &portal, &user, issued.token.expose()) else {
        panic!("the browser is trusted");
    };
    assert!(matches!(
        portal.trust_browser(&user, &session, "again").go(ex),
        Err(Error::ProofRequired)
    ));
    // Nor can a code proven more than ten minutes ago, nor a session that has ended.
    let stamp = sign_in(ex, &portal, &clock, &user, &phone);
    clock.advance(SessionStamp::TRUST_AFTER_CODE_SECS + 1);
    assert!(matches!(
        portal.trust_browser(&user, &stamp, "late").go(ex),
        Err(Error::ProofRequired)
    ));
    let stamp = sign_in(ex, &portal, &clock, &user, &phone);
    portal.end_sessions(&user, None).go(ex).unwrap();
    assert!(matches!(
        portal.trust_browser(&user, &stamp, "ended").go(ex),
        Err(Error::SessionEnded)
    ));
    // Nor a user without MFA.
    let plain = UserId::customer("plain");
    let SignInStep::NoMfaNeeded { session } = portal.begin_sign_in(&plain).go(ex).unwrap() else {
        panic!("MFA is off");
    };
    assert!(matches!(
        portal.trust_browser(&plain, &session, "x").go(ex),
        Err(Error::ProofRequired)
    ));
}

pub fn a_user_keeps_at_most_five_browsers_and_the_oldest_makes_room(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    trust_for(ex, &portal, 30);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let tokens: Vec<TrustedBrowserIssued> = (0..6)
        .map(|_| trusted_browser(ex, &portal, &clock, &user, &phone))
        .collect();
    let listed = portal.trusted_browsers(&user).go(ex).unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(
        listed.iter().map(|b| b.id()).collect::<Vec<_>>(),
        tokens[1..].iter().map(|t| t.browser).collect::<Vec<_>>()
    );
    assert!(!skips_the_code(ex, &portal, &user, tokens[0].token.expose()));
    for t in &tokens[1..] {
        assert!(skips_the_code(ex, &portal, &user, t.token.expose()));
    }
    let trail = trail_of(ex, &portal, &user);
    assert!(trail.iter().any(|e| matches!(
        e.kind,
        EventKind::BrowsersForgotten {
            count: 1,
            cause: ForgetCause::Evicted
        }
    )));
    let page = portal.users(UserQuery::new()).go(ex).unwrap();
    assert_eq!(page.items[0].trusted_browsers, 5);
}

/// The tag of `stamp` swapped for another of the same length: what a forger writes.
fn forged(stamp: &SessionStamp, edit: impl Fn(&str) -> String) -> SessionStamp {
    edit(&stamp.to_string()).parse().unwrap()
}

pub fn a_stamp_is_good_only_as_this_portal_issued_it_to_this_user(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    trust_for(ex, &portal, 30);
    let (bob, eve) = (UserId::customer("bob"), UserId::customer("eve"));
    let (phone, _) = enrol(ex, &portal, &clock, &bob);
    enrol(ex, &portal, &clock, &eve);
    let stamp = sign_in(ex, &portal, &clock, &bob, &phone);
    assert!(good(ex, &portal, &bob, &stamp));
    let text = stamp.to_string();
    assert!(
        text.len() <= SessionStamp::MAX_TEXT_LEN && text.starts_with("s2."),
        "{text}"
    );
    // The old plain form, and a truncated one, do not even read.
    let now = portal_mfa::Clock::now(&clock);
    for bad in [
        format!("s1.0.c.{now}"),
        text[..text.len() - 1].to_owned(),
        format!("{text}a"),
    ] {
        assert!(matches!(bad.parse::<SessionStamp>(), Err(Error::InvalidStamp)), "{bad}");
    }
    // Every edit of a field, and a made-up tag, reads but is refused: by the check and by a change.
    let (head, tag) = text.rsplit_once('.').unwrap();
    let flipped = |t: &str| -> String {
        let mut t: Vec<u8> = t.bytes().collect();
        t[0] = if t[0] == b'a' { b'b' } else { b'a' };
        String::from_utf8(t).unwrap()
    };
    let edits = [
        forged(&stamp, |_| format!("{head}.{}", flipped(tag))),
        forged(&stamp, |t| {
            t.replacen(&format!(".{}.", stamp.proven_at()), &format!(".{}.", now + 1), 1)
        }),
        forged(&stamp, |t| t.replacen(".c.", ".t1.", 1)),
        forged(&stamp, |t| t.replacen("s2.0.", "s2.1.", 1)),
    ];
    for edited in edits.iter().chain([&stamp]) {
        let answer = portal.check_session(&eve, edited).go(ex);
        assert!(
            matches!(answer, Err(Error::InvalidStamp)),
            "Bob's stamp for Eve: {answer:?}"
        );
    }
    for edited in &edits {
        assert!(matches!(
            portal.check_session(&bob, edited).go(ex),
            Err(Error::InvalidStamp)
        ));
        let trusted = portal.trust_browser(&bob, edited, "forged").go(ex);
        assert!(matches!(trusted, Err(Error::InvalidStamp)), "{trusted:?}");
    }
    assert!(matches!(
        portal.trust_browser(&eve, &stamp, "Bob's stamp").go(ex),
        Err(Error::InvalidStamp)
    ));
    assert!(portal.trusted_browsers(&bob).go(ex).unwrap().is_empty());
    assert!(portal.trusted_browsers(&eve).go(ex).unwrap().is_empty());
    // Another portal on the same store and keys does not take this portal's stamps.
    let other = portal_mfa::Portal::new(
        portal_mfa::PortalId::new("other-portal"),
        "Other",
        portal.store().clone(),
    )
    .unwrap()
    .with_keyring(super::keyring())
    .with_clock(clock.clone());
    assert!(matches!(
        other.check_session(&bob, &stamp).go(ex),
        Err(Error::InvalidStamp)
    ));
    assert!(good(ex, &portal, &bob, &stamp), "the genuine stamp is still good");
}

pub fn a_stamp_survives_a_restart_and_a_key_rotation_while_its_key_is_kept(make: &StoreFactory, ex: Executor) {
    let clock = ManualClock::at(T0);
    let store = make();
    let user = UserId::customer("c1");
    let first = portal_on(store.clone(), &clock);
    let (phone, _) = enrol(ex, &first, &clock, &user);
    let stamp = sign_in(ex, &first, &clock, &user, &phone);
    drop(first);
    let on = |keyring: portal_mfa::Keyring| {
        portal_mfa::Portal::new(portal_mfa::PortalId::new("acme-portal"), "Acme Portal", store.clone())
            .unwrap()
            .with_keyring(keyring)
            .with_clock(clock.clone())
    };
    let key = |byte: u8| [byte; 32];
    // The same keys after a restart; then a new current key with the old one kept.
    assert!(
        on(portal_mfa::Keyring::new("test-1", &key(0x5a)).unwrap())
            .check_session(&user, &stamp)
            .go(ex)
            .is_ok()
    );
    let rotated = portal_mfa::Keyring::new("test-2", &key(0x77))
        .unwrap()
        .with_old_key("test-1", &key(0x5a))
        .unwrap();
    let rotated = on(rotated);
    assert!(rotated.check_session(&user, &stamp).go(ex).is_ok());
    let renewed = rotated.end_sessions(&user, Some(&stamp)).go(ex).unwrap().unwrap();
    assert!(rotated.check_session(&user, &renewed).go(ex).is_ok());
    // Once the old key is gone, so are the stamps it tagged (the renewed one is under the new key).
    let without_old = on(portal_mfa::Keyring::new("test-2", &key(0x77)).unwrap());
    assert!(without_old.check_session(&user, &renewed).go(ex).is_ok());
    let old_current = portal_mfa::Keyring::new("test-1", &key(0x5a))
        .unwrap()
        .with_old_key("test-2", &key(0x77))
        .unwrap();
    let under_old = sign_in(ex, &on(old_current), &clock, &user, &phone);
    assert!(matches!(
        without_old.check_session(&user, &under_old).go(ex),
        Err(Error::InvalidStamp)
    ));
}

pub fn one_code_trusts_one_browser(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    trust_for(ex, &portal, 30);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let stamp = sign_in(ex, &portal, &clock, &user, &phone);
    portal.trust_browser(&user, &stamp, "first").go(ex).unwrap();
    for minute in 1..7 {
        clock.advance(60);
        let again = portal.trust_browser(&user, &stamp, &format!("browser {minute}")).go(ex);
        assert!(matches!(again, Err(Error::ProofRequired)), "{again:?}");
    }
    assert_eq!(portal.trusted_browsers(&user).go(ex).unwrap().len(), 1);
    // A new code trusts one more.
    let stamp = sign_in(ex, &portal, &clock, &user, &phone);
    portal.trust_browser(&user, &stamp, "second").go(ex).unwrap();
    assert_eq!(portal.trusted_browsers(&user).go(ex).unwrap().len(), 2);
}

pub fn a_session_a_trusted_browser_opened_ends_with_that_browser_for_any_cause(make: &StoreFactory, ex: Executor) {
    type Cause = fn(Executor, &TestPortal, &ManualClock, &UserId, &Phone, &[String], &SessionStamp);
    let causes: [(&str, Cause); 3] = [
        ("forgotten from another session", |ex, portal, _, user, _, _, other| {
            let browser = portal.trusted_browsers(user).go(ex).unwrap()[0].id();
            assert_eq!(portal.forget_browser(user, other, browser).go(ex).unwrap(), 1);
        }),
        ("a backup code used", |ex, portal, _, user, _, codes, _| {
            portal.verify_sign_in(user, &codes[0]).go(ex).unwrap();
        }),
        ("evicted by a sixth browser", |ex, portal, clock, user, phone, _, _| {
            for _ in 0..5 {
                trusted_browser(ex, portal, clock, user, phone);
            }
        }),
    ];
    for (cause, apply) in causes {
        let (portal, clock) = setup(make);
        trust_for(ex, &portal, 30);
        let user = UserId::customer("c1");
        let (phone, codes) = enrol(ex, &portal, &clock, &user);
        let issued = trusted_browser(ex, &portal, &clock, &user, &phone);
        let Ok(SignInStep::TrustedBrowser {
            session: by_browser, ..
        }) = with_browser(ex, &portal, &user, issued.token.expose())
        else {
            panic!("the browser is trusted");
        };
        assert_eq!(by_browser.browser(), Some(issued.browser));
        assert_eq!(by_browser.proof(), SessionProof::TrustedBrowser(issued.browser));
        let by_code = sign_in(ex, &portal, &clock, &user, &phone);
        assert!(good(ex, &portal, &user, &by_browser) && good(ex, &portal, &user, &by_code));
        apply(ex, &portal, &clock, &user, &phone, &codes, &by_code);
        assert!(
            !good(ex, &portal, &user, &by_browser),
            "{cause}: the browser's session lives on"
        );
        assert!(
            good(ex, &portal, &user, &by_code),
            "{cause}: a session signed in by code ended"
        );
        // And a session that ended changes nothing.
        let refused = portal.forget_browsers(&user, &by_browser).go(ex);
        assert!(matches!(refused, Err(Error::SessionEnded)), "{cause}: {refused:?}");
    }
}

pub fn a_session_that_ended_changes_nothing(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    trust_for(ex, &portal, 30);
    let user = UserId::customer("c1");
    let (phone, codes, enrolled) = super::enrol_signed_in(ex, &portal, &clock, &user);
    let stamp = sign_in(ex, &portal, &clock, &user, &phone);
    let id = portal.record(&user).go(ex).unwrap().authenticators()[0].id();
    portal.end_sessions(&user, None).go(ex).unwrap();
    let before = portal.record(&user).go(ex).unwrap();
    let events = trail_of(ex, &portal, &user).len();
    let proof = &codes[0];
    for ended in [stamp, enrolled] {
        let options = EnrolmentOptions::default().with_proof(proof);
        let answers = [
            portal
                .start_enrolment(&user, &ended, "c1", "new", options)
                .go(ex)
                .map(drop),
            portal.confirm_enrolment(&user, &ended, "123456").go(ex).map(drop),
            portal.cancel_enrolment(&user, &ended).go(ex),
            portal.delete_authenticator(&user, &ended, id, proof).go(ex).map(drop),
            portal.regenerate_backup_codes(&user, &ended, proof).go(ex).map(drop),
            portal.trust_browser(&user, &ended, "x").go(ex).map(drop),
            portal
                .forget_browser(&user, &ended, portal_mfa::session::BrowserId(1))
                .go(ex)
                .map(drop),
            portal.forget_browsers(&user, &ended).go(ex).map(drop),
            portal.end_sessions(&user, Some(&ended)).go(ex).map(drop),
        ];
        for (i, answer) in answers.iter().enumerate() {
            assert!(matches!(answer, Err(Error::SessionEnded)), "change {i}: {answer:?}");
        }
    }
    assert_eq!(
        format!("{:?}", portal.record(&user).go(ex).unwrap()),
        format!("{before:?}")
    );
    assert_eq!(trail_of(ex, &portal, &user).len(), events, "nothing was recorded");
    // The backup code that was offered as proof is unspent.
    portal.verify_sign_in(&user, proof).go(ex).unwrap();
}

pub fn the_enrolment_a_sign_in_requires_ends_with_a_reset_made_meanwhile(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    super::scenarios::enforce(ex, &portal);
    let user = UserId::customer("c1");
    let SignInStep::MustEnrol { session, .. } = portal.begin_sign_in(&user).go(ex).unwrap() else {
        panic!("an enforced policy makes a new user enrol");
    };
    assert_eq!(session.proof(), SessionProof::EnrolmentOnly);
    // Good for enrolling, and for nothing a signed-in session does.
    assert!(matches!(
        portal.check_session(&user, &session).go(ex),
        Err(Error::ProofRequired)
    ));
    assert!(matches!(
        portal.forget_browsers(&user, &session).go(ex),
        Err(Error::ProofRequired)
    ));
    assert!(matches!(
        portal.end_sessions(&user, Some(&session)).go(ex),
        Err(Error::ProofRequired)
    ));
    let phone = super::start_enrolment_with(ex, &portal, &user, &session);
    portal
        .admin_reset(
            &ADMIN,
            &user,
            ResetReason::SecurityIncident,
            ResetMode::ForceReenrolment,
        )
        .go(ex)
        .unwrap();
    // The enrolment begun before the reset cannot be confirmed, nor a new one started on its stamp.
    assert!(matches!(
        portal.confirm_enrolment(&user, &session, &phone.code(&clock)).go(ex),
        Err(Error::SessionEnded)
    ));
    assert!(matches!(
        portal
            .start_enrolment(&user, &session, "c1", "phone", EnrolmentOptions::default())
            .go(ex),
        Err(Error::SessionEnded)
    ));
    assert!(!portal.record(&user).go(ex).unwrap().mfa_enabled());
    // The next password step's stamp enrols.
    let (_, codes, signed_in) = super::enrol_signed_in(ex, &portal, &clock, &user);
    assert_eq!(codes.len(), 10);
    assert_eq!(signed_in.proof(), SessionProof::Code);
    assert!(good(ex, &portal, &user, &signed_in));
}

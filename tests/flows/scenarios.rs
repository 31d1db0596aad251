//! Every flow the product documents describe (the customer-portal MFA help
//! pages and two Reset MFA requests), written once against the harness and
//! run on each store and executor (`seed_flow_tests!` instantiates them).

use portal_mfa::admin::{ResetMode, ResetReason};
use portal_mfa::audit::{EventKind, Factor};
use portal_mfa::otp::{Secret, Totp};
use portal_mfa::{
    Enforcement, EnrolReason, EnrolmentOptions, Error, Grace, LockoutRule, PolicyRefusal, PortalPolicy, SignInMethod,
    SignInStep, UserId,
};

use std::sync::{Arc, Mutex};

use portal_mfa::ManualClock;

use super::{
    ADMIN, Executor, Go, Phone, StoreFactory, T0, TestPortal, enrol, enrol_signed_in, issued, password_step, portal_on,
    setup, trail_of,
};

// The scenarios past the code check live beside these, in one list below.
#[allow(unused_imports)]
pub use super::recovery::*;
#[allow(unused_imports)]
pub use super::sessions::*;

pub fn enforce(ex: Executor, portal: &TestPortal) {
    portal
        .set_enforcement(&ADMIN, Enforcement::Enforced { grace: None })
        .go(ex)
        .unwrap();
}

// ---------------------------------------------------------------- policy

pub fn mfa_is_off_by_default(make: &StoreFactory, ex: Executor) {
    let (portal, _) = setup(make);
    assert!(!portal.policy().go(ex).unwrap().is_enforced());
    assert!(matches!(
        portal.begin_sign_in(&UserId::customer("c1")).go(ex).unwrap(),
        SignInStep::NoMfaNeeded { .. }
    ));
}

pub fn enforced_mfa_sends_unenrolled_users_to_enrolment_after_password(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    enforce(ex, &portal);
    let user = UserId::customer("c1");
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::PolicyEnforced,
            ..
        }
    ));
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    // From then on, every sign-in asks for a code.
    for _ in 0..3 {
        assert!(matches!(
            portal.begin_sign_in(&user).go(ex).unwrap(),
            SignInStep::EnterCode { .. }
        ));
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
        clock.advance(30);
    }
}

pub fn enforcing_is_refused_for_saml_portal(make: &StoreFactory, ex: Executor) {
    let (portal, _) = setup(make);
    portal.set_sign_in_method(&ADMIN, SignInMethod::Saml).go(ex).unwrap();
    let refused = portal
        .set_enforcement(&ADMIN, Enforcement::Enforced { grace: None })
        .go(ex);
    assert!(
        matches!(refused, Err(Error::NotAllowed(PolicyRefusal::EnforcementWithSaml))),
        "{refused:?}"
    );
    assert!(!portal.policy().go(ex).unwrap().is_enforced());
    // And the other way round: an enforced portal cannot move to SAML.
    portal
        .set_sign_in_method(&ADMIN, SignInMethod::Password)
        .go(ex)
        .unwrap();
    enforce(ex, &portal);
    let refused = portal.set_sign_in_method(&ADMIN, SignInMethod::Saml).go(ex);
    assert!(matches!(
        refused,
        Err(Error::NotAllowed(PolicyRefusal::EnforcementWithSaml))
    ));
    assert_eq!(portal.policy().go(ex).unwrap().sign_in_method(), SignInMethod::Password);
}

pub fn vendor_and_customer_share_policy(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    enforce(ex, &portal);
    let customer = UserId::customer("acme-buyer");
    let vendor = UserId::vendor("acme-supplier");
    for user in [&customer, &vendor] {
        assert!(matches!(
            portal.begin_sign_in(user).go(ex).unwrap(),
            SignInStep::MustEnrol {
                reason: EnrolReason::PolicyEnforced,
                ..
            }
        ));
    }
    // Same identifier, different kinds: two users, two records.
    let (_, _) = enrol(ex, &portal, &clock, &UserId::customer("same-id"));
    assert!(matches!(
        portal.begin_sign_in(&UserId::vendor("same-id")).go(ex).unwrap(),
        SignInStep::MustEnrol { .. }
    ));
    // Resets work for either kind.
    for user in [&customer, &vendor] {
        enrol(ex, &portal, &clock, user);
        let summary = portal
            .admin_reset(&ADMIN, user, ResetReason::LostDevice, ResetMode::default())
            .go(ex)
            .unwrap();
        assert_eq!(summary.authenticators_removed, 1);
        assert!(matches!(
            portal.begin_sign_in(user).go(ex).unwrap(),
            SignInStep::MustEnrol {
                reason: EnrolReason::AdminReset,
                ..
            }
        ));
    }
}

pub fn self_configured_user_turns_mfa_on_from_my_account(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let other = UserId::customer("c2");
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::NoMfaNeeded { .. }
    ));
    let (phone, codes) = enrol(ex, &portal, &clock, &user);
    assert_eq!(codes.len(), 10);
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::EnterCode {
            backup_codes_remaining: 10,
            attempts_left: 5,
            authenticator_apps: 1,
            passkeys: 0,
            passkey: None,
        }
    ));
    portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
    // Only that user: the portal does not enforce anything.
    assert!(matches!(
        portal.begin_sign_in(&other).go(ex).unwrap(),
        SignInStep::NoMfaNeeded { .. }
    ));
}

// ---------------------------------------------------------------- enrolment

pub fn enrolment_works_by_qr_code_or_typed_key(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let by_qr = UserId::customer("qr");
    let session = password_step(ex, &portal, &by_qr);
    let started = portal
        .start_enrolment(&by_qr, &session, "qr@example.com", "phone", EnrolmentOptions::default())
        .go(ex)
        .unwrap();
    assert!(started.uri.qr_svg().unwrap().contains("<svg"));
    assert!(!started.uri.qr_terminal().unwrap().is_empty());
    portal
        .confirm_enrolment(&by_qr, &session, &Phone::scan(&started.uri).code(&clock))
        .go(ex)
        .unwrap();

    let by_hand = UserId::customer("typed");
    let session = password_step(ex, &portal, &by_hand);
    let started = portal
        .start_enrolment(
            &by_hand,
            &session,
            "typed@example.com",
            "phone",
            EnrolmentOptions::default(),
        )
        .go(ex)
        .unwrap();
    let typed_key = started.uri.secret().to_grouped_base32().to_lowercase();
    issued(started.uri.secret().to_base32().as_ref());
    let app = Totp::new(&Secret::from_base32(&typed_key).unwrap(), *started.uri.params());
    let code = app
        .generate(portal_mfa::Clock::now(&clock))
        .unwrap()
        .expose()
        .to_string();
    issued(&code);
    portal.confirm_enrolment(&by_hand, &session, &code).go(ex).unwrap();
    assert!(portal.record(&by_hand).go(ex).unwrap().mfa_enabled());
}

pub fn enrolment_is_active_only_after_a_valid_code(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    enforce(ex, &portal);
    let user = UserId::customer("c1");
    let session = password_step(ex, &portal, &user);
    let started = portal
        .start_enrolment(&user, &session, "c1", "phone", EnrolmentOptions::default())
        .go(ex)
        .unwrap();
    let phone = Phone::scan(&started.uri);
    let right = phone.code(&clock);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    assert!(matches!(
        portal.confirm_enrolment(&user, &session, wrong).go(ex),
        Err(Error::WrongCode { attempts_left: Some(4) })
    ));
    assert!(matches!(
        portal.confirm_enrolment(&user, &session, "12ab").go(ex),
        Err(Error::MalformedCode(_))
    ));
    // Not enabled yet: still sent to enrolment, and codes from the pending secret do not sign in.
    assert!(!portal.record(&user).go(ex).unwrap().mfa_enabled());
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::MustEnrol { .. }
    ));
    assert!(matches!(
        portal.verify_sign_in(&user, &right).go(ex),
        Err(Error::NotEnrolled)
    ));
    portal.confirm_enrolment(&user, &session, &right).go(ex).unwrap();
    assert!(portal.record(&user).go(ex).unwrap().mfa_enabled());
}

pub fn enrolment_expires_after_its_lifetime(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let session = password_step(ex, &portal, &user);
    let started = portal
        .start_enrolment(&user, &session, "c1", "phone", EnrolmentOptions::default())
        .go(ex)
        .unwrap();
    assert_eq!(started.expires_at, T0 + 600);
    clock.advance(600);
    let code = Phone::scan(&started.uri).code(&clock);
    assert!(matches!(
        portal.confirm_enrolment(&user, &session, &code).go(ex),
        Err(Error::EnrolmentExpired)
    ));
    assert!(matches!(
        portal.confirm_enrolment(&user, &session, &code).go(ex),
        Err(Error::NoPendingEnrolment)
    ));
}

pub fn restarting_enrolment_replaces_the_pending_secret(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let session = password_step(ex, &portal, &user);
    let first = portal
        .start_enrolment(&user, &session, "c1", "phone", EnrolmentOptions::default())
        .go(ex)
        .unwrap();
    let second = portal
        .start_enrolment(&user, &session, "c1", "phone", EnrolmentOptions::default())
        .go(ex)
        .unwrap();
    assert_ne!(first.uri.secret(), second.uri.secret());
    let stale = Phone::scan(&first.uri).code(&clock);
    let fresh = Phone::scan(&second.uri).code(&clock);
    if stale != fresh {
        assert!(matches!(
            portal.confirm_enrolment(&user, &session, &stale).go(ex),
            Err(Error::WrongCode { .. })
        ));
    }
    portal.confirm_enrolment(&user, &session, &fresh).go(ex).unwrap();
}

pub fn changing_authenticator_keeps_the_old_one_until_the_new_is_confirmed(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (old_phone, _, session) = enrol_signed_in(ex, &portal, &clock, &user);
    let old_id = portal.record(&user).go(ex).unwrap().authenticators()[0].id();
    // A password alone cannot swap the factor.
    let options = EnrolmentOptions::default().replacing(old_id);
    assert!(matches!(
        portal.start_enrolment(&user, &session, "c1", "new", options).go(ex),
        Err(Error::ProofRequired)
    ));
    let proof = old_phone.code(&clock);
    let options = EnrolmentOptions::default().replacing(old_id).with_proof(&proof);
    let started = portal
        .start_enrolment(&user, &session, "c1", "new", options)
        .go(ex)
        .unwrap();
    clock.advance(30);
    // Meanwhile the old phone still signs in.
    portal.verify_sign_in(&user, &old_phone.code(&clock)).go(ex).unwrap();
    let new_phone = Phone::scan(&started.uri);
    let confirmed = portal
        .confirm_enrolment(&user, &session, &new_phone.code(&clock))
        .go(ex)
        .unwrap();
    assert!(
        confirmed.backup_codes.is_none(),
        "MFA stayed on: the backup codes are kept"
    );
    clock.advance(30);
    let record = portal.record(&user).go(ex).unwrap();
    assert_eq!(record.authenticators().len(), 1);
    assert_eq!(record.authenticators()[0].label(), "new");
    assert!(matches!(
        portal.verify_sign_in(&user, &old_phone.code(&clock)).go(ex),
        Err(Error::WrongCode { .. })
    ));
    portal.verify_sign_in(&user, &new_phone.code(&clock)).go(ex).unwrap();
}

pub fn self_configured_user_deletes_authenticator_with_a_fresh_code(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _, session) = enrol_signed_in(ex, &portal, &clock, &user);
    let id = portal.record(&user).go(ex).unwrap().authenticators()[0].id();
    assert!(matches!(
        portal.delete_authenticator(&user, &session, id, "000000").go(ex),
        Err(Error::WrongCode { .. }) | Err(Error::ReplayedCode)
    ));
    portal
        .delete_authenticator(&user, &session, id, &phone.code(&clock))
        .go(ex)
        .unwrap();
    let record = portal.record(&user).go(ex).unwrap();
    assert!(!record.mfa_enabled() && record.backup_codes().is_none());
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::NoMfaNeeded { .. }
    ));
}

pub fn deleting_the_last_authenticator_is_refused_while_enforced(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    enforce(ex, &portal);
    let user = UserId::customer("c1");
    let (phone, _, session) = enrol_signed_in(ex, &portal, &clock, &user);
    let id = portal.record(&user).go(ex).unwrap().authenticators()[0].id();
    let refused = portal
        .delete_authenticator(&user, &session, id, &phone.code(&clock))
        .go(ex);
    assert!(matches!(
        refused,
        Err(Error::NotAllowed(PolicyRefusal::LastAuthenticatorWhileEnforced))
    ));
    // The refused attempt did not consume the code.
    portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
}

// ---------------------------------------------------------------- backup codes and sign-in

pub fn backup_codes_are_issued_once_and_each_works_once(make: &StoreFactory, ex: Executor) {
    let clock = ManualClock::at(T0);
    // One product issues 5 codes.
    let policy = PortalPolicy::default().with_backup_codes(5, 2).unwrap();
    let portal = portal_on(make(), &clock).with_default_policy(policy);
    let user = UserId::customer("c1");
    let (_, codes) = enrol(ex, &portal, &clock, &user);
    assert_eq!(codes.len(), 5);
    for (i, code) in codes.iter().enumerate() {
        let verified = portal.verify_sign_in(&user, code).go(ex).unwrap();
        assert_eq!(verified.factor, Factor::BackupCode);
        assert_eq!(verified.backup_codes_remaining, 4 - i as u32);
        assert_eq!(verified.low_on_backup_codes, verified.backup_codes_remaining <= 2);
        assert!(
            matches!(portal.verify_sign_in(&user, code).go(ex), Err(Error::WrongCode { .. })),
            "code {i} reused"
        );
    }
    // A second authenticator does not issue more codes.
    let stored = portal.record(&user).go(ex).unwrap();
    assert_eq!(stored.backup_codes().unwrap().remaining(), 0);
}

pub fn sign_in_takes_a_totp_code_or_a_backup_code(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    enforce(ex, &portal);
    let user = UserId::contact("help-center-contact");
    let (phone, codes) = enrol(ex, &portal, &clock, &user);
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::EnterCode {
            backup_codes_remaining: 10,
            attempts_left: 5,
            ..
        }
    ));
    let code = phone.code(&clock);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    assert!(matches!(
        portal.verify_sign_in(&user, &spaced).go(ex).unwrap().factor,
        Factor::Totp(_)
    ));
    let typed_loosely = codes[3].replace('-', " ").to_lowercase();
    assert_eq!(
        portal.verify_sign_in(&user, &typed_loosely).go(ex).unwrap().factor,
        Factor::BackupCode
    );
    assert!(matches!(
        portal.verify_sign_in(&user, "not a code!").go(ex),
        Err(Error::MalformedCode(_))
    ));
}

pub fn replayed_code_is_refused(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let code = phone.code(&clock);
    portal.verify_sign_in(&user, &code).go(ex).unwrap();
    assert!(matches!(
        portal.verify_sign_in(&user, &code).go(ex),
        Err(Error::ReplayedCode)
    ));
    clock.advance(10);
    assert!(matches!(
        portal.verify_sign_in(&user, &code).go(ex),
        Err(Error::ReplayedCode)
    ));
}

pub fn regenerating_backup_codes_invalidates_the_old_ones(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, old, session) = enrol_signed_in(ex, &portal, &clock, &user);
    assert!(matches!(
        portal.regenerate_backup_codes(&user, &session, "000000").go(ex),
        Err(Error::WrongCode { .. } | Error::ReplayedCode)
    ));
    let new = portal
        .regenerate_backup_codes(&user, &session, &phone.code(&clock))
        .go(ex)
        .unwrap();
    let new: Vec<String> = new.codes.expose().map(str::to_owned).collect();
    new.iter().for_each(|c| issued(c));
    assert_eq!(new.len(), 10);
    assert!(matches!(
        portal.verify_sign_in(&user, &old[0]).go(ex),
        Err(Error::WrongCode { .. })
    ));
    portal.verify_sign_in(&user, &new[0]).go(ex).unwrap();
}

pub fn wrong_codes_lock_mfa_with_growing_locks_and_a_success_resets_the_count(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let wrong = |p: &Phone| {
        if p.code(&clock) == "000000" {
            "111111".to_owned()
        } else {
            "000000".to_owned()
        }
    };
    for left in (1..=4).rev() {
        assert!(
            matches!(portal.verify_sign_in(&user, &wrong(&phone)).go(ex), Err(Error::WrongCode { attempts_left: Some(l) }) if l == left)
        );
    }
    let first_lock = portal.verify_sign_in(&user, &wrong(&phone)).go(ex);
    assert!(
        matches!(first_lock, Err(Error::LockedOut { until: Some(t) }) if t == T0 + 30 + 60),
        "{first_lock:?}"
    );
    // While locked even the right code is refused, and nothing is counted.
    assert!(matches!(
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex),
        Err(Error::LockedOut { .. })
    ));
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::LockedOut { .. }
    ));
    clock.advance(60);
    for _ in 0..5 {
        let _ = portal.verify_sign_in(&user, &wrong(&phone)).go(ex);
    }
    let now = portal_mfa::Clock::now(&clock);
    assert_eq!(
        portal.record(&user).go(ex).unwrap().failures().locked_until(),
        Some(now + 120),
        "second lock doubles"
    );
    clock.advance(120);
    portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
    assert_eq!(portal.record(&user).go(ex).unwrap().failures().consecutive(), 0);
}

pub fn failures_never_exceed_the_hard_limit(make: &StoreFactory, ex: Executor) {
    let clock = ManualClock::at(T0);
    let lenient = PortalPolicy::default().with_lockout(LockoutRule::new(100, 1, 1).unwrap());
    let portal = portal_on(make(), &clock).with_default_policy(lenient);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let mut locked_for_good = false;
    for _ in 0..150 {
        clock.advance(2);
        let code = phone.code(&clock);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        if let Err(Error::LockedOut { until: None }) = portal.verify_sign_in(&user, wrong).go(ex) {
            locked_for_good = true;
        }
    }
    assert!(locked_for_good);
    assert_eq!(
        portal.record(&user).go(ex).unwrap().failures().consecutive(),
        LockoutRule::HARD_LIMIT
    );
    clock.advance(30);
    assert!(matches!(
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex),
        Err(Error::LockedOut { until: None })
    ));
    portal
        .admin_reset(&ADMIN, &user, ResetReason::LockedOut, ResetMode::default())
        .go(ex)
        .unwrap();
    assert_eq!(portal.record(&user).go(ex).unwrap().failures().consecutive(), 0);
}

// ---------------------------------------------------------------- admin reset

pub fn admin_reset_forces_reenrolment_without_deleting_user(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    // Not enforced: the reset alone forces re-enrolment.
    let user = UserId::customer("c1");
    let (phone, codes) = enrol(ex, &portal, &clock, &user);
    let summary = portal
        .admin_reset(&ADMIN, &user, ResetReason::LostDevice, ResetMode::ForceReenrolment)
        .go(ex)
        .unwrap();
    assert_eq!(
        (
            summary.authenticators_removed,
            summary.backup_codes_removed,
            summary.must_enrol
        ),
        (1, 10, true)
    );
    let record = portal.record(&user).go(ex).unwrap();
    assert!(record.authenticators().is_empty() && record.pending().is_none() && record.backup_codes().is_none());
    let reset = record.last_reset().unwrap();
    assert_eq!(
        (&*reset.by, &reset.reason, reset.at),
        (ADMIN.name(), &ResetReason::LostDevice, T0 + 30)
    );
    // Nothing old works; the user (same id) is sent to enrolment and can come back.
    assert!(matches!(
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex),
        Err(Error::NotEnrolled)
    ));
    assert!(matches!(
        portal.verify_sign_in(&user, &codes[0]).go(ex),
        Err(Error::NotEnrolled)
    ));
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::AdminReset,
            ..
        }
    ));
    let (new_phone, new_codes) = enrol(ex, &portal, &clock, &user);
    assert_eq!(new_codes.len(), 10);
    assert!(!portal.record(&user).go(ex).unwrap().must_enrol());
    portal.verify_sign_in(&user, &new_phone.code(&clock)).go(ex).unwrap();
    let trail = trail_of(ex, &portal, &user);
    let reset_event = trail
        .iter()
        .find(|e| matches!(e.kind, EventKind::MfaReset { .. }))
        .unwrap();
    assert_eq!(reset_event.actor, portal_mfa::audit::Actor::Admin(ADMIN.name().into()));
}

pub fn admin_reset_remove_only_lets_self_configured_user_sign_in_without_mfa(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    enrol(ex, &portal, &clock, &user);
    let summary = portal
        .admin_reset(&ADMIN, &user, ResetReason::NewDevice, ResetMode::RemoveOnly)
        .go(ex)
        .unwrap();
    assert!(!summary.must_enrol);
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::NoMfaNeeded { .. }
    ));
    // Under enforcement, remove-only still leads to enrolment.
    enforce(ex, &portal);
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::PolicyEnforced,
            ..
        }
    ));
}

pub fn admin_reset_records_every_reason_the_requests_name(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let reasons = [
        ResetReason::LostDevice,
        ResetReason::NewDevice,
        ResetReason::LockedOut,
        ResetReason::SecurityIncident,
        ResetReason::Other("ticket 4711".into()),
    ];
    for (i, reason) in reasons.into_iter().enumerate() {
        let user = UserId::contact(format!("contact-{i}"));
        enrol(ex, &portal, &clock, &user);
        portal
            .admin_reset(&ADMIN, &user, reason.clone(), ResetMode::default())
            .go(ex)
            .unwrap();
        assert_eq!(
            portal.record(&user).go(ex).unwrap().last_reset().unwrap().reason,
            reason
        );
        let trail = trail_of(ex, &portal, &user);
        assert!(
            trail
                .iter()
                .any(|e| matches!(&e.kind, EventKind::MfaReset { reason: r, .. } if *r == reason))
        );
    }
}

pub fn locked_out_user_is_recovered_by_admin_reset(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    enrol(ex, &portal, &clock, &user);
    for _ in 0..5 {
        let _ = portal.verify_sign_in(&user, "999999").go(ex);
        let _ = portal.verify_sign_in(&user, "000000").go(ex);
    }
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::LockedOut { .. }
    ));
    portal
        .admin_reset(&ADMIN, &user, ResetReason::LockedOut, ResetMode::default())
        .go(ex)
        .unwrap();
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::AdminReset,
            ..
        }
    ));
    enrol(ex, &portal, &clock, &user);
}

pub fn disabling_enforcement_keeps_enrolled_users_challenged(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    enforce(ex, &portal);
    let enrolled = UserId::customer("enrolled");
    let never = UserId::vendor("never-enrolled");
    let (phone, _) = enrol(ex, &portal, &clock, &enrolled);
    portal
        .set_enforcement(&ADMIN, Enforcement::SelfConfigured)
        .go(ex)
        .unwrap();
    assert!(matches!(
        portal.begin_sign_in(&enrolled).go(ex).unwrap(),
        SignInStep::EnterCode { .. }
    ));
    portal.verify_sign_in(&enrolled, &phone.code(&clock)).go(ex).unwrap();
    assert!(matches!(
        portal.begin_sign_in(&never).go(ex).unwrap(),
        SignInStep::NoMfaNeeded { .. }
    ));
    // The admin turns it off for the enrolled user with a reset.
    portal
        .admin_reset(
            &ADMIN,
            &enrolled,
            ResetReason::Other("MFA no longer required".into()),
            ResetMode::RemoveOnly,
        )
        .go(ex)
        .unwrap();
    assert!(matches!(
        portal.begin_sign_in(&enrolled).go(ex).unwrap(),
        SignInStep::NoMfaNeeded { .. }
    ));
}

pub fn grace_period_lets_unenrolled_users_in_until_it_ends(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let grace = Grace::new(Some(T0 + 3_600), Some(2));
    portal
        .set_enforcement(&ADMIN, Enforcement::Enforced { grace: Some(grace) })
        .go(ex)
        .unwrap();
    let user = UserId::customer("c1");
    let first = SignInStep::GraceSignIn {
        remaining: Some(1),
        until: grace.until,
    };
    // Asking is a pure read (a page reload asks twice); completing spends one.
    assert_eq!(portal.begin_sign_in(&user).go(ex).unwrap(), first);
    assert_eq!(portal.begin_sign_in(&user).go(ex).unwrap(), first);
    let spent = portal.complete_grace_sign_in(&user).go(ex).unwrap();
    assert_eq!((spent.remaining, spent.until), (Some(1), grace.until));
    let last = SignInStep::GraceSignIn {
        remaining: Some(0),
        until: grace.until,
    };
    assert_eq!(portal.begin_sign_in(&user).go(ex).unwrap(), last);
    let spent = portal.complete_grace_sign_in(&user).go(ex).unwrap();
    assert_eq!((spent.remaining, spent.until), (Some(0), grace.until));
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::PolicyEnforced,
            ..
        }
    ));
    assert!(matches!(
        portal.complete_grace_sign_in(&user).go(ex),
        Err(Error::NotAllowed(PolicyRefusal::NoGraceLeft))
    ));
    let trail = trail_of(ex, &portal, &user);
    assert_eq!(trail.len(), 2, "one event per grace sign-in spent, none for asking");
    // The deadline ends it too: grace holds up to and at `until`, not after.
    let late = UserId::customer("c2");
    clock.set(T0 + 3_600);
    assert!(matches!(
        portal.begin_sign_in(&late).go(ex).unwrap(),
        SignInStep::GraceSignIn { .. }
    ));
    clock.set(T0 + 3_601);
    assert!(matches!(
        portal.begin_sign_in(&late).go(ex).unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::PolicyEnforced,
            ..
        }
    ));
    assert!(matches!(
        portal
            .set_enforcement(
                &ADMIN,
                Enforcement::Enforced {
                    grace: Some(Grace::new(None, None))
                }
            )
            .go(ex),
        Err(Error::InvalidPolicy {
            field: "enforcement.grace",
            ..
        })
    ));
}

pub fn users_hear_about_changes_to_their_factors(make: &StoreFactory, ex: Executor) {
    let clock = ManualClock::at(T0);
    let heard: Arc<Mutex<Vec<portal_mfa::audit::AuditEvent>>> = Arc::default();
    let sink = heard.clone();
    let portal = portal_on(make(), &clock)
        .with_notifier(move |e: &portal_mfa::audit::AuditEvent| sink.lock().unwrap().push(e.clone()));
    let user = UserId::customer("c1");
    let (_, codes) = enrol(ex, &portal, &clock, &user);
    portal.verify_sign_in(&user, &codes[0]).go(ex).unwrap();
    portal
        .admin_reset(&ADMIN, &user, ResetReason::SecurityIncident, ResetMode::default())
        .go(ex)
        .unwrap();
    let heard = heard.lock().unwrap();
    assert!(matches!(heard[0].kind, EventKind::AuthenticatorAdded { .. }));
    assert!(matches!(heard[1].kind, EventKind::BackupCodeUsed { remaining: 9 }));
    assert!(matches!(heard[2].kind, EventKind::MfaReset { .. }));
    assert_eq!(heard.len(), 3, "sign-ins themselves are not notifications: {heard:?}");
    // Each is an email's worth: to whom, what, when, by whom, and why for the reset.
    let notices: Vec<_> = heard.iter().map(|e| e.notice("Acme Portal").unwrap()).collect();
    for notice in &notices {
        assert_eq!(notice.to, user);
        assert!(notice.subject.starts_with("Acme Portal: "), "{notice:?}");
        assert!(notice.body.contains("When: 2025-11-22 "), "{notice:?}");
    }
    assert!(notices[0].body.contains("\"phone\"") && notices[0].body.contains("By: you"));
    assert!(notices[1].body.contains("9 unused codes are left"));
    assert!(notices[2].body.contains("By: an administrator (admin@acme.example)"));
    assert!(notices[2].body.contains("Why: security incident"));
    // Nothing the user typed or was issued is in a notice.
    let text: String = notices.iter().map(|n| format!("{}{}", n.subject, n.body)).collect();
    assert!(codes.iter().all(|code| !text.contains(code.as_str())));
    // Events a user need not hear about have no notice.
    let trail = trail_of(ex, &portal, &user);
    assert!(
        trail
            .iter()
            .any(|e| matches!(e.kind, EventKind::Verified { .. }) && e.notice("Acme Portal").is_none())
    );
}

/// Instantiates every scenario above as a `#[test]` over the store `$make` builds.
#[macro_export]
macro_rules! seed_flow_tests {
    ($make:ident) => {
        /// Every scenario through `Op::run`.
        mod blocking {
            $crate::seed_flow_tests!(@names $make, Blocking);
            $crate::seed_flow_tests!(@with_passkey_names [@each_passkey $make, Blocking]);
        }
        /// Every scenario through `.await` (on a tokio runtime).
        mod nonblocking {
            $crate::seed_flow_tests!(@names $make, Async);
            $crate::seed_flow_tests!(@with_passkey_names [@each_passkey $make, Async]);
        }
    };
    // Only where `$guard()` says the store is there (it says why not, once).
    ($make:ident, when $guard:path) => {
        mod blocking {
            $crate::seed_flow_tests!(@with_names [@each_when $guard, $make, Blocking]);
            $crate::seed_flow_tests!(@with_passkey_names [@each_passkey_when $guard, $make, Blocking]);
        }
        mod nonblocking {
            $crate::seed_flow_tests!(@with_names [@each_when $guard, $make, Async]);
            $crate::seed_flow_tests!(@with_passkey_names [@each_passkey_when $guard, $make, Async]);
        }
    };
    (@each_passkey $make:ident, $executor:ident; $($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "webauthn")]
            #[test]
            fn $name() {
                $crate::flows::passkeys::$name(&super::$make, $crate::flows::Executor::$executor)
            }
        )*
    };
    (@each_passkey_when $guard:path, $make:ident, $executor:ident; $($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "webauthn")]
            #[test]
            fn $name() {
                if !$guard() {
                    return;
                }
                $crate::flows::passkeys::$name(&super::$make, $crate::flows::Executor::$executor)
            }
        )*
    };
    // The passkey scenarios (`tests/flows/passkeys.rs`), with the `webauthn` feature.
    (@with_passkey_names [$($arm:tt)*]) => {
        $crate::seed_flow_tests!($($arm)*;
            a_passkey_alone_turns_mfa_on_and_signs_in_with_its_counter_advancing,
            a_synced_passkey_that_always_reports_zero_is_accepted,
            a_response_is_accepted_once_and_every_refusal_counts_toward_lockout,
            a_response_for_another_user_portal_origin_or_site_or_too_late_is_refused,
            a_cloned_key_whose_counter_falls_behind_is_refused_and_audited,
            passkeys_sit_beside_authenticator_apps_and_each_proves_changes,
            admin_reset_removes_passkeys_and_the_old_credential_is_refused,
            user_verification_required_refuses_a_key_that_cannot_verify,
            a_registration_has_a_failure_budget_and_a_lifetime,
            a_credential_deleted_from_the_authenticator_leaves_the_other_factors,
            trusting_a_browser_after_a_passkey_works_as_after_a_code,
        );
    };
    (@call_passkey $make:ident, $ex:expr; $($name:ident),* $(,)?) => {
        #[cfg(feature = "webauthn")]
        {
            $( $crate::flows::passkeys::$name(&$make, $ex); )*
        }
    };
    (@names $make:ident, $executor:ident) => {
        $crate::seed_flow_tests!(@with_names [@each $make, $executor]);
    };
    (@each_when $guard:path, $make:ident, $executor:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if !$guard() {
                    return;
                }
                $crate::flows::scenarios::$name(&super::$make, $crate::flows::Executor::$executor)
            }
        )*
    };
    // Calls every scenario on `$make`, in one function body.
    (@run_all $make:ident, $ex:expr) => {
        $crate::seed_flow_tests!(@with_names [@call $make, $ex]);
        $crate::seed_flow_tests!(@with_passkey_names [@call_passkey $make, $ex])
    };
    (@call $make:ident, $ex:expr; $($name:ident),* $(,)?) => {
        $( $crate::flows::scenarios::$name(&$make, $ex); )*
    };
    // The one list of scenarios, handed to `$arm`.
    (@with_names [$($arm:tt)*]) => {
        $crate::seed_flow_tests!($($arm)*;
            mfa_is_off_by_default,
            enforced_mfa_sends_unenrolled_users_to_enrolment_after_password,
            enforcing_is_refused_for_saml_portal,
            vendor_and_customer_share_policy,
            self_configured_user_turns_mfa_on_from_my_account,
            enrolment_works_by_qr_code_or_typed_key,
            enrolment_is_active_only_after_a_valid_code,
            enrolment_expires_after_its_lifetime,
            restarting_enrolment_replaces_the_pending_secret,
            changing_authenticator_keeps_the_old_one_until_the_new_is_confirmed,
            self_configured_user_deletes_authenticator_with_a_fresh_code,
            deleting_the_last_authenticator_is_refused_while_enforced,
            backup_codes_are_issued_once_and_each_works_once,
            sign_in_takes_a_totp_code_or_a_backup_code,
            replayed_code_is_refused,
            regenerating_backup_codes_invalidates_the_old_ones,
            wrong_codes_lock_mfa_with_growing_locks_and_a_success_resets_the_count,
            failures_never_exceed_the_hard_limit,
            admin_reset_forces_reenrolment_without_deleting_user,
            admin_reset_remove_only_lets_self_configured_user_sign_in_without_mfa,
            admin_reset_records_every_reason_the_requests_name,
            locked_out_user_is_recovered_by_admin_reset,
            disabling_enforcement_keeps_enrolled_users_challenged,
            grace_period_lets_unenrolled_users_in_until_it_ends,
            users_hear_about_changes_to_their_factors,
            a_stamp_holds_until_a_factor_is_taken_away_and_the_changing_session_keeps_going,
            admin_reset_ends_every_session_in_either_mode,
            replacing_the_authenticator_ends_the_other_sessions,
            turning_mfa_off_and_regenerating_backup_codes_end_the_other_sessions,
            the_host_ends_sessions_for_what_only_it_knows,
            a_grace_sign_in_has_a_stamp_and_a_reset_ends_it,
            a_trusted_browser_skips_the_code_until_a_fixed_expiry,
            everything_that_ends_sessions_forgets_trusted_browsers,
            a_lower_lifetime_shortens_trusted_browsers_and_a_higher_one_never_lengthens_them,
            a_token_not_this_users_is_a_failed_factor_counted_toward_lockout,
            only_a_fresh_code_may_trust_a_browser,
            a_user_keeps_at_most_five_browsers_and_the_oldest_makes_room,
            a_stamp_is_good_only_as_this_portal_issued_it_to_this_user,
            a_stamp_survives_a_restart_and_a_key_rotation_while_its_key_is_kept,
            one_code_trusts_one_browser,
            a_session_a_trusted_browser_opened_ends_with_that_browser_for_any_cause,
            a_session_that_ended_changes_nothing,
            the_enrolment_a_sign_in_requires_ends_with_a_reset_made_meanwhile,
            a_user_who_lost_every_factor_asks_and_an_admin_approves,
            the_users_own_sign_in_withdraws_their_request,
            a_declined_request_tells_the_user_and_starts_a_cooldown,
            a_bulk_reset_resets_each_selected_user_once_however_often_it_is_resumed,
            a_bulk_reset_selects_by_status_and_by_when_factors_were_added_or_used,
        );
    };
    (@each $make:ident, $executor:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::flows::scenarios::$name(&super::$make, $crate::flows::Executor::$executor)
            }
        )*
    };
}

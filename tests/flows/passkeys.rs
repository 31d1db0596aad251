//! Passkeys and security keys, on every store and executor, answered by an
//! independent WebAuthn implementation: 1Password's passkey-rs (its CTAP2
//! software authenticator behind its WebAuthn client), given the options
//! JSON exactly as a browser would be.

use std::sync::Arc;

use passkey::client::DefaultClientData;
use passkey::types::webauthn::CredentialCreationOptions;
use portal_mfa::admin::{ResetMode, ResetReason};
use portal_mfa::admin::{StatusFilter, UserQuery};
use portal_mfa::audit::{EventKind, Factor};
use portal_mfa::passkey::{PasskeyOptions, RelyingParty, UserVerification};
use portal_mfa::session::SessionProof;
use portal_mfa::{EnrolmentOptions, Error, PasskeyRefusal, Portal, PortalId, SessionStamp, SignInStep, UserId};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{ADMIN, Executor, Go, Phone, StoreFactory, TestPortal, enrol_signed_in, password_step, setup, trail_of};

pub const RP_ID: &str = "example.com";
pub use super::soft_key::{ORIGIN, SoftKey};

/// The relying party every test portal verifies passkeys for.
pub fn rp() -> RelyingParty {
    RelyingParty::new(RP_ID, &[ORIGIN], "Acme Portal").unwrap()
}

/// Registers a passkey for `session` (with `proof` when the user already
/// has MFA); answers the backup codes when it turned MFA on and the new stamp.
pub fn register(
    ex: Executor,
    portal: &TestPortal,
    user: &UserId,
    session: &SessionStamp,
    key: &mut SoftKey,
    label: &str,
    proof: Option<&str>,
) -> (Option<Vec<String>>, SessionStamp) {
    let mut options = EnrolmentOptions::default();
    if let Some(proof) = proof {
        options = options.with_proof(proof);
    }
    let started = portal
        .start_passkey_registration(user, session, user.id(), label, options)
        .go(ex)
        .unwrap();
    let response = key.register(&started.options).unwrap();
    // The credential id and the user handle identify the user: the tracing scan looks for both.
    let json: serde_json::Value = serde_json::from_str(&response).unwrap();
    let options: serde_json::Value = serde_json::from_str(started.options.as_json()).unwrap();
    super::issued(json["id"].as_str().unwrap());
    super::issued(options["publicKey"]["user"]["id"].as_str().unwrap());
    let confirmed = portal
        .finish_passkey_registration(user, session, &response)
        .go(ex)
        .unwrap();
    assert!(portal.record(user).go(ex).unwrap().pending_passkey().is_none());
    let codes = confirmed
        .backup_codes
        .map(|c| c.expose().map(str::to_owned).collect::<Vec<_>>());
    if let Some(codes) = &codes {
        super::issued_all(codes.iter().map(String::as_str));
    }
    (codes, confirmed.session)
}

/// A user with only a passkey (MFA on through it); answers the key, the backup codes and the session.
pub fn passkey_user(
    ex: Executor,
    portal: &TestPortal,
    user: &UserId,
    key: SoftKey,
) -> (SoftKey, Vec<String>, SessionStamp) {
    let mut key = key;
    let session = password_step(ex, portal, user);
    let (codes, session) = register(ex, portal, user, &session, &mut key, "YubiKey", None);
    (
        key,
        codes.expect("the first factor turns MFA on and issues backup codes"),
        session,
    )
}

/// The options `begin_sign_in` offers for the passkey, asserting the step says what the user has.
pub fn sign_in_options(ex: Executor, portal: &TestPortal, user: &UserId, apps: u8, passkeys: u8) -> PasskeyOptions {
    match portal.begin_sign_in(user).go(ex).unwrap() {
        SignInStep::EnterCode {
            authenticator_apps,
            passkeys: offered,
            passkey: Some(options),
            ..
        } => {
            assert_eq!((authenticator_apps, offered), (apps, passkeys));
            options
        }
        other => panic!("expected a passkey challenge, got {other:?}"),
    }
}

/// A whole passkey sign-in; answers its stamp.
pub fn passkey_sign_in(ex: Executor, portal: &TestPortal, user: &UserId, key: &mut SoftKey) -> SessionStamp {
    let record = portal.record(user).go(ex).unwrap();
    let options = sign_in_options(
        ex,
        portal,
        user,
        record.authenticators().len() as u8,
        record.passkeys().len() as u8,
    );
    let response = key.sign(&options).unwrap();
    let verified = portal.verify_sign_in(user, &response).go(ex).unwrap();
    assert!(matches!(verified.factor, Factor::Passkey(_)), "{:?}", verified.factor);
    assert_eq!(verified.session.proof(), SessionProof::Passkey);
    verified.session
}

fn refusal(result: Result<impl std::fmt::Debug, Error>) -> (PasskeyRefusal, Option<u32>) {
    match result {
        Err(Error::PasskeyRefused { reason, attempts_left }) => (reason, attempts_left),
        other => panic!("expected a refused passkey, got {other:?}"),
    }
}

pub fn a_passkey_alone_turns_mfa_on_and_signs_in_with_its_counter_advancing(make: &StoreFactory, ex: Executor) {
    let (portal, _clock) = setup(make);
    let user = UserId::customer("pk-1");
    let (mut key, codes, _) = passkey_user(ex, &portal, &user, SoftKey::security_key());
    assert_eq!(codes.len(), 10);
    let record = portal.record(&user).go(ex).unwrap();
    assert!(record.mfa_enabled() && record.authenticators().is_empty());
    // The admin list (the stores' summary columns) counts the passkey as a factor.
    let listed = |status| {
        let query = UserQuery::new().status(status);
        portal
            .users(query)
            .go(ex)
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.user)
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(StatusFilter::Enrolled), std::slice::from_ref(&user));
    assert!(listed(StatusFilter::MfaOff).is_empty());
    let registered = record.passkeys()[0].sign_count();
    let stamp = passkey_sign_in(ex, &portal, &user, &mut key);
    portal.check_session(&user, &stamp).go(ex).unwrap();
    let after = portal.record(&user).go(ex).unwrap().passkeys()[0].sign_count();
    assert!(after > registered, "the counter advanced: {registered} -> {after}");
    assert_eq!(Some(after), key.counter());
    passkey_sign_in(ex, &portal, &user, &mut key);
    assert!(portal.record(&user).go(ex).unwrap().passkeys()[0].sign_count() > after);
    // A backup code still works beside it (the input is not JSON, so it is a backup code).
    let verified = portal.verify_sign_in(&user, &codes[0]).go(ex).unwrap();
    assert!(matches!(verified.factor, Factor::BackupCode));
    let trail = trail_of(ex, &portal, &user);
    assert!(trail.iter().any(|e| matches!(e.kind, EventKind::PasskeyAdded { .. })));
    assert_eq!(
        trail
            .iter()
            .filter(|e| matches!(
                e.kind,
                EventKind::Verified {
                    factor: Factor::Passkey(_),
                    ..
                }
            ))
            .count(),
        2
    );
}

pub fn a_synced_passkey_that_always_reports_zero_is_accepted(make: &StoreFactory, ex: Executor) {
    let (portal, _clock) = setup(make);
    let user = UserId::vendor("pk-zero");
    let (mut key, _, _) = passkey_user(ex, &portal, &user, SoftKey::passkey());
    for _ in 0..3 {
        passkey_sign_in(ex, &portal, &user, &mut key);
        assert_eq!(portal.record(&user).go(ex).unwrap().passkeys()[0].sign_count(), 0);
    }
}

pub fn a_response_is_accepted_once_and_every_refusal_counts_toward_lockout(make: &StoreFactory, ex: Executor) {
    let (portal, _clock) = setup(make);
    let user = UserId::customer("pk-replay");
    let (mut key, _, _) = passkey_user(ex, &portal, &user, SoftKey::security_key());
    let options = sign_in_options(ex, &portal, &user, 0, 1);
    let response = key.sign(&options).unwrap();
    portal.verify_sign_in(&user, &response).go(ex).unwrap();
    // The challenge went with the first answer: the same response again has none to answer.
    assert_eq!(
        refusal(portal.verify_sign_in(&user, &response).go(ex)),
        (PasskeyRefusal::NoChallenge, Some(4))
    );
    // A new challenge: the old response answers another one.
    sign_in_options(ex, &portal, &user, 0, 1);
    assert_eq!(
        refusal(portal.verify_sign_in(&user, &response).go(ex)),
        (PasskeyRefusal::WrongChallenge, Some(3))
    );
    // Malformed JSON, whatever its shape.
    sign_in_options(ex, &portal, &user, 0, 1);
    assert_eq!(
        refusal(portal.verify_sign_in(&user, "{\"id\":").go(ex)),
        (PasskeyRefusal::Malformed, Some(2))
    );
    // One begin_sign_in, one answer: after a refusal the challenge is spent too.
    let options = sign_in_options(ex, &portal, &user, 0, 1);
    let good = key.sign(&options).unwrap();
    assert_eq!(
        refusal(portal.verify_sign_in(&user, "{}").go(ex)).0,
        PasskeyRefusal::Malformed
    );
    assert!(matches!(
        portal.verify_sign_in(&user, &good).go(ex),
        Err(Error::LockedOut { .. })
    ));
    let trail = trail_of(ex, &portal, &user);
    assert!(trail.iter().any(|e| matches!(e.kind, EventKind::LockedOut { .. })));
}

/// `options` with `edit` applied to its JSON.
pub fn edited(options: &PasskeyOptions, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut json: serde_json::Value = serde_json::from_str(options.as_json()).unwrap();
    edit(&mut json);
    json.to_string()
}

pub fn a_response_for_another_user_portal_origin_or_site_or_too_late_is_refused(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let alice = UserId::customer("pk-alice");
    let bob = UserId::customer("pk-bob");
    let (mut alice_key, _, _) = passkey_user(ex, &portal, &alice, SoftKey::security_key());
    let (mut bob_key, _, _) = passkey_user(ex, &portal, &bob, SoftKey::security_key());
    // Bob's own valid response, given as Alice's: neither her credential nor her challenge
    // (the credential is checked first).
    let options = sign_in_options(ex, &portal, &bob, 0, 1);
    let bobs = bob_key.sign(&options).unwrap();
    sign_in_options(ex, &portal, &alice, 0, 1);
    assert_eq!(
        refusal(portal.verify_sign_in(&alice, &bobs).go(ex)),
        (PasskeyRefusal::UnknownCredential, Some(4))
    );
    // ...and Bob's challenge is still his to answer.
    portal.verify_sign_in(&bob, &bobs).go(ex).unwrap();
    // Bob's key answering Alice's very challenge (a page that swapped in his credential id).
    let bobs_options: serde_json::Value =
        serde_json::from_str(sign_in_options(ex, &portal, &bob, 0, 1).as_json()).unwrap();
    let options = sign_in_options(ex, &portal, &alice, 0, 1);
    let open = edited(&options, |o| {
        o["publicKey"]["allowCredentials"] = bobs_options["publicKey"]["allowCredentials"].clone()
    });
    let by_bob = bob_key.sign_json(&open).unwrap();
    assert_eq!(
        refusal(portal.verify_sign_in(&alice, &by_bob).go(ex)).0,
        PasskeyRefusal::UnknownCredential
    );
    passkey_sign_in(ex, &portal, &alice, &mut alice_key);
    // The same user and key on another portal of the same store: each portal's challenge is its own.
    let other: TestPortal = Portal::new(PortalId::new("other-portal"), "Other Portal", portal.store().clone())
        .unwrap()
        .with_keyring(super::keyring())
        .with_clock(clock.clone())
        .with_rng(StdRng::seed_from_u64(7))
        .with_passkeys(rp());
    let (other_key, _, _) = passkey_user(ex, &other, &alice, alice_key);
    alice_key = other_key;
    let theirs = alice_key.sign(&sign_in_options(ex, &other, &alice, 0, 1)).unwrap();
    // Each portal keeps its own record: the other portal's credential is not this one's.
    sign_in_options(ex, &portal, &alice, 0, 1);
    assert_eq!(
        refusal(portal.verify_sign_in(&alice, &theirs).go(ex)).0,
        PasskeyRefusal::UnknownCredential
    );
    // A page on another origin (a phishing site relaying the challenge) signs for that origin.
    let mut phished = alice_key.at("https://login.example.com");
    let relayed = phished.sign(&sign_in_options(ex, &portal, &alice, 0, 1)).unwrap();
    assert_eq!(
        refusal(portal.verify_sign_in(&alice, &relayed).go(ex)).0,
        PasskeyRefusal::WrongSite
    );
    passkey_sign_in(ex, &portal, &alice, &mut alice_key);
    // A credential made for another relying-party id is refused at registration.
    let session = passkey_sign_in(ex, &portal, &alice, &mut alice_key);
    let proof = alice_key
        .sign(&portal.request_passkey_proof(&alice, &session).go(ex).unwrap())
        .unwrap();
    let started = portal
        .start_passkey_registration(
            &alice,
            &session,
            "a",
            "Other",
            EnrolmentOptions::default().with_proof(&proof),
        )
        .go(ex)
        .unwrap();
    let for_subdomain = edited(&started.options, |o| {
        o["publicKey"]["rp"]["id"] = "portal.example.com".into()
    });
    let mut fresh = SoftKey::security_key();
    let request: CredentialCreationOptions = serde_json::from_str(&for_subdomain).unwrap();
    let created = pollster::block_on(fresh.client.register(&fresh.origin, request, DefaultClientData)).unwrap();
    let response = serde_json::to_string(&created).unwrap();
    let refused = portal.finish_passkey_registration(&alice, &session, &response).go(ex);
    assert_eq!(refusal(refused).0, PasskeyRefusal::WrongSite);
    // An answer after the challenge's lifetime.
    let late = alice_key.sign(&sign_in_options(ex, &portal, &alice, 0, 1)).unwrap();
    clock.advance(RelyingParty::CHALLENGE_LIFETIME_SECS);
    assert_eq!(
        refusal(portal.verify_sign_in(&alice, &late).go(ex)).0,
        PasskeyRefusal::ChallengeExpired
    );
    // And the key still works, answering a fresh challenge.
    passkey_sign_in(ex, &portal, &alice, &mut alice_key);
}

pub fn a_cloned_key_whose_counter_falls_behind_is_refused_and_audited(make: &StoreFactory, ex: Executor) {
    let (portal, _clock) = setup(make);
    let user = UserId::customer("pk-clone");
    let (mut key, _, _) = passkey_user(ex, &portal, &user, SoftKey::security_key());
    let mut clone = key.clone_key();
    passkey_sign_in(ex, &portal, &user, &mut key);
    passkey_sign_in(ex, &portal, &user, &mut key);
    let options = sign_in_options(ex, &portal, &user, 0, 1);
    let response = clone.sign(&options).unwrap();
    assert_eq!(
        refusal(portal.verify_sign_in(&user, &response).go(ex)).0,
        PasskeyRefusal::CounterRegressed
    );
    let trail = trail_of(ex, &portal, &user);
    let regressed = trail
        .iter()
        .filter(|e| matches!(e.kind, EventKind::PasskeyCounterRegressed { .. }))
        .count();
    assert_eq!(regressed, 1);
    let warned = trail
        .iter()
        .filter(|e| e.kind.user_must_hear())
        .filter_map(|e| e.notice("Acme Portal"))
        .any(|n| n.body.contains("counter went backwards"));
    assert!(warned, "the user hears of a possible copy");
    // The genuine key goes on.
    passkey_sign_in(ex, &portal, &user, &mut key);
}

pub fn passkeys_sit_beside_authenticator_apps_and_each_proves_changes(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    super::scenarios::enforce(ex, &portal);
    let user = UserId::vendor("pk-mixed");
    let (phone, codes, session) = enrol_signed_in(ex, &portal, &clock, &user);
    // A password alone never adds a factor: a code is needed.
    let mut key = SoftKey::security_key();
    let refused = portal
        .start_passkey_registration(&user, &session, "v", "YubiKey", EnrolmentOptions::default())
        .go(ex);
    assert!(matches!(refused, Err(Error::ProofRequired)), "{refused:?}");
    let code = phone.code(&clock);
    let (issued, session) = register(ex, &portal, &user, &session, &mut key, "YubiKey", Some(&code));
    assert!(issued.is_none(), "MFA was already on: the backup codes stay");
    clock.advance(30);
    // A second passkey, proven by the first.
    let mut laptop = SoftKey::passkey();
    let proof_options = portal.request_passkey_proof(&user, &session).go(ex).unwrap();
    let proof = key.sign(&proof_options).unwrap();
    let (_, session) = register(ex, &portal, &user, &session, &mut laptop, "This laptop", Some(&proof));
    let record = portal.record(&user).go(ex).unwrap();
    assert_eq!((record.authenticators().len(), record.passkeys().len()), (1, 2));
    assert_eq!(record.factor_count(), 3);
    // The admin list (the stores' summary columns) names the kinds apart.
    let listed = || {
        let status = portal.users(UserQuery::new()).go(ex).unwrap().items;
        let status = status.iter().find(|s| s.user == user).unwrap();
        (status.authenticators, status.passkeys)
    };
    assert_eq!(listed(), (3, 2));
    // Each factor signs in.
    let by_key = passkey_sign_in(ex, &portal, &user, &mut key);
    let by_laptop = passkey_sign_in(ex, &portal, &user, &mut laptop);
    assert!(matches!(
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap().factor,
        Factor::Totp(_)
    ));
    clock.advance(30);
    assert!(matches!(
        portal.verify_sign_in(&user, &codes[0]).go(ex).unwrap().factor,
        Factor::BackupCode
    ));
    // Deleting the laptop's passkey, proven by the app: the session it signed in ends, the others hold.
    let laptop_id = record.passkeys()[1].id();
    let session = portal
        .delete_authenticator(&user, &session, laptop_id, &phone.code(&clock))
        .go(ex)
        .unwrap();
    clock.advance(30);
    assert!(matches!(
        portal.check_session(&user, &by_laptop).go(ex),
        Err(Error::SessionEnded)
    ));
    portal.check_session(&user, &session).go(ex).unwrap();
    assert_eq!(portal.record(&user).go(ex).unwrap().passkeys().len(), 1);
    assert_eq!(listed(), (2, 1));
    // The key's session ended too (every other session ends with a deletion); sign in again.
    assert!(portal.check_session(&user, &by_key).go(ex).is_err());
    let by_key = passkey_sign_in(ex, &portal, &user, &mut key);
    // Removing the app with a passkey's proof; then the passkey is the last factor and stays, as enforced.
    let app = portal.record(&user).go(ex).unwrap().authenticators()[0].id();
    let proof = key
        .sign(&portal.request_passkey_proof(&user, &by_key).go(ex).unwrap())
        .unwrap();
    let by_key = portal.delete_authenticator(&user, &by_key, app, &proof).go(ex).unwrap();
    let last = portal.record(&user).go(ex).unwrap().passkeys()[0].id();
    let proof = key
        .sign(&portal.request_passkey_proof(&user, &by_key).go(ex).unwrap())
        .unwrap();
    let refused = portal.delete_authenticator(&user, &by_key, last, &proof).go(ex);
    assert!(matches!(refused, Err(Error::NotAllowed(_))), "{refused:?}");
    let trail = trail_of(ex, &portal, &user);
    assert!(
        trail
            .iter()
            .any(|e| matches!(e.kind, EventKind::PasskeyRemoved { authenticator, .. } if authenticator == laptop_id))
    );
}

pub fn admin_reset_removes_passkeys_and_the_old_credential_is_refused(make: &StoreFactory, ex: Executor) {
    for mode in [ResetMode::ForceReenrolment, ResetMode::RemoveOnly] {
        let (portal, _clock) = setup(make);
        let user = UserId::contact(format!("pk-reset-{mode:?}"));
        let (mut key, _, session) = passkey_user(ex, &portal, &user, SoftKey::security_key());
        let options = sign_in_options(ex, &portal, &user, 0, 1);
        let kept = key.sign(&options).unwrap();
        let summary = portal
            .admin_reset(&ADMIN, &user, ResetReason::LostDevice, mode)
            .go(ex)
            .unwrap();
        assert_eq!(summary.passkeys_removed, 1);
        assert!(matches!(
            portal.check_session(&user, &session).go(ex),
            Err(Error::SessionEnded)
        ));
        let record = portal.record(&user).go(ex).unwrap();
        assert!(record.passkeys().is_empty() && !record.mfa_enabled());
        match portal.begin_sign_in(&user).go(ex).unwrap() {
            SignInStep::MustEnrol { .. } => assert_eq!(mode, ResetMode::ForceReenrolment),
            SignInStep::NoMfaNeeded { .. } => assert_eq!(mode, ResetMode::RemoveOnly),
            other => panic!("{other:?}"),
        }
        // The response made before the reset is refused: no challenge, no credential.
        assert!(portal.verify_sign_in(&user, &kept).go(ex).is_err());
        let trail = trail_of(ex, &portal, &user);
        assert!(trail.iter().any(|e| matches!(e.kind, EventKind::PasskeyRemoved { .. })));
        // The user hears of every change, each notice naming the passkey.
        let heard: Vec<_> = trail.iter().filter(|e| e.kind.user_must_hear()).collect();
        let notices: Vec<_> = heard.iter().map(|e| e.notice("Acme Portal").unwrap()).collect();
        assert!(notices.iter().any(|n| n.body.contains("\"YubiKey\" was added")));
        assert!(
            notices
                .iter()
                .any(|n| n.body.contains("passkey or security key was removed when"))
        );
        // The same authenticator registers again from scratch.
        let session = password_step(ex, &portal, &user);
        let (codes, _) = register(ex, &portal, &user, &session, &mut key, "YubiKey again", None);
        assert!(codes.is_some());
        passkey_sign_in(ex, &portal, &user, &mut key);
    }
}

pub fn user_verification_required_refuses_a_key_that_cannot_verify(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let portal = portal.with_passkeys(rp().with_user_verification(UserVerification::Required));
    let user = UserId::customer("pk-uv");
    let session = password_step(ex, &portal, &user);
    let mut no_pin = SoftKey::without_verification();
    let started = portal
        .start_passkey_registration(&user, &session, "c", "No PIN", EnrolmentOptions::default())
        .go(ex)
        .unwrap();
    match no_pin.register(&started.options) {
        // The client itself may refuse to create a credential it cannot verify for.
        Err(_) => {}
        Ok(response) => {
            let refused = portal.finish_passkey_registration(&user, &session, &response).go(ex);
            assert_eq!(refusal(refused).0, PasskeyRefusal::UserNotVerified);
        }
    }
    assert!(portal.record(&user).go(ex).unwrap().passkeys().is_empty());
    // A key that verifies registers; a sign-in without verification is refused.
    let (mut key, _, _) = passkey_user(ex, &portal, &user, SoftKey::security_key());
    passkey_sign_in(ex, &portal, &user, &mut key);
    // The same credential on an authenticator that no longer verifies (its PIN removed).
    let mut unverified = SoftKey::holding(key.client.authenticator().store().clone(), false, true, ORIGIN);
    let options = sign_in_options(ex, &portal, &user, 0, 1);
    match unverified.sign(&options) {
        Err(_) => {}
        Ok(response) => assert_eq!(
            refusal(portal.verify_sign_in(&user, &response).go(ex)).0,
            PasskeyRefusal::UserNotVerified
        ),
    }
    clock.advance(1);
    passkey_sign_in(ex, &portal, &user, &mut key);
}

pub fn a_registration_has_a_failure_budget_and_a_lifetime(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("pk-budget");
    let session = password_step(ex, &portal, &user);
    let mut key = SoftKey::security_key();
    let start = || {
        portal
            .start_passkey_registration(&user, &session, "c", "YubiKey", EnrolmentOptions::default())
            .go(ex)
            .unwrap()
    };
    start();
    for left in (1..portal_mfa::record::PendingPasskey::MAX_FAILURES).rev() {
        let refused = portal.finish_passkey_registration(&user, &session, "{\"x\":1}").go(ex);
        assert_eq!(refusal(refused), (PasskeyRefusal::Malformed, Some(u32::from(left))));
    }
    let cancelled = portal.finish_passkey_registration(&user, &session, "{}").go(ex);
    assert!(matches!(cancelled, Err(Error::EnrolmentCancelled)), "{cancelled:?}");
    assert!(portal.record(&user).go(ex).unwrap().pending_passkey().is_none());
    // Wrong answers to a registration are its own budget, not the sign-in lockout's.
    assert_eq!(portal.record(&user).go(ex).unwrap().failures().consecutive(), 0);
    // Too late.
    let started = start();
    let response = key.register(&started.options).unwrap();
    clock.advance(RelyingParty::CHALLENGE_LIFETIME_SECS);
    let late = portal.finish_passkey_registration(&user, &session, &response).go(ex);
    assert!(matches!(late, Err(Error::EnrolmentExpired)), "{late:?}");
    let trail = trail_of(ex, &portal, &user);
    assert!(
        trail
            .iter()
            .any(|e| matches!(e.kind, EventKind::PasskeyRegistrationFailed { .. }))
    );
}

pub fn a_credential_deleted_from_the_authenticator_leaves_the_other_factors(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("pk-wiped");
    let (phone, _, session) = enrol_signed_in(ex, &portal, &clock, &user);
    let mut key = SoftKey::security_key();
    let code = phone.code(&clock);
    register(ex, &portal, &user, &session, &mut key, "YubiKey", Some(&code));
    clock.advance(30);
    key.wipe();
    let options = sign_in_options(ex, &portal, &user, 1, 1);
    assert!(
        key.sign(&options).is_err(),
        "the authenticator has no credential to sign with"
    );
    // The code page still takes the app's code.
    assert!(matches!(
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap().factor,
        Factor::Totp(_)
    ));
}

pub fn trusting_a_browser_after_a_passkey_works_as_after_a_code(make: &StoreFactory, ex: Executor) {
    let (portal, _clock) = setup(make);
    portal
        .update_policy(&ADMIN, |p| p.with_trusted_browser_days(30))
        .go(ex)
        .unwrap();
    let user = UserId::customer("pk-trust");
    let (mut key, _, _) = passkey_user(ex, &portal, &user, SoftKey::passkey());
    let stamp = passkey_sign_in(ex, &portal, &user, &mut key);
    let issued = portal.trust_browser(&user, &stamp, "Chromium").go(ex).unwrap();
    super::issued(issued.token.expose());
    assert!(matches!(
        portal
            .begin_sign_in_with_browser(&user, issued.token.expose())
            .go(ex)
            .unwrap(),
        SignInStep::TrustedBrowser { .. }
    ));
}

/// Keeps `Arc` and `Phone` in use whichever scenarios a binary runs.
pub fn _harness(_: Arc<()>, _: Phone) {}

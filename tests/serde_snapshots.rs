//! The JSON shapes (feature `serde`) are a stable interface: a log shipper or
//! an admin API reads them. A scenario producing every event kind, every
//! sign-in step, a policy and a page of user statuses is serialized and
//! compared with `tests/snapshots/json.txt`; any change fails here. (Run with
//! `UPDATE_SNAPSHOTS=1` to rewrite the file after a deliberate change, and say
//! so in the CHANGELOG.) Everything read back equals what was written.

#![cfg(feature = "serde")]

use portal_mfa::{
    Admin, Cursor, Enforcement, EnrolmentOptions, Error, Grace, Keyring, ManualClock, Page, Portal, PortalId,
    PortalPolicy, SignInMethod, SignInStep, UserId,
    admin::{ResetMode, ResetReason, StatusFilter, UserQuery, UserStatus},
    audit::{AuditEvent, EventQuery},
    otp::Totp,
    store::MemoryStore,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const T0: u64 = 1_763_800_000;

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) -> String {
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, value, "{json}");
    json
}

#[test]
fn the_json_shapes_match_the_snapshot() {
    let clock = ManualClock::at(T0);
    let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())
        .unwrap()
        .with_clock(clock.clone())
        .with_rng(StdRng::seed_from_u64(1))
        // A fixed key: the stamps in the snapshot are the same on every run.
        .with_keyring(Keyring::new("snapshot", &[5; 32]).unwrap());
    let admin = Admin::authorised("admin@acme.example");
    let alice = UserId::customer("alice@example.com");
    let vic = UserId::vendor("vic@supplier.example");
    let mut out = String::new();
    let mut line = |label: &str, json: String| out.push_str(&format!("{label}: {json}\n"));
    let mut steps = vec![portal.begin_sign_in(&alice).run().unwrap()];

    portal.set_sign_in_method(&admin, SignInMethod::Saml).run().unwrap();
    portal.set_sign_in_method(&admin, SignInMethod::Password).run().unwrap();
    portal
        .update_policy(&admin, |p| p.with_backup_codes(8, 2)?.with_trusted_browser_days(30))
        .run()
        .unwrap();
    let grace = Grace::new(Some(T0 + 86_400), Some(3));
    let policy = portal
        .set_enforcement(&admin, Enforcement::Enforced { grace: Some(grace) })
        .run()
        .unwrap();
    steps.push(portal.begin_sign_in(&vic).run().unwrap());
    portal.complete_grace_sign_in(&vic).run().unwrap();

    // Alice, in her grace period, signs in and enrols from My account.
    let session = portal.complete_grace_sign_in(&alice).run().unwrap().session;
    let start = || {
        portal
            .start_enrolment(&alice, &session, "alice", "Phone", EnrolmentOptions::default())
            .run()
            .unwrap()
    };
    start();
    portal.cancel_enrolment(&alice, &session).run().unwrap();
    start();
    for _ in 0..5 {
        let _ = portal.confirm_enrolment(&alice, &session, "000000").run();
    }
    let started = start();
    let phone = Totp::new(started.uri.secret(), *started.uri.params());
    let code = |at: u64| phone.generate(at).unwrap().expose().to_string();
    let confirmed = portal.confirm_enrolment(&alice, &session, &code(T0)).run().unwrap();
    let session = confirmed.session;
    let first = confirmed.authenticator;
    let backup: Vec<String> = confirmed.backup_codes.unwrap().expose().map(str::to_owned).collect();
    clock.advance(30);
    steps.push(portal.begin_sign_in(&alice).run().unwrap());
    let _ = portal.verify_sign_in(&alice, "000000").run();
    portal.verify_sign_in(&alice, &code(T0 + 30)).run().unwrap();
    let _ = portal.verify_sign_in(&alice, &code(T0 + 30)).run();
    portal.verify_sign_in(&alice, &backup[0]).run().unwrap();
    // A new phone replaces the first.
    clock.advance(30);
    let options = EnrolmentOptions::default().replacing(first).with_proof(&backup[1]);
    let replacing = portal
        .start_enrolment(&alice, &session, "alice", "New phone", options)
        .run()
        .unwrap();
    let new_phone = Totp::new(replacing.uri.secret(), *replacing.uri.params());
    let new_code = new_phone.generate(T0 + 60).unwrap().expose().to_string();
    let replaced = portal.confirm_enrolment(&alice, &session, &new_code).run().unwrap();
    // Remember this browser; its next sign-in needs no code; a made-up token is refused; forget all.
    let trusted = portal
        .trust_browser(&alice, &replaced.session, "Firefox on Linux")
        .run()
        .unwrap();
    clock.advance(30);
    steps.push(
        portal
            .begin_sign_in_with_browser(&alice, trusted.token.expose())
            .run()
            .unwrap(),
    );
    let _ = portal.begin_sign_in_with_browser(&alice, "not a token").run();
    portal.forget_browsers(&alice, &replaced.session).run().unwrap();
    while !matches!(
        portal.verify_sign_in(&alice, "000000").run(),
        Err(Error::LockedOut { .. })
    ) {}
    steps.push(portal.begin_sign_in(&alice).run().unwrap());
    let statuses = portal.users(UserQuery::new().limit(1)).run().unwrap();
    let locked = portal
        .users(UserQuery::new().status(StatusFilter::LockedOut))
        .run()
        .unwrap();
    portal
        .admin_reset(
            &admin,
            &alice,
            ResetReason::Other("phone in the lake".into()),
            ResetMode::ForceReenrolment,
        )
        .run()
        .unwrap();
    steps.push(portal.begin_sign_in(&alice).run().unwrap());

    line("policy", round_trip(&policy));
    line("default policy", round_trip(&PortalPolicy::default()));
    for step in &steps {
        line("step", round_trip(step));
    }
    line("users page", serde_json::to_string(&statuses).unwrap());
    let back: Page<UserStatus> = serde_json::from_str(&serde_json::to_string(&statuses).unwrap()).unwrap();
    assert_eq!(back, statuses);
    for status in &locked.items {
        line("locked user", round_trip(status));
    }
    line("status filter", round_trip(&StatusFilter::InGrace));
    // The audit trail, as the JSON Lines export writes it.
    let mut export = Vec::new();
    let written = portal
        .export_events(EventQuery::portal(portal.id()), &mut export)
        .run()
        .unwrap();
    let export = String::from_utf8(export).unwrap();
    assert_eq!(export.lines().count() as u64, written);
    let mut kinds = std::collections::BTreeSet::new();
    for json in export.lines() {
        let event: AuditEvent = serde_json::from_str(json).unwrap();
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            json,
            "an event reads back as written"
        );
        kinds.insert(event.kind.name());
        line("event", json.to_owned());
    }
    assert_eq!(kinds.len(), 21, "every event kind is in the snapshot: {kinds:?}");
    // No secret, code or backup code in any of it.
    let secret = started.uri.secret().to_base32().to_string();
    let token = trusted.token.expose().to_owned();
    for needle in backup.iter().chain([&secret, &code(T0), &code(T0 + 30), &token]) {
        assert!(!out.contains(needle.as_str()), "{needle} leaked into JSON");
    }

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/json.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &out).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    for (n, (got, want)) in out.lines().zip(expected.lines()).enumerate() {
        assert_eq!(got, want, "line {} of the JSON snapshot changed", n + 1);
    }
    assert_eq!(
        out.lines().count(),
        expected.lines().count(),
        "the JSON snapshot has other lines"
    );
}

#[test]
fn bad_json_is_refused_with_a_reason_never_a_wrong_value() {
    let policy = serde_json::to_value(PortalPolicy::default()).unwrap();
    let mut bad_digits = policy.clone();
    bad_digits["otp"]["digits"] = 9.into();
    assert!(serde_json::from_value::<PortalPolicy>(bad_digits).is_err());
    let mut saml_enforced = policy.clone();
    saml_enforced["sign_in_method"] = "saml".into();
    saml_enforced["enforcement"] = serde_json::json!({"mode": "enforced", "grace": null});
    let refused = serde_json::from_value::<PortalPolicy>(saml_enforced).unwrap_err();
    assert!(refused.to_string().contains("SAML"), "{refused}");
    let mut unknown = policy.clone();
    unknown["surprise"] = 1.into();
    assert!(serde_json::from_value::<PortalPolicy>(unknown).is_err());
    assert!(serde_json::from_str::<Cursor>("\"not a cursor\"").is_err());
    assert!(serde_json::from_str::<SignInStep>(r#"{"step":"teleport"}"#).is_err());
    assert!(serde_json::from_str::<AuditEvent>(r#"{"at":1}"#).is_err());
}

//! Arbitrary sequences of operations on one user's record: never a panic, a
//! time step never accepted twice, failures never past the hard limit, an
//! admin reset leaves nothing usable, and a trusted browser signs in only with
//! a token issued since the sessions last ended.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use portal_mfa::core::{Context, EnrolmentRequest};
use portal_mfa::{
    Enforcement, LockoutRule, PortalId, PortalPolicy,
    admin::{ResetMode, ResetReason},
    audit::{Actor, Factor},
    otp::{OtpAuthUri, Secret, Totp},
    record::MfaRecord,
};
use rand::SeedableRng;

#[derive(Arbitrary, Debug)]
enum Op {
    Advance(u16),
    Start { replace: bool, prove: bool },
    Confirm { right: bool },
    Cancel,
    SignInCurrent,
    SignInText(String),
    SignInBackup(u8),
    Delete { prove: bool },
    Regenerate,
    Reset { force: bool },
    Enforce(bool),
    TrustDays(u8),
    Trust,
    BrowserSignIn(u8),
    EndSessions,
    Forget(Option<u8>),
}

fuzz_target!(|ops: Vec<Op>| {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (portal, user) = (PortalId::new("p"), portal_mfa::UserId::customer("u"));
    let mut policy = PortalPolicy::default();
    let mut now = 1_763_800_000u64;
    let mut record = MfaRecord::default();
    let mut phones: Vec<(u32, Totp)> = Vec::new();
    let mut backup: Vec<String> = Vec::new();
    let mut accepted: HashSet<(u32, u64)> = HashSet::new();
    let mut stamp = None;
    // Tokens issued, with the session generation each was issued in.
    let mut tokens: Vec<(String, u64)> = Vec::new();
    let keyring = portal_mfa::Keyring::new("fuzz", &[3; 32]).unwrap();

    for op in ops.iter().take(64) {
        let user_actor = Actor::User;
        let admin = Actor::Admin("admin".into());
        let ctx = Context::new(&portal, &user, &policy, now, &user_actor, &keyring);
        // The session a self-service change is made from: the last one given while
        // it is current, else the password step's; a stale one must change nothing.
        let session = stamp
            .filter(|s| record.session_is_current(s))
            .or_else(|| record.clone().sign_in_step(&ctx).result.ok().and_then(|s| s.session()))
            .or(stamp);
        let current = |record: &MfaRecord, phones: &[(u32, Totp)]| {
            record.authenticators().first().and_then(|a| {
                phones
                    .iter()
                    .find(|(id, _)| *id == a.id().0)
                    .map(|(_, t)| t.generate(now).unwrap().expose().to_string())
            })
        };
        let outcome_record;
        let generation = record.session_generation();
        match op {
            Op::Advance(s) => {
                now += u64::from(*s);
                continue;
            }
            Op::Start { replace, prove } => {
                let proof = if *prove { current(&record, &phones) } else { None };
                let replaces = if *replace {
                    record.authenticators().first().map(|a| a.id())
                } else {
                    None
                };
                let request = EnrolmentRequest::new("phone", "u", "P")
                    .replacing(replaces)
                    .with_proof(proof.as_deref());
                let Some(session) = session else { continue };
                let o = record.start_enrolment(&ctx, &session, request, Secret::generate(&mut rng));
                if let Ok(started) = &o.result {
                    let scanned = OtpAuthUri::parse(&started.uri.to_uri()).unwrap();
                    phones.push((started.authenticator.0, Totp::new(scanned.secret(), *scanned.params())));
                }
                outcome_record = o.record;
            }
            Op::Confirm { right } => {
                let code = match (right, record.pending()) {
                    (true, Some(p)) => phones
                        .iter()
                        .find(|(id, _)| *id == p.id().0)
                        .map(|(_, t)| t.generate(now).unwrap().expose().to_string()),
                    _ => None,
                };
                let Some(session) = session else { continue };
                let o = record.confirm_enrolment(&ctx, &session, code.as_deref().unwrap_or("000000"), &mut rng);
                if let Ok(c) = &o.result {
                    stamp = Some(c.session);
                    if let Some(codes) = &c.backup_codes {
                        backup = codes.expose().map(str::to_owned).collect();
                    }
                }
                outcome_record = o.record;
            }
            Op::Cancel => {
                let Some(session) = session else { continue };
                outcome_record = record.cancel_enrolment(&ctx, &session).record
            }
            Op::SignInCurrent | Op::SignInText(_) | Op::SignInBackup(_) => {
                let input = match op {
                    Op::SignInCurrent => current(&record, &phones).unwrap_or_default(),
                    Op::SignInText(t) => t.clone(),
                    Op::SignInBackup(i) => backup
                        .get(usize::from(*i) % backup.len().max(1))
                        .cloned()
                        .unwrap_or_default(),
                    _ => unreachable!(),
                };
                let locked = record.failures().active_lock(now).is_some();
                let o = record.verify(&ctx, &input);
                if let Ok(v) = &o.result {
                    assert!(!locked, "signed in while locked");
                    stamp = Some(v.session);
                    if let Factor::Totp(id) = v.factor {
                        let a = o.record.authenticators().iter().find(|a| a.id() == id).unwrap();
                        assert!(
                            accepted.insert((id.0, a.last_used_step().unwrap())),
                            "a step was accepted twice"
                        );
                    }
                }
                outcome_record = o.record;
            }
            Op::Delete { prove } => {
                let Some(id) = record.authenticators().first().map(|a| a.id()) else {
                    continue;
                };
                let proof = if *prove {
                    current(&record, &phones).unwrap_or_default()
                } else {
                    "000000".into()
                };
                let Some(session) = session else { continue };
                let o = record.delete_authenticator(&ctx, &session, id, &proof);
                if let Ok(renewed) = o.result {
                    stamp = Some(renewed);
                }
                outcome_record = o.record;
            }
            Op::Regenerate => {
                let proof = current(&record, &phones).unwrap_or_default();
                let Some(session) = session else { continue };
                let o = record.regenerate_backup_codes(&ctx, &session, &proof, &mut rng);
                if let Ok(codes) = &o.result {
                    stamp = Some(codes.session);
                    backup = codes.codes.expose().map(str::to_owned).collect();
                }
                outcome_record = o.record;
            }
            Op::Reset { force } => {
                let ctx = Context::new(ctx.portal, ctx.user, ctx.policy, ctx.now, &admin, &keyring);
                let mode = if *force {
                    ResetMode::ForceReenrolment
                } else {
                    ResetMode::RemoveOnly
                };
                let o = record.admin_reset(&ctx, ResetReason::LostDevice, mode);
                assert!(o.result.is_ok());
                assert!(
                    o.record.authenticators().is_empty()
                        && o.record.backup_codes().is_none()
                        && o.record.pending().is_none()
                );
                outcome_record = o.record;
            }
            Op::TrustDays(days) => {
                policy = policy.with_trusted_browser_days(days % 181).unwrap();
                continue;
            }
            Op::Trust => {
                let Some(s) = stamp else { continue };
                let o = record.trust_browser(&ctx, &s, "browser", &mut rng);
                if let Ok(issued) = &o.result {
                    tokens.push((issued.token.expose().to_owned(), generation));
                }
                outcome_record = o.record;
            }
            Op::BrowserSignIn(i) => {
                let token = tokens.get(usize::from(*i)).cloned();
                let locked = record.failures().active_lock(now).is_some();
                let text = token.as_ref().map_or("not a token", |(t, _)| t.as_str());
                let o = record.sign_in_with_browser(&ctx, text);
                if let Ok(portal_mfa::SignInStep::TrustedBrowser { session, .. }) = &o.result {
                    assert!(!locked, "a trusted browser signed in while locked");
                    assert_eq!(token.map(|(_, g)| g), Some(generation), "a token outlived its sessions");
                    stamp = Some(*session);
                }
                outcome_record = o.record;
            }
            Op::EndSessions => {
                let o = record.end_sessions(&ctx, stamp.as_ref());
                if let Ok(Some(renewed)) = o.result {
                    stamp = Some(renewed);
                }
                outcome_record = o.record;
            }
            Op::Forget(which) => {
                let Some(session) = session else { continue };
                let id = which.and_then(|i| record.trusted_browsers().get(usize::from(i)).map(|b| b.id()));
                let o = record.forget_browsers(&ctx, &session, id);
                // A session a forgotten browser signed in ends with it.
                if let (Ok(_), Some(browser)) = (&o.result, session.browser()) {
                    assert_eq!(
                        o.record.session_is_current(&session),
                        o.record.trusted_browsers().iter().any(|b| b.id() == browser)
                    );
                }
                outcome_record = o.record;
            }
            Op::Enforce(on) => {
                let e = if *on {
                    Enforcement::Enforced { grace: None }
                } else {
                    Enforcement::SelfConfigured
                };
                policy = policy.with_enforcement(e).unwrap();
                continue;
            }
        }
        record = outcome_record;
        assert!(record.failures().consecutive() <= LockoutRule::HARD_LIMIT);
        assert!(record.trusted_browsers().len() <= 5);
        // Ending sessions forgets every browser.
        if record.session_generation() != generation {
            assert_eq!(record.session_generation(), generation + 1);
            assert!(record.trusted_browsers().is_empty());
        }
        // Every record survives the trip through its stored form (what stores write).
        let bytes = record
            .encode(&portal, &user, &keyring, &mut rng)
            .expect("a record encodes");
        let again = MfaRecord::decode(&bytes, &portal, &user, &keyring).expect("a record's own stored form decodes");
        assert_eq!(format!("{again:?}"), format!("{record:?}"));
    }
});

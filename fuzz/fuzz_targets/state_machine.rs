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
        let ctx = Context::new(&portal, &user, &policy, now, &user_actor);
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
                let o = record.start_enrolment(&ctx, request, Secret::generate(&mut rng));
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
                let o = record.confirm_enrolment(&ctx, code.as_deref().unwrap_or("000000"), &mut rng);
                if let Ok(c) = &o.result {
                    if let Some(codes) = &c.backup_codes {
                        backup = codes.expose().map(str::to_owned).collect();
                    }
                }
                outcome_record = o.record;
            }
            Op::Cancel => outcome_record = record.cancel_enrolment(&ctx).record,
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
                outcome_record = record.delete_authenticator(&ctx, id, &proof).record;
            }
            Op::Regenerate => {
                let proof = current(&record, &phones).unwrap_or_default();
                let o = record.regenerate_backup_codes(&ctx, &proof, &mut rng);
                if let Ok(codes) = &o.result {
                    backup = codes.codes.expose().map(str::to_owned).collect();
                }
                outcome_record = o.record;
            }
            Op::Reset { force } => {
                let ctx = Context::new(ctx.portal, ctx.user, ctx.policy, ctx.now, &admin);
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
                let o = record.trust_browser(&ctx, s, "browser", &mut rng);
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
            Op::EndSessions => outcome_record = record.end_sessions(&ctx, stamp).record,
            Op::Forget(which) => {
                let id = which.and_then(|i| record.trusted_browsers().get(usize::from(i)).map(|b| b.id()));
                outcome_record = record.forget_browsers(&ctx, id).record;
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

//! Any bytes offered as a stored record, policy or event: never a panic; a
//! consistent value or a typed error; and whatever decodes has a stored form
//! that is stable (encode → decode → encode gives the same bytes).
//!
//! Inputs that start with a valid record (the corpus is seeded with real
//! ones by `seed`) reach past the sealed secrets, whose tags a mutation
//! cannot forge.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portal_mfa::core::{Context, EnrolmentRequest};
use portal_mfa::{
    Error, Keyring, PortalId, PortalPolicy, UserId,
    admin::{ResetMode, ResetReason},
    audit::{Actor, AuditEvent},
    otp::{Secret, Totp, TotpParams},
    record::MfaRecord,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: u64 = 1_763_800_000;

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| Keyring::new("fuzz", &[7; 32]).unwrap())
}

fn owner() -> (PortalId, UserId) {
    (PortalId::new("p"), UserId::customer("u"))
}

/// Real records in several states, encoded: prefixed to the input, so
/// mutations of their tails are explored.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(1);
        let (portal, user) = owner();
        let policy = PortalPolicy::default();
        let (me, admin) = (Actor::User, Actor::Admin("admin".into()));
        let stamps = portal_mfa::Keyring::new("stamps", &[4; 32]).unwrap();
        let ctx = Context::new(&portal, &user, &policy, NOW, &me, &stamps);
        let secret = Secret::generate(&mut rng);
        let totp = Totp::new(&secret, TotpParams::standard());
        let request = EnrolmentRequest::new("phone", "u", "P");
        let session = MfaRecord::default().sign_in_step(&ctx).result.unwrap().session().unwrap();
        let pending = MfaRecord::default().start_enrolment(&ctx, &session, request, secret).record;
        let enrolled = pending
            .clone()
            .confirm_enrolment(&ctx, &session, &totp.generate(NOW).unwrap().expose(), &mut rng)
            .record;
        let admin_ctx = Context::new(ctx.portal, ctx.user, ctx.policy, ctx.now, &admin, &stamps);
        let reset = enrolled
            .clone()
            .admin_reset(
                &admin_ctx,
                ResetReason::Other("note".into()),
                ResetMode::ForceReenrolment,
            )
            .record;
        // Two trusted browsers, one used, after the sessions ended once.
        let trusting = policy.with_trusted_browser_days(30).unwrap();
        let trust_ctx = Context::new(ctx.portal, ctx.user, &trusting, NOW + 30, &me, &stamps);
        let signed_in = enrolled
            .clone()
            .verify(&trust_ctx, &totp.generate(NOW + 30).unwrap().expose());
        let stamp = signed_in.result.unwrap().session;
        let ended = signed_in.record.end_sessions(&trust_ctx, Some(&stamp));
        let stamp = ended.result.unwrap().unwrap();
        let first = ended.record.trust_browser(&trust_ctx, &stamp, "Firefox", &mut rng);
        let token = first.result.unwrap().token;
        // One code trusts one browser: the second follows a code of its own.
        let later = Context::new(ctx.portal, ctx.user, &trusting, NOW + 60, &me, &stamps);
        let again = first.record.verify(&later, &totp.generate(NOW + 60).unwrap().expose());
        let stamp = again.result.unwrap().session;
        let used = again
            .record
            .trust_browser(&later, &stamp, "Safari on iPhone", &mut rng)
            .record
            .sign_in_with_browser(&trust_ctx, token.expose())
            .record;
        [MfaRecord::default(), pending, enrolled, reset, used]
            .iter()
            .map(|r| r.encode(&portal, &user, keyring(), &mut rng).unwrap())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let (portal, user) = owner();
    let bytes: Vec<u8> = match data.split_first() {
        // A seed's head, then the input: the fuzzer mutates everything after a valid prefix.
        Some((&which, rest)) if which < 0x80 => {
            let seed = &seeds()[usize::from(which) % seeds().len()];
            let keep = rest.first().map_or(seed.len(), |&n| usize::from(n) * seed.len() / 255);
            [&seed[..keep], rest.get(1..).unwrap_or_default()].concat()
        }
        _ => data.to_vec(),
    };
    match MfaRecord::decode(&bytes, &portal, &user, keyring()) {
        Ok(record) => {
            let again = record
                .encode(&portal, &user, keyring(), &mut StdRng::seed_from_u64(2))
                .unwrap();
            let back = MfaRecord::decode(&again, &portal, &user, keyring()).expect("its own stored form decodes");
            let third = back
                .encode(&portal, &user, keyring(), &mut StdRng::seed_from_u64(2))
                .unwrap();
            assert_eq!(again, third, "encode → decode → encode is stable");
            assert_eq!(format!("{back:?}"), format!("{record:?}"));
        }
        Err(
            Error::CorruptRecord(_)
            | Error::IncompatibleFormat { .. }
            | Error::KeyUnavailable { .. }
            | Error::WrongKey { .. },
        ) => {}
        Err(other) => panic!("untyped answer to stored bytes: {other:?}"),
    }
    if let Ok(policy) = PortalPolicy::decode(&bytes) {
        assert_eq!(PortalPolicy::decode(&policy.encode()).unwrap(), policy);
    }
    if let Ok(event) = AuditEvent::decode(&bytes) {
        assert_eq!(AuditEvent::decode(&event.encode()).unwrap(), event);
    }
});

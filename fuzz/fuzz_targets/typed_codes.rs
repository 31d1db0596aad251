//! Any text typed where a TOTP code or a backup code is expected: never a
//! panic; a parsed code formats back to itself; a wrong input never signs in.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portal_mfa::core::{Context, EnrolmentRequest};
use portal_mfa::{
    PortalId, PortalPolicy, UserId,
    audit::Actor,
    otp::{Code, Digits, Secret, TotpParams},
    record::MfaRecord,
};
use rand::SeedableRng;

const NOW: u64 = 1_763_800_000;

struct Fixture {
    record: MfaRecord,
    accepted: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Enrolled through the transitions themselves: one app, ten backup codes.
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let secret = Secret::generate(&mut rng);
        let totp = portal_mfa::otp::Totp::new(&secret, TotpParams::standard());
        let (portal, user, policy, actor) = (
            PortalId::new("p"),
            UserId::customer("u"),
            PortalPolicy::default(),
            Actor::User,
        );
        let keyring = portal_mfa::Keyring::new("fuzz", &[3; 32]).unwrap();
        let ctx = Context::new(&portal, &user, &policy, NOW - 60, &actor, &keyring);
        let session = MfaRecord::default().sign_in_step(&ctx).result.unwrap().session().unwrap();
        let request = EnrolmentRequest::new("phone", "u", "P");
        let started = MfaRecord::default().start_enrolment(&ctx, &session, request, secret);
        let first = totp.generate(NOW - 60).unwrap().expose().to_string();
        let confirmed = started.record.confirm_enrolment(&ctx, &session, &first, &mut rng);
        let issued = confirmed.result.unwrap().backup_codes.unwrap();
        let mut accepted: Vec<String> = issued.expose().map(str::to_owned).collect();
        accepted.extend((0..3).map(|i| totp.generate(NOW - 30 + i * 30).unwrap().expose().to_string()));
        Fixture {
            record: confirmed.record,
            accepted,
        }
    })
}

fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\t'))
        .collect::<String>()
        .to_uppercase()
        .replace('O', "0")
        .replace(['I', 'L'], "1")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for digits in [Digits::SIX, Digits::SEVEN, Digits::EIGHT] {
        if let Ok(code) = Code::parse(text, digits) {
            assert_eq!(Code::parse(&code.expose(), digits).unwrap().expose(), code.expose());
        }
    }
    let fixture = fixture();
    let (portal, user, policy, actor) = (
        PortalId::new("p"),
        UserId::customer("u"),
        PortalPolicy::default(),
        Actor::User,
    );
    let keyring = portal_mfa::Keyring::new("fuzz", &[3; 32]).unwrap();
    let ctx = Context::new(&portal, &user, &policy, NOW, &actor, &keyring);
    let outcome = fixture.record.clone().verify(&ctx, text);
    if outcome.result.is_ok() {
        let typed = normalise(text);
        assert!(
            fixture.accepted.iter().any(|a| normalise(a) == typed),
            "an input that is none of the user's codes signed in"
        );
    }
});

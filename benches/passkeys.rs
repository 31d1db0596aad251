//! What a passkey costs, in one run so the ratios hold on a noisy machine.
//!
//! Group `passkey_verify`, one assertion from a P-256 security key
//! (passkey-rs's software authenticator):
//! - `p256_ecdsa_verify`: the floor, the signature checked by hand over
//!   `authenticatorData || SHA-256(clientDataJSON)` with RustCrypto's `p256`;
//! - `webauthn_rs_assertion`: the same response parsed from its JSON and
//!   verified by `webauthn-rs` against its state (challenge, origin, RP id,
//!   flags, counter, signature), as the portal does.
//!
//! Group `sign_in_sqlite`, over 200 users on SQLite (a file, WAL), a
//! random user each time, the authenticator's own work left out of the time:
//! - `totp`: `begin_sign_in` then `verify_sign_in` with a code;
//! - `passkey`: `begin_sign_in` (which issues and stores the challenge) then
//!   `verify_sign_in` with the browser's response.

#[path = "../tests/flows/soft_key.rs"]
#[allow(dead_code, unreachable_pub)]
mod soft_key;

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use p256::ecdsa::signature::Verifier;
use portal_mfa::passkey::{PasskeyOptions, RelyingParty};
use portal_mfa::store::SqliteStore;
use portal_mfa::{Clock, EnrolmentOptions, Keyring, ManualClock, Portal, PortalId, SignInStep, UserId, otp::Totp};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sha2::{Digest, Sha256};
use soft_key::{ORIGIN, SoftKey};
use webauthn_rs::prelude::{COSEKeyType, Credential, PublicKeyCredential, Url};

const T0: u64 = 1_763_800_000;
const USERS: usize = 200;
const RP_ID: &str = "example.com";

fn b64(value: &serde_json::Value) -> Vec<u8> {
    let text = value.as_str().expect("a base64url string");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

fn verify(c: &mut Criterion) {
    let webauthn = webauthn_rs::WebauthnBuilder::new(RP_ID, &Url::parse(ORIGIN).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut key = SoftKey::security_key();
    let (options, state) = webauthn
        .start_securitykey_registration(uuid(), "bench", "bench", None, None, None)
        .unwrap();
    let response = key
        .register(&PasskeyOptions::from(serde_json::to_string(&options).unwrap()))
        .unwrap();
    let registered = webauthn
        .finish_securitykey_registration(&serde_json::from_str(&response).unwrap(), &state)
        .unwrap();
    let (options, state) = webauthn
        .start_securitykey_authentication(std::slice::from_ref(&registered))
        .unwrap();
    let response = key.sign_json(&serde_json::to_string(&options).unwrap()).unwrap();

    // The floor's inputs, from the same response and credential.
    let json: serde_json::Value = serde_json::from_str(&response).unwrap();
    let (auth, client_data, der) = (
        b64(&json["response"]["authenticatorData"]),
        b64(&json["response"]["clientDataJSON"]),
        b64(&json["response"]["signature"]),
    );
    let credential = Credential::from(registered);
    let COSEKeyType::EC_EC2(ec) = &credential.cred.key else {
        panic!("a P-256 key")
    };
    let mut point = vec![4];
    point.extend_from_slice(&ec.x);
    point.extend_from_slice(&ec.y);
    let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();

    let mut group = c.benchmark_group("passkey_verify");
    group.sample_size(100).measurement_time(Duration::from_secs(5));
    group.bench_function("p256_ecdsa_verify", |b| {
        b.iter(|| {
            let mut signed = black_box(&auth).clone();
            signed.extend_from_slice(&Sha256::digest(black_box(&client_data)));
            let signature = p256::ecdsa::Signature::from_der(black_box(&der)).unwrap();
            public.verify(&signed, &signature).unwrap();
        })
    });
    group.bench_function("webauthn_rs_assertion", |b| {
        b.iter(|| {
            let parsed: PublicKeyCredential = serde_json::from_str(black_box(&response)).unwrap();
            black_box(webauthn.finish_securitykey_authentication(&parsed, &state).unwrap())
        })
    });
    group.finish();
}

fn uuid() -> webauthn_rs::prelude::Uuid {
    webauthn_rs::prelude::Uuid::from_bytes([7; 16])
}

fn sign_in(c: &mut Criterion) {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-passkeys");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let clock = ManualClock::at(T0);
    let portal = Portal::new(
        PortalId::new("bench"),
        "Bench",
        SqliteStore::open(dir.join("passkeys.db")).expect("open"),
    )
    .expect("portal")
    .with_keyring(Keyring::new("bench", &[9; 32]).expect("keyring"))
    .with_clock(clock.clone())
    .with_rng(StdRng::seed_from_u64(7))
    .with_passkeys(RelyingParty::new(RP_ID, &[ORIGIN], "Bench").unwrap());
    let password_step = |user: &UserId| portal.begin_sign_in(user).run().unwrap().session().expect("a stamp");
    let mut phones = Vec::new();
    let mut keys = Vec::new();
    for i in 0..USERS {
        let user = UserId::customer(format!("app-{i:04}"));
        let session = password_step(&user);
        let started = portal
            .start_enrolment(&user, &session, "u@example.com", "phone", EnrolmentOptions::default())
            .run()
            .unwrap();
        let phone = Totp::new(started.uri.secret(), *started.uri.params());
        let code = phone.generate(clock.now()).unwrap().expose().to_string();
        portal.confirm_enrolment(&user, &session, &code).run().unwrap();
        phones.push((user, phone));

        let user = UserId::customer(format!("key-{i:04}"));
        let session = password_step(&user);
        let mut key = SoftKey::security_key();
        let started = portal
            .start_passkey_registration(&user, &session, "u@example.com", "key", EnrolmentOptions::default())
            .run()
            .unwrap();
        let response = key.register(&started.options).unwrap();
        portal
            .finish_passkey_registration(&user, &session, &response)
            .run()
            .unwrap();
        keys.push((user, key));
    }
    let mut rng = StdRng::seed_from_u64(11);
    let mut group = c.benchmark_group("sign_in_sqlite");
    group.sample_size(40).measurement_time(Duration::from_secs(8));
    group.bench_function("totp", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                // A fresh time step, so no code is a replay; the phone's work is left out.
                clock.advance(30);
                let (user, phone) = &phones[rng.random_range(0..USERS)];
                let code = phone.generate(clock.now()).unwrap().expose().to_string();
                let start = Instant::now();
                let step = portal.begin_sign_in(user).run().unwrap();
                assert!(matches!(step, SignInStep::EnterCode { .. }));
                black_box(portal.verify_sign_in(user, &code).run().unwrap());
                spent += start.elapsed();
            }
            spent
        })
    });
    group.bench_function("passkey", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let (user, key) = &mut keys[rng.random_range(0..USERS)];
                let start = Instant::now();
                let SignInStep::EnterCode {
                    passkey: Some(options), ..
                } = portal.begin_sign_in(user).run().unwrap()
                else {
                    panic!("a passkey challenge")
                };
                spent += start.elapsed();
                let response = key.sign(&options).unwrap();
                let start = Instant::now();
                black_box(portal.verify_sign_in(user, &response).run().unwrap());
                spent += start.elapsed();
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, verify, sign_in);
criterion_main!(benches);

//! TOTP verification next to totp-rs and the physical floor, in one run so the
//! ratios hold on a noisy machine.
//!
//! Per group: `portal_mfa_reject` (wrong code: all 3 candidates), `totp_rs_reject`
//! (totp-rs `check`, same secret and time), `portal_mfa_accept` / `totp_rs_accept`
//! (right code at the newest step of the ±1 window), and `floor`: six raw block
//! compressions, what 3 HMAC candidates cannot go below.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portal_mfa::otp::{Algorithm, Digits, Secret, Totp, TotpParams, Window};

const NOW: u64 = 1_763_800_000;

fn peer(key: &[u8], algorithm: totp_rs::Algorithm) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(algorithm)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(key.to_vec())
        .build()
        .expect("valid totp-rs parameters")
}

fn floor<S: Copy, const B: usize>(state: S, compress: impl Fn(&mut S, &[[u8; B]])) -> S {
    let block = black_box([0x5au8; B]);
    let mut s = black_box(state);
    for _ in 0..6 {
        compress(&mut s, std::slice::from_ref(&block));
    }
    s
}

fn group(c: &mut Criterion, name: &str, algorithm: Algorithm, peer_alg: totp_rs::Algorithm, run_floor: &dyn Fn()) {
    let key: Vec<u8> = (0u8..20).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    let secret = Secret::from_bytes(&key, 128).expect("20-byte key");
    let ours = Totp::new(
        &secret,
        TotpParams::new(algorithm, Digits::SIX, 30).expect("valid parameters"),
    );
    let theirs = peer(&key, peer_alg);
    let window = Window::default();

    let newest = ours.generate(NOW + 30).expect("time after T0").expose();
    let window_codes: Vec<String> = (0..3)
        .map(|i| ours.generate(NOW - 30 + 30 * i).unwrap().expose().to_string())
        .collect();
    let wrong = (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !window_codes.contains(c))
        .expect("some code is outside the window");
    assert!(ours.verify_str(&wrong, NOW, window).unwrap().is_none());
    assert!(theirs.check(&wrong, NOW).is_none());
    assert!(ours.verify_str(&newest, NOW, window).unwrap().is_some());
    assert!(theirs.check(&newest, NOW).is_some());

    let mut g = c.benchmark_group(name);
    g.bench_function("portal_mfa_reject", |b| {
        b.iter(|| ours.verify_str(black_box(&wrong), black_box(NOW), window))
    });
    g.bench_function("totp_rs_reject", |b| {
        b.iter(|| theirs.check(black_box(&wrong), black_box(NOW)))
    });
    g.bench_function("portal_mfa_accept", |b| {
        b.iter(|| ours.verify_str(black_box(&newest), black_box(NOW), window))
    });
    g.bench_function("totp_rs_accept", |b| {
        b.iter(|| theirs.check(black_box(&newest), black_box(NOW)))
    });
    g.bench_function("floor", |b| b.iter(run_floor));
    g.finish();
}

fn verify(c: &mut Criterion) {
    group(
        c,
        "verify_sha1_6_skew1",
        Algorithm::Sha1,
        totp_rs::Algorithm::SHA1,
        &|| {
            black_box(floor([1u32; 5], sha1::block_api::compress));
        },
    );
    group(
        c,
        "verify_sha256_6_skew1",
        Algorithm::Sha256,
        totp_rs::Algorithm::SHA256,
        &|| {
            black_box(floor([1u32; 8], sha2::block_api::compress256));
        },
    );
    group(
        c,
        "verify_sha512_6_skew1",
        Algorithm::Sha512,
        totp_rs::Algorithm::SHA512,
        &|| {
            black_box(floor([1u64; 8], sha2::block_api::compress512));
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = verify
}
criterion_main!(benches);

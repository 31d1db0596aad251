//! Known answers from the RFCs themselves: RFC 4226 Appendix D and RFC 6238 Appendix B.

use portal_mfa::otp::{Algorithm, Code, Digits, Hotp, Secret, Totp, TotpParams, Window};

const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

fn secret(bytes: &[u8]) -> Secret {
    Secret::from_bytes(bytes, 128).expect("RFC seeds are at least 160 bits")
}

/// RFC 4226 Appendix D: HOTP-SHA-1, 6 digits, counters 0 to 9.
#[test]
fn rfc4226_appendix_d() {
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489",
    ];
    let hotp = Hotp::new(&secret(SEED_SHA1), Algorithm::Sha1, Digits::SIX);
    for (counter, want) in expected.iter().enumerate() {
        let counter = counter as u64;
        assert_eq!(hotp.generate(counter).expose().as_str(), *want, "counter {counter}");
        let typed = Code::parse(want, Digits::SIX).unwrap();
        assert_eq!(hotp.verify(&typed, counter, 0).unwrap(), Some(counter));
    }
}

/// RFC 6238 Appendix B: 8 digits, 30 s, T0 = 0, each algorithm with its own seed length
/// (as the RFC's reference code uses; the table's "seed" column abbreviates them).
#[test]
fn rfc6238_appendix_b() {
    let table: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ];
    let verifiers = [
        (Algorithm::Sha1, SEED_SHA1),
        (Algorithm::Sha256, SEED_SHA256),
        (Algorithm::Sha512, SEED_SHA512),
    ]
    .map(|(alg, seed)| Totp::new(&secret(seed), TotpParams::new(alg, Digits::EIGHT, 30).unwrap()));
    let mut checked = 0;
    for (time, sha1, sha256, sha512) in table {
        for (totp, want) in verifiers.iter().zip([sha1, sha256, sha512]) {
            assert_eq!(
                totp.generate(time).unwrap().expose().as_str(),
                want,
                "{:?} at {time}",
                totp.params()
            );
            let step = time / 30;
            assert_eq!(totp.verify_str(want, time, Window::exact()).unwrap(), Some(step));
            checked += 1;
        }
    }
    assert_eq!(checked, 18);
}

/// T0 shifts every step: the RFC's answers hold when time and T0 move together.
#[test]
fn t0_offsets_the_steps() {
    let params = TotpParams::new(Algorithm::Sha1, Digits::EIGHT, 30)
        .unwrap()
        .with_t0(1_000);
    let totp = Totp::new(&secret(SEED_SHA1), params);
    assert_eq!(totp.generate(1_000 + 59).unwrap().expose().as_str(), "94287082");
    assert!(matches!(totp.generate(999), Err(portal_mfa::Error::TimeBeforeEpoch)));
}

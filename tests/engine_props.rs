//! Property tests: our engine against totp-rs (an implementation no one here wrote),
//! and the window rules on random inputs.

use portal_mfa::otp::{Algorithm, Code, Digits, Hotp, Secret, Totp, TotpParams, Window};
use proptest::prelude::*;

fn peer_algorithm(algorithm: Algorithm) -> totp_rs::Algorithm {
    match algorithm {
        Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
        Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
        Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        _ => unreachable!("only three algorithms exist"),
    }
}

fn peer(secret: &[u8], algorithm: Algorithm, digits: u8, period: u64) -> totp_rs::Totp {
    // build_noncompliant: totp-rs refuses secrets under 128 bits, we compare those too.
    totp_rs::Builder::new()
        .with_algorithm(peer_algorithm(algorithm))
        .with_digits(digits)
        .with_step_duration(period)
        .with_skew(0)
        .with_secret(secret.to_vec())
        .build_noncompliant()
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![Just(Algorithm::Sha1), Just(Algorithm::Sha256), Just(Algorithm::Sha512)]
}

fn digits() -> impl Strategy<Value = Digits> {
    (6u8..=8).prop_map(|d| Digits::new(d).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Key lengths cover short keys, one block, and keys longer than a block (hashed first).
    #[test]
    fn totp_codes_equal_totp_rs(
        key in prop::collection::vec(any::<u8>(), 1..=200),
        time in any::<u64>(),
        algorithm in algorithm(),
        digits in digits(),
        period in prop_oneof![Just(30u64), Just(60), Just(TotpParams::MAX_PERIOD), 1u64..=TotpParams::MAX_PERIOD],
    ) {
        let ours = Totp::new(&Secret::from_bytes(&key, 8).unwrap(), TotpParams::new(algorithm, digits, period).unwrap());
        let theirs = peer(&key, algorithm, digits.get(), period);
        prop_assert_eq!(ours.generate(time).unwrap().expose().to_string(), theirs.generate(time).to_string());
    }

    /// HOTP(counter) is TOTP with a 1-second period at time = counter.
    #[test]
    fn hotp_codes_equal_totp_rs(
        key in prop::collection::vec(any::<u8>(), 1..=200),
        counter in any::<u64>(),
        algorithm in algorithm(),
        digits in digits(),
    ) {
        let ours = Hotp::new(&Secret::from_bytes(&key, 8).unwrap(), algorithm, digits);
        let theirs = peer(&key, algorithm, digits.get(), 1);
        prop_assert_eq!(ours.generate(counter).expose().to_string(), theirs.generate(counter).to_string());
    }

    /// A code from step s verifies at every time whose window holds s, and never
    /// yields s from a time whose window misses it.
    #[test]
    fn window_accepts_inside_and_rejects_outside(
        key in prop::collection::vec(any::<u8>(), 16..=64),
        step in 20u64..1_000_000_000,
        algorithm in algorithm(),
        digits in digits(),
        period in 1u64..=120,
        past in 0u8..=3,
        future in 0u8..=3,
        offset in -6i64..=6,
    ) {
        let totp = Totp::new(&Secret::from_bytes(&key, 128).unwrap(), TotpParams::new(algorithm, digits, period).unwrap());
        let window = Window::new(past, future).unwrap();
        let code = totp.generate_at_step(step);
        let now_step = step.checked_add_signed(offset).unwrap();
        let result = totp.verify(&code, now_step * period + period / 2, window).unwrap();
        // The window around now_step: [now - past, now + future]. s is inside when
        // now - past <= s <= now + future, i.e. -future <= offset <= past.
        let inside = -i64::from(future) <= offset && offset <= i64::from(past);
        // Distinct steps collide on a code with probability 10^-digits; allow only real collisions.
        let first = now_step - u64::from(past);
        let last = now_step + u64::from(future);
        let colliding: Vec<u64> = (first..=last)
            .filter(|&s| totp.generate_at_step(s).expose() == code.expose())
            .collect();
        prop_assert_eq!(result, colliding.last().copied());
        prop_assert_eq!(colliding.contains(&step), inside);
    }

    /// Formatting and parsing a code are inverse, with or without a space between groups.
    #[test]
    fn code_round_trips(value in 0u32..100_000_000, digits in digits()) {
        let text = format!("{:0w$}", value % 10u32.pow(u32::from(digits.get())), w = usize::from(digits.get()));
        let parsed = Code::parse(&text, digits).unwrap();
        prop_assert_eq!(parsed.expose().to_string(), text.as_str());
        let grouped = format!("{} {}", &text[..3], &text[3..]);
        prop_assert_eq!(Code::parse(&grouped, digits).unwrap().expose().to_string(), text.as_str());
    }

    /// Any secret survives base32 in both presentations.
    #[test]
    fn secret_base32_round_trips(key in prop::collection::vec(any::<u8>(), 16..=64)) {
        let secret = Secret::from_bytes(&key, 128).unwrap();
        for text in [secret.to_base32().to_string(), secret.to_grouped_base32().to_string(), secret.to_base32().to_lowercase()] {
            let back = Secret::from_base32(&text).unwrap();
            prop_assert_eq!(back.expose_bytes(), key.as_slice());
        }
    }
}

/// Years after 2038 and 2106 (the 32-bit limits) have steps like any other.
#[test]
fn far_future_times_work() {
    let key = [7u8; 20];
    let totp = Totp::new(&Secret::from_bytes(&key, 128).unwrap(), TotpParams::standard());
    for time in [2_147_483_648u64, 4_294_967_296, 253_402_300_799, u64::MAX] {
        let code = totp.generate(time).unwrap();
        assert_eq!(
            code.expose().to_string(),
            peer(&key, Algorithm::Sha1, 6, 30).generate(time).to_string()
        );
        assert_eq!(totp.verify(&code, time, Window::default()).unwrap(), Some(time / 30));
    }
}

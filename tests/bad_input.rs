//! Every parse path gets malformed, empty, huge and non-ASCII input and answers
//! with its typed error, never a panic, and never echoes the input back.

use portal_mfa::{
    Error,
    otp::{Code, CodeFormatError, CodeKind, Digits, OtpAuthUri, Secret, SecretError, TotpParams, UriError},
};
use proptest::prelude::*;

fn code_error(input: &str) -> CodeFormatError {
    match Code::parse(input, Digits::SIX) {
        Err(Error::MalformedCode(reason)) => reason,
        other => panic!("expected a malformed-code error for {input:?}, got {other:?}"),
    }
}

#[test]
fn malformed_codes_are_typed_errors() {
    assert_eq!(code_error(""), CodeFormatError::Empty);
    assert_eq!(code_error("   \t "), CodeFormatError::Empty);
    assert_eq!(code_error(&"1".repeat(65)), CodeFormatError::TooLong);
    assert_eq!(code_error(&"9".repeat(1_000_000)), CodeFormatError::TooLong);
    assert_eq!(
        code_error("12345"),
        CodeFormatError::WrongLength {
            kind: CodeKind::Totp,
            expected: 6,
            found: 5
        }
    );
    assert_eq!(
        code_error("1234567"),
        CodeFormatError::WrongLength {
            kind: CodeKind::Totp,
            expected: 6,
            found: 7
        }
    );
    assert_eq!(
        code_error("99999999999999999999"),
        CodeFormatError::WrongLength {
            kind: CodeKind::Totp,
            expected: 6,
            found: 20
        }
    );
    for bad in [
        "12a456",
        "123--456",
        "123  456",
        "123 -456",
        "123456-",
        "１２３４５６",
        "12345٦",
        "+12345",
        "-123456",
        "12345\u{0}",
        "12 34\n56",
        "1e5",
    ] {
        assert_eq!(
            code_error(bad),
            CodeFormatError::InvalidCharacter { kind: CodeKind::Totp },
            "{bad:?}"
        );
    }
    // Accepted shapes, for contrast.
    assert!(Code::parse(" 123456 ", Digits::SIX).is_ok());
    assert!(Code::parse("123 456", Digits::SIX).is_ok());
    assert!(Code::parse("12 34 56", Digits::SIX).is_ok());
    assert!(Code::parse("123-456", Digits::SIX).is_ok());
}

fn secret_error(input: &str) -> SecretError {
    match Secret::from_base32(input) {
        Err(Error::InvalidSecret(reason)) => reason,
        other => panic!("expected an invalid-secret error, got {other:?}"),
    }
}

#[test]
fn malformed_secrets_are_typed_errors() {
    assert_eq!(secret_error(""), SecretError::TooShort { bits: 0, minimum: 128 });
    assert_eq!(secret_error("===="), SecretError::TooShort { bits: 0, minimum: 128 });
    // 80 bits: the classic example key is too short for new enrolments by default...
    assert_eq!(
        secret_error("JBSWY3DPEHPK3PXP"),
        SecretError::TooShort { bits: 80, minimum: 128 }
    );
    // ...but importable when the caller lowers the minimum.
    assert_eq!(Secret::from_base32_with_min("JBSWY3DPEHPK3PXP", 80).unwrap().len(), 10);
    for bad in [
        "JBSWY3DPEHPK3PX1",
        "JBSWY3DPEHPK3PX8",
        "JBSW!3DPEHPK3PXP",
        "ЈBSWY3DPEHPK3PXP",
        "JBSWY3DP=EHPK3PXP",
        "A",
    ] {
        assert_eq!(secret_error(bad), SecretError::InvalidBase32, "{bad:?}");
    }
    assert_eq!(secret_error(&"A".repeat(10_000)), SecretError::TooLong);
    assert_eq!(secret_error(&"A".repeat(416)), SecretError::TooLong); // 260 bytes
    assert!(matches!(
        Secret::from_bytes(&[], 0),
        Err(Error::InvalidSecret(SecretError::TooShort { .. }))
    ));
    assert!(matches!(
        Secret::generate_with_len(&mut rand::rng(), 15),
        Err(Error::InvalidSecret(SecretError::TooShort { .. }))
    ));
}

fn uri_error(input: &str) -> UriError {
    match OtpAuthUri::parse(input) {
        Err(Error::InvalidUri(reason)) => reason,
        other => panic!("expected an invalid-URI error for {input:?}, got {other:?}"),
    }
}

const S: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[test]
fn malformed_uris_are_typed_errors() {
    assert_eq!(uri_error(""), UriError::NotOtpauth);
    assert_eq!(uri_error("https://example.com"), UriError::NotOtpauth);
    assert_eq!(
        uri_error(&format!("otpauth://totp/a?secret={}", "A".repeat(5000))),
        UriError::TooLong
    );
    assert_eq!(
        uri_error(&format!("otpauth://hotp/A:b?secret={S}&counter=0")),
        UriError::UnsupportedType
    );
    assert_eq!(
        uri_error(&format!("otpauth://steam/A:b?secret={S}")),
        UriError::UnsupportedType
    );
    assert_eq!(uri_error("otpauth://totp"), UriError::MissingLabel);
    assert_eq!(
        uri_error(&format!("otpauth://totp/?secret={S}")),
        UriError::MissingLabel
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:?secret={S}")),
        UriError::MissingLabel
    );
    assert_eq!(
        uri_error("otpauth://totp/Acme:alice?issuer=Acme"),
        UriError::MissingSecret
    );
    assert_eq!(uri_error("otpauth://totp/Acme:alice"), UriError::MissingSecret);
    assert_eq!(
        uri_error("otpauth://totp/Acme:alice?secret=not*base32"),
        UriError::BadSecret(SecretError::InvalidBase32)
    );
    assert_eq!(
        uri_error("otpauth://totp/Acme:alice?secret="),
        UriError::BadSecret(SecretError::TooShort { bits: 0, minimum: 128 })
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:alice?secret={S}&issuer=Other")),
        UriError::IssuerMismatch
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:alice?secret={S}&algorithm=MD5")),
        UriError::UnsupportedAlgorithm
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:alice?secret={S}&digits=5")),
        UriError::DigitsOutOfRange
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:alice?secret={S}&digits=9")),
        UriError::DigitsOutOfRange
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:alice?secret={S}&digits=six")),
        UriError::DigitsOutOfRange
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:alice?secret={S}&period=0")),
        UriError::ZeroPeriod
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:alice?secret={S}&period=-30")),
        UriError::BadNumber
    );
    assert_eq!(
        uri_error(&format!(
            "otpauth://totp/Acme:alice?secret={S}&period=99999999999999999999999"
        )),
        UriError::BadNumber
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme%FF:alice?secret={S}")),
        UriError::BadEncoding
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:alice?secret={S}&issuer=%C3")),
        UriError::BadEncoding
    );
    assert_eq!(
        uri_error(&format!("otpauth://totp/Acme:alice?secret={S}&secret={S}")),
        UriError::DuplicateParameter
    );
    // No error message contains the secret.
    let err = OtpAuthUri::parse(&format!("otpauth://totp/Acme:alice?secret={S}&issuer=Other")).unwrap_err();
    assert!(!format!("{err} {err:?}").contains(S));
}

#[test]
fn names_that_the_label_cannot_carry_are_refused() {
    let secret = Secret::generate(&mut rand::rng());
    assert!(matches!(
        OtpAuthUri::new("Acme:Corp", "alice", secret.clone(), TotpParams::standard()),
        Err(Error::InvalidUri(UriError::ColonInName))
    ));
    assert!(matches!(
        OtpAuthUri::new("Acme", "  ", secret, TotpParams::standard()),
        Err(Error::InvalidUri(UriError::MissingLabel))
    ));
}

#[test]
fn parameters_out_of_range_are_refused() {
    assert!(matches!(
        TotpParams::new(portal_mfa::otp::Algorithm::Sha1, Digits::SIX, 0),
        Err(Error::InvalidParameters(_))
    ));
    assert!(Digits::new(5).is_none() && Digits::new(9).is_none() && Digits::new(0).is_none());
    assert!(matches!(
        portal_mfa::otp::Window::new(11, 0),
        Err(Error::InvalidParameters(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn any_text_is_an_answer_not_a_panic(text in any::<String>()) {
        let _ = Code::parse(&text, Digits::SIX);
        let _ = Code::parse(&text, Digits::EIGHT);
        let _ = Secret::from_base32(&text);
        let _ = OtpAuthUri::parse(&text);
        let _ = OtpAuthUri::parse(&format!("otpauth://totp/{text}"));
        let _ = OtpAuthUri::parse(&format!("otpauth://totp/A:b?secret={S}&{text}"));
    }

    #[test]
    fn uri_shaped_noise_is_an_answer_not_a_panic(
        label in "[A-Za-z0-9%:+ @._~-]{0,40}",
        params in prop::collection::vec(("[a-z]{1,10}", "[A-Za-z0-9%=+ .-]{0,40}"), 0..8),
    ) {
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = OtpAuthUri::parse(&format!("otpauth://totp/{label}?{}", query.join("&")));
    }
}

//! Any text as an otpauth:// URI: never a panic, and whatever parses comes back
//! unchanged through build and parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal_mfa::otp::OtpAuthUri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for min_bits in [8, 128] {
        if let Ok(uri) = OtpAuthUri::parse_with_min_secret_bits(text, min_bits) {
            let again = OtpAuthUri::parse_with_min_secret_bits(&uri.to_uri(), min_bits)
                .expect("a URI we built from a parsed one parses");
            assert_eq!(again, uri);
        }
    }
});

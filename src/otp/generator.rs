//! HOTP (RFC 4226) and TOTP (RFC 6238) generation and verification.

use subtle::Choice;

use super::code::Code;
use super::keyed::KeyedHmac;
use super::params::{Algorithm, Digits, TotpParams, Window};
use super::secret::Secret;
use crate::error::{Error, Result};

/// Counter-based one-time codes (RFC 4226).
///
/// Holds the key's precomputed HMAC state, so each code costs two block
/// compressions. Zeroized on drop.
#[derive(Clone)]
pub struct Hotp {
    key: KeyedHmac,
    digits: Digits,
}

impl Hotp {
    /// Loads a secret for `algorithm` and `digits`.
    pub fn new(secret: &Secret, algorithm: Algorithm, digits: Digits) -> Self {
        Self {
            key: KeyedHmac::new(algorithm, secret.expose_bytes()),
            digits,
        }
    }

    /// The code for `counter`.
    pub fn generate(&self, counter: u64) -> Code {
        Code::from_value(self.key.code(counter, self.digits.modulus()), self.digits)
    }

    /// Checks `code` against counters `counter ..= counter + look_ahead`
    /// (saturating at `u64::MAX`) and returns the last one that matches.
    ///
    /// ⚠️ The caller must store the returned counter + 1 as the next counter,
    /// atomically with accepting the code, or the code can be replayed.
    pub fn verify(&self, code: &Code, counter: u64, look_ahead: u8) -> Result<Option<u64>> {
        self.check_digits(code)?;
        let last = counter.saturating_add(u64::from(look_ahead));
        Ok(self.match_range(code, counter, last))
    }

    fn check_digits(&self, code: &Code) -> Result<()> {
        if code.digits() == self.digits {
            Ok(())
        } else {
            Err(Error::InvalidParameters(
                "the code was parsed for a different number of digits",
            ))
        }
    }

    /// The last counter in `first ..= last` whose code equals `code`; every
    /// candidate is computed and compared, with no early exit.
    fn match_range(&self, code: &Code, first: u64, last: u64) -> Option<u64> {
        const CHUNK: usize = 32;
        let modulus = self.digits.modulus();
        let mut values = [0u32; CHUNK];
        let mut found = Choice::from(0);
        let mut matched = 0u64;
        let mut start = first;
        loop {
            let remaining = last - start;
            let n = usize::try_from(remaining).map_or(CHUNK, |r| r.saturating_add(1).min(CHUNK));
            let chunk = &mut values[..n];
            self.key.codes(start, modulus, chunk);
            code.fold_matches(start, chunk, &mut found, &mut matched);
            match start.checked_add(n as u64) {
                Some(next) if next <= last => start = next,
                _ => break,
            }
        }
        bool::from(found).then_some(matched)
    }
}

/// Time-based one-time codes (RFC 6238).
///
/// Build one per authenticator and keep it while verifying: construction
/// hashes the key's pads, verification then costs two block compressions per
/// step in the window. Zeroized on drop.
#[derive(Clone)]
pub struct Totp {
    hotp: Hotp,
    params: TotpParams,
}

impl Totp {
    /// Loads a secret with its parameters.
    pub fn new(secret: &Secret, params: TotpParams) -> Self {
        Self {
            hotp: Hotp::new(secret, params.algorithm(), params.digits()),
            params,
        }
    }

    /// The parameters this verifier uses.
    pub fn params(&self) -> &TotpParams {
        &self.params
    }

    /// The code an app shows at `unix_time`.
    pub fn generate(&self, unix_time: u64) -> Result<Code> {
        Ok(self.hotp.generate(self.params.step_at(unix_time)?))
    }

    /// The code of time step `step`.
    pub fn generate_at_step(&self, step: u64) -> Code {
        self.hotp.generate(step)
    }

    /// Parses `input` and verifies it; see [`Totp::verify`].
    pub fn verify_str(&self, input: &str, unix_time: u64, window: Window) -> Result<Option<u64>> {
        self.verify(&Code::parse(input, self.params.digits())?, unix_time, window)
    }

    /// Checks `code` against every step in `window` around `unix_time` and
    /// returns the newest matching step, or `None`.
    ///
    /// All candidates are computed and compared in constant time; a right and
    /// a wrong code cost the same.
    ///
    /// ⚠️ This does not remember anything. Accepting the same step twice is a
    /// replay: record the returned step and refuse steps at or before it, in the
    /// same atomic write that accepts the code. The state machine in this crate
    /// does that for you.
    pub fn verify(&self, code: &Code, unix_time: u64, window: Window) -> Result<Option<u64>> {
        self.hotp.check_digits(code)?;
        let now = self.params.step_at(unix_time)?;
        let first = now.saturating_sub(u64::from(window.past()));
        let last = now.saturating_add(u64::from(window.future()));
        Ok(self.hotp.match_range(code, first, last))
    }
}

impl core::fmt::Debug for Hotp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hotp")
            .field("key", &"<redacted>")
            .field("digits", &self.digits)
            .finish()
    }
}

impl core::fmt::Debug for Totp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Totp")
            .field("key", &"<redacted>")
            .field("params", &self.params)
            .finish()
    }
}

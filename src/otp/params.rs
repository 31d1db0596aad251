//! The parameters an authenticator app and the server must agree on.

use crate::error::{Error, Result};

/// The HMAC hash function (RFC 6238 §1.2).
///
/// Authenticator apps reliably honour only [`Algorithm::Sha1`]; some silently
/// use SHA-1 whatever the URI says. Use the others only where every user's app
/// is known to support them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA-1, what every app supports.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs (`SHA1`, `SHA256`, `SHA512`).
    pub const fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Reads a URI name, case-insensitively (`sha1`, `SHA-256` is not accepted).
    pub fn from_uri_name(name: &str) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|a| a.uri_name().eq_ignore_ascii_case(name))
    }
}

/// How many decimal digits a code has: 6, 7 or 8 (RFC 4226 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digits(u8);

impl Digits {
    /// Six digits, what apps show by default.
    pub const SIX: Self = Self(6);
    /// Seven digits.
    pub const SEVEN: Self = Self(7);
    /// Eight digits.
    pub const EIGHT: Self = Self(8);

    /// `Some` for 6, 7 or 8.
    pub const fn new(digits: u8) -> Option<Self> {
        match digits {
            6..=8 => Some(Self(digits)),
            _ => None,
        }
    }

    /// The number of digits.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// `10^digits`, the modulus of the truncated HMAC.
    pub(crate) const fn modulus(self) -> u32 {
        10u32.pow(self.0 as u32)
    }
}

impl Default for Digits {
    fn default() -> Self {
        Self::SIX
    }
}

/// How many time steps either side of now a code may come from.
///
/// Clocks drift and users type slowly; RFC 6238 §5.2 recommends at most one
/// step back. The default accepts one step back and one ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    past: u8,
    future: u8,
}

impl Window {
    /// The largest tolerance either way; beyond it a code is nearly a static password.
    pub const MAX_STEPS: u8 = 10;

    /// `past` steps back and `future` steps ahead of the current step.
    pub fn new(past: u8, future: u8) -> Result<Self> {
        if past > Self::MAX_STEPS || future > Self::MAX_STEPS {
            return Err(Error::InvalidParameters("window tolerance above 10 steps"));
        }
        Ok(Self { past, future })
    }

    /// Only the current step.
    pub const fn exact() -> Self {
        Self { past: 0, future: 0 }
    }

    /// Steps accepted before the current one.
    pub const fn past(self) -> u8 {
        self.past
    }

    /// Steps accepted after the current one.
    pub const fn future(self) -> u8 {
        self.future
    }
}

impl Default for Window {
    fn default() -> Self {
        Self { past: 1, future: 1 }
    }
}

/// TOTP parameters (RFC 6238 §4): hash, digits, step length and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TotpParams {
    algorithm: Algorithm,
    digits: Digits,
    period: u64,
    t0: u64,
}

impl TotpParams {
    /// SHA-1, 6 digits, 30 s, T0 = 0: what every authenticator app honours.
    pub const fn standard() -> Self {
        Self {
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
            period: 30,
            t0: 0,
        }
    }

    /// The longest period accepted, one day: a longer one makes a code a
    /// long-lived password, and an absurd one (`u64::MAX`) makes every code step 0.
    pub const MAX_PERIOD: u64 = 86_400;

    /// Any combination; `period` is in seconds, from 1 to [`TotpParams::MAX_PERIOD`].
    pub fn new(algorithm: Algorithm, digits: Digits, period: u64) -> Result<Self> {
        if period == 0 || period > Self::MAX_PERIOD {
            return Err(Error::InvalidParameters(
                "period must be between one second and one day",
            ));
        }
        Ok(Self {
            algorithm,
            digits,
            period,
            t0: 0,
        })
    }

    /// Sets T0, the Unix time at which step 0 begins (RFC 6238 §4.1; almost always 0).
    #[must_use]
    pub const fn with_t0(mut self, t0: u64) -> Self {
        self.t0 = t0;
        self
    }

    /// The hash function.
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Digits per code.
    pub const fn digits(&self) -> Digits {
        self.digits
    }

    /// Seconds per step.
    pub const fn period(&self) -> u64 {
        self.period
    }

    /// Unix time of step 0.
    pub const fn t0(&self) -> u64 {
        self.t0
    }

    /// The time step that contains `unix_time` (seconds).
    ///
    /// Errors with [`Error::TimeBeforeEpoch`] before T0. Every `u64` time at or
    /// after T0 has a step, so times past 2038 (and 2106) work.
    pub fn step_at(&self, unix_time: u64) -> Result<u64> {
        unix_time
            .checked_sub(self.t0)
            .map(|elapsed| elapsed / self.period)
            .ok_or(Error::TimeBeforeEpoch)
    }

    /// The first second of `step`, or [`Error::TimeOverflow`] if it is past `u64::MAX`.
    pub fn step_start(&self, step: u64) -> Result<u64> {
        step.checked_mul(self.period)
            .and_then(|s| s.checked_add(self.t0))
            .ok_or(Error::TimeOverflow)
    }
}

impl Default for TotpParams {
    fn default() -> Self {
        Self::standard()
    }
}

//! A portal's MFA policy: whether MFA is enforced, and the rules every user of
//! the portal (customers, vendors, contacts alike) is held to.

use crate::error::{Error, PolicyRefusal, Result};
use crate::otp::{TotpParams, Window};

/// How users of the portal sign in before MFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SignInMethod {
    /// Email and password, then MFA from this crate.
    #[default]
    Password,
    /// SAML single sign-on: the identity provider owns MFA, so it cannot be enforced here.
    Saml,
}

/// Users without MFA may keep signing in without it for a while after enforcement starts.
///
/// The grace lasts while *both* limits that are set still hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Grace {
    /// Unix time after which no grace sign-in is allowed.
    pub until: Option<u64>,
    /// How many sign-ins each user may make without MFA.
    pub sign_ins: Option<u32>,
}

impl Grace {
    /// A grace that ends at `until` (Unix time), after `sign_ins` sign-ins per
    /// user, or at whichever comes first when both are set.
    pub fn new(until: Option<u64>, sign_ins: Option<u32>) -> Self {
        Self { until, sign_ins }
    }
}

/// Whether the admin enforces MFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "mode", rename_all = "snake_case"))]
pub enum Enforcement {
    /// Off (the default): each user may turn MFA on for their own account.
    #[default]
    SelfConfigured,
    /// Every user must use TOTP at every sign-in; users without it enrol right
    /// after the password step (after the grace, if any).
    Enforced {
        /// Optional grace for users not yet enrolled.
        grace: Option<Grace>,
    },
}

/// When repeated wrong codes lock a user's MFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LockoutRule {
    max_failures: u8,
    first_lock_secs: u64,
    longest_lock_secs: u64,
}

impl LockoutRule {
    /// Whatever the rule, MFA locks until an admin reset after this many consecutive failures.
    pub const HARD_LIMIT: u32 = 100;

    /// Lock after `max_failures` consecutive wrong codes (1 to 100), first for
    /// `first_lock_secs`, doubling on each further lock up to `longest_lock_secs`.
    pub fn new(max_failures: u8, first_lock_secs: u64, longest_lock_secs: u64) -> Result<Self> {
        if max_failures == 0 || u32::from(max_failures) > Self::HARD_LIMIT {
            return Err(Error::InvalidPolicy {
                field: "lockout.max_failures",
                reason: "lockout must allow between 1 and 100 failures",
            });
        }
        if first_lock_secs == 0 || longest_lock_secs < first_lock_secs {
            return Err(Error::InvalidPolicy {
                field: "lockout.lock_secs",
                reason: "lock times must be positive and growing",
            });
        }
        Ok(Self {
            max_failures,
            first_lock_secs,
            longest_lock_secs,
        })
    }

    /// Consecutive failures that trigger a lock.
    pub fn max_failures(&self) -> u8 {
        self.max_failures
    }

    /// The first lock's length, in seconds.
    pub fn first_lock_secs(&self) -> u64 {
        self.first_lock_secs
    }

    /// The longest lock, in seconds.
    pub fn longest_lock_secs(&self) -> u64 {
        self.longest_lock_secs
    }

    /// How long the `nth` lock (1-based) lasts: doubling, capped.
    pub fn lock_duration(&self, nth: u32) -> u64 {
        let doublings = nth.saturating_sub(1).min(63);
        self.first_lock_secs
            .saturating_mul(1u64 << doublings)
            .min(self.longest_lock_secs)
    }
}

impl Default for LockoutRule {
    /// Five failures; one minute, doubling to a day.
    fn default() -> Self {
        Self {
            max_failures: 5,
            first_lock_secs: 60,
            longest_lock_secs: 86_400,
        }
    }
}

/// A portal's MFA policy. `Default` is the policy the product documents
/// describe: not enforced, password sign-in, SHA-1/6 digits/30 s, ±1 step,
/// 5 failures, 10-minute enrolments, 10 backup codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "json::PolicyJson", into = "json::PolicyJson"))]
pub struct PortalPolicy {
    enforcement: Enforcement,
    sign_in: SignInMethod,
    otp: TotpParams,
    window: Window,
    lockout: LockoutRule,
    enrolment_lifetime_secs: u64,
    backup_code_count: u8,
    backup_codes_low_at: u8,
    trusted_browser_days: u8,
}

impl Default for PortalPolicy {
    fn default() -> Self {
        Self {
            enforcement: Enforcement::SelfConfigured,
            sign_in: SignInMethod::Password,
            otp: TotpParams::standard(),
            window: Window::default(),
            lockout: LockoutRule::default(),
            enrolment_lifetime_secs: 600,
            backup_code_count: 10,
            backup_codes_low_at: 2,
            trusted_browser_days: 0,
        }
    }
}

impl PortalPolicy {
    /// Fewest backup codes a policy may hand out.
    pub const MIN_BACKUP_CODES: u8 = 5;
    /// Most backup codes a policy may hand out.
    pub const MAX_BACKUP_CODES: u8 = 20;
    /// Longest a browser may be trusted, in days (Zoho Desk's longest "Lifetime of MFA").
    pub const MAX_TRUSTED_BROWSER_DAYS: u8 = 180;

    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Enforcement as set by the admin.
    pub fn enforcement(&self) -> Enforcement {
        self.enforcement
    }

    /// Whether every user must use MFA.
    pub fn is_enforced(&self) -> bool {
        matches!(self.enforcement, Enforcement::Enforced { .. })
    }

    /// How users sign in before MFA.
    pub fn sign_in_method(&self) -> SignInMethod {
        self.sign_in
    }

    /// Parameters for new authenticators.
    pub fn otp(&self) -> TotpParams {
        self.otp
    }

    /// Steps of clock drift tolerated.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The lockout rule.
    pub fn lockout(&self) -> LockoutRule {
        self.lockout
    }

    /// How long a started enrolment can be confirmed, in seconds.
    pub fn enrolment_lifetime_secs(&self) -> u64 {
        self.enrolment_lifetime_secs
    }

    /// Backup codes generated when MFA is enabled or codes are regenerated.
    pub fn backup_code_count(&self) -> u8 {
        self.backup_code_count
    }

    /// At or below this many unused backup codes, sign-in outcomes warn.
    pub fn backup_codes_low_at(&self) -> u8 {
        self.backup_codes_low_at
    }

    /// How many days a trusted browser may skip the second factor: 0 (never,
    /// the default) to [`PortalPolicy::MAX_TRUSTED_BROWSER_DAYS`].
    pub fn trusted_browser_days(&self) -> u8 {
        self.trusted_browser_days
    }

    /// [`PortalPolicy::trusted_browser_days`] in seconds.
    pub fn trusted_browser_lifetime_secs(&self) -> u64 {
        u64::from(self.trusted_browser_days) * 86_400
    }

    /// Trusted browsers: 0 days (never, the default) to 180. Lowering it
    /// shortens every trusted browser at once (each lasts at most this long from
    /// when it was trusted); raising it never lengthens one already trusted.
    pub fn with_trusted_browser_days(mut self, days: u8) -> Result<Self> {
        if days > Self::MAX_TRUSTED_BROWSER_DAYS {
            return Err(Error::InvalidPolicy {
                field: "trusted_browser_days",
                reason: "a browser can be trusted for at most 180 days",
            });
        }
        self.trusted_browser_days = days;
        Ok(self)
    }

    /// Enforcement changed, refused for a SAML portal (its identity provider owns MFA).
    pub fn with_enforcement(mut self, enforcement: Enforcement) -> Result<Self> {
        if let Enforcement::Enforced { grace: Some(grace) } = enforcement
            && grace.until.is_none()
            && grace.sign_ins.is_none()
        {
            return Err(Error::InvalidPolicy {
                field: "enforcement.grace",
                reason: "a grace period needs a deadline or a sign-in count",
            });
        }
        if matches!(enforcement, Enforcement::Enforced { .. }) && self.sign_in == SignInMethod::Saml {
            return Err(Error::NotAllowed(PolicyRefusal::EnforcementWithSaml));
        }
        self.enforcement = enforcement;
        Ok(self)
    }

    /// Sign-in method changed; switching an enforced portal to SAML is refused too.
    pub fn with_sign_in_method(mut self, method: SignInMethod) -> Result<Self> {
        if method == SignInMethod::Saml && self.is_enforced() {
            return Err(Error::NotAllowed(PolicyRefusal::EnforcementWithSaml));
        }
        self.sign_in = method;
        Ok(self)
    }

    /// OTP parameters for new enrolments (existing authenticators keep theirs).
    #[must_use]
    pub fn with_otp(mut self, otp: TotpParams) -> Self {
        self.otp = otp;
        self
    }

    /// Drift tolerance.
    #[must_use]
    pub fn with_window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// The lockout rule.
    #[must_use]
    pub fn with_lockout(mut self, lockout: LockoutRule) -> Self {
        self.lockout = lockout;
        self
    }

    /// Enrolment lifetime, 60 s to 1 day.
    pub fn with_enrolment_lifetime(mut self, seconds: u64) -> Result<Self> {
        if !(60..=86_400).contains(&seconds) {
            return Err(Error::InvalidPolicy {
                field: "enrolment_lifetime_secs",
                reason: "enrolment lifetime must be between 60 s and one day",
            });
        }
        self.enrolment_lifetime_secs = seconds;
        Ok(self)
    }

    /// Number of backup codes, 5 to 20, and the low-codes warning threshold (below the count).
    pub fn with_backup_codes(mut self, count: u8, low_at: u8) -> Result<Self> {
        if !(Self::MIN_BACKUP_CODES..=Self::MAX_BACKUP_CODES).contains(&count) {
            return Err(Error::InvalidPolicy {
                field: "backup_codes.count",
                reason: "backup code count must be between 5 and 20",
            });
        }
        if low_at >= count {
            return Err(Error::InvalidPolicy {
                field: "backup_codes.low_at",
                reason: "the low-codes warning must be below the code count",
            });
        }
        self.backup_code_count = count;
        self.backup_codes_low_at = low_at;
        Ok(self)
    }
}

/// A policy's JSON shape (feature `serde`): every setting, named, read back
/// through the builders' checks, so a JSON policy can never hold a setting
/// the crate would refuse.
#[cfg(feature = "serde")]
mod json {
    use serde::{Deserialize, Serialize};

    use super::{Enforcement, LockoutRule, PortalPolicy, SignInMethod};
    use crate::error::Error;
    use crate::otp::{Algorithm, Digits, TotpParams, Window};

    /// A [`PortalPolicy`] as JSON: every setting, named.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct PolicyJson {
        enforcement: Enforcement,
        sign_in_method: SignInMethod,
        otp: OtpJson,
        window: WindowJson,
        lockout: LockoutJson,
        enrolment_lifetime_secs: u64,
        backup_codes: BackupJson,
        #[serde(default)]
        trusted_browser_days: u8,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OtpJson {
        algorithm: String,
        digits: u8,
        period: u64,
        t0: u64,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WindowJson {
        past: u8,
        future: u8,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LockoutJson {
        max_failures: u8,
        first_lock_secs: u64,
        longest_lock_secs: u64,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BackupJson {
        count: u8,
        low_at: u8,
    }

    impl From<PortalPolicy> for PolicyJson {
        fn from(p: PortalPolicy) -> Self {
            let otp = p.otp();
            let lockout = p.lockout();
            Self {
                enforcement: p.enforcement(),
                sign_in_method: p.sign_in_method(),
                otp: OtpJson {
                    algorithm: otp.algorithm().uri_name().to_owned(),
                    digits: otp.digits().get(),
                    period: otp.period(),
                    t0: otp.t0(),
                },
                window: WindowJson {
                    past: p.window().past(),
                    future: p.window().future(),
                },
                lockout: LockoutJson {
                    max_failures: lockout.max_failures(),
                    first_lock_secs: lockout.first_lock_secs(),
                    longest_lock_secs: lockout.longest_lock_secs(),
                },
                enrolment_lifetime_secs: p.enrolment_lifetime_secs(),
                backup_codes: BackupJson {
                    count: p.backup_code_count(),
                    low_at: p.backup_codes_low_at(),
                },
                trusted_browser_days: p.trusted_browser_days(),
            }
        }
    }

    impl TryFrom<PolicyJson> for PortalPolicy {
        type Error = Error;

        fn try_from(j: PolicyJson) -> Result<Self, Error> {
            let algorithm =
                Algorithm::from_uri_name(&j.otp.algorithm).ok_or(Error::InvalidParameters("unknown algorithm"))?;
            let digits = Digits::new(j.otp.digits).ok_or(Error::InvalidParameters("digits must be 6, 7 or 8"))?;
            let otp = TotpParams::new(algorithm, digits, j.otp.period)?.with_t0(j.otp.t0);
            let lockout = LockoutRule::new(
                j.lockout.max_failures,
                j.lockout.first_lock_secs,
                j.lockout.longest_lock_secs,
            )?;
            PortalPolicy::new()
                .with_sign_in_method(j.sign_in_method)?
                .with_enforcement(j.enforcement)?
                .with_otp(otp)
                .with_window(Window::new(j.window.past, j.window.future)?)
                .with_lockout(lockout)
                .with_enrolment_lifetime(j.enrolment_lifetime_secs)?
                .with_backup_codes(j.backup_codes.count, j.backup_codes.low_at)?
                .with_trusted_browser_days(j.trusted_browser_days)
        }
    }
}

/// A lock on a user's MFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Lock {
    /// When it ends (Unix time); `None`: when an admin resets the user's MFA.
    pub until: Option<u64>,
}

impl Lock {
    /// Whether the lock still holds at `now` (Unix time).
    pub fn holds_at(&self, now: u64) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

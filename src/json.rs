//! The JSON shapes (feature `serde`) that are not plain derives, and the
//! JSON Lines export of the audit trail.
//!
//! The shapes are stable: `tests/serde_snapshots.rs` fails when one changes,
//! and the README documents each. A policy is read back through the same
//! checks as [`PortalPolicy`]'s builders, so a JSON policy can never hold a
//! setting the crate would refuse.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::otp::{Algorithm, Digits, TotpParams, Window};
use crate::page::Cursor;
use crate::policy::{Enforcement, LockoutRule, PortalPolicy, SignInMethod};

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
            .with_backup_codes(j.backup_codes.count, j.backup_codes.low_at)
    }
}

impl TryFrom<String> for Cursor {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        Cursor::parse(&text)
    }
}

impl From<Cursor> for String {
    fn from(cursor: Cursor) -> Self {
        cursor.as_str().to_owned()
    }
}

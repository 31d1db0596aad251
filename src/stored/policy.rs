//! A portal's [`PortalPolicy`] in its stored form. It holds no secret.

use super::parts::{params, read_params};
use super::{POLICY_FORMAT, Reader, Writer, corrupt, format_version};
use crate::error::{Error, Result};
use crate::otp::Window;
use crate::policy::{Enforcement, Grace, LockoutRule, PortalPolicy, SignInMethod};

pub(crate) fn encode_policy(p: &PortalPolicy) -> Vec<u8> {
    let mut w = Writer::new(POLICY_FORMAT);
    enforcement(&mut w, p.enforcement());
    w.u8(method_tag(p.sign_in_method()));
    params(&mut w, &p.otp());
    w.u8(p.window().past());
    w.u8(p.window().future());
    let lockout = p.lockout();
    w.u8(lockout.max_failures());
    w.uint(lockout.first_lock_secs());
    w.uint(lockout.longest_lock_secs());
    w.uint(p.enrolment_lifetime_secs());
    w.u8(p.backup_code_count());
    w.u8(p.backup_codes_low_at());
    w.u8(p.trusted_browser_days());
    w.0
}

/// Decodes a stored policy through the same checks an admin's change passes.
pub(crate) fn decode_policy(bytes: &[u8]) -> Result<PortalPolicy> {
    let format = format_version(bytes, POLICY_FORMAT)?;
    let mut r = Reader::after_format(bytes);
    let enforcement = read_enforcement(&mut r)?;
    let method = read_method(r.u8()?)?;
    let otp = read_params(&mut r)?;
    let window = Window::new(r.u8()?, r.u8()?);
    let lockout = LockoutRule::new(r.u8()?, r.uint()?, r.uint()?);
    let lifetime = r.uint()?;
    let (count, low_at) = (r.u8()?, r.u8()?);
    // Format 1 had no trusted browsers: never.
    let trusted_days = if format >= 2 { r.u8()? } else { 0 };
    r.finish()?;
    let invalid = |_| Error::CorruptRecord("a stored policy setting is out of range");
    PortalPolicy::new()
        .with_sign_in_method(method)
        .and_then(|p| p.with_enforcement(enforcement))
        .and_then(|p| Ok(p.with_otp(otp).with_window(window?).with_lockout(lockout?)))
        .and_then(|p| p.with_enrolment_lifetime(lifetime))
        .and_then(|p| p.with_backup_codes(count, low_at))
        .and_then(|p| p.with_trusted_browser_days(trusted_days))
        .map_err(invalid)
}

/// Shared with the event codec (enforcement changes carry the new setting).
pub(super) fn enforcement(w: &mut Writer, e: Enforcement) {
    match e {
        Enforcement::SelfConfigured => w.u8(0),
        Enforcement::Enforced { grace: None } => w.u8(1),
        Enforcement::Enforced { grace: Some(g) } => {
            w.u8(2);
            w.opt_uint(g.until);
            w.opt_uint(g.sign_ins.map(u64::from));
        }
    }
}

pub(super) fn read_enforcement(r: &mut Reader<'_>) -> Result<Enforcement> {
    Ok(match r.u8()? {
        0 => Enforcement::SelfConfigured,
        1 => Enforcement::Enforced { grace: None },
        2 => {
            let until = r.opt_uint()?;
            let sign_ins = r.opt_uint_as::<u32>()?;
            if until.is_none() && sign_ins.is_none() {
                return corrupt("a grace period without limits");
            }
            Enforcement::Enforced {
                grace: Some(Grace { until, sign_ins }),
            }
        }
        _ => return corrupt("unknown enforcement"),
    })
}

pub(super) fn method_tag(method: SignInMethod) -> u8 {
    match method {
        SignInMethod::Password => 0,
        SignInMethod::Saml => 1,
    }
}

pub(super) fn read_method(tag: u8) -> Result<SignInMethod> {
    match tag {
        0 => Ok(SignInMethod::Password),
        1 => Ok(SignInMethod::Saml),
        _ => corrupt("unknown sign-in method"),
    }
}

impl PortalPolicy {
    /// The policy's stored form (it holds no secret).
    pub fn encode(&self) -> Vec<u8> {
        encode_policy(self)
    }

    /// Reads a stored form written by [`PortalPolicy::encode`], checking every
    /// setting as an admin's change is checked.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_policy(bytes)
    }
}

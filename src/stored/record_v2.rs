//! Forms 1 and 2 of a stored record: LEB128 fields in a fixed order behind
//! flag bits. Still read (a record is written as form 3 at its next change),
//! never written.

use super::parts::{Decoded, Owner, open, read_params, read_reason};
use super::{Reader, corrupt};
use crate::backup::{BackupCodeHash, BackupCodes};
use crate::error::Result;
use crate::ids::{AuthenticatorId, BrowserId};
use crate::keyring::{Field, KEY_CHECK_LEN, Keyring, NONCE_LEN};
use crate::state::{
    Authenticator, Failures, MfaRecord, PendingEnrolment, ResetRecord, SessionState, TokenHash, TrustedBrowser,
    TrustedBrowsers,
};

// Flag bits of a record.
const MUST_ENROL: u64 = 1;
const HAS_PENDING: u64 = 1 << 1;
const HAS_BACKUP: u64 = 1 << 2;
const HAS_RESET: u64 = 1 << 3;
/// Format 2 on.
const HAS_TRUSTED: u64 = 1 << 4;
const ALL_FLAGS: u64 = MUST_ENROL | HAS_PENDING | HAS_BACKUP | HAS_RESET | HAS_TRUSTED;

/// What a session check needs of a record of form 1 or 2, read without opening any
/// secret: its session generation (the second field) and, `with_browsers`,
/// the ids of the browsers it trusts (the last section), the fields between
/// passed over. Without, the browsers are not read (a stamp no trusted
/// browser signed in needs only the generation).
pub(super) fn sessions(bytes: &[u8], format: u8, with_browsers: bool) -> Result<SessionState> {
    if format < 2 {
        return Ok(SessionState::default());
    }
    let mut r = Reader::after_format(bytes);
    let flags = r.uint()?;
    let generation = r.uint()?;
    if !with_browsers {
        return Ok(SessionState {
            generation,
            browsers: Vec::new(),
        });
    }
    // next authenticator id, failures (3), grace sign-ins, last verified.
    for _ in 0..3 {
        r.uint()?;
    }
    r.opt_uint()?;
    r.uint()?;
    r.opt_uint()?;
    let skip_sealed = |r: &mut Reader<'_>| -> Result<()> {
        r.str()?;
        r.array::<KEY_CHECK_LEN>()?;
        r.array::<NONCE_LEN>()?;
        r.bytes().map(drop)
    };
    let count = r.uint_as::<usize>()?;
    if count > MfaRecord::MAX_AUTHENTICATORS {
        return corrupt("more authenticators than allowed");
    }
    for _ in 0..count {
        r.uint()?;
        r.str()?;
        read_params(&mut r)?;
        r.uint()?;
        r.opt_uint()?;
        skip_sealed(&mut r)?;
    }
    if flags & HAS_PENDING != 0 {
        r.uint()?;
        r.str()?;
        read_params(&mut r)?;
        r.uint()?;
        r.uint()?;
        r.opt_uint()?;
        r.u8()?;
        skip_sealed(&mut r)?;
    }
    if flags & HAS_BACKUP != 0 {
        r.array::<16>()?;
        let count = r.uint_as::<usize>()?;
        if count > usize::from(crate::policy::PortalPolicy::MAX_BACKUP_CODES) {
            return corrupt("more backup codes than any policy issues");
        }
        for _ in 0..count {
            r.array::<{ core::mem::size_of::<BackupCodeHash>() }>()?;
        }
        r.uint()?;
    }
    if flags & HAS_RESET != 0 {
        r.str()?;
        read_reason(&mut r)?;
        r.uint()?;
    }
    r.uint()?;
    let mut browsers = Vec::new();
    if flags & HAS_TRUSTED != 0 {
        r.array::<16>()?;
        let count = r.uint_as::<usize>()?;
        if count == 0 || count > TrustedBrowsers::MAX {
            return corrupt("a trusted-browser count out of range");
        }
        for _ in 0..count {
            browsers.push(BrowserId(r.uint_as()?));
            r.str()?;
            r.uint()?;
            r.opt_uint()?;
            r.uint()?;
            r.array::<32>()?;
        }
    }
    r.finish()?;
    Ok(SessionState { generation, browsers })
}

/// Decodes a stored record of form 1 or 2, opening its secrets.
pub(super) fn decode(bytes: &[u8], format: u8, owner: Owner<'_>, keyring: &Keyring) -> Result<Decoded> {
    let mut stale_key = false;
    let mut r = Reader::after_format(bytes);
    let flags = r.uint()?;
    if flags & !ALL_FLAGS != 0 || (format < 2 && flags & HAS_TRUSTED != 0) {
        return corrupt("unknown record flags");
    }
    // Format 1 had no sessions: its records are at generation 0.
    let sessions = if format >= 2 { r.uint()? } else { 0 };
    let next_authenticator_id = r.uint_as()?;
    let failures = Failures {
        consecutive: r.uint_as()?,
        locks: r.uint_as()?,
        locked_until: r.opt_uint()?,
    };
    let grace_sign_ins_used = r.uint_as()?;
    let last_verified_at = r.opt_uint()?;
    let count = r.uint_as::<usize>()?;
    if count > MfaRecord::MAX_AUTHENTICATORS {
        return corrupt("more authenticators than allowed");
    }
    let mut authenticators = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.uint_as()?;
        let label = r.str()?.into();
        let params = read_params(&mut r)?;
        let added_at = r.uint()?;
        let last_used_step = r.opt_uint()?;
        let key = open(
            &mut r,
            format,
            owner,
            id,
            Field::Secret,
            params,
            keyring,
            &mut stale_key,
        )?;
        authenticators.push(Authenticator {
            id: AuthenticatorId(id),
            label,
            key,
            added_at,
            last_used_step,
        });
    }
    let pending = if flags & HAS_PENDING != 0 {
        let id = r.uint_as()?;
        let label = r.str()?.into();
        let params = read_params(&mut r)?;
        let started_at = r.uint()?;
        let expires_at = r.uint()?;
        let replaces = r.opt_uint_as::<u32>()?;
        let wrong_codes = r.u8()?;
        if wrong_codes >= PendingEnrolment::MAX_WRONG_CODES {
            return corrupt("a pending enrolment past its wrong-code budget");
        }
        let key = open(
            &mut r,
            format,
            owner,
            id,
            Field::PendingSecret,
            params,
            keyring,
            &mut stale_key,
        )?;
        Some(Box::new(PendingEnrolment {
            id: AuthenticatorId(id),
            label,
            key,
            started_at,
            expires_at,
            replaces: replaces.map(AuthenticatorId),
            wrong_codes,
        }))
    } else {
        None
    };
    let backup_codes = if flags & HAS_BACKUP != 0 {
        let salt = r.array()?;
        let count = r.uint_as::<usize>()?;
        if count > usize::from(crate::policy::PortalPolicy::MAX_BACKUP_CODES) {
            return corrupt("more backup codes than any policy issues");
        }
        let hashes = (0..count).map(|_| r.array()).collect::<Result<Vec<_>>>()?;
        Some(BackupCodes::from_parts(salt, hashes, r.uint_as()?)?)
    } else {
        None
    };
    let last_reset = if flags & HAS_RESET != 0 {
        let by = r.str()?.into();
        let reason = read_reason(&mut r)?;
        Some(ResetRecord {
            by,
            reason,
            at: r.uint()?,
        })
    } else {
        None
    };
    let next_browser_id = if format >= 2 { r.uint_as()? } else { 0 };
    let trusted = if flags & HAS_TRUSTED != 0 {
        let salt = r.array()?;
        let count = r.uint_as::<usize>()?;
        if count == 0 || count > TrustedBrowsers::MAX {
            return corrupt("a trusted-browser count out of range");
        }
        let mut browsers = Vec::with_capacity(count);
        for _ in 0..count {
            browsers.push(TrustedBrowser {
                id: BrowserId(r.uint_as()?),
                label: r.str()?.into(),
                created_at: r.uint()?,
                last_used_at: r.opt_uint()?,
                expires_at: r.uint()?,
                hash: r.array::<32>()? as TokenHash,
            });
        }
        Some(Box::new(TrustedBrowsers { salt, browsers }))
    } else {
        None
    };
    r.finish()?;
    let mut record = MfaRecord {
        authenticators: authenticators.into(),
        pending,
        backup_codes,
        failures,
        must_enrol: flags & MUST_ENROL != 0,
        grace_sign_ins_used,
        next_authenticator_id,
        resets: crate::state::Resets::after(last_reset),
        sessions,
        trusted,
        next_browser_id,
        ..MfaRecord::default()
    };
    record.set_last_verified_at(last_verified_at);
    record.check_consistent()?;
    Ok(Decoded { record, stale_key })
}

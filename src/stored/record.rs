//! A user's [`MfaRecord`] in its stored form, secrets sealed.

use rand::CryptoRng;

use super::{RECORD_FORMAT, Reader, Writer, corrupt, format_version};
use crate::backup::{BackupCodeHash, BackupCodes};
use crate::error::{Error, Result};
use crate::event::ResetReason;
use crate::ids::{AuthenticatorId, BrowserId, PortalId, UserId};
use crate::keyring::{Field, KEY_CHECK_LEN, Keyring, NONCE_LEN, associated_data};
use crate::otp::{Algorithm, Digits, Secret, TotpParams};
use std::sync::Arc;

use crate::state::{
    Authenticator, Failures, Key, MfaRecord, PendingEnrolment, ResetRecord, SealedForm, SessionState, TokenHash,
    TrustedBrowser, TrustedBrowsers,
};

// Flag bits of a record.
const MUST_ENROL: u64 = 1;
const HAS_PENDING: u64 = 1 << 1;
const HAS_BACKUP: u64 = 1 << 2;
const HAS_RESET: u64 = 1 << 3;
/// Format 2 on.
const HAS_TRUSTED: u64 = 1 << 4;
const ALL_FLAGS: u64 = MUST_ENROL | HAS_PENDING | HAS_BACKUP | HAS_RESET | HAS_TRUSTED;

/// Who a record belongs to: bound into every sealed value's associated data.
#[derive(Clone, Copy)]
struct Owner<'a> {
    portal: &'a PortalId,
    user: &'a UserId,
}

impl Owner<'_> {
    fn aad(&self, format: u8, authenticator: u32, field: Field, key_id: &str) -> Vec<u8> {
        associated_data(
            format,
            self.portal.as_str(),
            self.user.kind().as_str(),
            self.user.id(),
            authenticator,
            field,
            key_id,
        )
    }
}

/// What a session check needs of a stored record, read without opening any
/// secret: its session generation (the second field) and, `with_browsers`,
/// the ids of the browsers it trusts (the last section), the fields between
/// passed over. Without, the browsers are not read (a stamp no trusted
/// browser signed in needs only the generation).
pub(crate) fn record_sessions(bytes: &[u8], with_browsers: bool) -> Result<SessionState> {
    let format = format_version(bytes, RECORD_FORMAT)?;
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

/// Encodes `record` for `user` of `portal`, sealing every secret under the
/// keyring's current key with a fresh nonce from `rng`.
pub(crate) fn encode_record<R: CryptoRng + ?Sized>(
    record: &MfaRecord,
    portal: &PortalId,
    user: &UserId,
    keyring: &Keyring,
    rng: &mut R,
) -> Result<Vec<u8>> {
    let owner = Owner { portal, user };
    let mut w = Writer::new(RECORD_FORMAT);
    let flags = (if record.must_enrol { MUST_ENROL } else { 0 })
        | (if record.pending.is_some() { HAS_PENDING } else { 0 })
        | (if record.backup_codes.is_some() { HAS_BACKUP } else { 0 })
        | (if record.last_reset.is_some() { HAS_RESET } else { 0 })
        | (if record.trusted_browsers().is_empty() {
            0
        } else {
            HAS_TRUSTED
        });
    w.uint(flags);
    // Second, so a session check reads it without opening anything (see `record_sessions`).
    w.uint(record.sessions);
    w.uint(record.next_authenticator_id.into());
    w.uint(record.failures.consecutive.into());
    w.uint(record.failures.locks.into());
    w.opt_uint(record.failures.locked_until);
    w.uint(record.grace_sign_ins_used.into());
    w.opt_uint(record.last_verified_at);
    w.uint(record.authenticators.len() as u64);
    for a in &record.authenticators {
        w.uint(a.id.0.into());
        w.str(&a.label);
        params(&mut w, a.params());
        w.uint(a.added_at);
        w.opt_uint(a.last_used_step);
        seal(&mut w, owner, a.id.0, Field::Secret, &a.key, keyring, rng)?;
    }
    if let Some(p) = &record.pending {
        w.uint(p.id.0.into());
        w.str(&p.label);
        params(&mut w, p.params());
        w.uint(p.started_at);
        w.uint(p.expires_at);
        w.opt_uint(p.replaces.map(|r| r.0.into()));
        w.u8(p.wrong_codes);
        seal(&mut w, owner, p.id.0, Field::PendingSecret, &p.key, keyring, rng)?;
    }
    if let Some(codes) = &record.backup_codes {
        w.0.extend_from_slice(codes.salt());
        w.uint(codes.hashes().len() as u64);
        for hash in codes.hashes() {
            w.0.extend_from_slice(hash);
        }
        w.uint(codes.used_mask().into());
    }
    if let Some(reset) = &record.last_reset {
        w.str(&reset.by);
        reason(&mut w, &reset.reason);
        w.uint(reset.at);
    }
    w.uint(record.next_browser_id.into());
    if let Some(trusted) = record.trusted.as_ref().filter(|t| !t.browsers.is_empty()) {
        w.0.extend_from_slice(&trusted.salt);
        w.uint(trusted.browsers.len() as u64);
        for b in &trusted.browsers {
            w.uint(b.id.0.into());
            w.str(&b.label);
            w.uint(b.created_at);
            w.opt_uint(b.last_used_at);
            w.uint(b.expires_at);
            w.0.extend_from_slice(&b.hash);
        }
    }
    Ok(w.0)
}

/// A decoded record, and whether any of its secrets was sealed under a key
/// other than the current one (it is re-sealed at its next write).
pub(crate) struct Decoded {
    pub(crate) record: MfaRecord,
    pub(crate) stale_key: bool,
}

/// Decodes a stored record of `user` of `portal`, opening its secrets.
pub(crate) fn decode_record(bytes: &[u8], portal: &PortalId, user: &UserId, keyring: &Keyring) -> Result<Decoded> {
    let format = format_version(bytes, RECORD_FORMAT)?;
    let owner = Owner { portal, user };
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
        Some(Box::new(ResetRecord {
            by,
            reason,
            at: r.uint()?,
        }))
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
    let record = MfaRecord {
        authenticators: authenticators.into(),
        pending,
        backup_codes,
        failures,
        must_enrol: flags & MUST_ENROL != 0,
        grace_sign_ins_used,
        next_authenticator_id,
        last_reset,
        last_verified_at,
        sessions,
        trusted,
        next_browser_id,
    };
    record.check_consistent()?;
    Ok(Decoded { record, stale_key })
}

/// Writes the key's secret sealed: the form it was read in when that is for
/// this field and under the current key, else sealed afresh with a new nonce.
fn seal<R: CryptoRng + ?Sized>(
    w: &mut Writer,
    owner: Owner<'_>,
    authenticator: u32,
    field: Field,
    key: &Key,
    keyring: &Keyring,
    rng: &mut R,
) -> Result<()> {
    let key_id = keyring.current_key_id().as_str();
    if let Some(sealed) = &key.sealed
        && sealed.field == field as u8
        && &*sealed.key_id == key_id
    {
        w.0.extend_from_slice(&sealed.bytes);
        return Ok(());
    }
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    w.str(key_id);
    w.0.extend_from_slice(keyring.current_check());
    w.0.extend_from_slice(&nonce);
    let plain = key.secret().expose_bytes();
    w.uint((plain.len() + crate::keyring::TAG_LEN) as u64);
    // Sealed in place at the end of the buffer: the plaintext never sits anywhere else.
    let start = w.0.len();
    w.0.extend_from_slice(plain);
    let sealed = keyring.seal(
        &nonce,
        &owner.aad(RECORD_FORMAT, authenticator, field, key_id),
        &mut w.0,
        start,
    );
    if sealed.is_err() {
        zeroize::Zeroize::zeroize(&mut w.0[start..]);
    }
    sealed
}

/// Reads and opens a sealed secret, keeping its sealed form for the next write.
#[allow(clippy::too_many_arguments)]
fn open(
    r: &mut Reader<'_>,
    format: u8,
    owner: Owner<'_>,
    authenticator: u32,
    field: Field,
    params: TotpParams,
    keyring: &Keyring,
    stale_key: &mut bool,
) -> Result<Key> {
    let before = r.position();
    let key_id = r.str()?;
    let check = r.array::<KEY_CHECK_LEN>()?;
    let nonce = r.array::<NONCE_LEN>()?;
    let sealed = r.bytes()?;
    let plain = keyring.open(
        key_id,
        &check,
        &nonce,
        &owner.aad(format, authenticator, field, key_id),
        sealed,
    )?;
    *stale_key |= key_id != keyring.current_key_id().as_str();
    let secret =
        Secret::from_bytes(&plain, 0).map_err(|_| Error::CorruptRecord("a sealed secret has an impossible length"))?;
    let mut key = Key::new(secret, params);
    // Kept only in the current format: an older one is re-sealed on its next write.
    if format == RECORD_FORMAT {
        key.sealed = Some(Arc::new(SealedForm {
            field: field as u8,
            key_id: key_id.into(),
            bytes: r.since(before).into(),
        }));
    }
    Ok(key)
}

pub(super) fn params(w: &mut Writer, p: &TotpParams) {
    w.u8(match p.algorithm() {
        Algorithm::Sha1 => 1,
        Algorithm::Sha256 => 2,
        Algorithm::Sha512 => 3,
    });
    w.u8(p.digits().get());
    w.uint(p.period());
    w.uint(p.t0());
}

pub(super) fn read_params(r: &mut Reader<'_>) -> Result<TotpParams> {
    let algorithm = match r.u8()? {
        1 => Algorithm::Sha1,
        2 => Algorithm::Sha256,
        3 => Algorithm::Sha512,
        _ => return corrupt("unknown algorithm"),
    };
    let digits = Digits::new(r.u8()?).ok_or(Error::CorruptRecord("digits out of range"))?;
    let period = r.uint()?;
    let t0 = r.uint()?;
    TotpParams::new(algorithm, digits, period)
        .map(|p| p.with_t0(t0))
        .map_err(|_| Error::CorruptRecord("OTP parameters out of range"))
}

pub(super) fn reason(w: &mut Writer, reason: &ResetReason) {
    match reason {
        ResetReason::LostDevice => w.u8(1),
        ResetReason::NewDevice => w.u8(2),
        ResetReason::LockedOut => w.u8(3),
        ResetReason::SecurityIncident => w.u8(4),
        ResetReason::Other(note) => {
            w.u8(5);
            w.str(note);
        }
    }
}

pub(super) fn read_reason(r: &mut Reader<'_>) -> Result<ResetReason> {
    Ok(match r.u8()? {
        1 => ResetReason::LostDevice,
        2 => ResetReason::NewDevice,
        3 => ResetReason::LockedOut,
        4 => ResetReason::SecurityIncident,
        5 => ResetReason::Other(r.str()?.into()),
        _ => return corrupt("unknown reset reason"),
    })
}

impl MfaRecord {
    /// The record's stored form: a versioned byte string with every secret
    /// sealed under `keyring`'s current key, bound to `user` of `portal`.
    /// Stores keep exactly these bytes; the driver calls this for them.
    pub fn encode<R: CryptoRng + ?Sized>(
        &self,
        portal: &PortalId,
        user: &UserId,
        keyring: &Keyring,
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        encode_record(self, portal, user, keyring, rng)
    }

    /// Reads a stored form written by [`MfaRecord::encode`] (any format
    /// version this crate ever wrote) for `user` of `portal`.
    ///
    /// Any byte string gives a consistent record or an error:
    /// [`Error::CorruptRecord`] (damaged, or sealed for another user or field),
    /// [`Error::IncompatibleFormat`] (newer), [`Error::KeyUnavailable`] (no key with its id),
    /// [`Error::WrongKey`] (another key under its id).
    pub fn decode(bytes: &[u8], portal: &PortalId, user: &UserId, keyring: &Keyring) -> Result<Self> {
        decode_record(bytes, portal, user, keyring).map(|d| d.record)
    }
}

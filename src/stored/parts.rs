//! What both record forms share: whose record it is, sealed secrets, OTP
//! parameters and reset reasons.

use rand::CryptoRng;
use std::sync::Arc;
use zeroize::Zeroizing;

use super::{RECORD_FORMAT, Reader, Writer, corrupt};
use crate::error::{Error, Result};
use crate::event::ResetReason;
use crate::ids::{PortalId, UserId};
use crate::keyring::{Field, KEY_CHECK_LEN, Keyring, NONCE_LEN, associated_data};
use crate::otp::{Algorithm, Digits, Secret, TotpParams};
use crate::state::{Key, MfaRecord, SealedForm};

/// Who a record belongs to: bound into every sealed value's associated data.
#[derive(Clone, Copy)]
pub(super) struct Owner<'a> {
    pub(super) portal: &'a PortalId,
    pub(super) user: &'a UserId,
}

impl Owner<'_> {
    pub(super) fn aad(&self, format: u8, authenticator: u32, field: Field, key_id: &str) -> Vec<u8> {
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

/// A decoded record, and whether any of its secrets was sealed under a key
/// other than the current one (it is re-sealed at its next write).
pub(crate) struct Decoded {
    pub(crate) record: MfaRecord,
    pub(crate) stale_key: bool,
}

/// Writes the key's secret sealed: the form it was read in when that is for
/// this field and under the current key, else sealed afresh with a new nonce.
pub(super) fn seal<R: CryptoRng + ?Sized>(
    w: &mut Writer,
    owner: Owner<'_>,
    authenticator: u32,
    field: Field,
    key: &Key,
    keyring: &Keyring,
    rng: &mut R,
) -> Result<()> {
    let plain = key.secret().expose_bytes();
    seal_bytes(
        w,
        owner,
        authenticator,
        field,
        plain,
        key.sealed.as_deref(),
        keyring,
        rng,
    )
}

/// Writes `plain` sealed for `field` of item `item`: `kept` (the form it
/// was read in) when that is for this field and under the current key, else
/// sealed afresh with a new nonce.
#[allow(clippy::too_many_arguments)]
pub(super) fn seal_bytes<R: CryptoRng + ?Sized>(
    w: &mut Writer,
    owner: Owner<'_>,
    item: u32,
    field: Field,
    plain: &[u8],
    kept: Option<&SealedForm>,
    keyring: &Keyring,
    rng: &mut R,
) -> Result<()> {
    let key_id = keyring.current_key_id().as_str();
    if let Some(sealed) = kept
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
    w.uint((plain.len() + crate::keyring::TAG_LEN) as u64);
    // Sealed in place at the end of the buffer: the plaintext never sits anywhere else.
    let start = w.0.len();
    w.0.extend_from_slice(plain);
    let sealed = keyring.seal(&nonce, &owner.aad(RECORD_FORMAT, item, field, key_id), &mut w.0, start);
    if sealed.is_err() {
        zeroize::Zeroize::zeroize(&mut w.0[start..]);
    }
    sealed
}

/// Reads and opens a sealed secret, keeping its sealed form for the next write.
#[allow(clippy::too_many_arguments)]
pub(super) fn open(
    r: &mut Reader<'_>,
    format: u8,
    owner: Owner<'_>,
    authenticator: u32,
    field: Field,
    params: TotpParams,
    keyring: &Keyring,
    stale_key: &mut bool,
) -> Result<Key> {
    let (plain, sealed) = open_bytes(r, format, owner, authenticator, field, keyring, stale_key)?;
    let secret =
        Secret::from_bytes(&plain, 0).map_err(|_| Error::CorruptRecord("a sealed secret has an impossible length"))?;
    let mut key = Key::new(secret, params);
    key.sealed = sealed;
    Ok(key)
}

/// A value opened, with its sealed form when it can be written back as it is.
pub(super) type Opened = (Zeroizing<Vec<u8>>, Option<Arc<SealedForm>>);

/// Reads and opens a value sealed for `field` of item `item`, with its
/// sealed form when it can be written back as it is (the current format).
pub(super) fn open_bytes(
    r: &mut Reader<'_>,
    format: u8,
    owner: Owner<'_>,
    item: u32,
    field: Field,
    keyring: &Keyring,
    stale_key: &mut bool,
) -> Result<Opened> {
    let before = r.position();
    let key_id = r.str()?;
    let check = r.array::<KEY_CHECK_LEN>()?;
    let nonce = r.array::<NONCE_LEN>()?;
    let sealed = r.bytes()?;
    let plain = keyring.open(key_id, &check, &nonce, &owner.aad(format, item, field, key_id), sealed)?;
    *stale_key |= key_id != keyring.current_key_id().as_str();
    // Kept only in the current format: an older one is re-sealed on its next write.
    let kept = (format == RECORD_FORMAT).then(|| {
        Arc::new(SealedForm {
            field: field as u8,
            key_id: key_id.into(),
            bytes: r.since(before).into(),
        })
    });
    Ok((plain, kept))
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
        ResetReason::Requested(note) => {
            w.u8(6);
            w.str(note);
        }
        ResetReason::Incident { id, note } => {
            w.u8(7);
            w.str(id);
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
        6 => ResetReason::Requested(r.str()?.into()),
        7 => ResetReason::Incident {
            id: r.str()?.into(),
            note: r.str()?.into(),
        },
        _ => return corrupt("unknown reset reason"),
    })
}

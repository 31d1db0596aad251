//! The host's keys for sealing TOTP secrets at rest.
//!
//! A [`Keyring`] holds one *current* key, which seals every value written, and
//! any number of older keys, which only open values sealed before a rotation.
//! Each key is 32 bytes with a short [`KeyId`] that is stored, in clear, beside
//! every value it sealed, so a value names the key that opens it and rotation
//! needs no offline re-encryption.
//!
//! The 32 bytes are never used directly: HKDF-SHA-256 derives one key per
//! purpose from them, so the same host key can never seal two kinds of value
//! under one AEAD key. Sealing is XChaCha20-Poly1305 with a random 192-bit
//! nonce per value; its associated data binds the portal, the user, the
//! authenticator, the field, the key id and the stored-form version, so a
//! sealed value copied into another row does not open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A key's name, stored beside each value it seals: 1 to 32 characters from
/// `A-Z a-z 0-9 . _ -` (for example `2026-11` or `mfa.v3`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Arc<str>);

impl KeyId {
    /// Longest id.
    pub const MAX_LEN: usize = 32;

    /// Checks and wraps `id`.
    pub fn new(id: &str) -> Result<Self> {
        let valid = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(id.into()))
        } else {
            Err(Error::InvalidKey(
                "a key id has 1 to 32 characters from A-Z a-z 0-9 . _ -",
            ))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Display for KeyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a sealed value is, bound into its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// A confirmed authenticator's TOTP secret.
    Secret = 1,
    /// A pending enrolment's TOTP secret.
    PendingSecret = 2,
    /// A passkey's credential (its id and public key).
    Passkey = 3,
    /// A passkey registration's ceremony state.
    PasskeyRegistration = 4,
    /// A sign-in challenge's ceremony state.
    PasskeyChallenge = 5,
}

/// HKDF `info` for the one purpose keys serve today.
const TOTP_SECRET_PURPOSE: &[u8] = b"portal-mfa/v1/totp-secret";
/// HKDF salt: fixed, so a key's derivation depends only on its bytes.
const HKDF_SALT: &[u8] = b"portal-mfa keyring";

/// HKDF `info` for the key that MACs session stamps.
const SESSION_STAMP_PURPOSE: &[u8] = b"portal-mfa/v1/session-stamp";
/// Bytes of a session stamp's tag: HMAC-SHA-256 truncated to 128 bits.
pub(crate) const STAMP_TAG_LEN: usize = 16;

/// HKDF `info` for a key's check value.
const KEY_CHECK_PURPOSE: &[u8] = b"portal-mfa/v1/key-check";
/// Size of a key's check value in the stored form.
pub(crate) const KEY_CHECK_LEN: usize = 8;
/// Size of a nonce in the stored form.
pub(crate) const NONCE_LEN: usize = 24;
/// Size of a Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;

struct RingKey {
    id: KeyId,
    /// Stored beside each value the key seals, so a different key under the
    /// same id is told apart from a damaged value. Derived, not secret.
    check: [u8; KEY_CHECK_LEN],
    // Zeroized on drop by chacha20poly1305's `zeroize` feature.
    totp_secrets: XChaCha20Poly1305,
    /// The HMAC-SHA-256 key of session stamps.
    session_stamps: Zeroizing<[u8; 32]>,
}

/// The host's sealing keys: one current, any number of older ones.
///
/// `Debug` shows key ids only; key bytes are zeroized on drop.
///
/// ```
/// use portal_mfa::Keyring;
///
/// // Load the bytes from your secret store; never from source code.
/// let old = [7u8; 32];
/// let new = [9u8; 32];
/// let keyring = Keyring::new("2026-11", &new)?.with_old_key("2025-01", &old)?;
/// assert_eq!(keyring.current_key_id().as_str(), "2026-11");
/// assert!(!format!("{keyring:?}").contains("9, 9"));
/// # Ok::<(), portal_mfa::Error>(())
/// ```
pub struct Keyring {
    // `keys[0]` is the current key.
    keys: Vec<RingKey>,
    opened: Mutex<Opened>,
}

/// Values opened recently, by the exact bytes that were authenticated (associated
/// data, key id, nonce, ciphertext and tag): the same bytes under the same key
/// open to the same value, so a sign-in of a user seen recently skips the AEAD.
/// Nonces are random per seal, so an entry matches only the value it came from.
#[derive(Default)]
struct Opened {
    values: HashMap<Box<[u8]>, Zeroizing<Vec<u8>>, foldhash::fast::RandomState>,
    capacity: usize,
}

impl Keyring {
    /// Bytes in a key.
    pub const KEY_LEN: usize = 32;

    /// A keyring whose current key is `key` (exactly 32 bytes from a CSPRNG), named `id`.
    pub fn new(id: &str, key: &[u8]) -> Result<Self> {
        Ok(Self {
            keys: vec![RingKey::derive(KeyId::new(id)?, key)?],
            opened: Mutex::new(Opened {
                capacity: Self::DEFAULT_OPEN_CACHE,
                ..Opened::default()
            }),
        })
    }

    /// How many opened values a keyring remembers by default.
    pub const DEFAULT_OPEN_CACHE: usize = 4096;

    /// Remembers up to `entries` recently opened secrets (default
    /// [`Keyring::DEFAULT_OPEN_CACHE`]), so a user who signs in again soon
    /// costs no decryption. `0` turns it off.
    ///
    /// ⚠️ The remembered secrets stay in this process's memory (zeroized when
    /// forgotten), as every secret does in the in-memory store; turn it off if
    /// the process's memory is less trusted than its keys.
    #[must_use]
    pub fn with_open_cache(self, entries: usize) -> Self {
        if let Ok(mut opened) = self.opened.lock() {
            opened.capacity = entries;
            opened.values.clear();
        }
        self
    }

    /// Adds an older key that still opens what it sealed; it never seals.
    pub fn with_old_key(mut self, id: &str, key: &[u8]) -> Result<Self> {
        let key = RingKey::derive(KeyId::new(id)?, key)?;
        if self.keys.iter().any(|k| k.id == key.id) {
            return Err(Error::InvalidKey("two keys share an id"));
        }
        self.keys.push(key);
        Ok(self)
    }

    /// A fresh random key, for a host generating its first one.
    pub fn generate_key<R: CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<[u8; 32]> {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut_slice());
        key
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &KeyId {
        &self.keys[0].id
    }

    /// The current key's check value, written beside each value it seals.
    pub(crate) fn current_check(&self) -> &[u8; KEY_CHECK_LEN] {
        &self.keys[0].check
    }

    /// Every key id, the current one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|k| &k.id)
    }

    /// The tag of a session stamp under the current key; `message` feeds the MAC what it covers.
    pub(crate) fn stamp_tag(&self, message: impl Fn(&mut StampMac)) -> [u8; STAMP_TAG_LEN] {
        stamp_tag(&self.keys[0].session_stamps, &message)
    }

    /// Whether `tag` is `message`'s under any key of the ring: a stamp stays
    /// good across a rotation while the key that signed it is kept. Every key
    /// is tried and each comparison is constant-time, so the time says neither
    /// whether nor under which key it matched.
    pub(crate) fn stamp_tag_matches(&self, message: impl Fn(&mut StampMac), tag: &[u8; STAMP_TAG_LEN]) -> bool {
        use subtle::ConstantTimeEq;
        let mut matched = subtle::Choice::from(0);
        for key in &self.keys {
            matched |= stamp_tag(&key.session_stamps, &message).ct_eq(tag);
        }
        matched.into()
    }

    /// Seals `plaintext` in place under the current key; returns the key id,
    /// and appends the tag. `aad` must come from [`associated_data`].
    pub(crate) fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buffer: &mut Vec<u8>, start: usize) -> Result<()> {
        let key = &self.keys[0];
        let tag = key
            .totp_secrets
            .encrypt_inout_detached(&XNonce::from(*nonce), aad, (&mut buffer[start..]).into())
            .map_err(|_| Error::InvalidKey("the value is too long to seal"))?;
        buffer.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens a value sealed by key `key_id`, in place (`sealed` is ciphertext then tag).
    pub(crate) fn open(
        &self,
        key_id: &str,
        check: &[u8; KEY_CHECK_LEN],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id.as_str() == key_id)
            .ok_or_else(|| Error::KeyUnavailable {
                key_id: key_id.to_owned(),
            })?;
        let Some(split) = sealed.len().checked_sub(TAG_LEN) else {
            return Err(Error::CorruptRecord("a sealed value is shorter than its tag"));
        };
        let mut seen = Vec::with_capacity(aad.len() + key_id.len() + NONCE_LEN + sealed.len());
        for part in [aad, key_id.as_bytes(), check, nonce, sealed] {
            seen.extend_from_slice(part);
        }
        if let Some(plain) = self
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values
            .get(seen.as_slice())
        {
            return Ok(plain.clone());
        }
        let (ciphertext, tag) = sealed.split_at(split);
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        let opened = key.totp_secrets.decrypt_inout_detached(
            &XNonce::from(*nonce),
            aad,
            plain.as_mut_slice().into(),
            tag.try_into().map_err(|_| Error::CorruptRecord("bad tag length"))?,
        );
        match (opened, key.check == *check) {
            (Ok(()), true) => {}
            // Another key under this id: the host loaded the wrong bytes for it.
            (Err(_), false) => {
                return Err(Error::WrongKey {
                    key_id: key_id.to_owned(),
                });
            }
            (Err(_), true) => {
                return Err(Error::CorruptRecord(
                    "a sealed value does not open here (tampered, or copied from another user or field)",
                ));
            }
            (Ok(()), false) => return Err(Error::CorruptRecord("a sealed value's key check was altered")),
        }
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if opened.capacity > 0 {
            if opened.values.len() >= opened.capacity {
                // Bounded without bookkeeping: forget everything, refill with what is used.
                opened.values.clear();
            }
            opened.values.insert(seen.into(), plain.clone());
        }
        Ok(plain)
    }
}

impl RingKey {
    fn derive(id: KeyId, key: &[u8]) -> Result<Self> {
        if key.len() != Keyring::KEY_LEN {
            return Err(Error::InvalidKey("a key has exactly 32 bytes"));
        }
        let mut derived = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(HKDF_SALT), key)
            .expand(TOTP_SECRET_PURPOSE, derived.as_mut_slice())
            .map_err(|_| Error::InvalidKey("key derivation failed"))?;
        let totp_secrets = XChaCha20Poly1305::new_from_slice(derived.as_slice())
            .map_err(|_| Error::InvalidKey("key derivation failed"))?;
        let mut check = [0u8; KEY_CHECK_LEN];
        Hkdf::<Sha256>::new(Some(HKDF_SALT), key)
            .expand(KEY_CHECK_PURPOSE, &mut check)
            .map_err(|_| Error::InvalidKey("key derivation failed"))?;
        let mut session_stamps = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(HKDF_SALT), key)
            .expand(SESSION_STAMP_PURPOSE, session_stamps.as_mut_slice())
            .map_err(|_| Error::InvalidKey("key derivation failed"))?;
        Ok(Self {
            id,
            check,
            totp_secrets,
            session_stamps,
        })
    }
}

impl core::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", self.current_key_id())
            .field("older", &self.keys[1..].iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

/// The MAC session stamps are tagged with.
pub(crate) type StampMac = hmac::Hmac<Sha256>;

/// HMAC-SHA-256 of what `message` feeds it under `key`, truncated to [`STAMP_TAG_LEN`] bytes.
fn stamp_tag(key: &[u8; 32], message: &dyn Fn(&mut StampMac)) -> [u8; STAMP_TAG_LEN] {
    use hmac::{KeyInit, Mac};
    let mut mac =
        <StampMac as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    message(&mut mac);
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; STAMP_TAG_LEN];
    tag.copy_from_slice(&full[..STAMP_TAG_LEN]);
    tag
}

/// The associated data of a sealed value: everything it belongs to, each
/// part length-prefixed so no two contexts encode alike.
pub(crate) fn associated_data(
    format: u8,
    portal: &str,
    user_kind: &str,
    user_id: &str,
    authenticator: u32,
    field: Field,
    key_id: &str,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(48 + portal.len() + user_id.len());
    aad.extend_from_slice(b"portal-mfa sealed");
    aad.push(format);
    for part in [portal, user_kind, user_id, key_id] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad.extend_from_slice(&authenticator.to_be_bytes());
    aad.push(field as u8);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad(user: &str, field: Field) -> Vec<u8> {
        associated_data(1, "acme", "customer", user, 1, field, "k1")
    }

    #[test]
    fn sealed_values_open_only_in_their_own_context() {
        let ring = Keyring::new("k1", &[1u8; 32]).unwrap();
        let nonce = [3u8; NONCE_LEN];
        let mut buf = b"0123456789abcdefghij".to_vec();
        ring.seal(&nonce, &aad("alice", Field::Secret), &mut buf, 0).unwrap();
        assert_ne!(&buf[..20], b"0123456789abcdefghij");
        let plain = ring
            .open("k1", ring.current_check(), &nonce, &aad("alice", Field::Secret), &buf)
            .unwrap();
        assert_eq!(plain.as_slice(), b"0123456789abcdefghij");
        for wrong in [aad("bob", Field::Secret), aad("alice", Field::PendingSecret)] {
            assert!(matches!(
                ring.open("k1", ring.current_check(), &nonce, &wrong, &buf),
                Err(Error::CorruptRecord(_))
            ));
        }
        // Other bytes under the same id: told apart from damage by the key check.
        let other = Keyring::new("k1", &[2u8; 32]).unwrap();
        assert!(matches!(
            other.open("k1", ring.current_check(), &nonce, &aad("alice", Field::Secret), &buf),
            Err(Error::WrongKey { key_id }) if key_id == "k1"
        ));
        let mut altered = *ring.current_check();
        altered[0] ^= 1;
        assert!(matches!(
            ring.open("k1", &altered, &nonce, &aad("alice", Field::Secret), &buf),
            Err(Error::CorruptRecord(_))
        ));
        // Opened once, remembered: the cache answers only the exact same bytes in the same context.
        assert_eq!(ring.opened.lock().unwrap().values.len(), 1);
        assert!(matches!(
            ring.open("k1", ring.current_check(), &nonce, &aad("bob", Field::Secret), &buf),
            Err(Error::CorruptRecord(_))
        ));
        assert!(matches!(
            ring.open("k0", ring.current_check(), &nonce, &aad("alice", Field::Secret), &buf),
            Err(Error::KeyUnavailable { key_id }) if key_id == "k0"
        ));
    }

    #[test]
    fn ids_and_lengths_are_checked() {
        assert!(Keyring::new("", &[0; 32]).is_err());
        assert!(Keyring::new("a b", &[0; 32]).is_err());
        assert!(Keyring::new(&"a".repeat(33), &[0; 32]).is_err());
        assert!(Keyring::new("k", &[0; 31]).is_err());
        assert!(
            Keyring::new("k", &[0; 32])
                .unwrap()
                .with_old_key("k", &[1; 32])
                .is_err()
        );
    }
}

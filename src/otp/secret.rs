//! The shared secret between the server and the user's authenticator app.

use rand::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result, SecretError};

/// An HOTP/TOTP shared secret (the HMAC key).
///
/// Zeroized on drop; `Debug` prints a placeholder; equality is constant-time.
/// There is no `Display`: the only ways out are [`Secret::to_base32`],
/// [`Secret::to_grouped_base32`] and [`Secret::expose_bytes`], each for a
/// named purpose.
#[derive(Clone)]
pub struct Secret {
    bytes: Box<[u8]>,
}

impl Secret {
    /// 160 bits, the length RFC 4226 §4 recommends and apps expect.
    pub const DEFAULT_BYTES: usize = 20;
    /// New enrolments never get less than 128 bits (RFC 4226 §4 R6).
    pub const MIN_GENERATED_BYTES: usize = 16;
    /// The default minimum for imported secrets, in bits.
    pub const DEFAULT_MIN_IMPORT_BITS: usize = 128;
    /// Upper bound on any secret, so hostile input stays small.
    pub const MAX_BYTES: usize = 256;

    /// A fresh 160-bit secret from a cryptographically secure RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = vec![0u8; Self::DEFAULT_BYTES].into_boxed_slice();
        rng.fill_bytes(&mut bytes);
        Self { bytes }
    }

    /// A fresh secret of `len` bytes (at least 16, at most [`Secret::MAX_BYTES`]).
    pub fn generate_with_len<R: CryptoRng + ?Sized>(rng: &mut R, len: usize) -> Result<Self> {
        if len < Self::MIN_GENERATED_BYTES {
            return Err(Error::InvalidSecret(SecretError::TooShort {
                bits: len * 8,
                minimum: Self::MIN_GENERATED_BYTES * 8,
            }));
        }
        if len > Self::MAX_BYTES {
            return Err(Error::InvalidSecret(SecretError::TooLong));
        }
        let mut bytes = vec![0u8; len].into_boxed_slice();
        rng.fill_bytes(&mut bytes);
        Ok(Self { bytes })
    }

    /// Imports raw key bytes, requiring at least `min_bits`.
    pub fn from_bytes(bytes: &[u8], min_bits: usize) -> Result<Self> {
        check_len(bytes.len(), min_bits)?;
        Ok(Self { bytes: bytes.into() })
    }

    /// Imports a base32 secret requiring at least 128 bits.
    ///
    /// Case-insensitive; spaces, hyphens and `=` padding are ignored, so
    /// `jbsw y3dp ehpk 3pxp` and `JBSWY3DPEHPK3PXP====` are the same secret.
    pub fn from_base32(text: &str) -> Result<Self> {
        Self::from_base32_with_min(text, Self::DEFAULT_MIN_IMPORT_BITS)
    }

    /// Like [`Secret::from_base32`] with a caller-chosen minimum length in bits.
    ///
    /// ⚠️ Lowering the minimum below 128 bits accepts keys RFC 4226 calls too
    /// weak; do it only to import existing enrolments.
    pub fn from_base32_with_min(text: &str, min_bits: usize) -> Result<Self> {
        // Each base32 character carries 5 bits; anything longer than this cannot fit MAX_BYTES.
        if text.len() > Self::MAX_BYTES * 2 + 64 {
            return Err(Error::InvalidSecret(SecretError::TooLong));
        }
        let mut clean = Zeroizing::new(String::with_capacity(text.len()));
        let mut seen_padding = false;
        for c in text.chars() {
            match c {
                ' ' | '-' | '\t' => {}
                '=' => seen_padding = true,
                c if c.is_ascii_alphanumeric() && !seen_padding => clean.push(c.to_ascii_uppercase()),
                _ => return Err(Error::InvalidSecret(SecretError::InvalidBase32)),
            }
        }
        // Lengths 1, 3 and 6 (mod 8) cannot come from any byte string.
        if matches!(clean.len() % 8, 1 | 3 | 6) {
            return Err(Error::InvalidSecret(SecretError::InvalidBase32));
        }
        let decoded = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &clean)
            .map(Zeroizing::new)
            .ok_or(Error::InvalidSecret(SecretError::InvalidBase32))?;
        Self::from_bytes(&decoded, min_bits)
    }

    /// Unpadded upper-case base32, as `otpauth://` URIs carry it.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32::encode(
            base32::Alphabet::Rfc4648 { padding: false },
            &self.bytes,
        ))
    }

    /// Base32 in blocks of four (`JBSW Y3DP EHPK 3PXP`), for typing into an app by hand.
    pub fn to_grouped_base32(&self) -> Zeroizing<String> {
        let plain = self.to_base32();
        let mut grouped = Zeroizing::new(String::with_capacity(plain.len() + plain.len() / 4));
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                grouped.push(' ');
            }
            grouped.push(c);
        }
        grouped
    }

    /// The raw key bytes.
    ///
    /// ⚠️ For storing the secret (a store serialising a record) and nothing else.
    /// The caller keeps the bytes out of logs and should encrypt them at rest.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always `false`: an empty secret cannot be built. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

fn check_len(len: usize, min_bits: usize) -> Result<()> {
    if len == 0 || len * 8 < min_bits {
        return Err(Error::InvalidSecret(SecretError::TooShort {
            bits: len * 8,
            minimum: min_bits.max(8),
        }));
    }
    if len > Secret::MAX_BYTES {
        return Err(Error::InvalidSecret(SecretError::TooLong));
    }
    Ok(())
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Secret {}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for Secret {}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

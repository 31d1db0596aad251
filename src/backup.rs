//! Backup codes: generated in a batch, shown once, stored only as salted hashes,
//! each accepted once.
//!
//! A code is 80 random bits written as 16 Crockford base32 characters in groups
//! of four (`7KQ2-M9XD-4TNB-E0RW`). Typing is forgiving: any case, spaces or
//! hyphens anywhere, and `O`/`I`/`L` read as `0`/`1`/`1`. The record keeps
//! HMAC-SHA-256(salt, code) truncated to 128 bits, with a random salt per
//! batch, so one user's code hashes differently in another user's record.

use std::sync::Arc;

use hmac::{KeyInit, Mac};
use rand::CryptoRng;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::error::{CodeFormatError, CodeKind, Error, Result};

/// Random bytes per code (80 bits).
const CODE_BYTES: usize = 10;
/// Characters per code, without separators.
const CODE_CHARS: usize = 16;
/// A stored hash.
pub(crate) type BackupCodeHash = [u8; 16];

/// The stored side of a batch of backup codes: salt, hashes, which are used.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCodes {
    // The salt, then the hashes, in one allocation: records move by value
    // through every transition, so the inline part is kept small.
    salt_and_hashes: Arc<[BackupCodeHash]>,
    used: u32,
}

/// Freshly generated codes, for showing to the user once (download or copy).
///
/// `Debug` is redacted; the codes are zeroized on drop.
pub struct IssuedBackupCodes {
    codes: Vec<Zeroizing<String>>,
}

impl IssuedBackupCodes {
    /// The codes, formatted `XXXX-XXXX-XXXX-XXXX`.
    ///
    /// ⚠️ Show them to their owner once; never log or store them.
    pub fn expose(&self) -> impl Iterator<Item = &str> {
        self.codes.iter().map(|c| c.as_str())
    }

    /// How many codes there are.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

impl core::fmt::Debug for IssuedBackupCodes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IssuedBackupCodes(<{} redacted>)", self.codes.len())
    }
}

/// A backup code as typed, normalised to its 80 bits.
pub(crate) struct TypedBackupCode(Zeroizing<[u8; CODE_BYTES]>);

impl TypedBackupCode {
    /// Longer input is refused unread.
    const MAX_INPUT_LEN: usize = 64;

    pub(crate) fn parse(input: &str) -> Result<Self> {
        let malformed = |e| Err(Error::MalformedCode(e));
        let invalid = CodeFormatError::InvalidCharacter {
            kind: CodeKind::BackupCode,
        };
        if input.len() > Self::MAX_INPUT_LEN {
            return malformed(CodeFormatError::TooLong);
        }
        let mut compact = Zeroizing::new(String::with_capacity(CODE_CHARS));
        // Surrounding white space (a pasted line's CR or LF, a tab) is not part of the code.
        for c in input.trim().chars() {
            match c {
                ' ' | '-' | '\t' => {}
                c if c.is_ascii_alphanumeric() => compact.push(c),
                _ => return malformed(invalid),
            }
        }
        if compact.is_empty() {
            return malformed(CodeFormatError::Empty);
        }
        if compact.len() != CODE_CHARS {
            return malformed(CodeFormatError::WrongLength {
                kind: CodeKind::BackupCode,
                expected: CODE_CHARS as u8,
                found: compact.len(),
            });
        }
        let decoded = base32::decode(base32::Alphabet::Crockford, &compact).map(Zeroizing::new);
        let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
        match decoded {
            Some(d) if d.len() == CODE_BYTES => bytes.copy_from_slice(&d),
            _ => return malformed(invalid),
        }
        Ok(Self(bytes))
    }
}

impl BackupCodes {
    /// Generates `count` codes (at most [`PortalPolicy::MAX_BACKUP_CODES`]; more
    /// are not made): the stored side and the codes to show once.
    ///
    /// [`PortalPolicy::MAX_BACKUP_CODES`]: crate::policy::PortalPolicy::MAX_BACKUP_CODES
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R, count: u8) -> (Self, IssuedBackupCodes) {
        // The use mask has a bit per code; the cap keeps every index inside it.
        let count = count.min(crate::policy::PortalPolicy::MAX_BACKUP_CODES);
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let mut hashes = Vec::with_capacity(usize::from(count) + 1);
        hashes.push(salt);
        let mut codes = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
            rng.fill_bytes(bytes.as_mut_slice());
            hashes.push(hash(&salt, &bytes));
            let plain = Zeroizing::new(base32::encode(base32::Alphabet::Crockford, bytes.as_slice()));
            let mut shown = Zeroizing::new(String::with_capacity(CODE_CHARS + 3));
            for (i, c) in plain.chars().enumerate() {
                if i > 0 && i % 4 == 0 {
                    shown.push('-');
                }
                shown.push(c);
            }
            codes.push(shown);
        }
        (
            Self {
                salt_and_hashes: hashes.into(),
                used: 0,
            },
            IssuedBackupCodes { codes },
        )
    }

    /// Rebuilds stored codes (the stored-form decoder).
    ///
    /// `used` is a bit mask: bit `i` set means code `i` was used.
    pub(crate) fn from_parts(salt: [u8; 16], hashes: Vec<BackupCodeHash>, used: u32) -> Result<Self> {
        if hashes.len() > usize::from(crate::policy::PortalPolicy::MAX_BACKUP_CODES) {
            return Err(Error::CorruptRecord("more backup codes than any policy issues"));
        }
        let valid_bits = if hashes.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << hashes.len()) - 1
        };
        if used & !valid_bits != 0 {
            return Err(Error::CorruptRecord(
                "backup-code use mask names codes that do not exist",
            ));
        }
        Ok(Self {
            salt_and_hashes: [salt].into_iter().chain(hashes).collect(),
            used,
        })
    }

    /// The salt (for storing).
    pub(crate) fn salt(&self) -> &[u8; 16] {
        &self.salt_and_hashes[0]
    }

    /// The hashes (for storing).
    pub(crate) fn hashes(&self) -> &[BackupCodeHash] {
        &self.salt_and_hashes[1..]
    }

    /// The use mask (for storing).
    pub(crate) fn used_mask(&self) -> u32 {
        self.used
    }

    /// Codes not yet used.
    pub fn remaining(&self) -> u32 {
        self.hashes().len() as u32 - self.used.count_ones()
    }

    /// The index of the unused code equal to `typed`, comparing against every
    /// stored hash in constant time.
    pub(crate) fn find_unused(&self, typed: &TypedBackupCode) -> Option<usize> {
        let candidate = hash(self.salt(), &typed.0);
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (i, stored) in self.hashes().iter().enumerate() {
            let unused = Choice::from(u8::from(self.used & (1 << i) == 0));
            let hit = stored.ct_eq(&candidate) & unused;
            index.conditional_assign(&(i as u32), hit);
            found |= hit;
        }
        bool::from(found).then_some(index as usize)
    }

    pub(crate) fn mark_used(&mut self, index: usize) {
        self.used |= 1 << index;
    }
}

fn hash(salt: &[u8; 16], code: &[u8; CODE_BYTES]) -> BackupCodeHash {
    // HMAC accepts any key length, so new_from_slice cannot fail here.
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(salt).unwrap_or_else(|_| unreachable!());
    mac.update(code);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

impl core::fmt::Debug for BackupCodes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "BackupCodes {{ remaining: {}, of: {} }}",
            self.remaining(),
            self.hashes().len()
        )
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn typed_forms_normalise_to_the_same_code() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (stored, issued) = BackupCodes::generate(&mut rng, 5);
        let first = issued.expose().next().unwrap().to_owned();
        assert_eq!(first.len(), 19);
        let variants = [
            first.clone(),
            first.to_lowercase(),
            first.replace('-', ""),
            first.replace('-', " "),
            format!("  {}  ", first.replace('-', " - ")),
            first.replace('0', "O").replace('1', "l"),
        ];
        for v in variants {
            assert_eq!(
                stored.find_unused(&TypedBackupCode::parse(&v).unwrap()),
                Some(0),
                "{v:?}"
            );
        }
    }

    #[test]
    fn each_code_is_used_once_and_codes_do_not_cross_batches() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let (mut a, issued_a) = BackupCodes::generate(&mut rng, 10);
        let (b, _) = BackupCodes::generate(&mut rng, 10);
        let codes: Vec<String> = issued_a.expose().map(str::to_owned).collect();
        for (i, c) in codes.iter().enumerate() {
            let typed = TypedBackupCode::parse(c).unwrap();
            assert_eq!(b.find_unused(&typed), None, "code {i} of batch a accepted by batch b");
            assert_eq!(a.find_unused(&typed), Some(i));
            a.mark_used(i);
            assert_eq!(a.find_unused(&typed), None);
            assert_eq!(a.remaining(), 9 - i as u32);
        }
    }

    #[test]
    fn a_batch_never_exceeds_what_the_use_mask_can_track() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(10);
        let (mut stored, issued) = BackupCodes::generate(&mut rng, u8::MAX);
        assert_eq!(issued.len(), 20);
        let last = TypedBackupCode::parse(issued.expose().last().unwrap()).unwrap();
        assert_eq!(stored.find_unused(&last), Some(19));
        stored.mark_used(19);
        assert_eq!(stored.remaining(), 19);
    }

    #[test]
    fn codes_carry_at_least_64_bits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let (_, issued) = BackupCodes::generate(&mut rng, 20);
        for c in issued.expose() {
            let symbols = c.chars().filter(|c| *c != '-').count();
            assert!(symbols * 5 >= 64, "{symbols} symbols of 5 bits");
        }
    }
}

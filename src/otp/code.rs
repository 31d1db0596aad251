//! One-time codes: parsing what a user typed, and formatting what an app would show.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use super::params::Digits;
use crate::error::{CodeFormatError, CodeKind, Error, Result};

/// A one-time code of a known number of digits.
///
/// Either parsed from user input with [`Code::parse`] or produced by a
/// generator. `Debug` is redacted and there is no `Display`; use
/// [`Code::expose`] where a code really must be shown (a test, a demo).
#[derive(Clone)]
pub struct Code {
    value: u32,
    digits: Digits,
}

impl Code {
    /// Inputs longer than this are refused before they are read.
    pub const MAX_INPUT_LEN: usize = 64;

    /// Reads what a user typed: exactly `digits` ASCII digits, optionally in
    /// groups separated by a single space or dash (`123 456`, `123-456`), with
    /// surrounding white space ignored. Anything else is a [`CodeFormatError`],
    /// never a panic.
    pub fn parse(input: &str, digits: Digits) -> Result<Self> {
        if input.len() > Self::MAX_INPUT_LEN {
            return Err(Error::MalformedCode(CodeFormatError::TooLong));
        }
        let trimmed = input.trim_ascii().as_bytes();
        if trimmed.is_empty() {
            return Err(Error::MalformedCode(CodeFormatError::Empty));
        }
        let mut value: u32 = 0;
        let mut found = 0usize;
        let mut previous_was_space = false;
        for &byte in trimmed {
            match byte {
                b'0'..=b'9' => {
                    // Keep counting past the limit so the error can say how many were typed.
                    if found < usize::from(digits.get()) {
                        value = value * 10 + u32::from(byte - b'0');
                    }
                    found += 1;
                    previous_was_space = false;
                }
                // Between groups: one space or dash, never two, never at either end.
                b' ' | b'-' if !previous_was_space && found > 0 => previous_was_space = true,
                _ => {
                    return Err(Error::MalformedCode(CodeFormatError::InvalidCharacter {
                        kind: CodeKind::Totp,
                    }));
                }
            }
        }
        if previous_was_space {
            return Err(Error::MalformedCode(CodeFormatError::InvalidCharacter {
                kind: CodeKind::Totp,
            }));
        }
        if found != usize::from(digits.get()) {
            return Err(Error::MalformedCode(CodeFormatError::WrongLength {
                kind: CodeKind::Totp,
                expected: digits.get(),
                found,
            }));
        }
        Ok(Self { value, digits })
    }

    pub(crate) fn from_value(value: u32, digits: Digits) -> Self {
        Self { value, digits }
    }

    /// The code as the app shows it, zero-padded (`"004211"`).
    ///
    /// ⚠️ A live code is a credential for the rest of its time step: show it
    /// only to its owner, never log it.
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{:0width$}",
            self.value,
            width = usize::from(self.digits.get())
        ))
    }

    /// Number of digits.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// Folds the candidates `values` (for counters `first, first + 1, …`) into
    /// `found`/`matched`, keeping the last counter whose value equals this code.
    ///
    /// Every candidate is compared in constant time, whatever matches: timing
    /// tells nothing about which step (if any) matched.
    pub(crate) fn fold_matches(&self, first: u64, values: &[u32], found: &mut Choice, matched: &mut u64) {
        let mut counter = first;
        for value in values {
            let equal = value.ct_eq(&self.value);
            matched.conditional_assign(&counter, equal);
            *found |= equal;
            counter = counter.wrapping_add(1);
        }
    }
}

impl core::fmt::Debug for Code {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Code(<redacted {} digits>)", self.digits.get())
    }
}

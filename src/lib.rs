#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Library code answers with errors; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod error;
pub mod otp;

pub use error::{CodeFormatError, Error, Result, SecretError, UriError};
pub use otp::{Algorithm, Code, Digits, Hotp, OtpAuthUri, Secret, Totp, TotpParams, Window};

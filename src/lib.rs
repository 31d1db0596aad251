#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod otp;

pub use error::{CodeFormatError, Error, Result, SecretError, UriError};
pub use otp::{Algorithm, Code, Digits, Hotp, OtpAuthUri, Secret, Totp, TotpParams, Window};

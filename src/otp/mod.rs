//! The OTP engine: secrets, HOTP/TOTP, codes, `otpauth://` URIs and QR codes.
//!
//! Pure functions of their inputs: no state, no clock, no I/O. The lifecycle
//! (replay protection, lockout, enrolment) lives in the state machine.

mod code;
mod generator;
mod keyed;
mod params;
mod qr;
mod secret;
pub(crate) mod text;
mod uri;

pub use crate::error::{CodeFormatError, CodeKind, SecretError, UriError};
pub use code::Code;
pub use generator::{Hotp, Totp};
pub use params::{Algorithm, Digits, TotpParams, Window};
pub use secret::Secret;
pub use uri::OtpAuthUri;
pub(crate) use uri::check_name;

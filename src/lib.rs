#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Library code answers with errors; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod backup;
pub mod clock;
pub mod error;
pub mod event;
pub mod guide;
pub mod ids;
pub mod keyring;
pub mod otp;
pub mod policy;
pub mod portal;
pub mod state;
pub mod store;
mod stored;

pub use backup::{BackupCodes, IssuedBackupCodes};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{CodeFormatError, CodeKind, Error, ErrorKind, PolicyRefusal, Result, SecretError, UriError};
pub use event::{Actor, AuditEvent, EventKind, Factor, Notifier, RemovalCause, ResetMode, ResetReason};
pub use ids::{Admin, AuthenticatorId, PortalId, UserId, UserKind};
pub use keyring::{KeyId, Keyring};
pub use otp::{Algorithm, Code, Digits, Hotp, OtpAuthUri, Secret, Totp, TotpParams, Window};
pub use policy::{Enforcement, Grace, LockoutRule, PortalPolicy, SignInMethod};
pub use portal::{EnrolmentOptions, Portal, ResealProgress};
pub use state::{EnrolReason, EnrolmentConfirmed, MfaRecord, SignInStep, SignInVerified, StartedEnrolment};
pub use store::{EventQuery, MemoryStore, MfaStore, RecordSummary, StorageError, StorageErrorKind};
#[cfg(feature = "sqlite")]
pub use store::{SqliteOptions, SqliteStore};

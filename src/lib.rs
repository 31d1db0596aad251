#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Library code answers with errors; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

// Their layer order is in `guide::design`, and `tests/layers.rs` checks it.
mod backup;
mod clock;
mod error;
mod event;
pub mod guide;
mod ids;
mod keyring;
mod notice;
mod otp;
mod page;
mod policy;
mod portal;
mod state;
pub mod store;
mod stored;
mod users;

// What a host needs, at one path each.
pub use backup::{BackupCodes, IssuedBackupCodes};
pub use clock::{AsyncSleep, Clock, ManualClock, SystemClock};
pub use error::{
    CodeFormatError, CodeKind, Error, ErrorKind, PolicyRefusal, Result, SecretError, StorageError, StorageErrorKind,
    UriError,
};
pub use event::{AuditEvent, EventKind, EventQuery, Factor, Notifier, RemovalCause, ResetMode, ResetReason};
pub use ids::{Actor, Admin, AuthenticatorId, PortalId, UserId, UserKind};
pub use keyring::{KeyId, Keyring};
pub use notice::Notice;
pub use otp::{Algorithm, Code, Digits, Hotp, OtpAuthUri, Secret, Totp, TotpParams, Window};
pub use page::{Cursor, MAX_PAGE, Page};
pub use policy::{Enforcement, Grace, LockoutRule, PortalPolicy, SignInMethod};
pub use portal::{EnrolmentOptions, Op, Portal, ResealProgress, Work};
pub use state::{
    Authenticator, EnrolReason, EnrolmentConfirmed, Failures, MfaRecord, PendingEnrolment, ResetRecord, ResetSummary,
    SignInStep, SignInVerified, StartedEnrolment,
};
pub use store::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use store::postgres::{AsyncPostgresStore, POSTGRES_SCHEMA_VERSION, PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use store::sqlite::{SqliteOptions, SqliteStore};
pub use users::{GraceLeft, Lock, StatusFilter, UserQuery, UserStatus};

/// The pure state machine, for experts: what the [`Portal`] driver runs
/// inside each store call. Each transition on [`MfaRecord`] takes the record
/// by value and a [`Context`](core::Context) (time, policy, actor, ids) and
/// returns an [`Outcome`](core::Outcome): the next record, its audit events,
/// and the answer.
///
/// ⚠️ Nothing here touches a store: a host that runs transitions itself must
/// persist the next record and its events atomically, with compare-and-swap,
/// or replays and lost lockout counts follow. Prefer the [`Portal`] driver.
pub mod core {
    pub use crate::state::{Context, EnrolmentRequest, Outcome};
}

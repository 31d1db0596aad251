#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// docs.rs builds with every feature and `--cfg docsrs`: each feature-gated item shows its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
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
pub mod otp;
mod page;
pub mod passkey;
mod policy;
mod portal;
mod state;
pub mod store;
mod stored;
mod users;

// What every host needs, at the root; the rest by what a host does with it,
// one path each.
pub use backup::IssuedBackupCodes;
pub use clock::{AsyncSleep, Clock, ManualClock, SystemClock};
pub use error::{
    Error, ErrorKind, PasskeyRefusal, PolicyRefusal, RequestRefusal, Result, StorageError, StorageErrorKind,
};
pub use ids::{Admin, AuthenticatorId, PortalId, UserId, UserKind};
pub use keyring::Keyring;
pub use page::{Cursor, MAX_PAGE, Page};
pub use policy::{Enforcement, Grace, LockoutRule, PortalPolicy, SignInMethod};
pub use portal::{EnrolmentOptions, Op, Portal};
pub use state::{
    EnrolReason, EnrolmentConfirmed, PasskeyRegistrationStarted, SessionStamp, SignInStep, SignInVerified,
    StartedEnrolment,
};

/// What a sign-in grants past the code check: session stamps and trusted
/// browsers (see [`Portal::check_session`] and [`Portal::trust_browser`]).
pub mod session {
    pub use crate::event::{ForgetCause, SessionEndCause};
    pub use crate::ids::BrowserId;
    pub use crate::state::{
        BackupCodesRegenerated, BrowserToken, GraceSpent, SessionProof, TrustedBrowser, TrustedBrowserIssued,
    };
}

/// The audit trail: what happened, who did it, who must hear of it.
pub mod audit {
    pub use crate::event::{AuditEvent, EventKind, EventQuery, Factor, Notifier, RemovalCause};
    pub use crate::ids::Actor;
    pub use crate::notice::Notice;
}

/// What an admin does beyond the policy: list users by MFA status, reset a
/// user's MFA, re-seal records under a new key.
pub mod admin {
    pub use crate::event::{ResetMode, ResetReason};
    pub use crate::keyring::KeyId;
    pub use crate::policy::Lock;
    pub use crate::portal::{BulkResetProgress, ResealProgress};
    pub use crate::state::ResetSummary;
    pub use crate::users::{BulkReset, GraceLeft, ResetSelection, StatusFilter, UserQuery, UserStatus};
}

/// One user's MFA record, as [`Portal::record`] answers it.
pub mod record {
    pub use crate::backup::BackupCodes;
    pub use crate::state::{
        Authenticator, Failures, MfaRecord, Passkey, PendingEnrolment, PendingPasskey, ResetRecord, ResetRequest,
    };
}

/// The pure state machine, for experts: what the [`Portal`] driver runs
/// inside each store call. Each transition on [`MfaRecord`](record::MfaRecord)
/// takes the record by value and a [`Context`](core::Context) (time, policy,
/// actor, ids) and returns an [`Outcome`](core::Outcome): the next record, its
/// audit events, and the answer.
///
/// ⚠️ Nothing here touches a store: a host that runs transitions itself must
/// persist the next record and its events atomically, with compare-and-swap,
/// or replays and lost lockout counts follow. Prefer the [`Portal`] driver.
pub mod core {
    pub use crate::state::{Context, EnrolmentRequest, Outcome};
}

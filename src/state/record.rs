//! One user's MFA record: authenticators, a pending enrolment, backup codes,
//! the failure count. Plain data; the transitions live in [`super::transitions`].

use std::sync::Arc;

use crate::backup::BackupCodes;
use crate::error::{Error, Result};
use crate::event::ResetReason;
use crate::ids::AuthenticatorId;
use crate::otp::{Secret, Totp, TotpParams};
use crate::policy::LockoutRule;

/// A secret with its verifier. The verifier (the HMAC pad states) is kept
/// inline so a sign-in touches no memory beyond the record itself; the secret,
/// needed only to persist the record, sits behind a shared pointer.
#[derive(Clone)]
pub(crate) struct Key {
    secret: Arc<Secret>,
    totp: Totp,
}

impl Key {
    pub(crate) fn new(secret: Secret, params: TotpParams) -> Self {
        let totp = Totp::new(&secret, params);
        Self {
            secret: Arc::new(secret),
            totp,
        }
    }

    pub(crate) fn totp(&self) -> &Totp {
        &self.totp
    }
}

/// A confirmed authenticator app.
#[derive(Clone)]
pub struct Authenticator {
    pub(crate) id: AuthenticatorId,
    pub(crate) label: Arc<str>,
    pub(crate) key: Key,
    pub(crate) added_at: u64,
    /// The newest time step accepted from it: that step and older ones are replays.
    pub(crate) last_used_step: Option<u64>,
}

impl Authenticator {
    /// Its id within the user's record.
    pub fn id(&self) -> AuthenticatorId {
        self.id
    }

    /// The name the user gave it ("Pixel 8").
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its OTP parameters.
    pub fn params(&self) -> &TotpParams {
        self.key.totp.params()
    }

    /// When it was confirmed (Unix time).
    pub fn added_at(&self) -> u64 {
        self.added_at
    }

    /// The newest time step accepted from it.
    pub fn last_used_step(&self) -> Option<u64> {
        self.last_used_step
    }

    /// The shared secret.
    ///
    /// ⚠️ For a store persisting the record, nothing else.
    pub fn secret(&self) -> &Secret {
        &self.key.secret
    }
}

impl core::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Authenticator")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("params", self.params())
            .field("added_at", &self.added_at)
            .field("last_used_step", &self.last_used_step)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An enrolment waiting for its first code.
#[derive(Clone)]
pub struct PendingEnrolment {
    pub(crate) id: AuthenticatorId,
    pub(crate) label: Arc<str>,
    pub(crate) key: Key,
    pub(crate) started_at: u64,
    pub(crate) expires_at: u64,
    pub(crate) replaces: Option<AuthenticatorId>,
}

impl PendingEnrolment {
    /// The id the authenticator will have.
    pub fn id(&self) -> AuthenticatorId {
        self.id
    }

    /// Its label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its OTP parameters.
    pub fn params(&self) -> &TotpParams {
        self.key.totp.params()
    }

    /// When it was started.
    pub fn started_at(&self) -> u64 {
        self.started_at
    }

    /// From this Unix time on it can no longer be confirmed.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The authenticator it replaces once confirmed.
    pub fn replaces(&self) -> Option<AuthenticatorId> {
        self.replaces
    }

    /// The pending secret.
    ///
    /// ⚠️ For a store persisting the record, nothing else.
    pub fn secret(&self) -> &Secret {
        &self.key.secret
    }
}

impl core::fmt::Debug for PendingEnrolment {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingEnrolment")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("expires_at", &self.expires_at)
            .field("replaces", &self.replaces)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Consecutive failures and locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    pub(crate) consecutive: u32,
    pub(crate) locks: u32,
    pub(crate) locked_until: Option<u64>,
}

impl Failures {
    /// Consecutive wrong codes since the last success or reset.
    pub fn consecutive(&self) -> u32 {
        self.consecutive
    }

    /// Locks imposed since the last success or reset.
    pub fn locks(&self) -> u32 {
        self.locks
    }

    /// The end of the current or last timed lock.
    pub fn locked_until(&self) -> Option<u64> {
        self.locked_until
    }

    /// `Some(until)` while locked at `now`; `Some(None)` when locked until an admin reset.
    pub fn active_lock(&self, now: u64) -> Option<Option<u64>> {
        if self.consecutive >= LockoutRule::HARD_LIMIT {
            return Some(None);
        }
        self.locked_until.filter(|&until| now < until).map(Some)
    }
}

/// The last admin reset, kept on the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRecord {
    /// The admin.
    pub by: Arc<str>,
    /// Why.
    pub reason: ResetReason,
    /// When (Unix time).
    pub at: u64,
}

/// One user's MFA state.
///
/// A user with no record at all is `MfaRecord::default()`: no MFA. `Debug`
/// never shows secrets or backup-code hashes.
#[derive(Clone, Debug, Default)]
pub struct MfaRecord {
    pub(crate) authenticators: Vec<Authenticator>,
    // Boxed: rare, and records sit inline in stores' tables.
    pub(crate) pending: Option<Box<PendingEnrolment>>,
    pub(crate) backup_codes: Option<BackupCodes>,
    pub(crate) failures: Failures,
    pub(crate) must_enrol: bool,
    pub(crate) grace_sign_ins_used: u32,
    pub(crate) next_authenticator_id: u32,
    pub(crate) last_reset: Option<Box<ResetRecord>>,
}

impl MfaRecord {
    /// Most authenticators one user may have.
    pub const MAX_AUTHENTICATORS: usize = 8;

    /// Active authenticators.
    pub fn authenticators(&self) -> &[Authenticator] {
        &self.authenticators
    }

    /// The enrolment waiting for confirmation, if any.
    pub fn pending(&self) -> Option<&PendingEnrolment> {
        self.pending.as_deref()
    }

    /// Stored backup codes, if MFA is enabled.
    pub fn backup_codes(&self) -> Option<&BackupCodes> {
        self.backup_codes.as_ref()
    }

    /// Failure count and locks.
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// Whether an admin reset requires enrolment at the next sign-in.
    pub fn must_enrol(&self) -> bool {
        self.must_enrol
    }

    /// Grace sign-ins used since enforcement.
    pub fn grace_sign_ins_used(&self) -> u32 {
        self.grace_sign_ins_used
    }

    /// The last admin reset.
    pub fn last_reset(&self) -> Option<&ResetRecord> {
        self.last_reset.as_deref()
    }

    /// The highest authenticator id handed out so far (ids are never reused).
    pub fn next_authenticator_id(&self) -> u32 {
        self.next_authenticator_id
    }

    /// Whether the user has MFA turned on (at least one confirmed authenticator).
    pub fn mfa_enabled(&self) -> bool {
        !self.authenticators.is_empty()
    }

    /// Splits the record into plain parts, for a store to persist.
    pub fn to_parts(&self) -> RecordParts {
        RecordParts {
            authenticators: self
                .authenticators
                .iter()
                .map(|a| AuthenticatorParts {
                    id: a.id.0,
                    label: a.label.to_string(),
                    secret: Secret::clone(&a.key.secret),
                    params: *a.params(),
                    added_at: a.added_at,
                    last_used_step: a.last_used_step,
                })
                .collect(),
            pending: self.pending.as_ref().map(|p| PendingParts {
                id: p.id.0,
                label: p.label.to_string(),
                secret: Secret::clone(&p.key.secret),
                params: *p.params(),
                started_at: p.started_at,
                expires_at: p.expires_at,
                replaces: p.replaces.map(|r| r.0),
            }),
            backup_codes: self.backup_codes.clone(),
            consecutive_failures: self.failures.consecutive,
            locks: self.failures.locks,
            locked_until: self.failures.locked_until,
            must_enrol: self.must_enrol,
            grace_sign_ins_used: self.grace_sign_ins_used,
            next_authenticator_id: self.next_authenticator_id,
            last_reset: self.last_reset.as_deref().cloned(),
        }
    }

    /// Rebuilds a record from parts, checking they are consistent.
    pub fn from_parts(parts: RecordParts) -> Result<Self> {
        let corrupt = |why| Err(Error::CorruptRecord(why));
        if parts.authenticators.len() > Self::MAX_AUTHENTICATORS {
            return corrupt("more authenticators than allowed");
        }
        let mut ids: Vec<u32> = parts.authenticators.iter().map(|a| a.id).collect();
        ids.extend(parts.pending.as_ref().map(|p| p.id));
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != count {
            return corrupt("two authenticators share an id");
        }
        if ids.iter().any(|&id| id == 0 || id > parts.next_authenticator_id) {
            return corrupt("authenticator id out of sequence");
        }
        if let Some(p) = &parts.pending {
            if p.expires_at < p.started_at {
                return corrupt("pending enrolment expires before it starts");
            }
            if p.replaces
                .is_some_and(|r| !parts.authenticators.iter().any(|a| a.id == r))
            {
                return corrupt("pending enrolment replaces an unknown authenticator");
            }
        }
        let authenticators = parts
            .authenticators
            .into_iter()
            .map(|a| Authenticator {
                id: AuthenticatorId(a.id),
                label: a.label.into(),
                key: Key::new(a.secret, a.params),
                added_at: a.added_at,
                last_used_step: a.last_used_step,
            })
            .collect();
        let pending = parts.pending.map(|p| {
            Box::new(PendingEnrolment {
                id: AuthenticatorId(p.id),
                label: p.label.into(),
                key: Key::new(p.secret, p.params),
                started_at: p.started_at,
                expires_at: p.expires_at,
                replaces: p.replaces.map(AuthenticatorId),
            })
        });
        Ok(Self {
            authenticators,
            pending,
            backup_codes: parts.backup_codes,
            failures: Failures {
                consecutive: parts.consecutive_failures,
                locks: parts.locks,
                locked_until: parts.locked_until,
            },
            must_enrol: parts.must_enrol,
            grace_sign_ins_used: parts.grace_sign_ins_used,
            next_authenticator_id: parts.next_authenticator_id,
            last_reset: parts.last_reset.map(Box::new),
        })
    }
}

/// A confirmed authenticator as plain data.
#[derive(Debug, Clone)]
pub struct AuthenticatorParts {
    /// Id within the record (from 1).
    pub id: u32,
    /// Label.
    pub label: String,
    /// Secret.
    pub secret: Secret,
    /// OTP parameters.
    pub params: TotpParams,
    /// Unix time of confirmation.
    pub added_at: u64,
    /// Newest accepted step.
    pub last_used_step: Option<u64>,
}

/// A pending enrolment as plain data.
#[derive(Debug, Clone)]
pub struct PendingParts {
    /// Id the authenticator will have.
    pub id: u32,
    /// Label.
    pub label: String,
    /// Secret.
    pub secret: Secret,
    /// OTP parameters.
    pub params: TotpParams,
    /// Unix time started.
    pub started_at: u64,
    /// Unix time it expires.
    pub expires_at: u64,
    /// The authenticator it replaces.
    pub replaces: Option<u32>,
}

/// An [`MfaRecord`] as plain data, for stores.
#[derive(Debug, Clone, Default)]
pub struct RecordParts {
    /// Confirmed authenticators.
    pub authenticators: Vec<AuthenticatorParts>,
    /// Pending enrolment.
    pub pending: Option<PendingParts>,
    /// Backup codes.
    pub backup_codes: Option<BackupCodes>,
    /// Consecutive failures.
    pub consecutive_failures: u32,
    /// Locks imposed since the last success.
    pub locks: u32,
    /// End of the current or last lock.
    pub locked_until: Option<u64>,
    /// Admin reset requires enrolment.
    pub must_enrol: bool,
    /// Grace sign-ins used.
    pub grace_sign_ins_used: u32,
    /// Highest authenticator id handed out.
    pub next_authenticator_id: u32,
    /// Last admin reset.
    pub last_reset: Option<ResetRecord>,
}

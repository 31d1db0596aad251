//! Audit events: what happened, to whom, by whom, when. Never a secret or a code.
//!
//! Every transition returns its events; the driver commits them with the new
//! state in one write, so the trail never disagrees with the state.

use std::sync::Arc;

use crate::ids::{Actor, AuthenticatorId, BrowserId, PortalId, UserId};
use crate::page::{Cursor, Fingerprint, page_size};
use crate::policy::{Enforcement, SignInMethod};

/// Why an admin reset a user's MFA (the reasons the feature requests list).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", content = "note", rename_all = "snake_case"))]
pub enum ResetReason {
    /// The phone with the authenticator is lost.
    LostDevice,
    /// The user moved to a new phone without transferring the authenticator.
    NewDevice,
    /// The user is locked out (no codes, no backup codes).
    LockedOut,
    /// A security incident requires new secrets.
    SecurityIncident,
    /// Anything else, in the admin's words (keep secrets out of it).
    Other(Arc<str>),
    /// The user asked for it (an approved reset request), in their words.
    Requested(Arc<str>),
    /// A bulk reset for a security incident: its id and the reason recorded
    /// on every user it reset.
    Incident {
        /// The incident's id ("INC-2026-114").
        id: Arc<str>,
        /// Why, as given for the incident.
        note: Arc<str>,
    },
}

/// What a reset leaves the user with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ResetMode {
    /// The default: the user must enrol again at the next sign-in, even where
    /// the policy does not enforce MFA.
    #[default]
    ForceReenrolment,
    /// Only remove the device: a self-configured user may then sign in without
    /// MFA (an enforced policy still sends them to enrolment).
    RemoveOnly,
}

/// How a sign-in's second factor was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "type", content = "authenticator", rename_all = "snake_case")
)]
pub enum Factor {
    /// A TOTP code from this authenticator.
    Totp(AuthenticatorId),
    /// A backup code.
    BackupCode,
    /// This passkey or security key.
    Passkey(AuthenticatorId),
}

/// Why an authenticator was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum RemovalCause {
    /// The user deleted it.
    Deleted,
    /// A newly confirmed authenticator replaced it.
    Replaced,
    /// An admin reset removed it.
    AdminReset,
}

/// Why every session of a user ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SessionEndCause {
    /// An admin reset the user's MFA.
    AdminReset,
    /// The user deleted an authenticator (others remain).
    AuthenticatorRemoved,
    /// A newly confirmed authenticator replaced one.
    AuthenticatorReplaced,
    /// The user deleted their last authenticator.
    MfaTurnedOff,
    /// The user regenerated their backup codes.
    BackupCodesRegenerated,
    /// The host ended them ([`Portal::end_sessions`](crate::Portal::end_sessions)):
    /// a password change, a disabled account.
    Host,
}

/// Why trusted browsers were forgotten without the sessions ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ForgetCause {
    /// The user asked ("forget this browser", "forget all").
    User,
    /// A backup code was used: the user may have lost what they trusted.
    BackupCodeUsed,
    /// A new browser was trusted while the user had the most allowed: the
    /// oldest made room.
    Evicted,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
pub enum EventKind {
    /// The portal's enforcement changed.
    EnforcementChanged {
        /// The new setting.
        enforcement: Enforcement,
    },
    /// The portal's sign-in method changed.
    SignInMethodChanged {
        /// The new method.
        method: SignInMethod,
    },
    /// The portal's OTP, lockout, enrolment or backup-code settings changed.
    PolicySettingsChanged,
    /// A grace sign-in without MFA was allowed.
    GraceSignIn {
        /// Grace sign-ins left, if counted.
        remaining: Option<u32>,
    },
    /// An enrolment was started (a pending secret exists).
    EnrolmentStarted {
        /// The authenticator this enrolment will replace, if any.
        replaces: Option<AuthenticatorId>,
    },
    /// A pending enrolment was abandoned or superseded.
    EnrolmentCancelled,
    /// A pending enrolment was cancelled after too many wrong confirmation
    /// codes: someone may have been guessing its secret.
    EnrolmentFailed {
        /// Wrong codes entered.
        wrong_codes: u8,
    },
    /// A confirmed authenticator is active.
    AuthenticatorAdded {
        /// Its id.
        authenticator: AuthenticatorId,
        /// Its label.
        label: Arc<str>,
    },
    /// An authenticator was removed.
    AuthenticatorRemoved {
        /// Its id.
        authenticator: AuthenticatorId,
        /// Why.
        cause: RemovalCause,
    },
    /// A batch of backup codes was generated (first enablement or regeneration).
    BackupCodesIssued {
        /// How many.
        count: u8,
        /// Whether this replaced an earlier batch.
        regenerated: bool,
    },
    /// A backup code was used.
    BackupCodeUsed {
        /// Unused codes left.
        remaining: u32,
    },
    /// The second factor was proven.
    Verified {
        /// How.
        factor: Factor,
    },
    /// A wrong code was submitted.
    VerificationFailed {
        /// Consecutive failures so far.
        consecutive_failures: u32,
    },
    /// A code for an already-used time step was submitted.
    ReplayRejected {
        /// The authenticator whose step it was.
        authenticator: AuthenticatorId,
    },
    /// Too many failures: MFA is locked.
    LockedOut {
        /// Until when; `None` until an admin resets the user.
        until: Option<u64>,
    },
    /// An admin reset the user's MFA.
    MfaReset {
        /// The reason given.
        reason: ResetReason,
        /// What the user is left with.
        mode: ResetMode,
        /// Authenticators removed.
        authenticators_removed: u32,
        /// Unused backup codes invalidated.
        backup_codes_removed: u32,
    },
    /// Every session of the user ended, and every browser they trusted was forgotten.
    SessionsEnded {
        /// Why.
        cause: SessionEndCause,
        /// Trusted browsers forgotten with them.
        browsers_forgotten: u32,
    },
    /// The user trusted a browser to skip the second factor.
    BrowserTrusted {
        /// Its id.
        browser: BrowserId,
        /// When it stops being trusted.
        expires_at: u64,
    },
    /// A trusted browser signed the user in without a code.
    TrustedBrowserUsed {
        /// Which.
        browser: BrowserId,
    },
    /// A browser presented a token this user does not trust (counted as a failure).
    TrustedBrowserRefused,
    /// Trusted browsers were forgotten, the sessions left as they were.
    BrowsersForgotten {
        /// How many.
        count: u32,
        /// Why.
        cause: ForgetCause,
    },
    /// A passkey registration began (its challenge went to the browser).
    PasskeyRegistrationStarted {
        /// The factor it will replace once registered.
        replaces: Option<AuthenticatorId>,
    },
    /// A passkey registration was abandoned or replaced by a new one.
    PasskeyRegistrationCancelled,
    /// A passkey registration was cancelled after too many refused responses.
    PasskeyRegistrationFailed {
        /// Responses refused.
        failures: u8,
    },
    /// A passkey or security key is active.
    PasskeyAdded {
        /// Its id.
        authenticator: AuthenticatorId,
        /// Its label.
        label: Arc<str>,
    },
    /// A passkey or security key was removed.
    PasskeyRemoved {
        /// Its id.
        authenticator: AuthenticatorId,
        /// Why.
        cause: RemovalCause,
    },
    /// A response from this passkey had a signature counter that did not
    /// advance: the key may have been cloned. The response was refused.
    PasskeyCounterRegressed {
        /// The passkey.
        authenticator: AuthenticatorId,
    },
    /// The user asked for a reset (they can give no second factor). Nothing
    /// is removed until an admin approves.
    ResetRequested {
        /// What they wrote.
        note: Arc<str>,
    },
    /// The user's own sign-in with a second factor withdrew their open request.
    ResetRequestWithdrawn,
    /// An admin declined the user's request; they may ask again after
    /// [`ResetRequest::COOLDOWN_SECS`](crate::record::ResetRequest::COOLDOWN_SECS).
    ResetRequestDeclined {
        /// What the admin told the user (may be empty).
        note: Arc<str>,
    },
}

impl EventKind {
    /// A stable snake_case name for the kind (`verified`, `mfa_reset`, …),
    /// for storage columns, counting and logs.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::EnforcementChanged { .. } => "enforcement_changed",
            Self::SignInMethodChanged { .. } => "sign_in_method_changed",
            Self::PolicySettingsChanged => "policy_settings_changed",
            Self::GraceSignIn { .. } => "grace_sign_in",
            Self::EnrolmentStarted { .. } => "enrolment_started",
            Self::EnrolmentCancelled => "enrolment_cancelled",
            Self::EnrolmentFailed { .. } => "enrolment_failed",
            Self::AuthenticatorAdded { .. } => "authenticator_added",
            Self::AuthenticatorRemoved { .. } => "authenticator_removed",
            Self::BackupCodesIssued { .. } => "backup_codes_issued",
            Self::BackupCodeUsed { .. } => "backup_code_used",
            Self::Verified { .. } => "verified",
            Self::VerificationFailed { .. } => "verification_failed",
            Self::ReplayRejected { .. } => "replay_rejected",
            Self::LockedOut { .. } => "locked_out",
            Self::MfaReset { .. } => "mfa_reset",
            Self::SessionsEnded { .. } => "sessions_ended",
            Self::BrowserTrusted { .. } => "browser_trusted",
            Self::TrustedBrowserUsed { .. } => "trusted_browser_used",
            Self::TrustedBrowserRefused => "trusted_browser_refused",
            Self::BrowsersForgotten { .. } => "browsers_forgotten",
            Self::PasskeyRegistrationStarted { .. } => "passkey_registration_started",
            Self::PasskeyRegistrationCancelled => "passkey_registration_cancelled",
            Self::PasskeyRegistrationFailed { .. } => "passkey_registration_failed",
            Self::PasskeyAdded { .. } => "passkey_added",
            Self::PasskeyRemoved { .. } => "passkey_removed",
            Self::PasskeyCounterRegressed { .. } => "passkey_counter_regressed",
            Self::ResetRequested { .. } => "reset_requested",
            Self::ResetRequestWithdrawn => "reset_request_withdrawn",
            Self::ResetRequestDeclined { .. } => "reset_request_declined",
        }
    }

    /// Whether the user should be told (by email, say): changes to their
    /// factors, backup-code use, lockouts and resets.
    pub fn user_must_hear(&self) -> bool {
        matches!(
            self,
            Self::AuthenticatorAdded { .. }
                | Self::AuthenticatorRemoved { .. }
                | Self::PasskeyAdded { .. }
                | Self::PasskeyRemoved { .. }
                | Self::PasskeyCounterRegressed { .. }
                | Self::PasskeyRegistrationFailed { .. }
                | Self::BackupCodesIssued { regenerated: true, .. }
                | Self::BackupCodeUsed { .. }
                | Self::LockedOut { .. }
                | Self::EnrolmentFailed { .. }
                | Self::MfaReset { .. }
                | Self::ResetRequested { .. }
                | Self::ResetRequestWithdrawn
                | Self::ResetRequestDeclined { .. }
                | Self::BrowserTrusted { .. }
                | Self::SessionsEnded {
                    cause: SessionEndCause::Host,
                    ..
                }
        )
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AuditEvent {
    /// Unix time.
    pub at: u64,
    /// The portal.
    pub portal: PortalId,
    /// The user concerned; `None` for portal-wide events (policy changes).
    pub user: Option<UserId>,
    /// Who caused it.
    pub actor: Actor,
    /// What happened.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub kind: EventKind,
}

/// Told about events a user must hear about, after they are committed.
pub trait Notifier: Send + Sync {
    /// Called once per committed event for which [`EventKind::user_must_hear`] is true.
    fn notify(&self, event: &AuditEvent);
}

impl<F: Fn(&AuditEvent) + Send + Sync> Notifier for F {
    fn notify(&self, event: &AuditEvent) {
        self(event)
    }
}

/// Which audit events to read, one page at a time.
///
/// ```
/// use portal_mfa::{PortalId, UserId, audit::EventQuery};
/// let help_desk = EventQuery::portal(&PortalId::new("acme"))
///     .user(&UserId::customer("c-1"))
///     .newest_first()
///     .limit(20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventQuery {
    /// The portal.
    pub portal: PortalId,
    /// Only this user's events (portal-wide events have no user).
    pub user: Option<UserId>,
    /// Events at or after this Unix time.
    pub from: Option<u64>,
    /// Events before this Unix time.
    pub until: Option<u64>,
    /// Newest first; otherwise oldest first. Either way in commit order,
    /// whatever the events' times say.
    pub newest_first: bool,
    /// Events per page: 100 unless set; 0 is refused, more than
    /// [`MAX_PAGE`](crate::MAX_PAGE) is capped.
    pub limit: usize,
    cursor: Option<Cursor>,
    /// Where the page starts, as a store position (set by the driver from the cursor).
    after: Option<EventPosition>,
}

/// Where an event sits in a store's commit order: each event's is greater
/// than those of the events committed before it. A store chooses them (a
/// sequence number, say) and gives them back with the events it reads.
pub type EventPosition = u64;

impl EventQuery {
    /// Events per page unless [`EventQuery::limit`] is set.
    pub const DEFAULT_LIMIT: usize = 100;

    /// Every event of a portal, oldest first.
    pub fn portal(portal: &PortalId) -> Self {
        Self {
            portal: portal.clone(),
            user: None,
            from: None,
            until: None,
            newest_first: false,
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
            after: None,
        }
    }

    /// One user's events.
    #[must_use]
    pub fn user(mut self, user: &UserId) -> Self {
        self.user = Some(user.clone());
        self
    }

    /// Events in `[from, until)`.
    #[must_use]
    pub fn between(mut self, from: u64, until: u64) -> Self {
        self.from = Some(from);
        self.until = Some(until);
        self
    }

    /// Newest first (the help desk's view).
    #[must_use]
    pub fn newest_first(mut self) -> Self {
        self.newest_first = true;
        self
    }

    crate::page::paged_query_builders!("events");

    /// For stores: only events after this position in the query's order
    /// (greater oldest first, smaller newest first); `None` from the first.
    pub fn position(&self) -> Option<EventPosition> {
        self.after
    }

    /// What the cursor must have been made for: everything but the page size.
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        Fingerprint::default()
            .part(self.portal.as_str().as_bytes())
            .part(self.user.as_ref().map_or("", |u| u.kind().as_str()).as_bytes())
            .part(self.user.as_ref().map_or("", |u| u.id()).as_bytes())
            .part(&[u8::from(self.user.is_some()), u8::from(self.newest_first)])
            .opt_number(self.from)
            .opt_number(self.until)
    }

    pub(crate) const LISTING: &'static str = "ev1";

    /// The query a store is asked: the cursor resolved to a position, and the
    /// page size plus one (to tell whether a next page exists). Errors for a
    /// foreign or malformed cursor and a page size of 0.
    pub(crate) fn resolve(mut self, portal: &PortalId) -> crate::error::Result<(Self, usize)> {
        self.portal = portal.clone();
        if let Some(user) = &self.user {
            user.check_len()?;
        }
        let size = page_size(self.limit)?;
        self.after = match &self.cursor {
            None => None,
            Some(cursor) => Some(
                cursor
                    .position_in(Self::LISTING, &self.fingerprint())?
                    .parse()
                    .map_err(|_| crate::error::Error::InvalidCursor("not a cursor"))?,
            ),
        };
        self.limit = size + 1;
        Ok((self, size))
    }

    /// The cursor for the page after the event at `position`.
    pub(crate) fn cursor_at(&self, position: EventPosition) -> Cursor {
        Cursor::new(Self::LISTING, &self.fingerprint(), &position.to_string())
    }

    /// Whether the event at `position` comes after the query's start, in its order.
    pub fn follows(&self, position: EventPosition) -> bool {
        match (self.after, self.newest_first) {
            (None, _) => true,
            (Some(after), false) => position > after,
            (Some(after), true) => position < after,
        }
    }

    /// Whether an event of `portal`, about `user`, at `at`, is selected: the
    /// filter a store without an index applies to its rows.
    pub fn selects(&self, portal: &PortalId, user: Option<&UserId>, at: u64) -> bool {
        *portal == self.portal
            && self.user.as_ref().is_none_or(|u| user == Some(u))
            && self.from.is_none_or(|t| at >= t)
            && self.until.is_none_or(|t| at < t)
    }

    /// Whether `event` is selected.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.selects(&event.portal, event.user.as_ref(), event.at)
    }
}

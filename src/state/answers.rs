//! The answers transitions give the host: the sign-in step, a started or
//! confirmed enrolment, a verified second factor, what a reset removed.

use super::session::SessionStamp;
use crate::backup::IssuedBackupCodes;
use crate::event::Factor;
use crate::ids::AuthenticatorId;
use crate::ids::BrowserId;
use crate::otp::OtpAuthUri;
use crate::passkey::PasskeyOptions;

/// What the host does after the password step.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "step", rename_all = "snake_case"))]
pub enum SignInStep {
    /// No second factor: sign the user in, keeping `session` in the session.
    NoMfaNeeded {
        /// The session's stamp.
        session: SessionStamp,
    },
    /// Enforcement is on but the user is in the grace period: sign them in
    /// (then call `complete_grace_sign_in`, which spends one) and invite them
    /// to enrol.
    GraceSignIn {
        /// Grace sign-ins left after this one, if counted.
        remaining: Option<u32>,
        /// When the grace ends, if dated.
        until: Option<u64>,
    },
    /// The user must enrol an authenticator before signing in. `session`
    /// lets this password step start and confirm that enrolment (it ends, like
    /// any stamp, when an admin resets the user meanwhile); it is not a
    /// signed-in session.
    MustEnrol {
        /// Why.
        reason: EnrolReason,
        /// The stamp to enrol with ([`SessionProof::EnrolmentOnly`](crate::session::SessionProof::EnrolmentOnly)).
        session: SessionStamp,
    },
    /// Ask for a TOTP code or a backup code, or (when `passkey` is given) offer "Use a passkey".
    EnterCode {
        /// Unused backup codes the user has.
        backup_codes_remaining: u32,
        /// Wrong codes still allowed before MFA locks (the lockout rule's own
        /// count: show this, never derive it).
        attempts_left: u32,
        /// Authenticator apps the user has (a code from any is accepted).
        authenticator_apps: u8,
        /// Passkeys and security keys the user has.
        passkeys: u8,
        /// The sign-in challenge for the browser's `navigator.credentials.get`,
        /// when the user has passkeys and the portal verifies them; pass the
        /// browser's answer (JSON) to `verify_sign_in` as the code. One is
        /// outstanding per user: asking again replaces it.
        passkey: Option<PasskeyOptions>,
    },
    /// Too many wrong codes: do not ask for one now.
    LockedOut {
        /// Until when; `None` until an admin resets the user.
        until: Option<u64>,
    },
    /// The browser's token is good: sign the user in without a code.
    TrustedBrowser {
        /// The browser.
        browser: BrowserId,
        /// The session's stamp.
        session: SessionStamp,
    },
}

impl SignInStep {
    /// The stamp this step gave, if it gave one: a signed-in session's
    /// ([`SignInStep::NoMfaNeeded`], [`SignInStep::TrustedBrowser`]), or the
    /// enrolment-only stamp of [`SignInStep::MustEnrol`].
    pub fn session(&self) -> Option<SessionStamp> {
        match self {
            Self::NoMfaNeeded { session } | Self::MustEnrol { session, .. } | Self::TrustedBrowser { session, .. } => {
                Some(*session)
            }
            Self::GraceSignIn { .. } | Self::EnterCode { .. } | Self::LockedOut { .. } => None,
        }
    }
}

/// A grace sign-in, spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraceSpent {
    /// Grace sign-ins left after this one, if counted.
    pub remaining: Option<u32>,
    /// When the grace ends, if dated.
    pub until: Option<u64>,
    /// The session's stamp.
    pub session: SessionStamp,
}

/// Backup codes regenerated.
#[derive(Debug)]
#[non_exhaustive]
pub struct BackupCodesRegenerated {
    /// The new codes: show them once.
    pub codes: IssuedBackupCodes,
    /// The stamp for the session that asked: every other session has ended.
    pub session: SessionStamp,
}

/// Why a user must enrol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum EnrolReason {
    /// The portal enforces MFA.
    PolicyEnforced,
    /// An admin reset the user's MFA and required re-enrolment.
    AdminReset,
}

/// A started enrolment, to show the user.
#[derive(Debug)]
#[non_exhaustive]
pub struct StartedEnrolment {
    /// The id the authenticator will have.
    pub authenticator: AuthenticatorId,
    /// The enrolment URI: render with [`OtpAuthUri::qr_svg`] or
    /// [`OtpAuthUri::qr_terminal`], or show `secret().to_grouped_base32()` for typing.
    pub uri: OtpAuthUri,
    /// Unix time from which it can no longer be confirmed.
    pub expires_at: u64,
}

/// A started passkey registration, for the browser.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PasskeyRegistrationStarted {
    /// The id the passkey will have.
    pub authenticator: AuthenticatorId,
    /// The options for `navigator.credentials.create`; pass the browser's
    /// answer (JSON) to `finish_passkey_registration`.
    pub options: PasskeyOptions,
    /// Unix time from which its response is refused.
    pub expires_at: u64,
}

/// A confirmed enrolment (an authenticator app's or a passkey's).
#[derive(Debug)]
#[non_exhaustive]
pub struct EnrolmentConfirmed {
    /// The new authenticator.
    pub authenticator: AuthenticatorId,
    /// Backup codes, when this enrolment turned MFA on: show them once.
    pub backup_codes: Option<IssuedBackupCodes>,
    /// The stamp for this session (a code from the new app proved the second
    /// factor). Confirming a replacement ended every other session.
    pub session: SessionStamp,
}

/// A successful second-factor check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignInVerified {
    /// How it was proven.
    pub factor: Factor,
    /// Unused backup codes left.
    pub backup_codes_remaining: u32,
    /// Whether to urge the user to regenerate backup codes.
    pub low_on_backup_codes: bool,
    /// The session's stamp: keep it in the session and check it on each request.
    pub session: SessionStamp,
}

/// What an admin reset removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResetSummary {
    /// Authenticator apps removed.
    pub authenticators_removed: u32,
    /// Passkeys and security keys removed.
    pub passkeys_removed: u32,
    /// Unused backup codes invalidated.
    pub backup_codes_removed: u32,
    /// Whether the user must enrol at the next sign-in.
    pub must_enrol: bool,
}

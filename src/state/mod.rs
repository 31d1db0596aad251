//! One user's MFA record and every transition on it, as pure functions:
//! `(record, context, input) -> (next record, events, answer)`. No I/O, no
//! clock, no RNG of its own: the [`crate::portal`] driver passes those in.

mod answers;
mod context;
mod draft;
mod passkeys;
mod policy_change;
mod record;
mod requests;
mod session;
mod sessions;
mod transitions;

pub use answers::{
    BackupCodesRegenerated, EnrolReason, EnrolmentConfirmed, GraceSpent, PasskeyRegistrationStarted, ResetSummary,
    SignInStep, SignInVerified, StartedEnrolment,
};
pub use context::{Context, EnrolmentRequest, Outcome};
pub(crate) use policy_change::policy_change_events;
pub use record::{
    Authenticator, Failures, MfaRecord, Passkey, PendingEnrolment, PendingPasskey, ResetRecord, ResetRequest,
};
pub(crate) use record::{Key, PasskeyChallenge, Passkeys, Resets, SealedBytes, SealedForm};
pub(crate) use requests::check_note;
pub use session::{BrowserToken, SessionProof, SessionStamp, TrustedBrowser, TrustedBrowserIssued};
pub(crate) use session::{SessionState, TokenHash, TrustedBrowsers};

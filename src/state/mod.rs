//! One user's MFA record and every transition on it, as pure functions:
//! `(record, context, input) -> (next record, events, answer)`. No I/O, no
//! clock, no RNG of its own: the [`crate::portal`] driver passes those in.

mod draft;
mod record;
mod transitions;

pub use record::{Authenticator, Failures, MfaRecord, PendingEnrolment, ResetRecord};
pub(crate) use record::{Key, SealedForm};
pub use transitions::{
    Context, EnrolReason, EnrolmentConfirmed, EnrolmentRequest, Outcome, ResetSummary, SignInStep, SignInVerified,
    StartedEnrolment,
};

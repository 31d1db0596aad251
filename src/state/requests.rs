//! The lost-device path, as transitions: a user's request for a reset, its
//! withdrawal by their own sign-in, and an admin's approval or decline. (A
//! bulk reset's plan, which judges each user, is in `users`: it reads the
//! same summary the admin's listing does.)
//!
//! A request never weakens anything by itself: only an admin's approval (a
//! reset, with the request's note as its reason) removes a factor.

use std::sync::Arc;

use super::answers::ResetSummary;
use super::context::{Context, Outcome};
use super::draft::Draft;
use super::record::{MfaRecord, ResetRecord, ResetRequest, Resets};
use crate::backup::BackupCodes;
use crate::error::{Error, RequestRefusal, Result};
use crate::event::{EventKind, RemovalCause, ResetMode, ResetReason, SessionEndCause};
use crate::ids::AuthenticatorId;

/// A note as a request or a decline keeps it: at most
/// [`ResetRequest::MAX_NOTE_CHARS`] characters, no control character but a
/// line feed; surrounding space trimmed.
pub(crate) fn check_note(note: &str) -> Result<Arc<str>> {
    let note = note.trim();
    if note.chars().count() > ResetRequest::MAX_NOTE_CHARS || note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::ResetRequest(RequestRefusal::InvalidNote));
    }
    Ok(note.into())
}

impl MfaRecord {
    /// The user, past the password but with no second factor to give, asks
    /// an admin for a reset. Refused when they have no factor, when a request
    /// is open, or within [`ResetRequest::COOLDOWN_SECS`] of a decline.
    pub fn request_reset(self, ctx: &Context<'_>, note: &str) -> Outcome<ResetRequest> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            let note = check_note(note)?;
            let record = draft.record();
            if record.factor_count() == 0 {
                return Err(Error::ResetRequest(RequestRefusal::NothingToReset));
            }
            if let Some(open) = record.reset_request() {
                return Err(Error::ResetRequest(RequestRefusal::AlreadyOpen { since: open.at }));
            }
            if let Some(declined) = record.reset_request_declined_at() {
                let until = declined.saturating_add(ResetRequest::COOLDOWN_SECS);
                if ctx.now < until {
                    return Err(Error::ResetRequest(RequestRefusal::CoolingDown { until }));
                }
            }
            let request = ResetRequest { at: ctx.now, note };
            draft.requests_mut().open = Some(request.clone());
            draft.emit(EventKind::ResetRequested {
                note: request.note.clone(),
            });
            Ok(request)
        })();
        draft.done(result)
    }

    /// Admin: approves the user's open request: a **Reset MFA** whose reason
    /// is the request ([`ResetReason::Requested`], with the user's note).
    pub fn approve_reset_request(self, ctx: &Context<'_>, mode: ResetMode) -> Outcome<ResetSummary> {
        let mut draft = Draft::new(self, ctx);
        let result = draft.require_admin().and_then(|admin| {
            let note = draft
                .record()
                .reset_request()
                .map(|r| r.note.clone())
                .ok_or(Error::ResetRequest(RequestRefusal::NoneOpen))?;
            Ok(draft.reset(admin, ResetReason::Requested(note), mode))
        });
        draft.done(result)
    }

    /// Admin: declines the user's open request, telling them `note` (may be
    /// empty). They may ask again after [`ResetRequest::COOLDOWN_SECS`].
    pub fn decline_reset_request(self, ctx: &Context<'_>, note: &str) -> Outcome<()> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            draft.require_admin()?;
            let note = check_note(note)?;
            if draft.record().reset_request().is_none() {
                return Err(Error::ResetRequest(RequestRefusal::NoneOpen));
            }
            let now = ctx.now;
            let requests = draft.requests_mut();
            requests.open = None;
            requests.declined_at = Some(now);
            draft.emit(EventKind::ResetRequestDeclined { note });
            Ok(())
        })();
        draft.done(result)
    }
}

impl Draft<'_> {
    /// The record's requests, to change.
    fn requests_mut(&mut self) -> &mut Resets {
        self.record_mut().resets.get_or_insert_with(Default::default)
    }

    /// The user proved a second factor: an open request is withdrawn (they
    /// found their phone).
    pub(super) fn withdraw_reset_request(&mut self) {
        if self.record().reset_request().is_some() {
            self.requests_mut().open = None;
            self.emit(EventKind::ResetRequestWithdrawn);
        }
    }

    /// **Reset MFA** by `admin`: every factor, the pending enrolment and the
    /// backup codes go, the failure count clears, an open request is
    /// resolved, every session and trusted browser ends.
    pub(super) fn reset(&mut self, admin: Arc<str>, reason: ResetReason, mode: ResetMode) -> ResetSummary {
        let passkeys: Vec<AuthenticatorId> = self.record().passkeys().iter().map(|p| p.id).collect();
        for &id in &passkeys {
            self.emit(EventKind::PasskeyRemoved {
                authenticator: id,
                cause: RemovalCause::AdminReset,
            });
        }
        let now = self.ctx.now;
        let record = self.record_mut();
        let authenticators_removed = record.authenticators.len() as u32;
        let backup_codes_removed = record.backup_codes.as_ref().map_or(0, BackupCodes::remaining);
        record.authenticators = Box::default();
        record.passkeys = None;
        record.pending = None;
        record.backup_codes = None;
        record.failures = Default::default();
        record.must_enrol = mode == ResetMode::ForceReenrolment;
        let resets = record.resets.get_or_insert_with(Default::default);
        resets.open = None;
        resets.last = Some(ResetRecord {
            by: admin,
            reason: reason.clone(),
            at: now,
        });
        let must_enrol = record.must_enrol;
        self.emit(EventKind::MfaReset {
            reason,
            mode,
            authenticators_removed,
            backup_codes_removed,
        });
        self.end_sessions(SessionEndCause::AdminReset);
        ResetSummary {
            authenticators_removed,
            passkeys_removed: passkeys.len() as u32,
            backup_codes_removed,
            must_enrol,
        }
    }
}

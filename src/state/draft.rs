//! A record being changed, with the events the change emits, and the steps
//! transitions share on it (proving a code, counting a failure, numbering an
//! authenticator). Whether it changed is derived from the change itself: any
//! mutable access to the record marks it changed (as does any event), so a
//! transition cannot alter a field and have the store skip the write.

use std::sync::Arc;

use super::answers::{EnrolmentConfirmed, SignInVerified};
use super::context::{Context, Outcome};
use super::record::{MfaRecord, PendingEnrolment};
use super::session::{SessionProof, SessionStamp};
use rand::CryptoRng;

use crate::backup::{BackupCodes, IssuedBackupCodes, TypedBackupCode};
use crate::error::{Error, PolicyRefusal, Result};
use crate::event::{AuditEvent, EventKind, Factor, RemovalCause};
use crate::event::{ForgetCause, SessionEndCause};
use crate::ids::{Actor, AuthenticatorId, BrowserId};
use crate::otp::Code;
use crate::policy::LockoutRule;

pub(super) struct Draft<'c> {
    record: MfaRecord,
    events: Vec<AuditEvent>,
    changed: bool,
    pub(super) ctx: &'c Context<'c>,
}

impl<'c> Draft<'c> {
    pub(super) fn new(record: MfaRecord, ctx: &'c Context<'c>) -> Self {
        Self {
            record,
            events: Vec::new(),
            changed: false,
            ctx,
        }
    }

    pub(super) fn record(&self) -> &MfaRecord {
        &self.record
    }

    /// The record, to change: from here on it is written back.
    pub(super) fn record_mut(&mut self) -> &mut MfaRecord {
        self.changed = true;
        &mut self.record
    }

    /// Records an event; the trail changed, so the record is written with it.
    pub(super) fn emit(&mut self, kind: EventKind) {
        self.events.push(AuditEvent {
            at: self.ctx.now,
            portal: self.ctx.portal.clone(),
            user: Some(self.ctx.user.clone()),
            actor: self.ctx.actor.clone(),
            kind,
        });
        self.changed = true;
    }

    pub(super) fn done<T>(self, result: Result<T>) -> Outcome<T> {
        Outcome {
            record: self.record,
            changed: self.changed,
            events: self.events,
            result,
        }
    }
}

impl Draft<'_> {
    pub(super) fn refuse_if_locked(&self) -> Result<()> {
        match self.record().failures.active_lock(self.ctx.now) {
            Some(lock) => Err(Error::LockedOut { until: lock.until }),
            None => Ok(()),
        }
    }

    /// Checks a TOTP or backup code against the user's factors, consuming what
    /// it matches; failures count toward lockout. Shared by sign-in and by every
    /// change that needs a fresh code.
    pub(super) fn prove(&mut self, input: &str) -> Result<Factor> {
        self.refuse_if_locked()?;
        if !self.record().mfa_enabled() {
            return Err(Error::NotEnrolled);
        }
        if crate::passkey::looks_like_response(input) {
            return self.prove_passkey(input);
        }
        if self.record().authenticators.is_empty() {
            // Only passkeys: a code can still be a backup code, never an app's.
            let typed = TypedBackupCode::parse(input)?;
            return self.prove_backup(&typed);
        }
        if looks_like_totp(input) {
            self.prove_totp(input)
        } else {
            let typed = TypedBackupCode::parse(input)?;
            self.prove_backup(&typed)
        }
    }

    pub(super) fn prove_totp(&mut self, input: &str) -> Result<Factor> {
        let window = self.ctx.policy.window();
        let mut format_error = None;
        let mut readable = false;
        let mut fresh = None;
        let mut replayed = None;
        // Every authenticator is checked, whatever matched before it.
        for (index, authenticator) in self.record().authenticators.iter().enumerate() {
            let code = match Code::parse(input, authenticator.params().digits()) {
                Ok(code) => code,
                Err(e) => {
                    format_error.get_or_insert(e);
                    continue;
                }
            };
            readable = true;
            if let Some(step) = authenticator.key.totp().verify(&code, self.ctx.now, window)? {
                if authenticator.last_used_step.is_none_or(|last| step > last) {
                    fresh.get_or_insert((index, step));
                } else {
                    replayed.get_or_insert(authenticator.id);
                }
            }
        }
        if let Some((index, step)) = fresh {
            let authenticator = &mut self.record_mut().authenticators[index];
            authenticator.last_used_step = Some(step);
            let id = authenticator.id;
            return Ok(self.succeed(Factor::Totp(id)));
        }
        if let Some(id) = replayed {
            self.emit(EventKind::ReplayRejected { authenticator: id });
            return Err(self.fail(true));
        }
        match format_error {
            // No authenticator could even read it: a typo, not a guess; not counted.
            Some(e) if !readable => Err(e),
            _ => Err(self.fail(false)),
        }
    }

    pub(super) fn prove_backup(&mut self, typed: &TypedBackupCode) -> Result<Factor> {
        let found = self
            .record()
            .backup_codes
            .as_ref()
            .and_then(|codes| codes.find_unused(typed));
        match (found, self.record_mut().backup_codes.as_mut()) {
            (Some(index), Some(codes)) => {
                codes.mark_used(index);
                let remaining = codes.remaining();
                self.emit(EventKind::BackupCodeUsed { remaining });
                // A backup code is what a user reaches for when their phone is gone:
                // what they trusted may be gone with it.
                self.forget_browsers(None, ForgetCause::BackupCodeUsed);
                Ok(self.succeed(Factor::BackupCode))
            }
            _ => Err(self.fail(false)),
        }
    }

    pub(super) fn succeed(&mut self, factor: Factor) -> Factor {
        self.record_mut().failures = Default::default();
        let now = self.ctx.now;
        self.record_mut().set_last_verified_at(Some(now));
        self.emit(EventKind::Verified { factor });
        self.withdraw_reset_request();
        factor
    }

    /// Counts a failure (a wrong code, or a replay when `replay`); the answer
    /// says how many tries are left, or that this failure locked MFA.
    pub(super) fn fail(&mut self, replay: bool) -> Error {
        let rule = self.ctx.policy.lockout();
        let now = self.ctx.now;
        let max = u32::from(rule.max_failures());
        let failures = &mut self.record_mut().failures;
        failures.consecutive = failures.consecutive.saturating_add(1);
        let consecutive = failures.consecutive;
        self.emit(EventKind::VerificationFailed {
            consecutive_failures: consecutive,
        });
        let failures = &mut self.record_mut().failures;
        if consecutive >= LockoutRule::HARD_LIMIT {
            failures.locked_until = None;
            self.emit(EventKind::LockedOut { until: None });
            return Error::LockedOut { until: None };
        }
        if consecutive.is_multiple_of(max) {
            failures.locks = failures.locks.saturating_add(1);
            let until = now.saturating_add(rule.lock_duration(failures.locks));
            failures.locked_until = Some(until);
            // A lock no clock can see end holds until an admin reset, and says so.
            let until = (until < crate::clock::END_OF_TIME).then_some(until);
            self.emit(EventKind::LockedOut { until });
            return Error::LockedOut { until };
        }
        if replay {
            Error::ReplayedCode
        } else {
            Error::WrongCode {
                attempts_left: Some(self.record().failures.attempts_left(&rule)),
            }
        }
    }

    pub(super) fn sign_in_verified(&self, factor: Factor) -> SignInVerified {
        let remaining = self.record().backup_codes.as_ref().map_or(0, BackupCodes::remaining);
        SignInVerified {
            factor,
            backup_codes_remaining: remaining,
            low_on_backup_codes: remaining <= u32::from(self.ctx.policy.backup_codes_low_at()),
            session: self.stamp(proof_of(factor)),
        }
    }

    /// A stamp of the record's current generation, proven now by `proof`.
    pub(super) fn stamp(&self, proof: SessionProof) -> SessionStamp {
        self.ctx.stamp(self.record().sessions, proof)
    }

    /// Refuses unless `stamp` is genuine and still good for this record
    /// ([`Error::InvalidStamp`], [`Error::SessionEnded`]): checked in the
    /// same atomic step as the change it guards, so a change never lands on
    /// a record whose sessions ended after the request began.
    pub(super) fn check_session(&self, stamp: &SessionStamp) -> Result<()> {
        self.ctx.check_stamp(&self.record().session_state(), stamp)
    }

    /// [`Draft::check_session`] for a signed-in session's own changes: a
    /// stamp that only lets a user enrol ([`SessionProof::EnrolmentOnly`])
    /// is refused with [`Error::ProofRequired`].
    pub(super) fn check_signed_in(&self, stamp: &SessionStamp) -> Result<()> {
        self.check_session(stamp)?;
        if stamp.proof() == SessionProof::EnrolmentOnly {
            return Err(Error::ProofRequired);
        }
        Ok(())
    }

    /// Ends every session of the user and forgets every browser they
    /// trusted but `keep` (the browser of a session that stays): the record
    /// moves to the next generation.
    pub(super) fn end_sessions_but(&mut self, cause: SessionEndCause, keep: Option<BrowserId>) {
        let record = self.record_mut();
        record.sessions += 1;
        let mut trusted = record.trusted.take();
        let kept = keep.and_then(|id| {
            let trusted = trusted.as_mut()?;
            let index = trusted.browsers.iter().position(|b| b.id == id)?;
            Some(trusted.browsers.remove(index))
        });
        let browsers_forgotten = trusted.as_ref().map_or(0, |t| t.browsers.len() as u32);
        if let (Some(kept), Some(mut trusted)) = (kept, trusted) {
            trusted.browsers = vec![kept];
            record.trusted = Some(trusted);
        }
        self.emit(EventKind::SessionsEnded {
            cause,
            browsers_forgotten,
        });
    }

    /// Ends every session of the user and forgets every browser they trusted.
    pub(super) fn end_sessions(&mut self, cause: SessionEndCause) {
        self.end_sessions_but(cause, None);
    }

    /// Forgets one trusted browser (`Some`) or all; answers how many went.
    pub(super) fn forget_browsers(&mut self, only: Option<usize>, cause: ForgetCause) -> u32 {
        let Some(trusted) = self.record().trusted.as_ref() else {
            return 0;
        };
        let count = match only {
            Some(index) if index < trusted.browsers.len() => 1,
            Some(_) => return 0,
            None => trusted.browsers.len() as u32,
        };
        let record = self.record_mut();
        match (only, record.trusted.as_mut()) {
            (Some(index), Some(trusted)) if trusted.browsers.len() > 1 => {
                trusted.browsers.remove(index);
            }
            _ => record.trusted = None,
        }
        self.emit(EventKind::BrowsersForgotten { count, cause });
        count
    }

    pub(super) fn require_admin(&self) -> Result<Arc<str>> {
        match self.ctx.actor {
            Actor::Admin(name) | Actor::Operator { name, .. } => Ok(name.clone()),
            _ => Err(Error::NotAllowed(PolicyRefusal::AdminOnly)),
        }
    }

    pub(super) fn next_id(&mut self) -> Result<AuthenticatorId> {
        let next = self
            .record()
            .next_authenticator_id
            .checked_add(1)
            .ok_or(Error::TooManyAuthenticators)?;
        self.record_mut().next_authenticator_id = next;
        Ok(AuthenticatorId(next))
    }

    /// Counts a wrong code against the pending enrolment: after
    /// [`PendingEnrolment::MAX_WRONG_CODES`] it is cancelled, so its secret
    /// cannot be guessed in its lifetime.
    pub(super) fn wrong_confirmation_code(&mut self) -> Error {
        let Some(pending) = self.record_mut().pending.as_mut() else {
            return Error::NoPendingEnrolment;
        };
        pending.wrong_codes = pending.wrong_codes.saturating_add(1);
        let wrong_codes = pending.wrong_codes;
        if wrong_codes >= PendingEnrolment::MAX_WRONG_CODES {
            self.record_mut().pending = None;
            self.emit(EventKind::EnrolmentFailed { wrong_codes });
            return Error::EnrolmentCancelled;
        }
        Error::WrongCode {
            attempts_left: Some(u32::from(PendingEnrolment::MAX_WRONG_CODES - wrong_codes)),
        }
    }

    /// Refuses a new factor that would pass [`MfaRecord::MAX_AUTHENTICATORS`]
    /// (unless it `replaces` one), or that replaces one the user does not have.
    pub(super) fn check_room_for(&self, replaces: Option<AuthenticatorId>) -> Result<()> {
        match replaces {
            Some(id) if !self.record().has_factor(id) => Err(Error::UnknownAuthenticator),
            None if self.record().factor_count() >= MfaRecord::MAX_AUTHENTICATORS => Err(Error::TooManyAuthenticators),
            _ => Ok(()),
        }
    }

    /// Removes the factor `id` (an app or a passkey), with its event; whether there was one.
    pub(super) fn remove_factor(&mut self, id: AuthenticatorId, cause: RemovalCause) -> bool {
        if self.record_mut().remove_authenticator(id) {
            self.emit(EventKind::AuthenticatorRemoved {
                authenticator: id,
                cause,
            });
            return true;
        }
        let removed = self.record_mut().passkeys.as_mut().is_some_and(|p| {
            let before = p.credentials.len();
            p.credentials.retain(|c| c.id != id);
            p.credentials.len() != before
        });
        if removed {
            self.emit(EventKind::PasskeyRemoved {
                authenticator: id,
                cause,
            });
        }
        removed
    }

    /// A first batch of backup codes, as turning MFA on issues.
    /// The end of any factor's enrolment, once the factor is in the record:
    /// no re-enrolment owed, its event, backup codes when it turned MFA on,
    /// and the session's new stamp.
    pub(super) fn factor_confirmed<R: CryptoRng + ?Sized>(
        &mut self,
        authenticator: AuthenticatorId,
        event: EventKind,
        turning_on: bool,
        proof: SessionProof,
        rng: &mut R,
    ) -> EnrolmentConfirmed {
        self.record_mut().must_enrol = false;
        self.emit(event);
        let backup_codes = turning_on.then(|| self.issue_backup_codes(rng));
        EnrolmentConfirmed {
            authenticator,
            backup_codes,
            session: self.stamp(proof),
        }
    }

    pub(super) fn issue_backup_codes<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> IssuedBackupCodes {
        let count = self.ctx.policy.backup_code_count();
        let (stored, issued) = BackupCodes::generate(rng, count);
        self.record_mut().backup_codes = Some(stored);
        self.emit(EventKind::BackupCodesIssued {
            count,
            regenerated: false,
        });
        issued
    }

    pub(super) fn cancel_pending(&mut self) {
        // Only a pending enrolment that is there is a change.
        if self.record().pending.is_some() {
            self.record_mut().pending = None;
            self.emit(EventKind::EnrolmentCancelled);
        }
    }
}

/// What a session proven by `factor` records.
pub(super) fn proof_of(factor: Factor) -> SessionProof {
    match factor {
        Factor::Passkey(_) => SessionProof::Passkey,
        _ => SessionProof::Code,
    }
}

/// Meant as a TOTP code: at most ten letters and digits (a backup code has 16),
/// so a short code with a typo is told about in terms of the app's codes.
pub(super) fn looks_like_totp(input: &str) -> bool {
    let trimmed = input.trim();
    trimmed.len() <= Code::MAX_INPUT_LEN && trimmed.chars().filter(char::is_ascii_alphanumeric).count() <= 10
}

pub(super) fn check_label(label: &str) -> Result<Arc<str>> {
    match crate::otp::text::printable_name(label) {
        Some(label) if label.chars().count() <= 64 => Ok(label.into()),
        _ => Err(Error::InvalidLabel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Actor;
    use crate::ids::{PortalId, UserId};
    use crate::policy::PortalPolicy;

    #[test]
    fn a_field_changed_without_an_event_is_still_a_change() {
        let (portal, user, policy, actor) = (
            PortalId::new("p"),
            UserId::customer("u"),
            PortalPolicy::default(),
            Actor::User,
        );
        let keys = crate::Keyring::new("k", &[7; 32]).unwrap();
        let ctx = Context::new(&portal, &user, &policy, 1, &actor, &keys);
        let untouched = Draft::new(MfaRecord::default(), &ctx).done(Ok(()));
        assert!(!untouched.changed);
        let mut draft = Draft::new(MfaRecord::default(), &ctx);
        draft.record_mut().must_enrol = true;
        let flipped = draft.done(Ok(()));
        assert!(flipped.changed && flipped.events.is_empty() && flipped.record.must_enrol());
    }
}

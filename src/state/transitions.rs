//! Every change to an [`MfaRecord`], as a pure function.
//!
//! A transition consumes the record and returns an [`Outcome`]: the next
//! record, whether it changed, the audit events, and the answer for the host.
//! A refused attempt can still change the record (a wrong code counts toward
//! lockout), so the driver commits whenever `changed` is set, whatever the
//! answer. Time and randomness come in as arguments; nothing here does I/O.

use std::sync::Arc;

use rand::CryptoRng;

use super::draft::Draft;
use super::record::{Authenticator, Key, MfaRecord, PendingEnrolment, ResetRecord};
use crate::backup::{BackupCodes, IssuedBackupCodes, TypedBackupCode};
use crate::error::{Error, PolicyRefusal, Result};
use crate::event::{AuditEvent, EventKind, Factor, RemovalCause, ResetMode, ResetReason};
use crate::ids::Actor;
use crate::ids::{AuthenticatorId, PortalId, UserId};
use crate::otp::{Code, OtpAuthUri, Secret, TotpParams};
use crate::policy::{Enforcement, LockoutRule, PortalPolicy};

/// What a transition needs to know besides the record and its input.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Context<'a> {
    /// The portal.
    pub portal: &'a PortalId,
    /// The user whose record this is.
    pub user: &'a UserId,
    /// The portal's policy now.
    pub policy: &'a PortalPolicy,
    /// Unix time now.
    pub now: u64,
    /// Who is acting.
    pub actor: &'a Actor,
}

impl<'a> Context<'a> {
    /// The context of one transition: on `user` of `portal` under `policy`,
    /// at `now` (Unix time), by `actor`.
    pub fn new(portal: &'a PortalId, user: &'a UserId, policy: &'a PortalPolicy, now: u64, actor: &'a Actor) -> Self {
        Self {
            portal,
            user,
            policy,
            now,
            actor,
        }
    }
}

/// The result of a transition.
#[derive(Debug)]
#[non_exhaustive]
#[must_use = "a changed record must be committed with its events"]
pub struct Outcome<T> {
    /// The record after the transition.
    pub record: MfaRecord,
    /// Whether the record or the trail changed: if so, commit `record` with `events`.
    pub changed: bool,
    /// Audit events, to be committed with the record.
    pub events: Vec<AuditEvent>,
    /// The answer for the host.
    pub result: Result<T>,
}

/// What the host does after the password step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "step", rename_all = "snake_case"))]
pub enum SignInStep {
    /// No second factor: sign the user in.
    NoMfaNeeded,
    /// Enforcement is on but the user is in the grace period: sign them in
    /// (then call `complete_grace_sign_in`, which spends one) and invite them
    /// to enrol.
    GraceSignIn {
        /// Grace sign-ins left after this one, if counted.
        remaining: Option<u32>,
        /// When the grace ends, if dated.
        until: Option<u64>,
    },
    /// The user must enrol an authenticator before signing in.
    MustEnrol {
        /// Why.
        reason: EnrolReason,
    },
    /// Ask for a TOTP code or a backup code.
    EnterCode {
        /// Unused backup codes the user has.
        backup_codes_remaining: u32,
    },
    /// Too many wrong codes: do not ask for one now.
    LockedOut {
        /// Until when; `None` until an admin resets the user.
        until: Option<u64>,
    },
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

/// What starting an enrolment needs from the host.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct EnrolmentRequest<'a> {
    /// The name the user gives the authenticator ("Work phone"); 1–64 printable characters.
    pub label: &'a str,
    /// The account name the app shows (usually the user's email).
    pub account: &'a str,
    /// The issuer the app shows (the portal's name).
    pub issuer: &'a str,
    /// The authenticator to replace once this one is confirmed ("change authenticator").
    pub replaces: Option<AuthenticatorId>,
    /// A fresh TOTP or backup code: required when the user already has MFA, so
    /// a password alone can never add or swap a factor.
    pub proof: Option<&'a str>,
}

impl<'a> EnrolmentRequest<'a> {
    /// A first enrolment of an authenticator named `label`, shown in the app
    /// as `account` under `issuer`.
    pub fn new(label: &'a str, account: &'a str, issuer: &'a str) -> Self {
        Self {
            label,
            account,
            issuer,
            replaces: None,
            proof: None,
        }
    }

    /// Replaces `authenticator` once the new one is confirmed.
    #[must_use]
    pub fn replacing(mut self, authenticator: Option<AuthenticatorId>) -> Self {
        self.replaces = authenticator;
        self
    }

    /// With a fresh code, as a user who already has MFA must give.
    #[must_use]
    pub fn with_proof(mut self, proof: Option<&'a str>) -> Self {
        self.proof = proof;
        self
    }
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

/// A confirmed enrolment.
#[derive(Debug)]
#[non_exhaustive]
pub struct EnrolmentConfirmed {
    /// The new authenticator.
    pub authenticator: AuthenticatorId,
    /// Backup codes, when this enrolment turned MFA on: show them once.
    pub backup_codes: Option<IssuedBackupCodes>,
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
}

/// What an admin reset removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResetSummary {
    /// Authenticators removed.
    pub authenticators_removed: u32,
    /// Unused backup codes invalidated.
    pub backup_codes_removed: u32,
    /// Whether the user must enrol at the next sign-in.
    pub must_enrol: bool,
}

impl Draft<'_> {
    fn refuse_if_locked(&self) -> Result<()> {
        match self.record().failures.active_lock(self.ctx.now) {
            Some(until) => Err(Error::LockedOut { until }),
            None => Ok(()),
        }
    }

    /// Checks a TOTP or backup code against the user's factors, consuming what
    /// it matches; failures count toward lockout. Shared by sign-in and by every
    /// change that needs a fresh code.
    fn prove(&mut self, input: &str) -> Result<Factor> {
        self.refuse_if_locked()?;
        if self.record().authenticators.is_empty() {
            return Err(Error::NotEnrolled);
        }
        if looks_like_totp(input) {
            self.prove_totp(input)
        } else {
            let typed = TypedBackupCode::parse(input)?;
            self.prove_backup(&typed)
        }
    }

    fn prove_totp(&mut self, input: &str) -> Result<Factor> {
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

    fn prove_backup(&mut self, typed: &TypedBackupCode) -> Result<Factor> {
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
                Ok(self.succeed(Factor::BackupCode))
            }
            _ => Err(self.fail(false)),
        }
    }

    fn succeed(&mut self, factor: Factor) -> Factor {
        self.record_mut().failures = Default::default();
        self.record_mut().last_verified_at = Some(self.ctx.now);
        self.emit(EventKind::Verified { factor });
        factor
    }

    /// Counts a failure (a wrong code, or a replay when `replay`); the answer
    /// says how many tries are left, or that this failure locked MFA.
    fn fail(&mut self, replay: bool) -> Error {
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
                attempts_left: Some(max - consecutive % max),
            }
        }
    }

    fn sign_in_verified(&self, factor: Factor) -> SignInVerified {
        let remaining = self.record().backup_codes.as_ref().map_or(0, BackupCodes::remaining);
        SignInVerified {
            factor,
            backup_codes_remaining: remaining,
            low_on_backup_codes: remaining <= u32::from(self.ctx.policy.backup_codes_low_at()),
        }
    }

    fn require_admin(&self) -> Result<Arc<str>> {
        match self.ctx.actor {
            Actor::Admin(name) => Ok(name.clone()),
            _ => Err(Error::NotAllowed(PolicyRefusal::AdminOnly)),
        }
    }

    fn next_id(&mut self) -> Result<AuthenticatorId> {
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
    fn wrong_confirmation_code(&mut self) -> Error {
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

    fn cancel_pending(&mut self) {
        // Only a pending enrolment that is there is a change.
        if self.record().pending.is_some() {
            self.record_mut().pending = None;
            self.emit(EventKind::EnrolmentCancelled);
        }
    }
}

/// Meant as a TOTP code: at most ten letters and digits (a backup code has 16),
/// so a short code with a typo is told about in terms of the app's codes.
fn looks_like_totp(input: &str) -> bool {
    let trimmed = input.trim();
    trimmed.len() <= Code::MAX_INPUT_LEN && trimmed.chars().filter(char::is_ascii_alphanumeric).count() <= 10
}

fn check_label(label: &str) -> Result<Arc<str>> {
    match crate::otp::text::printable_name(label) {
        Some(label) if label.chars().count() <= 64 => Ok(label.into()),
        _ => Err(Error::InvalidLabel),
    }
}

impl MfaRecord {
    /// What the host does after the password step. A pure read: asking twice
    /// (a page reload) changes nothing; a grace sign-in is spent only by
    /// [`MfaRecord::complete_grace_sign_in`].
    pub fn sign_in_step(self, ctx: &Context<'_>) -> Outcome<SignInStep> {
        let step = self.next_step(ctx);
        Draft::new(self, ctx).done(Ok(step))
    }

    /// Spends one grace sign-in, when the host signs a user in under
    /// [`SignInStep::GraceSignIn`]; answers the step with the sign-ins left.
    /// Refused with [`PolicyRefusal::NoGraceLeft`] when the grace no longer
    /// applies (it ended, or another request spent the last one).
    pub fn complete_grace_sign_in(self, ctx: &Context<'_>) -> Outcome<SignInStep> {
        let step = self.next_step(ctx);
        let mut draft = Draft::new(self, ctx);
        let SignInStep::GraceSignIn { remaining, until } = step else {
            return draft.done(Err(Error::NotAllowed(PolicyRefusal::NoGraceLeft)));
        };
        draft.record_mut().grace_sign_ins_used = draft.record().grace_sign_ins_used.saturating_add(1);
        draft.emit(EventKind::GraceSignIn { remaining });
        draft.done(Ok(SignInStep::GraceSignIn { remaining, until }))
    }

    /// The step that applies now, with nothing spent.
    fn next_step(&self, ctx: &Context<'_>) -> SignInStep {
        if let Some(until) = self.failures.active_lock(ctx.now) {
            return SignInStep::LockedOut { until };
        }
        if self.mfa_enabled() {
            return SignInStep::EnterCode {
                backup_codes_remaining: self.backup_codes.as_ref().map_or(0, BackupCodes::remaining),
            };
        }
        if self.must_enrol {
            return SignInStep::MustEnrol {
                reason: EnrolReason::AdminReset,
            };
        }
        match ctx.policy.enforcement() {
            Enforcement::SelfConfigured => SignInStep::NoMfaNeeded,
            Enforcement::Enforced { grace: Some(grace) }
                if grace.until.is_none_or(|until| ctx.now <= until)
                    && grace.sign_ins.is_none_or(|n| self.grace_sign_ins_used < n) =>
            {
                SignInStep::GraceSignIn {
                    remaining: grace.sign_ins.map(|n| n - self.grace_sign_ins_used - 1),
                    until: grace.until,
                }
            }
            Enforcement::Enforced { .. } => SignInStep::MustEnrol {
                reason: EnrolReason::PolicyEnforced,
            },
        }
    }

    /// Starts an enrolment with `secret` (generated by the caller's CSPRNG).
    /// Starting again replaces a pending enrolment. A user who already has MFA
    /// must give a fresh code as `proof`.
    pub fn start_enrolment(
        self,
        ctx: &Context<'_>,
        request: EnrolmentRequest<'_>,
        secret: Secret,
    ) -> Outcome<StartedEnrolment> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            let label = check_label(request.label)?;
            let params = ctx.policy.otp();
            let uri = OtpAuthUri::new(request.issuer, request.account, secret.clone(), params)?;
            draft.refuse_if_locked()?;
            if draft.record().mfa_enabled() {
                if let Some(id) = request.replaces {
                    if !draft.record().authenticators.iter().any(|a| a.id == id) {
                        return Err(Error::UnknownAuthenticator);
                    }
                } else if draft.record().authenticators.len() >= MfaRecord::MAX_AUTHENTICATORS {
                    return Err(Error::TooManyAuthenticators);
                }
                draft.prove(request.proof.ok_or(Error::ProofRequired)?)?;
            } else if request.replaces.is_some() {
                return Err(Error::UnknownAuthenticator);
            }
            draft.cancel_pending();
            let id = draft.next_id()?;
            let expires_at = ctx.now.saturating_add(ctx.policy.enrolment_lifetime_secs());
            draft.record_mut().pending = Some(Box::new(PendingEnrolment {
                id,
                label,
                key: Key::new(secret, params),
                started_at: ctx.now,
                expires_at,
                replaces: request.replaces,
                wrong_codes: 0,
            }));
            draft.emit(EventKind::EnrolmentStarted {
                replaces: request.replaces,
            });
            Ok(StartedEnrolment {
                authenticator: id,
                uri,
                expires_at,
            })
        })();
        draft.done(result)
    }

    /// Confirms the pending enrolment with a code from the new app. The
    /// confirming step counts as used. Turning MFA on generates backup codes.
    pub fn confirm_enrolment<R: CryptoRng + ?Sized>(
        self,
        ctx: &Context<'_>,
        input: &str,
        rng: &mut R,
    ) -> Outcome<EnrolmentConfirmed> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            draft.refuse_if_locked()?;
            let expires_at = draft
                .record()
                .pending
                .as_ref()
                .ok_or(Error::NoPendingEnrolment)?
                .expires_at;
            if ctx.now >= expires_at {
                draft.cancel_pending();
                return Err(Error::EnrolmentExpired);
            }
            let pending = draft.record().pending.as_ref().ok_or(Error::NoPendingEnrolment)?;
            let code = Code::parse(input, pending.params().digits())?;
            let matched = pending.key.totp().verify(&code, ctx.now, ctx.policy.window())?;
            let Some(step) = matched else {
                return Err(draft.wrong_confirmation_code());
            };
            let Some(pending) = draft.record_mut().pending.take() else {
                return Err(Error::NoPendingEnrolment);
            };
            // Decided before a replaced authenticator goes: a swap keeps MFA on.
            let turning_on = !draft.record().mfa_enabled();
            if let Some(old) = pending.replaces {
                let before = draft.record().authenticators.len();
                draft.record_mut().authenticators.retain(|a| a.id != old);
                if draft.record().authenticators.len() < before {
                    draft.emit(EventKind::AuthenticatorRemoved {
                        authenticator: old,
                        cause: RemovalCause::Replaced,
                    });
                }
            }
            // Exact: the default growth would reserve room for four.
            draft.record_mut().authenticators.reserve_exact(1);
            draft.record_mut().authenticators.push(Authenticator {
                id: pending.id,
                label: pending.label.clone(),
                key: pending.key,
                added_at: ctx.now,
                last_used_step: Some(step),
            });
            draft.record_mut().must_enrol = false;
            draft.emit(EventKind::AuthenticatorAdded {
                authenticator: pending.id,
                label: pending.label,
            });
            let backup_codes = if turning_on {
                let count = ctx.policy.backup_code_count();
                let (stored, issued) = BackupCodes::generate(rng, count);
                draft.record_mut().backup_codes = Some(stored);
                draft.emit(EventKind::BackupCodesIssued {
                    count,
                    regenerated: false,
                });
                Some(issued)
            } else {
                None
            };
            Ok(EnrolmentConfirmed {
                authenticator: pending.id,
                backup_codes,
            })
        })();
        draft.done(result)
    }

    /// Abandons the pending enrolment, if any ("delete configuration" before enabling).
    pub fn cancel_enrolment(self, ctx: &Context<'_>) -> Outcome<()> {
        let mut draft = Draft::new(self, ctx);
        draft.cancel_pending();
        draft.done(Ok(()))
    }

    /// The second step of sign-in: a TOTP code from any authenticator, or a backup code.
    ///
    /// A step is accepted once per authenticator: the same or an older step is
    /// [`Error::ReplayedCode`]. Wrong codes and replays count toward lockout;
    /// malformed input does not.
    pub fn verify(self, ctx: &Context<'_>, input: &str) -> Outcome<SignInVerified> {
        let mut draft = Draft::new(self, ctx);
        let result = draft.prove(input).map(|factor| draft.sign_in_verified(factor));
        draft.done(result)
    }

    /// Deletes an authenticator after a fresh code. Refused while the policy
    /// enforces MFA and it is the last one. Deleting the last turns MFA off for
    /// a self-configured user and drops the backup codes.
    pub fn delete_authenticator(self, ctx: &Context<'_>, id: AuthenticatorId, proof: &str) -> Outcome<()> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            if !draft.record().authenticators.iter().any(|a| a.id == id) {
                return Err(Error::UnknownAuthenticator);
            }
            if ctx.policy.is_enforced() && draft.record().authenticators.len() == 1 {
                return Err(Error::NotAllowed(PolicyRefusal::LastAuthenticatorWhileEnforced));
            }
            draft.prove(proof)?;
            draft.record_mut().authenticators.retain(|a| a.id != id);
            if draft.record().pending.as_ref().is_some_and(|p| p.replaces == Some(id)) {
                draft.cancel_pending();
            }
            draft.emit(EventKind::AuthenticatorRemoved {
                authenticator: id,
                cause: RemovalCause::Deleted,
            });
            if !draft.record().mfa_enabled() {
                draft.record_mut().backup_codes = None;
            }
            Ok(())
        })();
        draft.done(result)
    }

    /// Replaces all backup codes with a new batch, after a fresh code.
    pub fn regenerate_backup_codes<R: CryptoRng + ?Sized>(
        self,
        ctx: &Context<'_>,
        proof: &str,
        rng: &mut R,
    ) -> Outcome<IssuedBackupCodes> {
        let mut draft = Draft::new(self, ctx);
        let result = draft.prove(proof).map(|_| {
            let count = ctx.policy.backup_code_count();
            let (stored, issued) = BackupCodes::generate(rng, count);
            draft.record_mut().backup_codes = Some(stored);
            draft.emit(EventKind::BackupCodesIssued {
                count,
                regenerated: true,
            });
            issued
        });
        draft.done(result)
    }

    /// Admin **Reset MFA**: removes every authenticator, the pending enrolment
    /// and the backup codes, clears the failure count, and (by default) requires
    /// enrolment at the next sign-in. The user's account is not touched.
    pub fn admin_reset(self, ctx: &Context<'_>, reason: ResetReason, mode: ResetMode) -> Outcome<ResetSummary> {
        let mut draft = Draft::new(self, ctx);
        let result = draft.require_admin().map(|admin| {
            let record = draft.record_mut();
            let authenticators_removed = record.authenticators.len() as u32;
            let backup_codes_removed = record.backup_codes.as_ref().map_or(0, BackupCodes::remaining);
            record.authenticators.clear();
            record.pending = None;
            record.backup_codes = None;
            record.failures = Default::default();
            record.must_enrol = mode == ResetMode::ForceReenrolment;
            record.last_reset = Some(Box::new(ResetRecord {
                by: admin,
                reason: reason.clone(),
                at: ctx.now,
            }));
            let must_enrol = record.must_enrol;
            draft.emit(EventKind::MfaReset {
                reason,
                mode,
                authenticators_removed,
                backup_codes_removed,
            });
            ResetSummary {
                authenticators_removed,
                backup_codes_removed,
                must_enrol,
            }
        });
        draft.done(result)
    }

    /// Admin import of an existing authenticator (migrating from another
    /// system): active at once, no step used yet, no backup codes issued.
    ///
    /// ⚠️ The caller vouches that `secret` reached only the user's app.
    pub fn import_authenticator(
        self,
        ctx: &Context<'_>,
        label: &str,
        secret: Secret,
        params: TotpParams,
    ) -> Outcome<AuthenticatorId> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            draft.require_admin()?;
            let label = check_label(label)?;
            if draft.record().authenticators.len() >= MfaRecord::MAX_AUTHENTICATORS {
                return Err(Error::TooManyAuthenticators);
            }
            let id = draft.next_id()?;
            draft.record_mut().authenticators.reserve_exact(1);
            draft.record_mut().authenticators.push(Authenticator {
                id,
                label: label.clone(),
                key: Key::new(secret, params),
                added_at: ctx.now,
                last_used_step: None,
            });
            draft.record_mut().must_enrol = false;
            draft.emit(EventKind::AuthenticatorAdded {
                authenticator: id,
                label,
            });
            Ok(id)
        })();
        draft.done(result)
    }
}

//! Passkeys and security keys: registering one, the sign-in challenge, and
//! proving a factor with one. The verifier's ceremony state is kept in the
//! record (sealed in the stored form) and taken out in the very step that
//! checks its response, so the store's compare-and-swap lets one response
//! through at most once, whatever races it.

use rand::CryptoRng;

use super::answers::{EnrolmentConfirmed, PasskeyRegistrationStarted, SignInStep};
use super::context::{Context, EnrolmentRequest, Outcome};
use super::draft::{Draft, check_label};
use super::record::{MfaRecord, Passkey, PasskeyChallenge, Passkeys, PendingPasskey, SealedBytes};
use super::session::{SessionProof, SessionStamp};
use crate::error::{Error, PasskeyRefusal, Result};
use crate::event::{EventKind, Factor, RemovalCause, SessionEndCause};
use crate::ids::AuthenticatorId;
use crate::passkey::{KnownCredential, PasskeyOptions, RelyingParty};

impl MfaRecord {
    /// Starts registering a passkey or security key named `request.label`
    /// (`request.account` is the name the browser shows); the answer's options
    /// go to `navigator.credentials.create`. Starting again replaces a pending
    /// registration. A user who already has MFA must give a fresh code or
    /// passkey response as `request.proof`, so a password alone never adds a factor.
    pub fn start_passkey_registration<R: CryptoRng + ?Sized>(
        self,
        ctx: &Context<'_>,
        session: &SessionStamp,
        request: EnrolmentRequest<'_>,
        rng: &mut R,
    ) -> Outcome<PasskeyRegistrationStarted> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            draft.check_session(session)?;
            let label = check_label(request.label)?;
            let rp = ctx.relying_party()?;
            draft.refuse_if_locked()?;
            draft.check_room_for(request.replaces)?;
            if draft.record().mfa_enabled() {
                draft.prove(request.proof.ok_or(Error::ProofRequired)?)?;
            }
            draft.cancel_pending_passkey();
            let id = draft.next_id()?;
            let passkeys = draft.passkeys_mut(rng);
            let exclude = passkeys
                .credentials
                .iter()
                .map(|p| p.credential_id.to_vec().into())
                .collect();
            let (options, state) = rp.start_registration(&passkeys.user_handle, request.account, exclude)?;
            let expires_at = ctx.now.saturating_add(RelyingParty::CHALLENGE_LIFETIME_SECS);
            passkeys.registration = Some(PendingPasskey {
                id,
                label,
                started_at: ctx.now,
                expires_at,
                replaces: request.replaces,
                failures: 0,
                state: SealedBytes::new(state),
            });
            draft.emit(EventKind::PasskeyRegistrationStarted {
                replaces: request.replaces,
            });
            Ok(PasskeyRegistrationStarted {
                authenticator: id,
                options,
                expires_at,
            })
        })();
        draft.done(result)
    }

    /// Finishes the pending registration with the browser's answer (the JSON
    /// of the `PublicKeyCredential` that `navigator.credentials.create` gave).
    /// A refused answer counts against the registration (after
    /// [`PendingPasskey::MAX_FAILURES`] it is cancelled), not toward lockout.
    /// Turning MFA on generates backup codes.
    pub fn finish_passkey_registration<R: CryptoRng + ?Sized>(
        self,
        ctx: &Context<'_>,
        session: &SessionStamp,
        response: &str,
        rng: &mut R,
    ) -> Outcome<EnrolmentConfirmed> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            draft.check_session(session)?;
            let rp = ctx.relying_party()?;
            draft.refuse_if_locked()?;
            let pending = draft.record().pending_passkey().ok_or(Error::NoPendingEnrolment)?;
            if ctx.now >= pending.expires_at {
                draft.cancel_pending_passkey();
                return Err(Error::EnrolmentExpired);
            }
            let registered = match rp.finish_registration(&pending.state.plain, response) {
                Ok(registered) => registered,
                Err(reason) => return Err(draft.refused_registration(reason)),
            };
            if draft
                .record()
                .passkeys()
                .iter()
                .any(|p| *p.credential_id == *registered.credential_id)
            {
                return Err(Error::PasskeyRefused {
                    reason: PasskeyRefusal::AlreadyRegistered,
                    attempts_left: None,
                });
            }
            let Some(pending) = draft.record_mut().passkeys.as_mut().and_then(|p| p.registration.take()) else {
                return Err(Error::NoPendingEnrolment);
            };
            let turning_on = !draft.record().mfa_enabled();
            if let Some(old) = pending.replaces
                && draft.remove_factor(old, RemovalCause::Replaced)
            {
                draft.end_sessions(SessionEndCause::AuthenticatorReplaced);
            }
            let (id, label) = (pending.id, pending.label);
            if let Some(passkeys) = draft.record_mut().passkeys.as_mut() {
                passkeys.credentials.push(Passkey {
                    id,
                    label: label.clone(),
                    added_at: ctx.now,
                    last_used_at: Some(ctx.now),
                    sign_count: registered.sign_count,
                    credential_id: registered.credential_id.into(),
                    credential: SealedBytes::new(registered.credential),
                });
            }
            let added = EventKind::PasskeyAdded {
                authenticator: id,
                label,
            };
            Ok(draft.factor_confirmed(id, added, turning_on, SessionProof::Passkey, rng))
        })();
        draft.done(result)
    }

    /// A challenge for the signed-in session `session` to prove a change
    /// with a passkey (delete a factor, regenerate backup codes, add a
    /// factor): pass the browser's answer as that change's `proof`. It
    /// replaces any sign-in challenge outstanding.
    pub fn request_passkey_proof(self, ctx: &Context<'_>, session: &SessionStamp) -> Outcome<PasskeyOptions> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            draft.check_signed_in(session)?;
            draft.refuse_if_locked()?;
            if draft.record().passkeys().is_empty() {
                return Err(Error::NotEnrolled);
            }
            draft.issue_challenge()
        })();
        draft.done(result)
    }
}

impl Draft<'_> {
    /// The user's passkeys, with a random user handle made on first use.
    fn passkeys_mut<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> &mut Passkeys {
        self.record_mut().passkeys.get_or_insert_with(|| {
            let mut user_handle = [0u8; 16];
            rng.fill_bytes(&mut user_handle);
            Box::new(Passkeys {
                user_handle,
                credentials: Vec::new(),
                registration: None,
                challenge: None,
            })
        })
    }

    /// `step`, with a sign-in challenge where it asks for a code and the user
    /// has passkeys this portal verifies.
    pub(super) fn offer_passkeys(&mut self, mut step: SignInStep) -> Result<SignInStep> {
        if let SignInStep::EnterCode {
            passkeys: 1.., passkey, ..
        } = &mut step
            && self.ctx.passkeys.is_some()
        {
            *passkey = Some(self.issue_challenge()?);
        }
        Ok(step)
    }

    /// A sign-in challenge naming every passkey the user has, kept in the
    /// record in place of any outstanding one.
    pub(super) fn issue_challenge(&mut self) -> Result<PasskeyOptions> {
        let rp = self.ctx.relying_party()?;
        let known: Vec<KnownCredential<'_>> = self
            .record()
            .passkeys()
            .iter()
            .map(|p| KnownCredential {
                credential: &p.credential.plain,
                sign_count: p.sign_count,
            })
            .collect();
        let (options, state) = rp.start_authentication(&known)?;
        let now = self.ctx.now;
        if let Some(passkeys) = self.record_mut().passkeys.as_mut() {
            passkeys.challenge = Some(PasskeyChallenge {
                issued_at: now,
                expires_at: now.saturating_add(RelyingParty::CHALLENGE_LIFETIME_SECS),
                state: SealedBytes::new(state),
            });
        }
        Ok(options)
    }

    /// Checks a passkey's answer to the outstanding challenge, which it
    /// uses up whatever the verdict; every refusal counts toward lockout.
    pub(super) fn prove_passkey(&mut self, response: &str) -> Result<Factor> {
        let rp = self.ctx.relying_party()?;
        let challenge = self.record_mut().passkeys.as_mut().and_then(|p| p.challenge.take());
        let Some(challenge) = challenge else {
            return Err(self.refused_passkey(PasskeyRefusal::NoChallenge));
        };
        if self.ctx.now >= challenge.expires_at {
            return Err(self.refused_passkey(PasskeyRefusal::ChallengeExpired));
        }
        let asserted = match rp.finish_authentication(&challenge.state.plain, response) {
            Ok(asserted) => asserted,
            Err((reason, claimed)) => {
                if reason == PasskeyRefusal::CounterRegressed
                    && let Some(id) = claimed.and_then(|c| self.passkey_with(&c))
                {
                    self.emit(EventKind::PasskeyCounterRegressed { authenticator: id });
                }
                return Err(self.refused_passkey(reason));
            }
        };
        // Checked against the record as it is now: a passkey deleted since the challenge is gone.
        let Some(index) = self
            .record()
            .passkeys()
            .iter()
            .position(|p| *p.credential_id == *asserted.credential_id)
        else {
            return Err(self.refused_passkey(PasskeyRefusal::UnknownCredential));
        };
        let now = self.ctx.now;
        let Some(passkey) = self.record_mut().passkeys.as_mut().map(|p| &mut p.credentials[index]) else {
            return Err(Error::NotEnrolled);
        };
        let id = passkey.id;
        if (asserted.sign_count > 0 || passkey.sign_count > 0) && asserted.sign_count <= passkey.sign_count {
            self.emit(EventKind::PasskeyCounterRegressed { authenticator: id });
            return Err(self.refused_passkey(PasskeyRefusal::CounterRegressed));
        }
        passkey.sign_count = asserted.sign_count;
        passkey.last_used_at = Some(now);
        Ok(self.succeed(Factor::Passkey(id)))
    }

    fn passkey_with(&self, credential_id: &[u8]) -> Option<AuthenticatorId> {
        let passkeys = self.record().passkeys();
        passkeys
            .iter()
            .find(|p| *p.credential_id == *credential_id)
            .map(|p| p.id)
    }

    /// Counts a refused passkey answer toward lockout, as a wrong code is.
    fn refused_passkey(&mut self, reason: PasskeyRefusal) -> Error {
        match self.fail(false) {
            Error::WrongCode { attempts_left } => Error::PasskeyRefused { reason, attempts_left },
            locked => locked,
        }
    }

    /// Counts a refused answer against the pending registration.
    fn refused_registration(&mut self, reason: PasskeyRefusal) -> Error {
        let Some(pending) = self
            .record_mut()
            .passkeys
            .as_mut()
            .and_then(|p| p.registration.as_mut())
        else {
            return Error::NoPendingEnrolment;
        };
        pending.failures = pending.failures.saturating_add(1);
        let failures = pending.failures;
        if failures >= PendingPasskey::MAX_FAILURES {
            if let Some(p) = self.record_mut().passkeys.as_mut() {
                p.registration = None;
            }
            self.emit(EventKind::PasskeyRegistrationFailed { failures });
            return Error::EnrolmentCancelled;
        }
        Error::PasskeyRefused {
            reason,
            attempts_left: Some(u32::from(PendingPasskey::MAX_FAILURES - failures)),
        }
    }

    pub(super) fn cancel_pending_passkey(&mut self) {
        if self.record().pending_passkey().is_some() {
            if let Some(p) = self.record_mut().passkeys.as_mut() {
                p.registration = None;
            }
            self.emit(EventKind::PasskeyRegistrationCancelled);
        }
    }
}

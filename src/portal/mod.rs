//! The driver a host calls: loads a record, runs the pure transition, commits
//! the result with its events, retries on a version conflict.
//!
//! One [`Portal`] per portal (one policy for all its customers, vendors and
//! contacts). Many app instances may each have one on the same store: the
//! store's compare-and-swap keeps them from both accepting one code.

#[cfg(feature = "async")]
mod asynchronous;

use std::sync::{Arc, Mutex};

use rand::CryptoRng;
use rand::rngs::StdRng;

use crate::backup::IssuedBackupCodes;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::event::{Actor, AuditEvent, EventKind, Notifier, ResetMode, ResetReason};
use crate::ids::{Admin, AuthenticatorId, PortalId, UserId};
use crate::keyring::Keyring;
use crate::otp::{Secret, TotpParams};
use crate::policy::{Enforcement, PortalPolicy, SignInMethod};
use crate::state::{
    Context, EnrolmentConfirmed, EnrolmentRequest, MfaRecord, Outcome, ResetSummary, SignInStep, SignInVerified,
    StartedEnrolment,
};
use crate::store::{
    Applied, Backend, Commit, EventQuery, LiveChange, RecordSummary, RecordWrite, Step, StorageError, StorageErrorKind,
    Stored, StoredEvent, Version,
};
use crate::stored::{decode_policy, decode_record, encode_record};

/// Options for [`Portal::start_enrolment`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EnrolmentOptions<'a> {
    /// The authenticator to replace once the new one is confirmed.
    pub replaces: Option<AuthenticatorId>,
    /// A fresh code, required when the user already has MFA.
    pub proof: Option<&'a str>,
}

/// A portal's MFA, driven against a store.
pub struct Portal<S, C = SystemClock, R = StdRng> {
    id: PortalId,
    issuer: Arc<str>,
    store: S,
    clock: C,
    rng: Mutex<R>,
    default_policy: PortalPolicy,
    notifier: Option<Arc<dyn Notifier>>,
    max_attempts: u32,
    keyring: Option<Arc<Keyring>>,
}

/// How far a [`Portal::reseal`] sweep got.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResealProgress {
    /// Records looked at in this batch.
    pub examined: usize,
    /// Records re-sealed under the current key in this batch.
    pub resealed: usize,
    /// Records that could not be opened, with why (a missing key, damage); the sweep went on past them.
    pub failed: Vec<(UserId, Error)>,
    /// Where the next batch starts; `None` when the sweep is complete.
    pub next: Option<UserId>,
}

impl<S> Portal<S> {
    /// A portal named `issuer` (what authenticator apps show) on `store`,
    /// with the system clock and an OS-seeded CSPRNG.
    ///
    /// The name is checked once, here: not empty, no `:` (the separator of an
    /// app's label), printable text, at most 256 bytes. Errors:
    /// [`Error::InvalidUri`] with [`UriError::ColonInName`](crate::UriError::ColonInName),
    /// [`UriError::UnprintableName`](crate::UriError::UnprintableName),
    /// [`UriError::MissingLabel`](crate::UriError::MissingLabel) or
    /// [`UriError::TooLong`](crate::UriError::TooLong).
    ///
    /// ```
    /// use portal_mfa::{MemoryStore, Portal, PortalId, SignInStep, UserId};
    ///
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())?;
    /// // MFA is off by default: a user with nothing configured just signs in.
    /// assert_eq!(portal.begin_sign_in(&UserId::customer("c-1"))?, SignInStep::NoMfaNeeded);
    /// assert!(Portal::new(PortalId::new("x"), "Acme: EU", MemoryStore::new()).is_err());
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn new(id: PortalId, issuer: &str, store: S) -> Result<Self> {
        let issuer = issuer.trim();
        if issuer.is_empty() {
            return Err(Error::InvalidUri(crate::error::UriError::MissingLabel));
        }
        crate::otp::check_name(issuer)?;
        Ok(Portal {
            id,
            issuer: issuer.into(),
            store,
            clock: SystemClock,
            rng: Mutex::new(rand::make_rng()),
            default_policy: PortalPolicy::default(),
            notifier: None,
            max_attempts: 32,
            keyring: None,
        })
    }
}

impl<S: Backend, C: Clock, R: CryptoRng + Send> Portal<S, C, R> {
    /// The portal's policy now.
    pub fn policy(&self) -> Result<PortalPolicy> {
        Ok(self
            .store
            .read_policy(&self.id)?
            .map_or(self.default_policy, |(p, _)| p))
    }

    /// A user's record (a fresh one if they never had one). Secrets stay redacted in `Debug`.
    pub fn record(&self, user: &UserId) -> Result<MfaRecord> {
        self.run(user, Actor::User, |record, _| Outcome {
            result: Ok(record.clone()),
            record,
            changed: false,
            events: Vec::new(),
        })
    }

    /// Audit events of this portal matching `query` (its `portal` is ignored).
    pub fn audit_events(&self, query: EventQuery) -> Result<Vec<AuditEvent>> {
        self.store.read_events(&EventQuery {
            portal: self.id.clone(),
            ..query
        })
    }

    /// Re-seals, under the keyring's current key, up to `batch` records that
    /// are still sealed under an older one, starting after `after` (`None`:
    /// from the first user). Call it again with [`ResealProgress::next`] until
    /// that is `None`; then every record is under the current key and older
    /// keys can leave the keyring.
    ///
    /// Safe alongside sign-ins: each record is re-sealed through the same
    /// compare-and-swap as any other change, so a sign-in racing it is retried,
    /// never lost. After a crash, start again from the last `next` you kept (or
    /// from the start: records already re-sealed are only read).
    /// The memory store keeps nothing sealed, so there it finds nothing to do.
    pub fn reseal(&self, after: Option<&UserId>, batch: usize) -> Result<ResealProgress> {
        let keyring = self.keyring()?;
        let page = self.store.stored_records(&self.id, after, batch.max(1))?;
        let mut progress = ResealProgress {
            examined: page.len(),
            resealed: 0,
            failed: Vec::new(),
            next: (page.len() >= batch.max(1))
                .then(|| page.last().map(|(u, _)| u.clone()))
                .flatten(),
        };
        for (user, stored) in page {
            match decode_record(&stored.bytes, &self.id, &user, keyring) {
                Ok(decoded) if !decoded.stale_key => {}
                Ok(_) => match self.run(&user, Actor::System, |record, _| Outcome {
                    record,
                    changed: true,
                    events: Vec::new(),
                    result: Ok(()),
                }) {
                    Ok(()) => progress.resealed += 1,
                    Err(e) => progress.failed.push((user, e)),
                },
                Err(e) => progress.failed.push((user, e)),
            }
        }
        Ok(progress)
    }

    // ----- admin: policy -----

    /// Admin: turns enforcement on or off. Enforcing is refused for a SAML portal.
    /// Turning it off does not remove anyone's configured MFA.
    ///
    /// ```
    /// use portal_mfa::{Admin, Enforcement, Error, MemoryStore, PolicyRefusal, Portal, PortalId, SignInMethod};
    ///
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())?;
    /// let admin = Admin::authorised("admin@acme.example");
    /// portal.set_sign_in_method(&admin, SignInMethod::Saml)?;
    /// let refused = portal.set_enforcement(&admin, Enforcement::Enforced { grace: None });
    /// assert!(matches!(refused, Err(Error::NotAllowed(PolicyRefusal::EnforcementWithSaml))));
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn set_enforcement(&self, admin: &Admin, enforcement: Enforcement) -> Result<PortalPolicy> {
        self.update_policy(admin, |p| p.with_enforcement(enforcement))
    }

    /// Admin: changes the sign-in method. Switching an enforced portal to SAML is refused.
    pub fn set_sign_in_method(&self, admin: &Admin, method: SignInMethod) -> Result<PortalPolicy> {
        self.update_policy(admin, |p| p.with_sign_in_method(method))
    }

    /// Admin: any policy change, validated by the `PortalPolicy` builders `change` uses.
    pub fn update_policy(
        &self,
        admin: &Admin,
        change: impl Fn(PortalPolicy) -> Result<PortalPolicy>,
    ) -> Result<PortalPolicy> {
        let actor = admin.actor();
        for attempt in 0..self.max_attempts {
            let planned = self.policy_change(&actor, self.store.read_policy(&self.id)?, &change)?;
            if planned.unchanged {
                return Ok(planned.new);
            }
            match self
                .store
                .write_policy(&self.id, planned.expected, &planned.new, &planned.events)?
            {
                Commit::Committed(_) => return Ok(planned.new),
                Commit::Conflict => back_off(attempt),
            }
        }
        Err(Error::Conflict {
            attempts: self.max_attempts,
        })
    }

    // ----- user flows -----

    /// After the password step: what to ask for next. A pure read: a page
    /// reload that asks again changes nothing. Keep the answer in the host's
    /// server-side session between the password page and the code page.
    pub fn begin_sign_in(&self, user: &UserId) -> Result<SignInStep> {
        self.run(user, Actor::User, |record, ctx| record.sign_in_step(ctx))
    }

    /// Spends a grace sign-in: call it when the host signs the user in under
    /// [`SignInStep::GraceSignIn`] (not when it only shows the page). Answers
    /// the sign-ins left, or refuses with
    /// [`PolicyRefusal::NoGraceLeft`](crate::PolicyRefusal::NoGraceLeft) if the
    /// grace has run out since.
    pub fn complete_grace_sign_in(&self, user: &UserId) -> Result<SignInStep> {
        self.run(user, Actor::User, |record, ctx| record.complete_grace_sign_in(ctx))
    }

    /// Checks a TOTP code or a backup code typed at sign-in.
    ///
    /// ```
    /// # use portal_mfa::*;
    /// # let clock = ManualClock::at(1_763_800_000);
    /// # let portal = Portal::new(PortalId::new("acme"), "Acme", MemoryStore::new())?.with_clock(clock.clone());
    /// # let user = UserId::vendor("v-1");
    /// # let started = portal.start_enrolment(&user, "v-1", "phone", EnrolmentOptions::default())?;
    /// # let phone = Totp::new(started.uri.secret(), *started.uri.params());
    /// # portal.confirm_enrolment(&user, &phone.generate(clock.now())?.expose())?;
    /// clock.advance(30);
    /// let code = phone.generate(clock.now())?.expose().to_string();
    /// assert!(matches!(portal.verify_sign_in(&user, &code)?.factor, Factor::Totp(_)));
    /// // The same code again is a replay, whoever sends it.
    /// assert!(matches!(portal.verify_sign_in(&user, &code), Err(Error::ReplayedCode)));
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn verify_sign_in(&self, user: &UserId, input: &str) -> Result<SignInVerified> {
        self.run(user, Actor::User, |record, ctx| record.verify(ctx, input))
    }

    /// Starts enrolling an authenticator: a new secret, its URI and QR code.
    /// `account` is what the app shows under the portal's name (the user's email).
    ///
    /// ```
    /// # use portal_mfa::*;
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())?;
    /// let user = UserId::contact("help-center-42");
    /// let started = portal.start_enrolment(&user, "contact@example.com", "Work phone", EnrolmentOptions::default())?;
    /// let svg = started.uri.qr_svg()?; // for the page
    /// let typed = started.uri.secret().to_grouped_base32(); // for typing by hand
    /// assert!(svg.contains("<svg") && typed.len() == 39);
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn start_enrolment(
        &self,
        user: &UserId,
        account: &str,
        label: &str,
        options: EnrolmentOptions<'_>,
    ) -> Result<StartedEnrolment> {
        let (secret, request) = self.enrolment(account, label, options);
        self.run(user, Actor::User, |record, ctx| {
            record.start_enrolment(ctx, request, secret.clone())
        })
    }

    /// Confirms the pending enrolment with the first code from the app.
    pub fn confirm_enrolment(&self, user: &UserId, code: &str) -> Result<EnrolmentConfirmed> {
        self.run(user, Actor::User, |record, ctx| {
            record.confirm_enrolment(ctx, code, &mut *self.rng())
        })
    }

    /// Abandons the pending enrolment.
    pub fn cancel_enrolment(&self, user: &UserId) -> Result<()> {
        self.run(user, Actor::User, |record, ctx| record.cancel_enrolment(ctx))
    }

    /// Deletes an authenticator, after a fresh code.
    pub fn delete_authenticator(&self, user: &UserId, authenticator: AuthenticatorId, proof: &str) -> Result<()> {
        self.run(user, Actor::User, |record, ctx| {
            record.delete_authenticator(ctx, authenticator, proof)
        })
    }

    /// Replaces the backup codes with a new batch, after a fresh code.
    pub fn regenerate_backup_codes(&self, user: &UserId, proof: &str) -> Result<IssuedBackupCodes> {
        self.run(user, Actor::User, |record, ctx| {
            record.regenerate_backup_codes(ctx, proof, &mut *self.rng())
        })
    }

    // ----- admin: users -----

    /// Admin **Reset MFA** for one user; the account itself is untouched.
    ///
    /// ```
    /// # use portal_mfa::*;
    /// # let portal = Portal::new(PortalId::new("acme"), "Acme", MemoryStore::new())?;
    /// # let user = UserId::customer("c-7");
    /// let admin = Admin::authorised("admin@acme.example");
    /// let summary = portal.admin_reset(&admin, &user, ResetReason::LostDevice, ResetMode::default())?;
    /// assert!(summary.must_enrol);
    /// assert!(matches!(portal.begin_sign_in(&user)?, SignInStep::MustEnrol { reason: EnrolReason::AdminReset }));
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn admin_reset(
        &self,
        admin: &Admin,
        user: &UserId,
        reason: ResetReason,
        mode: ResetMode,
    ) -> Result<ResetSummary> {
        self.run(user, admin.actor(), |record, ctx| {
            record.admin_reset(ctx, reason.clone(), mode)
        })
    }

    /// Admin: imports an existing TOTP enrolment (migration from another system).
    pub fn import_authenticator(
        &self,
        admin: &Admin,
        user: &UserId,
        label: &str,
        secret: Secret,
        params: TotpParams,
    ) -> Result<AuthenticatorId> {
        self.run(user, admin.actor(), |record, ctx| {
            record.import_authenticator(ctx, label, secret.clone(), params)
        })
    }

    /// Runs the transition against the stored record in one atomic store call
    /// (check-and-record), retrying the whole transition on a conflict.
    fn run<T: Send>(
        &self,
        user: &UserId,
        actor: Actor,
        mut transition: impl FnMut(MfaRecord, &Context<'_>) -> Outcome<T> + Send,
    ) -> Result<T> {
        for attempt in 0..self.max_attempts {
            let mut step = Attempt {
                portal: self,
                user,
                actor: &actor,
                now: self.now()?,
                transition: &mut transition,
                answer: Answer::default(),
            };
            match self.store.run_step(&self.id, user, &mut step)? {
                Applied::Done => return self.settle(step.answer),
                Applied::Conflict => back_off(attempt),
            }
        }
        Err(Error::Conflict {
            attempts: self.max_attempts,
        })
    }
}

impl<S, C, R> Portal<S, C, R> {
    /// Uses `clock` for time.
    pub fn with_clock<C2>(self, clock: C2) -> Portal<S, C2, R> {
        Portal {
            id: self.id,
            issuer: self.issuer,
            store: self.store,
            clock,
            rng: self.rng,
            default_policy: self.default_policy,
            notifier: self.notifier,
            max_attempts: self.max_attempts,
            keyring: self.keyring,
        }
    }

    /// Seals and opens TOTP secrets with `keyring`. Every store that keeps
    /// bytes (any [`MfaStore`](crate::store::MfaStore), such as
    /// [`SqliteStore`](crate::SqliteStore)) needs one; the [`MemoryStore`](crate::MemoryStore) does not.
    ///
    /// ⚠️ Keep the keys in the host's secret store, never beside the database
    /// they protect, and keep every key that sealed a record in the keyring
    /// until a [`Portal::reseal`] sweep has completed.
    #[must_use]
    pub fn with_keyring(mut self, keyring: impl Into<Arc<Keyring>>) -> Self {
        self.keyring = Some(keyring.into());
        self
    }

    /// Uses `rng` for secrets, backup codes and salts.
    ///
    /// ⚠️ It must be a cryptographically secure generator seeded from real
    /// entropy; a seeded one is for tests only.
    pub fn with_rng<R2: CryptoRng + Send>(self, rng: R2) -> Portal<S, C, R2> {
        Portal {
            id: self.id,
            issuer: self.issuer,
            store: self.store,
            clock: self.clock,
            rng: Mutex::new(rng),
            default_policy: self.default_policy,
            notifier: self.notifier,
            max_attempts: self.max_attempts,
            keyring: self.keyring,
        }
    }

    /// The policy used until an admin saves one.
    #[must_use]
    pub fn with_default_policy(mut self, policy: PortalPolicy) -> Self {
        self.default_policy = policy;
        self
    }

    /// Tells `notifier` about committed events the user must hear about.
    #[must_use]
    pub fn with_notifier(mut self, notifier: impl Notifier + 'static) -> Self {
        self.notifier = Some(Arc::new(notifier));
        self
    }

    /// How many times an operation is tried when other writers keep winning (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The portal's id.
    pub fn id(&self) -> &PortalId {
        &self.id
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, R> {
        // A panic elsewhere cannot leave a CSPRNG in a state that matters.
        self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keyring(&self) -> Result<&Keyring> {
        self.keyring.as_deref().ok_or(Error::NoKeyring)
    }
}

impl<S, C: Clock, R> Portal<S, C, R> {
    /// The time now, refused past `i64::MAX` seconds: one rule for every time
    /// the crate stores, so SQL stores (signed 64-bit) order them as the memory store does.
    fn now(&self) -> Result<u64> {
        let now = self.clock.now();
        if now > i64::MAX as u64 {
            return Err(Error::ClockOutOfRange);
        }
        Ok(now)
    }

    /// The part of an attempt that runs inside the store's atomic call: the
    /// pure transition on what the store read (the policy from the same read).
    #[allow(clippy::too_many_arguments)]
    fn step<T>(
        &self,
        user: &UserId,
        actor: &Actor,
        now: u64,
        transition: &mut impl FnMut(MfaRecord, &Context<'_>) -> Outcome<T>,
        answer: &mut Answer<T>,
        record: MfaRecord,
        policy: Option<PortalPolicy>,
    ) -> LiveChange {
        let policy = policy.unwrap_or(self.default_policy);
        let ctx = Context {
            portal: &self.id,
            user,
            policy: &policy,
            now,
            actor,
        };
        let outcome = transition(record, &ctx);
        answer.result = Some(outcome.result);
        answer.notices = outcome
            .events
            .iter()
            .filter(|e| e.kind.user_must_hear())
            .cloned()
            .collect();
        LiveChange {
            record: outcome.record,
            changed: outcome.changed,
            events: outcome.events,
        }
    }

    /// After a committed attempt: tell the notifier, hand back the answer.
    fn settle<T>(&self, answer: Answer<T>) -> Result<T> {
        if let Some(notifier) = &self.notifier {
            answer.notices.iter().for_each(|e| notifier.notify(e));
        }
        answer
            .result
            .unwrap_or(Err(Error::Storage(StorageError::of_kind(StorageErrorKind::Other))))
    }

    /// The policy write shared by the sync and async drivers: the new policy,
    /// its events, and whether there is anything to write at all.
    fn policy_change(
        &self,
        actor: &Actor,
        stored: Option<(PortalPolicy, Version)>,
        change: &impl Fn(PortalPolicy) -> Result<PortalPolicy>,
    ) -> Result<PolicyChange> {
        let (old, expected) = stored.map_or((self.default_policy, None), |(p, v)| (p, Some(v)));
        let new = change(old)?;
        let events = policy_events(&self.id, actor, self.now()?, &old, &new);
        Ok(PolicyChange {
            unchanged: events.is_empty() && expected.is_some(),
            new,
            expected,
            events,
        })
    }
}

impl<S, C, R: CryptoRng> Portal<S, C, R> {
    /// A fresh secret and the request to enrol it (shared by the sync and async drivers).
    fn enrolment<'a>(
        &'a self,
        account: &'a str,
        label: &'a str,
        options: EnrolmentOptions<'a>,
    ) -> (Secret, EnrolmentRequest<'a>) {
        let secret = Secret::generate(&mut *self.rng());
        let request = EnrolmentRequest {
            label,
            account,
            issuer: &self.issuer,
            replaces: options.replaces,
            proof: options.proof,
        };
        (secret, request)
    }
}

/// One attempt of an operation, as the store runs it inside its atomic call.
struct Attempt<'a, S, C, R, T, F> {
    portal: &'a Portal<S, C, R>,
    user: &'a UserId,
    actor: &'a Actor,
    now: u64,
    transition: &'a mut F,
    answer: Answer<T>,
}

impl<S, C, R, T, F> Step for Attempt<'_, S, C, R, T, F>
where
    S: Sync,
    C: Clock,
    R: CryptoRng + Send,
    T: Send,
    F: FnMut(MfaRecord, &Context<'_>) -> Outcome<T> + Send,
{
    fn on_live(&mut self, record: MfaRecord, policy: Option<PortalPolicy>) -> LiveChange {
        self.portal.step(
            self.user,
            self.actor,
            self.now,
            self.transition,
            &mut self.answer,
            record,
            policy,
        )
    }

    /// Opens the stored record, runs the transition, and seals the result.
    /// A record or policy that does not decode is the answer, and nothing is written.
    fn on_bytes(&mut self, record: Option<&Stored>, policy: Option<&Stored>) -> Option<RecordWrite> {
        let portal = self.portal;
        let opened = (|| {
            let policy = policy.map(|p| decode_policy(&p.bytes)).transpose()?;
            let record = match record {
                None => MfaRecord::default(),
                Some(stored) => decode_record(&stored.bytes, &portal.id, self.user, portal.keyring()?)?.record,
            };
            Ok((record, policy))
        })();
        let (record, policy) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                self.answer.fail(e);
                return None;
            }
        };
        let change = self.on_live(record, policy);
        if !change.changed {
            return None;
        }
        let sealed = portal
            .keyring()
            .and_then(|keyring| encode_record(&change.record, &portal.id, self.user, keyring, &mut *portal.rng()));
        match sealed {
            Ok(bytes) => Some(RecordWrite {
                bytes,
                summary: RecordSummary::of(&change.record),
                events: change.events.iter().map(StoredEvent::of).collect(),
            }),
            Err(e) => {
                self.answer.fail(e);
                None
            }
        }
    }
}

/// What one attempt produced for the caller, kept aside until the store commits.
struct Answer<T> {
    result: Option<Result<T>>,
    notices: Vec<AuditEvent>,
}

impl<T> Answer<T> {
    /// The attempt could not run: this error is the answer, and nothing is written or notified.
    fn fail(&mut self, error: Error) {
        self.result = Some(Err(error));
        self.notices.clear();
    }
}

impl<T> Default for Answer<T> {
    fn default() -> Self {
        Self {
            result: None,
            notices: Vec::new(),
        }
    }
}

/// A planned policy write.
struct PolicyChange {
    unchanged: bool,
    new: PortalPolicy,
    expected: Option<Version>,
    events: Vec<AuditEvent>,
}

/// The events a policy change emits.
pub(crate) fn policy_events(
    portal: &PortalId,
    actor: &Actor,
    now: u64,
    old: &PortalPolicy,
    new: &PortalPolicy,
) -> Vec<AuditEvent> {
    let mut kinds = Vec::new();
    if old.enforcement() != new.enforcement() {
        kinds.push(EventKind::EnforcementChanged {
            enforcement: new.enforcement(),
        });
    }
    if old.sign_in_method() != new.sign_in_method() {
        kinds.push(EventKind::SignInMethodChanged {
            method: new.sign_in_method(),
        });
    }
    let settings = |p: &PortalPolicy| {
        (
            p.otp(),
            p.window(),
            p.lockout(),
            p.enrolment_lifetime_secs(),
            p.backup_code_count(),
            p.backup_codes_low_at(),
        )
    };
    if settings(old) != settings(new) {
        kinds.push(EventKind::PolicySettingsChanged);
    }
    kinds
        .into_iter()
        .map(|kind| AuditEvent {
            at: now,
            portal: portal.clone(),
            user: None,
            actor: actor.clone(),
            kind,
        })
        .collect()
}

/// Spreads out writers that keep colliding: yield first, then short sleeps.
fn back_off(attempt: u32) {
    if attempt < 3 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(20 << attempt.min(8)));
    }
}

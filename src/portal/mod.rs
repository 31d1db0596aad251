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
use crate::ids::{AuthenticatorId, PortalId, UserId};
use crate::otp::{Secret, TotpParams};
use crate::policy::{Enforcement, PortalPolicy, SignInMethod};
use crate::state::{
    Context, EnrolmentConfirmed, EnrolmentRequest, MfaRecord, Outcome, ResetSummary, SignInStep, SignInVerified,
    StartedEnrolment,
};
use crate::store::{Applied, Change, Commit, EventQuery, MfaStore, StorageError, StorageErrorKind, Version};

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
}

impl<S> Portal<S> {
    /// A portal named `issuer` (what authenticator apps show) on `store`,
    /// with the system clock and an OS-seeded CSPRNG.
    ///
    /// ```
    /// use portal_mfa::{MemoryStore, Portal, PortalId, SignInStep, UserId};
    ///
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new());
    /// // MFA is off by default: a user with nothing configured just signs in.
    /// assert_eq!(portal.begin_sign_in(&UserId::customer("c-1"))?, SignInStep::NoMfaNeeded);
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn new(id: PortalId, issuer: &str, store: S) -> Self {
        Portal {
            id,
            issuer: issuer.into(),
            store,
            clock: SystemClock,
            rng: Mutex::new(rand::make_rng()),
            default_policy: PortalPolicy::default(),
            notifier: None,
            max_attempts: 32,
        }
    }
}

impl<S: MfaStore, C: Clock, R: CryptoRng + Send> Portal<S, C, R> {
    /// The portal's policy now.
    pub fn policy(&self) -> Result<PortalPolicy> {
        Ok(self
            .store
            .load_policy(&self.id)?
            .map_or(self.default_policy, |(p, _)| p))
    }

    /// A user's record (a fresh one if they never had one). Secrets stay redacted in `Debug`.
    pub fn record(&self, user: &UserId) -> Result<MfaRecord> {
        Ok(self.store.load(&self.id, user)?.map(|(r, _)| r).unwrap_or_default())
    }

    /// Audit events of this portal matching `query` (its `portal` is ignored).
    pub fn audit_events(&self, query: EventQuery) -> Result<Vec<AuditEvent>> {
        Ok(self.store.events(&EventQuery {
            portal: self.id.clone(),
            ..query
        })?)
    }

    // ----- admin: policy -----

    /// Admin: turns enforcement on or off. Enforcing is refused for a SAML portal.
    /// Turning it off does not remove anyone's configured MFA.
    ///
    /// ⚠️ The host must check that `admin` is an administrator of this portal.
    ///
    /// ```
    /// use portal_mfa::{Enforcement, Error, MemoryStore, PolicyRefusal, Portal, PortalId, SignInMethod};
    ///
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new());
    /// portal.set_sign_in_method("admin", SignInMethod::Saml)?;
    /// let refused = portal.set_enforcement("admin", Enforcement::Enforced { grace: None });
    /// assert!(matches!(refused, Err(Error::NotAllowed(PolicyRefusal::EnforcementWithSaml))));
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn set_enforcement(&self, admin: &str, enforcement: Enforcement) -> Result<PortalPolicy> {
        self.update_policy(admin, |p| p.with_enforcement(enforcement))
    }

    /// Admin: changes the sign-in method. Switching an enforced portal to SAML is refused.
    ///
    /// ⚠️ The host must check that `admin` is an administrator of this portal.
    pub fn set_sign_in_method(&self, admin: &str, method: SignInMethod) -> Result<PortalPolicy> {
        self.update_policy(admin, |p| p.with_sign_in_method(method))
    }

    /// Admin: any policy change, validated by the `PortalPolicy` builders `change` uses.
    ///
    /// ⚠️ The host must check that `admin` is an administrator of this portal.
    pub fn update_policy(
        &self,
        admin: &str,
        change: impl Fn(PortalPolicy) -> Result<PortalPolicy>,
    ) -> Result<PortalPolicy> {
        let actor = Actor::Admin(admin.into());
        for attempt in 0..self.max_attempts {
            let planned = self.policy_change(&actor, self.store.load_policy(&self.id)?, &change)?;
            if planned.unchanged {
                return Ok(planned.new);
            }
            match self
                .store
                .commit_policy(&self.id, planned.expected, &planned.new, &planned.events)?
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

    /// After the password step: what to ask for next.
    pub fn begin_sign_in(&self, user: &UserId) -> Result<SignInStep> {
        self.run(user, Actor::User, |record, ctx| record.sign_in_step(ctx))
    }

    /// Checks a TOTP code or a backup code typed at sign-in.
    ///
    /// ```
    /// # use portal_mfa::*;
    /// # let clock = ManualClock::at(1_763_800_000);
    /// # let portal = Portal::new(PortalId::new("acme"), "Acme", MemoryStore::new()).with_clock(clock.clone());
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
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new());
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
    /// ⚠️ The host must check that `admin` administers this portal, and should
    /// confirm the user's identity out of band and step the admin up first.
    ///
    /// ```
    /// # use portal_mfa::*;
    /// # let portal = Portal::new(PortalId::new("acme"), "Acme", MemoryStore::new());
    /// # let user = UserId::customer("c-7");
    /// let summary = portal.admin_reset("admin@acme.example", &user, ResetReason::LostDevice, ResetMode::default())?;
    /// assert!(summary.must_enrol);
    /// assert!(matches!(portal.begin_sign_in(&user)?, SignInStep::MustEnrol { reason: EnrolReason::AdminReset }));
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn admin_reset(
        &self,
        admin: &str,
        user: &UserId,
        reason: ResetReason,
        mode: ResetMode,
    ) -> Result<ResetSummary> {
        self.run(user, Actor::Admin(admin.into()), |record, ctx| {
            record.admin_reset(ctx, reason.clone(), mode)
        })
    }

    /// Admin: imports an existing TOTP enrolment (migration from another system).
    ///
    /// ⚠️ The host must check that `admin` administers this portal.
    pub fn import_authenticator(
        &self,
        admin: &str,
        user: &UserId,
        label: &str,
        secret: Secret,
        params: TotpParams,
    ) -> Result<AuthenticatorId> {
        self.run(user, Actor::Admin(admin.into()), |record, ctx| {
            record.import_authenticator(ctx, label, secret.clone(), params)
        })
    }

    /// Runs the transition against the stored record in one atomic store call
    /// (check-and-record), retrying the whole transition on a conflict.
    fn run<T>(
        &self,
        user: &UserId,
        actor: Actor,
        mut transition: impl FnMut(MfaRecord, &Context<'_>) -> Outcome<T>,
    ) -> Result<T> {
        for attempt in 0..self.max_attempts {
            let now = self.clock.now();
            let mut answer = Answer::default();
            let applied = self.store.apply(&self.id, user, &mut |record, policy| {
                self.step(user, &actor, now, &mut transition, &mut answer, record, policy)
            })?;
            match applied {
                Applied::Done => return self.settle(answer),
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
        }
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
}

impl<S, C: Clock, R> Portal<S, C, R> {
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
    ) -> Change {
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
        Change {
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
        let events = policy_events(&self.id, actor, self.clock.now(), &old, &new);
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

/// What one attempt produced for the caller, kept aside until the store commits.
struct Answer<T> {
    result: Option<Result<T>>,
    notices: Vec<AuditEvent>,
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

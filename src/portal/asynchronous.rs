//! The async driver: the same operations as the sync one, over an
//! [`AsyncMfaStore`], sharing every transition and the per-attempt logic.
//!
//! Retries after a conflict are immediate (there is no runtime to sleep on);
//! the attempt budget still bounds them.

use rand::CryptoRng;

use super::{Answer, Attempt, EnrolmentOptions, Portal};
use crate::backup::IssuedBackupCodes;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::event::{Actor, AuditEvent, ResetMode, ResetReason};
use crate::ids::{Admin, AuthenticatorId, UserId};
use crate::otp::{Secret, TotpParams};
use crate::policy::{Enforcement, PortalPolicy, SignInMethod};
use crate::state::{
    Context, EnrolmentConfirmed, MfaRecord, Outcome, ResetSummary, SignInStep, SignInVerified, StartedEnrolment,
};
use crate::store::{Applied, AsyncBackend, Commit, EventQuery};

impl<S: AsyncBackend, C: Clock, R: CryptoRng + Send> Portal<S, C, R> {
    /// Async [`Portal::policy`].
    pub async fn policy_async(&self) -> Result<PortalPolicy> {
        Ok(self
            .store
            .read_policy(&self.id)
            .await?
            .map_or(self.default_policy, |(p, _)| p))
    }

    /// Async [`Portal::record`].
    pub async fn record_async(&self, user: &UserId) -> Result<MfaRecord> {
        self.run_async(user, Actor::User, |record, _| Outcome {
            result: Ok(record.clone()),
            record,
            changed: false,
            events: Vec::new(),
        })
        .await
    }

    /// Async [`Portal::audit_events`].
    pub async fn audit_events_async(&self, query: EventQuery) -> Result<Vec<AuditEvent>> {
        self.store
            .read_events(&EventQuery {
                portal: self.id.clone(),
                ..query
            })
            .await
    }

    /// Async [`Portal::set_enforcement`].
    pub async fn set_enforcement_async(&self, admin: &Admin, enforcement: Enforcement) -> Result<PortalPolicy> {
        self.update_policy_async(admin, |p| p.with_enforcement(enforcement))
            .await
    }

    /// Async [`Portal::set_sign_in_method`].
    pub async fn set_sign_in_method_async(&self, admin: &Admin, method: SignInMethod) -> Result<PortalPolicy> {
        self.update_policy_async(admin, |p| p.with_sign_in_method(method)).await
    }

    /// Async [`Portal::update_policy`].
    pub async fn update_policy_async(
        &self,
        admin: &Admin,
        change: impl Fn(PortalPolicy) -> Result<PortalPolicy> + Send + Sync,
    ) -> Result<PortalPolicy> {
        let actor = admin.actor();
        for _ in 0..self.max_attempts {
            let planned = self.policy_change(&actor, self.store.read_policy(&self.id).await?, &change)?;
            if planned.unchanged {
                return Ok(planned.new);
            }
            match self
                .store
                .write_policy(&self.id, planned.expected, &planned.new, &planned.events)
                .await?
            {
                Commit::Committed(_) => return Ok(planned.new),
                Commit::Conflict => continue,
            }
        }
        Err(Error::Conflict {
            attempts: self.max_attempts,
        })
    }

    /// Async [`Portal::begin_sign_in`].
    pub async fn begin_sign_in_async(&self, user: &UserId) -> Result<SignInStep> {
        self.run_async(user, Actor::User, |record, ctx| record.sign_in_step(ctx))
            .await
    }

    /// Async [`Portal::complete_grace_sign_in`].
    pub async fn complete_grace_sign_in_async(&self, user: &UserId) -> Result<SignInStep> {
        self.run_async(user, Actor::User, |record, ctx| record.complete_grace_sign_in(ctx))
            .await
    }

    /// Async [`Portal::verify_sign_in`].
    pub async fn verify_sign_in_async(&self, user: &UserId, input: &str) -> Result<SignInVerified> {
        self.run_async(user, Actor::User, |record, ctx| record.verify(ctx, input))
            .await
    }

    /// Async [`Portal::start_enrolment`].
    pub async fn start_enrolment_async(
        &self,
        user: &UserId,
        account: &str,
        label: &str,
        options: EnrolmentOptions<'_>,
    ) -> Result<StartedEnrolment> {
        let (secret, request) = self.enrolment(account, label, options);
        self.run_async(user, Actor::User, |record, ctx| {
            record.start_enrolment(ctx, request, secret.clone())
        })
        .await
    }

    /// Async [`Portal::confirm_enrolment`].
    pub async fn confirm_enrolment_async(&self, user: &UserId, code: &str) -> Result<EnrolmentConfirmed> {
        self.run_async(user, Actor::User, |record, ctx| {
            record.confirm_enrolment(ctx, code, &mut *self.rng())
        })
        .await
    }

    /// Async [`Portal::cancel_enrolment`].
    pub async fn cancel_enrolment_async(&self, user: &UserId) -> Result<()> {
        self.run_async(user, Actor::User, |record, ctx| record.cancel_enrolment(ctx))
            .await
    }

    /// Async [`Portal::delete_authenticator`].
    pub async fn delete_authenticator_async(
        &self,
        user: &UserId,
        authenticator: AuthenticatorId,
        proof: &str,
    ) -> Result<()> {
        self.run_async(user, Actor::User, |record, ctx| {
            record.delete_authenticator(ctx, authenticator, proof)
        })
        .await
    }

    /// Async [`Portal::regenerate_backup_codes`].
    pub async fn regenerate_backup_codes_async(&self, user: &UserId, proof: &str) -> Result<IssuedBackupCodes> {
        self.run_async(user, Actor::User, |record, ctx| {
            record.regenerate_backup_codes(ctx, proof, &mut *self.rng())
        })
        .await
    }

    /// Async [`Portal::admin_reset`].
    pub async fn admin_reset_async(
        &self,
        admin: &Admin,
        user: &UserId,
        reason: ResetReason,
        mode: ResetMode,
    ) -> Result<ResetSummary> {
        self.run_async(user, admin.actor(), |record, ctx| {
            record.admin_reset(ctx, reason.clone(), mode)
        })
        .await
    }

    /// Async [`Portal::import_authenticator`].
    pub async fn import_authenticator_async(
        &self,
        admin: &Admin,
        user: &UserId,
        label: &str,
        secret: Secret,
        params: TotpParams,
    ) -> Result<AuthenticatorId> {
        self.run_async(user, admin.actor(), |record, ctx| {
            record.import_authenticator(ctx, label, secret.clone(), params)
        })
        .await
    }

    /// [`Portal::run`] over the async store: the same per-attempt step and settlement.
    async fn run_async<T: Send>(
        &self,
        user: &UserId,
        actor: Actor,
        mut transition: impl FnMut(MfaRecord, &Context<'_>) -> Outcome<T> + Send,
    ) -> Result<T> {
        for _ in 0..self.max_attempts {
            let mut step = Attempt {
                portal: self,
                user,
                actor: &actor,
                now: self.now()?,
                transition: &mut transition,
                answer: Answer::default(),
            };
            if self.store.run_step(&self.id, user, &mut step).await? == Applied::Done {
                return self.settle(step.answer);
            }
        }
        Err(Error::Conflict {
            attempts: self.max_attempts,
        })
    }
}

//! What a transition is given besides the record: the [`Context`] (portal,
//! user, policy, time, actor) and, to start an enrolment, its request; and
//! what every transition gives back, the [`Outcome`].

use super::record::MfaRecord;
use super::session::{SessionProof, SessionStamp, SessionState};
use crate::error::Result;
use crate::event::AuditEvent;
use crate::ids::{Actor, AuthenticatorId, PortalId, UserId};
use crate::keyring::Keyring;
use crate::passkey::RelyingParty;
use crate::policy::PortalPolicy;

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
    /// The keys session stamps are tagged and checked with.
    pub keys: &'a Keyring,
    /// The site passkeys are verified for, if the portal takes them.
    pub passkeys: Option<&'a RelyingParty>,
}

impl<'a> Context<'a> {
    /// The context of one transition: on `user` of `portal` under `policy`,
    /// at `now` (Unix time), by `actor`, with session stamps tagged under `keys`.
    pub fn new(
        portal: &'a PortalId,
        user: &'a UserId,
        policy: &'a PortalPolicy,
        now: u64,
        actor: &'a Actor,
        keys: &'a Keyring,
    ) -> Self {
        Self {
            portal,
            user,
            policy,
            now,
            actor,
            keys,
            passkeys: None,
        }
    }

    /// With passkeys verified for `relying_party`.
    #[must_use]
    pub fn with_passkeys(mut self, relying_party: Option<&'a RelyingParty>) -> Self {
        self.passkeys = relying_party;
        self
    }

    /// The relying party, or [`Error::PasskeysNotConfigured`](crate::Error::PasskeysNotConfigured).
    pub(crate) fn relying_party(&self) -> Result<&'a RelyingParty> {
        self.passkeys.ok_or(crate::error::Error::PasskeysNotConfigured)
    }

    /// A stamp of `generation` proven now by `proof`, for this user.
    pub(crate) fn stamp(&self, generation: u64, proof: SessionProof) -> SessionStamp {
        SessionStamp::issue(self.keys, self.portal, self.user, generation, proof, self.now)
    }

    /// Whether `stamp` is good in `state`: genuine (tagged under these keys
    /// for this user of this portal, else [`Error::InvalidStamp`](crate::Error::InvalidStamp))
    /// and current (else [`Error::SessionEnded`](crate::Error::SessionEnded)).
    pub(crate) fn check_stamp(&self, state: &SessionState, stamp: &SessionStamp) -> Result<()> {
        stamp.check(self.keys, self.portal, self.user, state)
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

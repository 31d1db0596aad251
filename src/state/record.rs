//! One user's MFA record: authenticators, a pending enrolment, backup codes,
//! the failure count. Plain data; the transitions live in [`super::transitions`].

use std::sync::Arc;

use super::session::{SessionStamp, SessionState, TrustedBrowser, TrustedBrowsers};
use crate::backup::BackupCodes;
use crate::error::{Error, Result};
use crate::event::ResetReason;
use crate::ids::AuthenticatorId;
use crate::otp::{Secret, Totp, TotpParams};
use crate::policy::{Lock, LockoutRule};

/// A secret with its verifier. The verifier (the HMAC pad states) is kept
/// inline so a sign-in touches no memory beyond the record itself; the secret,
/// needed only to persist the record, sits behind a shared pointer.
#[derive(Clone)]
pub(crate) struct Key {
    secret: Arc<Secret>,
    /// The sealed form this secret was read from, so an unchanged secret is
    /// written back without sealing it again (only while its key is current).
    pub(crate) sealed: Option<Arc<SealedForm>>,
    totp: Totp,
}

/// A secret as the stored form keeps it: sealed for one field, under one key.
pub(crate) struct SealedForm {
    pub(crate) field: u8,
    pub(crate) key_id: Box<str>,
    /// Exactly the bytes the encoder writes: key id, nonce, ciphertext and tag.
    pub(crate) bytes: Box<[u8]>,
}

impl Key {
    pub(crate) fn new(secret: Secret, params: TotpParams) -> Self {
        let totp = Totp::new(&secret, params);
        Self {
            secret: Arc::new(secret),
            sealed: None,
            totp,
        }
    }

    pub(crate) fn totp(&self) -> &Totp {
        &self.totp
    }

    /// The shared secret: for the stored-form encoder, which seals it.
    pub(crate) fn secret(&self) -> &Secret {
        &self.secret
    }
}

/// The accessors an authenticator and a pending enrolment share: its id, the
/// label the user gave it, and its OTP parameters.
macro_rules! key_accessors {
    ($id_doc:literal) => {
        #[doc = $id_doc]
        pub fn id(&self) -> AuthenticatorId {
            self.id
        }

        /// The name the user gave it ("Pixel 8").
        pub fn label(&self) -> &str {
            &self.label
        }

        /// Its OTP parameters.
        pub fn params(&self) -> &TotpParams {
            self.key.totp.params()
        }
    };
}

/// A confirmed authenticator app.
#[derive(Clone)]
pub struct Authenticator {
    pub(crate) id: AuthenticatorId,
    pub(crate) label: Arc<str>,
    pub(crate) key: Key,
    pub(crate) added_at: u64,
    /// The newest time step accepted from it: that step and older ones are replays.
    pub(crate) last_used_step: Option<u64>,
}

impl Authenticator {
    key_accessors!("Its id within the user's record.");

    /// When it was confirmed (Unix time).
    pub fn added_at(&self) -> u64 {
        self.added_at
    }

    /// The newest time step accepted from it.
    pub fn last_used_step(&self) -> Option<u64> {
        self.last_used_step
    }
}

impl core::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Authenticator")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("params", self.params())
            .field("added_at", &self.added_at)
            .field("last_used_step", &self.last_used_step)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An enrolment waiting for its first code.
#[derive(Clone)]
pub struct PendingEnrolment {
    pub(crate) id: AuthenticatorId,
    pub(crate) label: Arc<str>,
    pub(crate) key: Key,
    pub(crate) started_at: u64,
    pub(crate) expires_at: u64,
    pub(crate) replaces: Option<AuthenticatorId>,
    /// Wrong codes entered to confirm it so far.
    pub(crate) wrong_codes: u8,
}

impl PendingEnrolment {
    /// Wrong codes after which a pending enrolment is cancelled (with an
    /// [`EventKind::EnrolmentFailed`](crate::audit::EventKind::EnrolmentFailed) event).
    pub const MAX_WRONG_CODES: u8 = 5;

    /// Wrong codes entered to confirm it so far.
    pub fn wrong_codes(&self) -> u8 {
        self.wrong_codes
    }

    key_accessors!("The id the authenticator will have.");

    /// When it was started.
    pub fn started_at(&self) -> u64 {
        self.started_at
    }

    /// From this Unix time on it can no longer be confirmed.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The authenticator it replaces once confirmed.
    pub fn replaces(&self) -> Option<AuthenticatorId> {
        self.replaces
    }
}

impl core::fmt::Debug for PendingEnrolment {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingEnrolment")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("expires_at", &self.expires_at)
            .field("replaces", &self.replaces)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl core::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Passkeys")
            .field("credentials", &self.credentials)
            .field("registration", &self.registration)
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

/// Bytes the stored form keeps sealed (a passkey's credential, a ceremony's
/// state): identifying, not secret; opened once when the record is read, and
/// written back in the form they were read in while their key is current.
#[derive(Clone)]
pub(crate) struct SealedBytes {
    pub(crate) plain: Arc<[u8]>,
    pub(crate) sealed: Option<Arc<SealedForm>>,
}

impl core::fmt::Debug for SealedBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("<sealed>")
    }
}

impl SealedBytes {
    pub(crate) fn new(plain: impl Into<Arc<[u8]>>) -> Self {
        Self {
            plain: plain.into(),
            sealed: None,
        }
    }
}

/// A confirmed passkey or security key (a WebAuthn credential).
#[derive(Clone)]
pub struct Passkey {
    pub(crate) id: AuthenticatorId,
    pub(crate) label: Arc<str>,
    pub(crate) added_at: u64,
    pub(crate) last_used_at: Option<u64>,
    /// The newest signature counter accepted from it (0 for authenticators that keep none).
    pub(crate) sign_count: u32,
    pub(crate) credential_id: Arc<[u8]>,
    /// The verifier's credential (its id and public key among it), as `webauthn-rs` serialises it.
    pub(crate) credential: SealedBytes,
}

impl Passkey {
    /// Its id within the user's record (one numbering with the authenticator apps).
    pub fn id(&self) -> AuthenticatorId {
        self.id
    }

    /// The name the user gave it ("YubiKey 5", "This laptop").
    pub fn label(&self) -> &str {
        &self.label
    }

    /// When it was registered (Unix time).
    pub fn added_at(&self) -> u64 {
        self.added_at
    }

    /// When it last signed the user in or proved a change.
    pub fn last_used_at(&self) -> Option<u64> {
        self.last_used_at
    }

    /// The newest signature counter accepted from it: a response that does
    /// not pass it is refused as a possible clone. Authenticators that keep
    /// no counter (most synced passkeys) always report 0.
    pub fn sign_count(&self) -> u32 {
        self.sign_count
    }
}

impl core::fmt::Debug for Passkey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Passkey")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("added_at", &self.added_at)
            .field("last_used_at", &self.last_used_at)
            .field("sign_count", &self.sign_count)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// A passkey registration waiting for the browser's response.
#[derive(Clone)]
pub struct PendingPasskey {
    pub(crate) id: AuthenticatorId,
    pub(crate) label: Arc<str>,
    pub(crate) started_at: u64,
    pub(crate) expires_at: u64,
    pub(crate) replaces: Option<AuthenticatorId>,
    /// Responses refused so far.
    pub(crate) failures: u8,
    /// The verifier's ceremony state (the challenge among it).
    pub(crate) state: SealedBytes,
}

impl PendingPasskey {
    /// Refused responses after which a registration is cancelled, as an enrolment is after wrong codes.
    pub const MAX_FAILURES: u8 = PendingEnrolment::MAX_WRONG_CODES;

    /// The id the passkey will have.
    pub fn id(&self) -> AuthenticatorId {
        self.id
    }

    /// The name the user gave it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// From this Unix time on its response is refused.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The factor it replaces once registered.
    pub fn replaces(&self) -> Option<AuthenticatorId> {
        self.replaces
    }

    /// Responses refused so far.
    pub fn failures(&self) -> u8 {
        self.failures
    }
}

impl core::fmt::Debug for PendingPasskey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingPasskey")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("expires_at", &self.expires_at)
            .field("replaces", &self.replaces)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// A sign-in (or proof) challenge waiting for an assertion: single use.
#[derive(Clone, Debug)]
pub(crate) struct PasskeyChallenge {
    pub(crate) issued_at: u64,
    pub(crate) expires_at: u64,
    pub(crate) state: SealedBytes,
}

/// A user's passkeys and their ceremonies in progress.
#[derive(Clone)]
pub(crate) struct Passkeys {
    /// The WebAuthn user handle: random, so it says nothing of the user.
    pub(crate) user_handle: [u8; 16],
    pub(crate) credentials: Vec<Passkey>,
    pub(crate) registration: Option<PendingPasskey>,
    pub(crate) challenge: Option<PasskeyChallenge>,
}

/// Consecutive failures and locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    pub(crate) consecutive: u32,
    pub(crate) locks: u32,
    pub(crate) locked_until: Option<u64>,
}

impl Failures {
    /// Consecutive wrong codes since the last success or reset.
    pub fn consecutive(&self) -> u32 {
        self.consecutive
    }

    /// Locks imposed since the last success or reset.
    pub fn locks(&self) -> u32 {
        self.locks
    }

    /// The end of the current or last timed lock.
    pub fn locked_until(&self) -> Option<u64> {
        self.locked_until
    }

    /// Wrong codes still allowed under `rule` before MFA locks again: the
    /// count resets only on a success, so after a lock ends the user has a
    /// full round again (`max - consecutive % max`), until the hard limit.
    pub fn attempts_left(&self, rule: &LockoutRule) -> u32 {
        let max = u32::from(rule.max_failures()).max(1);
        let round = max - self.consecutive % max;
        round.min(LockoutRule::HARD_LIMIT.saturating_sub(self.consecutive))
    }

    /// The lock that holds at `now`, if any.
    pub fn active_lock(&self, now: u64) -> Option<Lock> {
        self.last_lock().filter(|lock| lock.holds_at(now))
    }

    /// The current or last lock: one until an admin reset after
    /// [`LockoutRule::HARD_LIMIT`] failures, or for a lock that would end past
    /// the last second a clock may show; else the last timed one.
    pub fn last_lock(&self) -> Option<Lock> {
        if self.consecutive >= LockoutRule::HARD_LIMIT {
            return Some(Lock { until: None });
        }
        self.locked_until.map(|until| Lock {
            until: (until < crate::clock::END_OF_TIME).then_some(until),
        })
    }
}

/// The last admin reset, kept on the record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResetRecord {
    /// The admin.
    pub by: Arc<str>,
    /// Why.
    pub reason: ResetReason,
    /// When (Unix time).
    pub at: u64,
}

/// A user's own request that an admin reset their MFA, made after the
/// password by a user who can give no second factor. It removes nothing by
/// itself: an admin approves it (a reset) or declines it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResetRequest {
    /// When they asked (Unix time).
    pub at: u64,
    /// What they wrote, for the admin (at most [`ResetRequest::MAX_NOTE_CHARS`]).
    pub note: Arc<str>,
}

impl ResetRequest {
    /// The longest note, in characters: room for "lost my phone on the train,
    /// my backup codes were on it" and a ticket number, not for an essay.
    pub const MAX_NOTE_CHARS: usize = 280;
    /// How long after a decline the user may ask again: a day, so a refused
    /// request cannot be filed again and again at the help desk.
    pub const COOLDOWN_SECS: u64 = 24 * 3600;
}

/// The last reset, the open request and the last decline (which starts the
/// cooldown): one box, as all are rare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resets {
    pub(crate) last: Option<ResetRecord>,
    pub(crate) open: Option<ResetRequest>,
    pub(crate) declined_at: Option<u64>,
}

impl Resets {
    /// The box for a record whose only reset fact is `last` (forms before requests).
    pub(crate) fn after(last: Option<ResetRecord>) -> Option<Box<Self>> {
        last.map(|last| {
            Box::new(Self {
                last: Some(last),
                ..Self::default()
            })
        })
    }

    /// Whether a request is open or was declined: what the stored form keeps beside the last reset.
    pub(crate) fn has_requests(&self) -> bool {
        self.open.is_some() || self.declined_at.is_some()
    }
}

/// One user's MFA state.
///
/// A user with no record at all is `MfaRecord::default()`: no MFA. `Debug`
/// never shows secrets or backup-code hashes.
#[derive(Clone, Debug, Default)]
pub struct MfaRecord {
    // A boxed slice, not a `Vec`: records move by value through every
    // transition, and this keeps a record within 128 bytes, which a move copies
    // inline (past that, each move is a call to `memcpy`).
    pub(crate) authenticators: Box<[Authenticator]>,
    // Boxed: rare, and records sit inline in stores' tables.
    pub(crate) pending: Option<Box<PendingEnrolment>>,
    pub(crate) backup_codes: Option<BackupCodes>,
    pub(crate) failures: Failures,
    pub(crate) must_enrol: bool,
    pub(crate) grace_sign_ins_used: u32,
    pub(crate) next_authenticator_id: u32,
    // Boxed: rare. The last reset, the open reset request, the last decline.
    pub(crate) resets: Option<Box<Resets>>,
    // One past the time, so "never" costs no tag word (see `authenticators`).
    pub(crate) last_verified: Option<core::num::NonZeroU64>,
    /// The session generation: stamps of any other are no longer good.
    pub(crate) sessions: u64,
    // Boxed: most users trust no browser.
    pub(crate) trusted: Option<Box<TrustedBrowsers>>,
    pub(crate) next_browser_id: u32,
    // Boxed: most users hold no passkey.
    pub(crate) passkeys: Option<Box<Passkeys>>,
}

// See `authenticators`: a field added here must keep a record within 128 bytes.
const _: () = assert!(size_of::<MfaRecord>() <= 128);

impl MfaRecord {
    /// Most factors one user may have: authenticator apps and passkeys
    /// together. Each sign-in code is checked against every app, and each
    /// passkey is named in every sign-in challenge; eight covers a phone, a
    /// spare, a laptop and a few keys, and bounds both.
    pub const MAX_AUTHENTICATORS: usize = 8;

    /// Confirmed passkeys and security keys.
    pub fn passkeys(&self) -> &[Passkey] {
        self.passkeys.as_ref().map_or(&[], |p| &p.credentials)
    }

    /// The passkey registration waiting for the browser, if any.
    pub fn pending_passkey(&self) -> Option<&PendingPasskey> {
        self.passkeys.as_ref().and_then(|p| p.registration.as_ref())
    }

    /// Confirmed factors of both kinds.
    pub fn factor_count(&self) -> usize {
        self.authenticators.len() + self.passkeys().len()
    }

    /// Whether `id` names a confirmed factor (an app or a passkey).
    pub(crate) fn has_factor(&self, id: AuthenticatorId) -> bool {
        self.authenticators.iter().any(|a| a.id == id) || self.passkeys().iter().any(|p| p.id == id)
    }

    /// Active authenticators.
    pub fn authenticators(&self) -> &[Authenticator] {
        &self.authenticators
    }

    /// Adds an authenticator (rare: the list grows by exactly one).
    pub(crate) fn add_authenticator(&mut self, authenticator: Authenticator) {
        let list: Vec<Authenticator> = self.authenticators.iter().cloned().chain([authenticator]).collect();
        self.replace_authenticators(list);
    }

    /// Removes the authenticator `id`; whether there was one.
    pub(crate) fn remove_authenticator(&mut self, id: AuthenticatorId) -> bool {
        let kept = self.authenticators.iter().filter(|a| a.id != id).count();
        if kept == self.authenticators.len() {
            return false;
        }
        let mut list = Vec::with_capacity(kept);
        list.extend(self.authenticators.iter().filter(|a| a.id != id).cloned());
        self.replace_authenticators(list);
        true
    }

    /// The list becomes `list` (exactly as long as its capacity). Copies,
    /// never moves: the old list is dropped whole, so every key in it is
    /// zeroized where it lies, and no pad state is left in freed memory.
    fn replace_authenticators(&mut self, list: Vec<Authenticator>) {
        debug_assert_eq!(list.len(), list.capacity());
        self.authenticators = list.into_boxed_slice();
    }

    /// The enrolment waiting for confirmation, if any.
    pub fn pending(&self) -> Option<&PendingEnrolment> {
        self.pending.as_deref()
    }

    /// Stored backup codes, if MFA is enabled.
    pub fn backup_codes(&self) -> Option<&BackupCodes> {
        self.backup_codes.as_ref()
    }

    /// Failure count and locks.
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// Whether an admin reset requires enrolment at the next sign-in.
    pub fn must_enrol(&self) -> bool {
        self.must_enrol
    }

    /// Grace sign-ins used since enforcement.
    pub fn grace_sign_ins_used(&self) -> u32 {
        self.grace_sign_ins_used
    }

    /// The last admin reset.
    pub fn last_reset(&self) -> Option<&ResetRecord> {
        self.resets.as_ref().and_then(|r| r.last.as_ref())
    }

    /// The user's open request for a reset, if any.
    pub fn reset_request(&self) -> Option<&ResetRequest> {
        self.resets.as_ref().and_then(|r| r.open.as_ref())
    }

    /// When an admin last declined the user's request (the cooldown runs from it).
    pub fn reset_request_declined_at(&self) -> Option<u64> {
        self.resets.as_ref().and_then(|r| r.declined_at)
    }

    /// The highest authenticator id handed out so far (ids are never reused).
    pub fn next_authenticator_id(&self) -> u32 {
        self.next_authenticator_id
    }

    /// Whether the user has MFA turned on (at least one confirmed authenticator app or passkey).
    pub fn mfa_enabled(&self) -> bool {
        self.factor_count() > 0
    }

    /// When the second factor was last proven (Unix time).
    pub fn last_verified_at(&self) -> Option<u64> {
        self.last_verified.map(|at| at.get() - 1)
    }

    pub(crate) fn set_last_verified_at(&mut self, at: Option<u64>) {
        self.last_verified = at.and_then(|at| core::num::NonZeroU64::new(at.saturating_add(1)));
    }

    /// The session generation: how many times every session of this user was
    /// ended. A [`SessionStamp`] of any other generation is no longer good.
    pub fn session_generation(&self) -> u64 {
        self.sessions
    }

    /// Whether `stamp` is still current here: nothing that could have granted
    /// it was taken away since it was issued (the generation has not moved
    /// on, and the browser that signed it in, if one did, is still trusted).
    /// Whether it is genuine is the keyring's to say
    /// ([`Portal::check_session`](crate::Portal::check_session) checks both).
    pub fn session_is_current(&self, stamp: &SessionStamp) -> bool {
        self.session_state().admits(stamp)
    }

    /// What a session check reads of the record.
    pub(crate) fn session_state(&self) -> SessionState {
        SessionState {
            generation: self.sessions,
            browsers: self.trusted_browsers().iter().map(|b| b.id).collect(),
        }
    }

    /// The browsers the user trusts, expired ones included until the record's
    /// next change (see [`TrustedBrowser::expires_under`]).
    pub fn trusted_browsers(&self) -> &[TrustedBrowser] {
        self.trusted.as_ref().map_or(&[], |t| &t.browsers)
    }

    /// Checks what no transition can produce: a decoded record that fails
    /// this is [`Error::CorruptRecord`], not a record.
    pub(crate) fn check_consistent(&self) -> Result<()> {
        let corrupt = |why| Err(Error::CorruptRecord(why));
        if self.factor_count() > Self::MAX_AUTHENTICATORS {
            return corrupt("more authenticators than allowed");
        }
        let mut ids: Vec<u32> = self.authenticators.iter().map(|a| a.id.0).collect();
        ids.extend(self.pending.as_ref().map(|p| p.id.0));
        ids.extend(self.passkeys().iter().map(|p| p.id.0));
        ids.extend(self.pending_passkey().map(|p| p.id.0));
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != count {
            return corrupt("two authenticators share an id");
        }
        if ids.iter().any(|&id| id == 0 || id > self.next_authenticator_id) {
            return corrupt("authenticator id out of sequence");
        }
        // No history ends a user's sessions four billion times.
        if self.sessions > u64::from(u32::MAX) {
            return corrupt("a session generation past any history");
        }
        let browsers = self.trusted_browsers();
        if browsers.len() > TrustedBrowsers::MAX {
            return corrupt("more trusted browsers than allowed");
        }
        let mut ids: Vec<u32> = browsers.iter().map(|b| b.id.0).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != browsers.len() || ids.iter().any(|&id| id == 0 || id > self.next_browser_id) {
            return corrupt("trusted browser ids out of sequence");
        }
        if let Some(p) = &self.pending {
            if p.expires_at < p.started_at {
                return corrupt("pending enrolment expires before it starts");
            }
            if p.replaces
                .is_some_and(|r| !self.authenticators.iter().any(|a| a.id == r))
            {
                return corrupt("pending enrolment replaces an unknown authenticator");
            }
        }
        if let Some(p) = self.pending_passkey() {
            if p.expires_at < p.started_at {
                return corrupt("pending passkey expires before it starts");
            }
            if p.replaces.is_some_and(|r| !self.has_factor(r)) {
                return corrupt("pending passkey replaces an unknown factor");
            }
        }
        let credentials: Vec<&[u8]> = self.passkeys().iter().map(|p| &*p.credential_id).collect();
        if (1..credentials.len()).any(|i| credentials[..i].contains(&credentials[i])) {
            return corrupt("two passkeys share a credential id");
        }
        Ok(())
    }
}

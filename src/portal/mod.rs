//! The driver a host calls: loads a record, runs the pure transition, commits
//! the result with its events, retries on a version conflict.
//!
//! One [`Portal`] per portal (one policy for all its customers, vendors and
//! contacts). Many app instances may each have one on the same store: the
//! store's compare-and-swap keeps them from both accepting one code.

mod driver;
mod op;
#[cfg(feature = "tracing")]
mod trace;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rand::CryptoRng;
use rand::rngs::StdRng;

use self::op::Driver;
pub use self::op::Op;
use crate::clock::{AsyncSleep, Clock, SystemClock};
use crate::error::{Error, Result};
use crate::event::{AuditEvent, Notifier, ResetMode, ResetReason};
use crate::ids::{Actor, Admin, AuthenticatorId, BrowserId, PortalId, SYSTEM, USER, UserId};
use crate::keyring::Keyring;
use crate::otp::{Secret, TotpParams};
use crate::page::Page;
use crate::passkey::{PasskeyOptions, RelyingParty};
use crate::policy::{Enforcement, PortalPolicy, SignInMethod};
use crate::state::{
    BackupCodesRegenerated, Context, EnrolmentConfirmed, EnrolmentRequest, GraceSpent, MfaRecord, Outcome,
    PasskeyRegistrationStarted, ResetRequest, ResetSummary, SessionStamp, SignInStep, SignInVerified, StartedEnrolment,
    TrustedBrowser, TrustedBrowserIssued,
};
use crate::store::EventQuery;
use crate::stored::decode_record;
use crate::users::{BulkReset, UserQuery, UserStatus};

/// Options for [`Portal::start_enrolment`]: none for a first authenticator.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct EnrolmentOptions<'a> {
    /// The authenticator to replace once the new one is confirmed.
    pub replaces: Option<AuthenticatorId>,
    /// A fresh code, required when the user already has MFA.
    pub proof: Option<&'a str>,
}

impl<'a> EnrolmentOptions<'a> {
    /// Replaces `authenticator` once the new one is confirmed ("change
    /// authenticator": the old one keeps working until then).
    #[must_use]
    pub fn replacing(mut self, authenticator: AuthenticatorId) -> Self {
        self.replaces = Some(authenticator);
        self
    }

    /// With a fresh TOTP or backup code, as a user who already has MFA must give.
    #[must_use]
    pub fn with_proof(mut self, proof: &'a str) -> Self {
        self.proof = Some(proof);
        self
    }
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
    /// What session stamps are tagged with: the host's keyring, or a key of
    /// this portal's own (stamps then end with the process).
    stamp_keys: Arc<Keyring>,
    sleep: Option<Arc<dyn AsyncSleep>>,
    passkeys: Option<Arc<RelyingParty>>,
}

/// How far one batch of a [`Portal::bulk_reset`] (or its preview) got.
#[derive(Debug)]
#[non_exhaustive]
pub struct BulkResetProgress {
    /// Records looked at in this batch.
    pub examined: usize,
    /// Users reset in this batch (for a preview: who would be).
    pub reset: usize,
    /// Users whose record could not be read or written, with why; the sweep went on past them.
    pub failed: Vec<(UserId, Error)>,
    /// Where the next batch starts; `None` when the sweep is complete.
    pub next: Option<UserId>,
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

impl<S, C, R> Portal<S, C, R> {
    /// Events each [`Portal::prune_events`] store call deletes at most.
    pub const PRUNE_BATCH: usize = 500;
}

impl<S> Portal<S> {
    /// A portal named `issuer` (what authenticator apps show) on `store`,
    /// with the system clock and an OS-seeded CSPRNG.
    ///
    /// The name is checked once, here: not empty, no `:` (the separator of an
    /// app's label), printable text, at most 256 bytes. Errors:
    /// [`Error::InvalidUri`] with [`UriError::ColonInName`](crate::otp::UriError::ColonInName),
    /// [`UriError::UnprintableName`](crate::otp::UriError::UnprintableName),
    /// [`UriError::MissingLabel`](crate::otp::UriError::MissingLabel) or
    /// [`UriError::TooLong`](crate::otp::UriError::TooLong).
    ///
    /// ```
    /// use portal_mfa::{Portal, PortalId, SignInStep, UserId, store::MemoryStore};
    ///
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())?;
    /// // MFA is off by default: a user with nothing configured just signs in.
    /// assert!(matches!(portal.begin_sign_in(&UserId::customer("c-1")).run()?, SignInStep::NoMfaNeeded { .. }));
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
            stamp_keys: Arc::new(own_stamp_keys()),
            sleep: None,
            passkeys: None,
        })
    }
}

/// Every operation returns an [`Op`]: `.run()` it on a blocking store, `.await`
/// it on an async store. Each is written once, below, for both.
impl<S: Sync, C: Clock, R: CryptoRng + Send> Portal<S, C, R> {
    /// The portal's policy now.
    pub fn policy(&self) -> Op<'_, S, PortalPolicy> {
        self.op("policy", None, move |d| async move {
            Ok(d.backend
                .read_policy(&self.id)
                .await?
                .map_or(self.default_policy, |(p, _)| p))
        })
    }

    /// A user's record (a fresh one if they never had one). Secrets stay redacted in `Debug`.
    pub fn record<'a>(&'a self, user: &'a UserId) -> Op<'a, S, MfaRecord> {
        self.reading_user("record", user, |record, _| Outcome {
            result: Ok(record.clone()),
            record,
            changed: false,
            events: Vec::new(),
        })
    }

    /// One page of this portal's audit events matching `query` (its `portal`
    /// is ignored). Continue with [`EventQuery::after`] and the page's
    /// [`next`](Page::next) cursor.
    ///
    /// Errors: [`Error::InvalidCursor`] for a cursor of another query,
    /// [`Error::InvalidPageSize`] for a limit of 0.
    pub fn audit_events(&self, query: EventQuery) -> Op<'_, S, Page<AuditEvent>> {
        self.op("audit_events", None, move |d| self.event_page(d, query))
    }

    /// One page of events: the store asked for one more than the page holds,
    /// so the page knows whether a next one exists.
    async fn event_page(&self, d: Driver<'_>, query: EventQuery) -> Result<Page<AuditEvent>> {
        let (query, size) = query.resolve(&self.id)?;
        let rows = d.backend.read_events(&query).await?;
        Page::of(rows, size, |(position, _)| query.cursor_at(*position)).try_map(|(_, event)| Ok(event))
    }

    /// Writes every event `query` selects to `out` as JSON Lines (one
    /// [`AuditEvent`] per line, the shape `guide::hosts` documents), reading the
    /// store a page of [`MAX_PAGE`](crate::MAX_PAGE) at a time: memory stays
    /// one page however long the trail. The query's cursor, if any, is where
    /// it starts; its limit is ignored. Answers how many events were written.
    ///
    /// Errors: [`Error::Export`] when `out` fails; what was written before stays written.
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn export_events<'a>(&'a self, query: EventQuery, out: &'a mut (dyn std::io::Write + Send)) -> Op<'a, S, u64> {
        self.op("export_events", None, move |d| async move {
            let mut written = 0u64;
            let mut next = Some(query.limit(crate::page::MAX_PAGE));
            while let Some(query) = next.take() {
                let page = self.event_page(d, query.clone()).await?;
                for event in &page.items {
                    serde_json::to_writer(&mut *out, event).map_err(|e| Error::Export(e.into()))?;
                    out.write_all(b"\n").map_err(Error::Export)?;
                    written += 1;
                }
                next = page.next.map(|cursor| query.after(cursor));
            }
            out.flush().map_err(Error::Export)?;
            Ok(written)
        })
    }

    /// Deletes this portal's audit events from before `before` (Unix time),
    /// oldest first in commit order, stopping at the first event at or after
    /// it: the trail is cut from its start, never with holes (an event
    /// written under a clock that ran backwards waits for the events before it).
    /// Answers how many were deleted.
    ///
    /// It deletes in batches of [`Portal::PRUNE_BATCH`], each its own short
    /// store call, and rests as long as each batch took before the next, so
    /// sign-ins are never held up for longer than one batch. Run it from a scheduled job; it is safe to stop and run again.
    pub fn prune_events(&self, before: u64) -> Op<'_, S, u64> {
        self.op("prune_events", None, move |d| async move {
            let mut total = 0u64;
            loop {
                let started = std::time::Instant::now();
                let deleted = d.backend.prune_events(&self.id, before, Self::PRUNE_BATCH).await?;
                total += deleted as u64;
                if deleted < Self::PRUNE_BATCH {
                    return Ok(total);
                }
                // Rest as long as the batch took: the sign-ins queued behind it
                // get the store (a lock is rarely fair), and a prune takes at
                // most half the store's time.
                self.wait(d.pause, started.elapsed()).await;
            }
        })
    }

    /// How many of this portal's events of each kind happened in `[from, until)`,
    /// by [`EventKind::name`](crate::audit::EventKind::name): for a dashboard ("wrong
    /// codes in the last 24 h" is `"verification_failed"`). Kinds with none are absent.
    pub fn event_counts(&self, from: u64, until: u64) -> Op<'_, S, BTreeMap<String, u64>> {
        self.op("event_counts", None, move |d| async move {
            let counts = d.backend.count_events(&self.id, from, until).await?;
            Ok(counts.into_iter().collect())
        })
    }

    /// One page of this portal's users with their MFA status, in user order
    /// (kind, then id), filtered by status and kind. Continue with
    /// [`UserQuery::after`] and the page's [`next`](Page::next) cursor.
    ///
    /// It lists users the store has a record for; a user who never touched
    /// MFA has none (and MFA off). Errors: [`Error::InvalidCursor`] for a
    /// cursor of other filters, [`Error::InvalidPageSize`] for a limit of 0,
    /// [`Error::CorruptRecord`] for a stored id over [`UserId::MAX_LEN`] (which
    /// no operation writes). Every cursor fits a link: at most 1 088 characters.
    pub fn users(&self, query: UserQuery) -> Op<'_, S, Page<UserStatus>> {
        self.op("users", None, move |d| async move {
            let policy = d
                .backend
                .read_policy(&self.id)
                .await?
                .map_or(self.default_policy, |(p, _)| p);
            let now = self.now()?;
            let (listing, size) = query.resolve(&self.id, &policy, now)?;
            let rows = match listing {
                Some(listing) => d.backend.users(&listing).await?,
                None => Vec::new(),
            };
            // No operation writes such an id, and its cursor would not fit a link.
            if rows.iter().any(|(user, _)| user.check_len().is_err()) {
                return Err(Error::CorruptRecord("a stored user id is longer than UserId::MAX_LEN"));
            }
            Page::of(rows, size, |(user, _)| query.cursor_at(&self.id, user))
                .try_map(|(user, summary)| Ok(UserStatus::of(user, &summary, &policy, now)))
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
    pub fn reseal<'a>(&'a self, after: Option<&'a UserId>, batch: usize) -> Op<'a, S, ResealProgress> {
        self.reseal_batch("reseal", after, batch, false)
    }

    /// [`Portal::reseal`]'s dry run: the same batches, counting in
    /// [`ResealProgress::resealed`] the records it would re-seal, writing nothing.
    pub fn reseal_preview<'a>(&'a self, after: Option<&'a UserId>, batch: usize) -> Op<'a, S, ResealProgress> {
        self.reseal_batch("reseal_preview", after, batch, true)
    }

    /// The keys that open this portal's records: the host's keyring, or the store's own.
    fn keyring_of<'d>(&'d self, d: Driver<'d>) -> Result<&'d Keyring> {
        self.keyring
            .as_deref()
            .or_else(|| d.backend.own_keyring())
            .ok_or(Error::NoKeyring)
    }

    /// One page of a sweep over the portal's records (`reseal`, `bulk_reset`): up to `batch`
    /// after `after`, and where the next page starts (`None`: this was the last).
    async fn sweep_page(
        &self,
        d: Driver<'_>,
        after: Option<&UserId>,
        batch: usize,
    ) -> Result<(Vec<(UserId, crate::store::Stored)>, Option<UserId>)> {
        let batch = batch.max(1);
        let page = d.backend.stored_records(&self.id, after, batch).await?;
        let next = (page.len() >= batch)
            .then(|| page.last().map(|(u, _)| u.clone()))
            .flatten();
        Ok((page, next))
    }

    fn reseal_batch<'a>(
        &'a self,
        name: &'static str,
        after: Option<&'a UserId>,
        batch: usize,
        dry_run: bool,
    ) -> Op<'a, S, ResealProgress> {
        self.op(name, None, move |d| async move {
            let keyring = self.keyring_of(d)?;
            let (page, next) = self.sweep_page(d, after, batch).await?;
            let mut progress = ResealProgress {
                examined: page.len(),
                resealed: 0,
                failed: Vec::new(),
                next,
            };
            for (user, stored) in page {
                let stale = match decode_record(&stored.bytes, &self.id, &user, keyring) {
                    Ok(decoded) => decoded.stale_key,
                    Err(e) => {
                        progress.failed.push((user, e));
                        continue;
                    }
                };
                if !stale {
                    continue;
                }
                if dry_run {
                    progress.resealed += 1;
                    continue;
                }
                // A write of the record unchanged: sealing it seals under the current key.
                let rewrite = self.on_record(d, &user, &SYSTEM, false, |record, _| Outcome {
                    record,
                    changed: true,
                    events: Vec::new(),
                    result: Ok(()),
                });
                match rewrite.await {
                    Ok(()) => progress.resealed += 1,
                    Err(e) => progress.failed.push((user, e)),
                }
            }
            Ok(progress)
        })
    }

    // ----- admin: policy -----

    /// Admin: turns enforcement on or off. Enforcing is refused for a SAML portal.
    /// Turning it off does not remove anyone's configured MFA.
    ///
    /// ```
    /// use portal_mfa::{Admin, Enforcement, Error, PolicyRefusal, Portal, PortalId, SignInMethod, store::MemoryStore};
    ///
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())?;
    /// let admin = Admin::authorised("admin@acme.example");
    /// portal.set_sign_in_method(&admin, SignInMethod::Saml).run()?;
    /// let refused = portal.set_enforcement(&admin, Enforcement::Enforced { grace: None }).run();
    /// assert!(matches!(refused, Err(Error::NotAllowed(PolicyRefusal::EnforcementWithSaml))));
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn set_enforcement<'a>(&'a self, admin: &'a Admin, enforcement: Enforcement) -> Op<'a, S, PortalPolicy> {
        self.change_policy("set_enforcement", admin, move |p| p.with_enforcement(enforcement))
    }

    /// Admin: changes the sign-in method. Switching an enforced portal to SAML is refused.
    pub fn set_sign_in_method<'a>(&'a self, admin: &'a Admin, method: SignInMethod) -> Op<'a, S, PortalPolicy> {
        self.change_policy("set_sign_in_method", admin, move |p| p.with_sign_in_method(method))
    }

    /// Admin: any policy change, validated by the `PortalPolicy` builders `change` uses.
    /// `change` may run more than once if another admin saves at the same time.
    pub fn update_policy<'a>(
        &'a self,
        admin: &'a Admin,
        change: impl Fn(PortalPolicy) -> Result<PortalPolicy> + Send + Sync + 'a,
    ) -> Op<'a, S, PortalPolicy> {
        self.change_policy("update_policy", admin, change)
    }

    // ----- user flows -----

    /// After the password step: what to ask for next. A pure read: a page
    /// reload that asks again changes nothing. Keep the answer in the host's
    /// server-side session between the password page and the code page.
    pub fn begin_sign_in<'a>(&'a self, user: &'a UserId) -> Op<'a, S, SignInStep> {
        self.reading_user("begin_sign_in", user, |record, ctx| record.sign_in_step(ctx))
    }

    /// [`Portal::begin_sign_in`] for a browser that presents a trusted-browser
    /// token (its cookie): [`SignInStep::TrustedBrowser`], with no code, when
    /// the token is one this user trusts now. Where a code would be asked for,
    /// any other token is counted like a wrong code:
    /// [`Error::UntrustedBrowser`] or, when that locks MFA, [`Error::LockedOut`].
    ///
    /// ⚠️ On any error, clear the browser's cookie, then ask for a code
    /// ([`Portal::begin_sign_in`] says what to show).
    pub fn begin_sign_in_with_browser<'a>(&'a self, user: &'a UserId, token: &'a str) -> Op<'a, S, SignInStep> {
        self.reading_user("begin_sign_in_with_browser", user, move |record, ctx| {
            record.sign_in_with_browser(ctx, token)
        })
    }

    /// Whether a session's stamp is still good: `Ok(())`;
    /// [`Error::InvalidStamp`] for a stamp this portal did not issue to this
    /// user (edited, forged, or another user's or portal's); or
    /// [`Error::SessionEnded`] once anything that could have granted it was
    /// taken away (a reset, a removed or replaced authenticator, MFA turned
    /// off, regenerated backup codes, the trusted browser that signed it in
    /// forgotten, [`Portal::end_sessions`]). One read of the record by its
    /// key; no secret is opened.
    ///
    /// ⚠️ Call it on every request of a signed-in session, before acting on
    /// it, and end the session on any error: a store that cannot answer cannot
    /// vouch for the session either. A stamp of
    /// [`SessionProof::EnrolmentOnly`](crate::session::SessionProof::EnrolmentOnly)
    /// (from [`SignInStep::MustEnrol`]) is not a signed-in session: it answers
    /// [`Error::ProofRequired`] here, and is good only for the enrolment it was given for.
    pub fn check_session<'a>(&'a self, user: &'a UserId, stamp: &'a SessionStamp) -> Op<'a, S, ()> {
        self.op("check_session", Some(user), move |d| async move {
            user.check_len()?;
            let state = d
                .backend
                .session_state(&self.id, user, stamp.browser().is_some())
                .await?;
            stamp.check(&self.stamp_keys, &self.id, user, &state)?;
            if stamp.proof() == crate::state::SessionProof::EnrolmentOnly {
                return Err(Error::ProofRequired);
            }
            Ok(())
        })
    }

    /// Ends every session of the user and forgets every browser they trust,
    /// for what only the host knows: a password change, a disabled account.
    /// With `keep` (the stamp of the session that changed the password), that
    /// session stays signed in, checked in the same step: the answer is its
    /// new stamp, or [`Error::SessionEnded`] (or [`Error::InvalidStamp`])
    /// and nothing changed.
    pub fn end_sessions<'a>(
        &'a self,
        user: &'a UserId,
        keep: Option<&'a SessionStamp>,
    ) -> Op<'a, S, Option<SessionStamp>> {
        self.on_user("end_sessions", user, &USER, move |record, ctx| {
            record.end_sessions(ctx, keep)
        })
    }

    /// Trusts the browser of the session `stamp` belongs to, so its next
    /// sign-ins skip the code until the policy's lifetime has passed. Allowed
    /// right after a code only (see [`MfaRecord::trust_browser`]). `label`
    /// names it in lists (the user agent).
    ///
    /// ⚠️ Ask the user first ("Remember this browser for N days"), and put
    /// the token only in a `__Host-` cookie that is `HttpOnly`, `Secure` and
    /// `SameSite=Strict`.
    pub fn trust_browser<'a>(
        &'a self,
        user: &'a UserId,
        stamp: &'a SessionStamp,
        label: &'a str,
    ) -> Op<'a, S, TrustedBrowserIssued> {
        self.on_user("trust_browser", user, &USER, move |record, ctx| {
            record.trust_browser(ctx, stamp, label, &mut *self.rng())
        })
    }

    /// The browsers the user trusts now, each with when it stops under
    /// today's policy ([`TrustedBrowser::expires_at`] is that time here).
    pub fn trusted_browsers<'a>(&'a self, user: &'a UserId) -> Op<'a, S, Vec<TrustedBrowser>> {
        self.reading_user("trusted_browsers", user, |record, ctx| {
            let lifetime = ctx.policy.trusted_browser_lifetime_secs();
            let browsers = record
                .trusted_browsers()
                .iter()
                .filter(|b| ctx.now < b.expires_under(lifetime))
                .map(|b| TrustedBrowser {
                    expires_at: b.expires_under(lifetime),
                    ..b.clone()
                })
                .collect();
            Outcome {
                result: Ok(browsers),
                record,
                changed: false,
                events: Vec::new(),
            }
        })
    }

    /// Forgets one trusted browser ("forget this browser") for the signed-in
    /// session `session`; answers 1, or [`Error::UnknownBrowser`]. The
    /// sessions that browser signed in end with it.
    pub fn forget_browser<'a>(
        &'a self,
        user: &'a UserId,
        session: &'a SessionStamp,
        browser: BrowserId,
    ) -> Op<'a, S, u32> {
        self.on_user("forget_browser", user, &USER, move |record, ctx| {
            record.forget_browsers(ctx, session, Some(browser))
        })
    }

    /// Forgets every browser the user trusts ("forget all"), for the signed-in
    /// session `session`; answers how many. The sessions they signed in end with them.
    pub fn forget_browsers<'a>(&'a self, user: &'a UserId, session: &'a SessionStamp) -> Op<'a, S, u32> {
        self.on_user("forget_browsers", user, &USER, move |record, ctx| {
            record.forget_browsers(ctx, session, None)
        })
    }

    /// Spends a grace sign-in: call it when the host signs the user in under
    /// [`SignInStep::GraceSignIn`] (not when it only shows the page). Answers
    /// the sign-ins left and the session's stamp, or refuses with
    /// [`PolicyRefusal::NoGraceLeft`](crate::PolicyRefusal::NoGraceLeft) if the
    /// grace has run out since.
    pub fn complete_grace_sign_in<'a>(&'a self, user: &'a UserId) -> Op<'a, S, GraceSpent> {
        self.on_user("complete_grace_sign_in", user, &USER, |record, ctx| {
            record.complete_grace_sign_in(ctx)
        })
    }

    /// Checks a TOTP code or a backup code typed at sign-in.
    ///
    /// ```
    /// # use portal_mfa::*;
    /// # use portal_mfa::{admin::*, audit::*, otp::*, store::MemoryStore};
    /// # let clock = ManualClock::at(1_763_800_000);
    /// # let portal = Portal::new(PortalId::new("acme"), "Acme", MemoryStore::new())?.with_clock(clock.clone());
    /// # let user = UserId::vendor("v-1");
    /// # let session = portal.begin_sign_in(&user).run()?.session().unwrap();
    /// # let started = portal.start_enrolment(&user, &session, "v-1", "phone", EnrolmentOptions::default()).run()?;
    /// # let phone = Totp::new(started.uri.secret(), *started.uri.params());
    /// # portal.confirm_enrolment(&user, &session, &phone.generate(clock.now())?.expose()).run()?;
    /// clock.advance(30);
    /// let code = phone.generate(clock.now())?.expose().to_string();
    /// assert!(matches!(portal.verify_sign_in(&user, &code).run()?.factor, Factor::Totp(_)));
    /// // The same code again is a replay, whoever sends it.
    /// assert!(matches!(portal.verify_sign_in(&user, &code).run(), Err(Error::ReplayedCode)));
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn verify_sign_in<'a>(&'a self, user: &'a UserId, input: &'a str) -> Op<'a, S, SignInVerified> {
        self.on_user("verify_sign_in", user, &USER, move |record, ctx| {
            record.verify(ctx, input)
        })
    }

    /// Starts enrolling an authenticator: a new secret, its URI and QR code.
    /// `account` is what the app shows under the portal's name (the user's email).
    /// `session` is the signed-in session's stamp (My account), or the one
    /// [`SignInStep::MustEnrol`] gave at the password step; it is checked in
    /// the same step as the change ([`Error::SessionEnded`], [`Error::InvalidStamp`]).
    ///
    /// ```
    /// # use portal_mfa::*;
    /// # use portal_mfa::{admin::*, audit::*, otp::*, store::MemoryStore};
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())?;
    /// let user = UserId::contact("help-center-42");
    /// let SignInStep::NoMfaNeeded { session } = portal.begin_sign_in(&user).run()? else { unreachable!() };
    /// let options = EnrolmentOptions::default();
    /// let started = portal.start_enrolment(&user, &session, "contact@example.com", "Work phone", options).run()?;
    /// let svg = started.uri.qr_svg()?; // for the page
    /// let typed = started.uri.secret().to_grouped_base32(); // for typing by hand
    /// assert!(svg.contains("<svg") && typed.len() == 39);
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn start_enrolment<'a>(
        &'a self,
        user: &'a UserId,
        session: &'a SessionStamp,
        account: &'a str,
        label: &'a str,
        options: EnrolmentOptions<'a>,
    ) -> Op<'a, S, StartedEnrolment> {
        let (secret, request) = self.enrolment(account, label, options);
        self.on_user("start_enrolment", user, &USER, move |record, ctx| {
            record.start_enrolment(ctx, session, request, secret.clone())
        })
    }

    /// Confirms the pending enrolment with the first code from the app, for
    /// the session that started it (checked in the same step).
    pub fn confirm_enrolment<'a>(
        &'a self,
        user: &'a UserId,
        session: &'a SessionStamp,
        code: &'a str,
    ) -> Op<'a, S, EnrolmentConfirmed> {
        self.on_user("confirm_enrolment", user, &USER, move |record, ctx| {
            record.confirm_enrolment(ctx, session, code, &mut *self.rng())
        })
    }

    /// Abandons the pending enrolment, for the session that started it.
    pub fn cancel_enrolment<'a>(&'a self, user: &'a UserId, session: &'a SessionStamp) -> Op<'a, S, ()> {
        self.on_user("cancel_enrolment", user, &USER, move |record, ctx| {
            record.cancel_enrolment(ctx, session)
        })
    }

    /// Starts registering a passkey or security key named `label`; `account`
    /// is the name the browser shows (the user's email). Give the answer's
    /// [`options`](PasskeyRegistrationStarted::options) to
    /// `navigator.credentials.create` and its response to
    /// [`Portal::finish_passkey_registration`] within
    /// [`RelyingParty::CHALLENGE_LIFETIME_SECS`]. Sessions and proofs are as
    /// for [`Portal::start_enrolment`] (a passkey response is a proof too).
    /// Errors: [`Error::PasskeysNotConfigured`] without [`Portal::with_passkeys`].
    pub fn start_passkey_registration<'a>(
        &'a self,
        user: &'a UserId,
        session: &'a SessionStamp,
        account: &'a str,
        label: &'a str,
        options: EnrolmentOptions<'a>,
    ) -> Op<'a, S, PasskeyRegistrationStarted> {
        let (_, request) = self.enrolment(account, label, options);
        self.on_user("start_passkey_registration", user, &USER, move |record, ctx| {
            record.start_passkey_registration(ctx, session, request, &mut *self.rng())
        })
    }

    /// Finishes the pending passkey registration with the browser's response
    /// (the `PublicKeyCredential`'s JSON), for the session that started it.
    /// A refused response is [`Error::PasskeyRefused`], and after
    /// [`PendingPasskey::MAX_FAILURES`](crate::record::PendingPasskey::MAX_FAILURES)
    /// the registration is cancelled.
    pub fn finish_passkey_registration<'a>(
        &'a self,
        user: &'a UserId,
        session: &'a SessionStamp,
        response: &'a str,
    ) -> Op<'a, S, EnrolmentConfirmed> {
        self.on_user("finish_passkey_registration", user, &USER, move |record, ctx| {
            record.finish_passkey_registration(ctx, session, response, &mut *self.rng())
        })
    }

    /// A passkey challenge for the signed-in session `session` to prove a
    /// change (delete a factor, new backup codes, add a factor): give the
    /// browser's response as that change's `proof`. It replaces any
    /// outstanding sign-in challenge.
    pub fn request_passkey_proof<'a>(
        &'a self,
        user: &'a UserId,
        session: &'a SessionStamp,
    ) -> Op<'a, S, PasskeyOptions> {
        self.on_user("request_passkey_proof", user, &USER, move |record, ctx| {
            record.request_passkey_proof(ctx, session)
        })
    }

    /// Deletes an authenticator, for the signed-in session `session` and
    /// after a fresh code. Every other session of the user ends; the answer
    /// is the new stamp for the session that asked.
    pub fn delete_authenticator<'a>(
        &'a self,
        user: &'a UserId,
        session: &'a SessionStamp,
        authenticator: AuthenticatorId,
        proof: &'a str,
    ) -> Op<'a, S, SessionStamp> {
        self.on_user("delete_authenticator", user, &USER, move |record, ctx| {
            record.delete_authenticator(ctx, session, authenticator, proof)
        })
    }

    /// Replaces the backup codes with a new batch, for the signed-in session
    /// `session` and after a fresh code. Every other session of the user
    /// ends; the answer carries the new stamp for the session that asked.
    pub fn regenerate_backup_codes<'a>(
        &'a self,
        user: &'a UserId,
        session: &'a SessionStamp,
        proof: &'a str,
    ) -> Op<'a, S, BackupCodesRegenerated> {
        self.on_user("regenerate_backup_codes", user, &USER, move |record, ctx| {
            record.regenerate_backup_codes(ctx, session, proof, &mut *self.rng())
        })
    }

    // ----- admin: users -----

    /// Admin **Reset MFA** for one user; the account itself is untouched.
    ///
    /// ```
    /// # use portal_mfa::*;
    /// # use portal_mfa::{admin::*, audit::*, otp::*, store::MemoryStore};
    /// # let portal = Portal::new(PortalId::new("acme"), "Acme", MemoryStore::new())?;
    /// # let user = UserId::customer("c-7");
    /// let admin = Admin::authorised("admin@acme.example");
    /// let summary = portal.admin_reset(&admin, &user, ResetReason::LostDevice, ResetMode::default()).run()?;
    /// assert!(summary.must_enrol);
    /// let next = portal.begin_sign_in(&user).run()?;
    /// assert!(matches!(next, SignInStep::MustEnrol { reason: EnrolReason::AdminReset, .. }));
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn admin_reset<'a>(
        &'a self,
        admin: &'a Admin,
        user: &'a UserId,
        reason: ResetReason,
        mode: ResetMode,
    ) -> Op<'a, S, ResetSummary> {
        self.on_user("admin_reset", user, admin.actor(), move |record, ctx| {
            record.admin_reset(ctx, reason.clone(), mode)
        })
    }

    // ----- the lost-device path -----

    /// The user, past the password but with no second factor to give (phone
    /// and backup codes lost), asks an admin to reset their MFA, with a short
    /// `note` for the admin (at most
    /// [`ResetRequest::MAX_NOTE_CHARS`](crate::record::ResetRequest::MAX_NOTE_CHARS)
    /// characters). Nothing is removed until an admin approves it; the user's
    /// own sign-in with a second factor withdraws it.
    ///
    /// One request is open at a time ([`RequestRefusal::AlreadyOpen`](crate::RequestRefusal::AlreadyOpen)); after a
    /// decline the user waits [`ResetRequest::COOLDOWN_SECS`](crate::record::ResetRequest::COOLDOWN_SECS)
    /// ([`RequestRefusal::CoolingDown`](crate::RequestRefusal::CoolingDown)).
    ///
    /// ⚠️ Call it only after the host's own password check for this user, as
    /// for [`Portal::begin_sign_in`]; and have admins confirm the person out
    /// of band before approving: a request is what an attacker with a stolen
    /// password would file.
    pub fn request_reset<'a>(&'a self, user: &'a UserId, note: &'a str) -> Op<'a, S, ResetRequest> {
        self.on_user("request_reset", user, &USER, move |record, ctx| {
            record.request_reset(ctx, note)
        })
    }

    /// Admin: approves the user's open reset request: a **Reset MFA** (as
    /// [`Portal::admin_reset`]) whose reason is [`ResetReason::Requested`]
    /// with the user's note. [`RequestRefusal::NoneOpen`](crate::RequestRefusal::NoneOpen)
    /// when none is open (the user signed in meanwhile, or another admin decided).
    ///
    /// ⚠️ As for [`Portal::admin_reset`]: step the admin up first and
    /// confirm the user's identity out of band.
    pub fn approve_reset_request<'a>(
        &'a self,
        admin: &'a Admin,
        user: &'a UserId,
        mode: ResetMode,
    ) -> Op<'a, S, ResetSummary> {
        self.on_user("approve_reset_request", user, admin.actor(), move |record, ctx| {
            record.approve_reset_request(ctx, mode)
        })
    }

    /// Admin: declines the user's open reset request, telling them `note`
    /// (may be empty). Their factors stay; they may ask again after the cooldown.
    pub fn decline_reset_request<'a>(&'a self, admin: &'a Admin, user: &'a UserId, note: &'a str) -> Op<'a, S, ()> {
        self.on_user("decline_reset_request", user, admin.actor(), move |record, ctx| {
            record.decline_reset_request(ctx, note)
        })
    }

    /// Admin: one batch of a bulk **Reset MFA** for an incident: up to
    /// `batch` users in user order after `after` (`None`: from the first),
    /// each reset if `plan` selects them when their turn comes. Call it
    /// again with [`BulkResetProgress::next`] until that is `None`.
    ///
    /// Each user is reset in their own commit, as [`Portal::admin_reset`]
    /// would (sessions and trusted browsers end, the user hears of it, the
    /// reason is [`ResetReason::Incident`]); nothing is held across users or
    /// batches, so sign-ins go on meanwhile. After a crash, resume from the
    /// last `next` kept, or from the start: a user the incident already
    /// reset holds no factor from before it began, and is left alone.
    ///
    /// ⚠️ This resets many users at once: run [`Portal::bulk_reset_preview`]
    /// first and have a second admin check its count.
    pub fn bulk_reset<'a>(
        &'a self,
        admin: &'a Admin,
        plan: &'a BulkReset,
        after: Option<&'a UserId>,
        batch: usize,
    ) -> Op<'a, S, BulkResetProgress> {
        self.sweep("bulk_reset", admin, plan, after, batch, false)
    }

    /// [`Portal::bulk_reset`]'s dry run: the same batches, counting the users
    /// it would reset now, changing nothing.
    pub fn bulk_reset_preview<'a>(
        &'a self,
        admin: &'a Admin,
        plan: &'a BulkReset,
        after: Option<&'a UserId>,
        batch: usize,
    ) -> Op<'a, S, BulkResetProgress> {
        self.sweep("bulk_reset_preview", admin, plan, after, batch, true)
    }

    fn sweep<'a>(
        &'a self,
        name: &'static str,
        admin: &'a Admin,
        plan: &'a BulkReset,
        after: Option<&'a UserId>,
        batch: usize,
        dry_run: bool,
    ) -> Op<'a, S, BulkResetProgress> {
        self.op(name, None, move |d| async move {
            let (page, next) = self.sweep_page(d, after, batch).await?;
            let mut progress = BulkResetProgress {
                examined: page.len(),
                reset: 0,
                failed: Vec::new(),
                next,
            };
            if dry_run {
                // Judged on the page's own bytes: a preview reads each record once and writes nothing.
                let keyring = self.keyring_of(d)?;
                let policy = d
                    .backend
                    .read_policy(&self.id)
                    .await?
                    .map_or(self.default_policy, |(p, _)| p);
                let now = self.now()?;
                for (user, stored) in page {
                    match decode_record(&stored.bytes, &self.id, &user, keyring) {
                        Ok(decoded) => {
                            progress.reset += usize::from(plan.selects(&decoded.record, user.kind(), &policy, now))
                        }
                        Err(e) => progress.failed.push((user, e)),
                    }
                }
                return Ok(progress);
            }
            for (user, _) in page {
                // Read first: a user the plan leaves alone costs a read, not a write.
                let step = self.on_record(d, &user, admin.actor(), true, |record, ctx| plan.step(record, ctx));
                match step.await {
                    Ok(Some(_)) => progress.reset += 1,
                    Ok(None) => {}
                    Err(e) => progress.failed.push((user, e)),
                }
            }
            Ok(progress)
        })
    }

    /// Admin: imports an existing TOTP enrolment (migration from another system).
    pub fn import_authenticator<'a>(
        &'a self,
        admin: &'a Admin,
        user: &'a UserId,
        label: &'a str,
        secret: Secret,
        params: TotpParams,
    ) -> Op<'a, S, AuthenticatorId> {
        self.on_user("import_authenticator", user, admin.actor(), move |record, ctx| {
            record.import_authenticator(ctx, label, secret.clone(), params)
        })
    }

    /// An operation whose body is `body`, run by whichever executor runs the
    /// [`Op`]; with the `tracing` feature, inside a span named `portal_mfa`
    /// (`name` is its `op` field; see `guide::hosts` for every field).
    fn op<'a, T: 'a, Fut>(
        &'a self,
        name: &'static str,
        user: Option<&'a UserId>,
        body: impl FnOnce(Driver<'a>) -> Fut + Send + 'a,
    ) -> Op<'a, S, T>
    where
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        #[cfg(feature = "tracing")]
        let body = move |d| trace::traced(&self.id, name, user, body(d));
        #[cfg(not(feature = "tracing"))]
        let _ = (name, user);
        Op::new(&self.store, body)
    }

    /// An operation that runs `transition` on one user's record.
    fn on_user<'a, T: Send + 'a>(
        &'a self,
        name: &'static str,
        user: &'a UserId,
        actor: &'a Actor,
        transition: impl FnMut(MfaRecord, &Context<'_>) -> Outcome<T> + Send + 'a,
    ) -> Op<'a, S, T> {
        self.op(name, Some(user), move |d| {
            self.on_record(d, user, actor, false, transition)
        })
    }

    /// [`Portal::on_user`] for an operation that mostly only reads: it takes
    /// the write path only when the transition changed something.
    fn reading_user<'a, T: Send + 'a>(
        &'a self,
        name: &'static str,
        user: &'a UserId,
        transition: impl FnMut(MfaRecord, &Context<'_>) -> Outcome<T> + Send + 'a,
    ) -> Op<'a, S, T> {
        self.op(name, Some(user), move |d| {
            self.on_record(d, user, &USER, true, transition)
        })
    }

    /// An operation that changes the policy with `change`.
    fn change_policy<'a>(
        &'a self,
        name: &'static str,
        admin: &'a Admin,
        change: impl Fn(PortalPolicy) -> Result<PortalPolicy> + Send + Sync + 'a,
    ) -> Op<'a, S, PortalPolicy> {
        self.op(name, None, move |d| self.on_policy(d, admin.actor(), change))
    }
}

impl<S, C, R> Portal<S, C, R> {
    /// Uses `clock` for time.
    pub fn with_clock<C2>(self, clock: C2) -> Portal<S, C2, R> {
        self.with_parts(|_| clock, |rng| rng)
    }

    /// The portal with its clock and generator replaced, everything else kept.
    fn with_parts<C2, R2>(
        self,
        clock: impl FnOnce(C) -> C2,
        rng: impl FnOnce(Mutex<R>) -> Mutex<R2>,
    ) -> Portal<S, C2, R2> {
        Portal {
            id: self.id,
            issuer: self.issuer,
            store: self.store,
            clock: clock(self.clock),
            rng: rng(self.rng),
            default_policy: self.default_policy,
            notifier: self.notifier,
            max_attempts: self.max_attempts,
            keyring: self.keyring,
            stamp_keys: self.stamp_keys,
            sleep: self.sleep,
            passkeys: self.passkeys,
        }
    }

    /// Seals and opens TOTP secrets with `keyring`. Every store that keeps
    /// records past the process (such as [`SqliteStore`](crate::store::SqliteStore))
    /// needs one; without it the [`MemoryStore`](crate::store::MemoryStore) seals under a
    /// random key of its own (see [`MfaStore::own_keyring`](crate::store::MfaStore::own_keyring)).
    ///
    /// ⚠️ Keep the keys in the host's secret store, never beside the database
    /// they protect, and keep every key that sealed a record in the keyring
    /// until a [`Portal::reseal`] sweep has completed.
    ///
    /// The keyring also tags session stamps, so a stamp issued by one app
    /// instance is good on every other instance and after a restart.
    #[must_use]
    pub fn with_keyring(mut self, keyring: impl Into<Arc<Keyring>>) -> Self {
        let keyring = keyring.into();
        self.stamp_keys = keyring.clone();
        self.keyring = Some(keyring);
        self
    }

    /// Takes passkeys and security keys as a second factor, verified for
    /// `relying_party` (see its ⚠️ on HTTPS and origins).
    #[must_use]
    pub fn with_passkeys(mut self, relying_party: RelyingParty) -> Self {
        self.passkeys = Some(Arc::new(relying_party));
        self
    }

    /// Uses `rng` for secrets, backup codes and salts.
    ///
    /// ⚠️ It must be a cryptographically secure generator seeded from real
    /// entropy; a seeded one is for tests only.
    pub fn with_rng<R2: CryptoRng + Send>(self, rng: R2) -> Portal<S, C, R2> {
        self.with_parts(|clock| clock, |_| Mutex::new(rng))
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

    /// How an `.await`ed operation waits before retrying after a conflict.
    /// Without one it yields to the runtime until the back-off has passed,
    /// which never blocks a worker thread but keeps the task polled; with a
    /// runtime's timer it sleeps instead:
    ///
    /// ```
    /// # use portal_mfa::*;
    /// # use portal_mfa::{admin::*, audit::*, otp::*, store::MemoryStore};
    /// let portal = Portal::new(PortalId::new("acme"), "Acme", MemoryStore::new())?
    ///     .with_async_sleep(tokio::time::sleep);
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    #[must_use]
    pub fn with_async_sleep(mut self, sleep: impl AsyncSleep + 'static) -> Self {
        self.sleep = Some(Arc::new(sleep));
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

/// A portal's own stamp key, for a portal given no keyring (the memory
/// store's demos and tests): random, so its stamps end with the process.
fn own_stamp_keys() -> Keyring {
    let key = Keyring::generate_key(&mut rand::rng());
    Keyring::new("portal", key.as_slice()).unwrap_or_else(|_| unreachable!("a 32-byte key under a valid id"))
}

impl<S, C, R: CryptoRng> Portal<S, C, R> {
    /// A fresh secret and the request to enrol it.
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

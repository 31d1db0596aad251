//! The transitions past the code check: ending a user's sessions, trusting a
//! browser, signing in with one, forgetting them.

use rand::CryptoRng;

use super::answers::SignInStep;
use super::context::{Context, Outcome};
use super::draft::Draft;
use super::record::MfaRecord;
use super::session::{SessionProof, SessionStamp, TrustedBrowser, TrustedBrowserIssued, TrustedBrowsers};
use crate::error::{Error, PolicyRefusal};
use crate::event::EventKind;
use crate::event::{ForgetCause, SessionEndCause};
use crate::ids::BrowserId;

/// Longest label kept for a trusted browser, in characters.
const LABEL_CHARS: usize = 64;

/// How often a trusted browser's use is written down (its last use, an audit event): once an hour.
pub(crate) const USE_RECORDED_EVERY_SECS: u64 = 3_600;

impl MfaRecord {
    /// Ends every session of the user and forgets every browser they trust:
    /// what only the host knows changed (a password, a disabled account).
    /// With `keep`, the session that asked stays signed in (and, if a
    /// trusted browser signed it in, that browser stays trusted): the answer
    /// is its new stamp. A `keep` that is not genuine or no longer good
    /// ([`Error::InvalidStamp`], [`Error::SessionEnded`]) changes nothing.
    pub fn end_sessions(self, ctx: &Context<'_>, keep: Option<&SessionStamp>) -> Outcome<Option<SessionStamp>> {
        let mut draft = Draft::new(self, ctx);
        if let Some(Err(refused)) = keep.map(|stamp| draft.check_signed_in(stamp)) {
            return draft.done(Err(refused));
        }
        draft.end_sessions_but(SessionEndCause::Host, keep.and_then(SessionStamp::browser));
        let renewed = keep.map(|stamp| {
            SessionStamp::issue(
                ctx.keys,
                ctx.portal,
                ctx.user,
                draft.record().sessions,
                stamp.proof(),
                stamp.proven_at(),
            )
        });
        draft.done(Ok(renewed))
    }

    /// The sign-in step for a browser presenting `token`. Where a code would
    /// be asked for ([`SignInStep::EnterCode`]) and the token is one of this
    /// user's, unexpired under today's policy: [`SignInStep::TrustedBrowser`],
    /// with no code. Its use is recorded (last use, an audit event, the
    /// failure count cleared) at most once an hour per browser, so repeated
    /// sign-ins within the hour are reads. Any other token where a code would be asked for is a
    /// failed factor, counted toward lockout: [`Error::UntrustedBrowser`] (or
    /// [`Error::LockedOut`] when it locks). Every other step is answered as
    /// [`MfaRecord::sign_in_step`] answers it, the token unread.
    pub fn sign_in_with_browser(self, ctx: &Context<'_>, token: &str) -> Outcome<SignInStep> {
        let mut draft = Draft::new(self, ctx);
        let step = draft.record().next_step(ctx);
        if !matches!(step, SignInStep::EnterCode { .. }) {
            return draft.done(Ok(step));
        }
        let lifetime = ctx.policy.trusted_browser_lifetime_secs();
        let found = draft
            .record()
            .trusted
            .as_ref()
            .and_then(|t| t.find(ctx.portal, ctx.user, token))
            .filter(|&index| ctx.now < draft.record().trusted_browsers()[index].expires_under(lifetime));
        let Some(index) = found else {
            draft.emit(EventKind::TrustedBrowserRefused);
            let error = match draft.fail(false) {
                Error::WrongCode { attempts_left } => Error::UntrustedBrowser { attempts_left },
                other => other,
            };
            return draft.done(Err(error));
        };
        let now = ctx.now;
        // Two plain fields, not a clone of the entry: this is the sign-in path.
        let (browser, last_used_at) = {
            let entry = &draft.record().trusted_browsers()[index];
            (entry.id, entry.last_used_at)
        };
        // A use is recorded (last use, audit event) at most once an hour, so a
        // trusted sign-in within the hour writes nothing and costs what the
        // plain step does; a failure count to clear is always written.
        let recorded = last_used_at.is_some_and(|last| last <= now && now - last < USE_RECORDED_EVERY_SECS);
        if !recorded || draft.record().failures != Default::default() {
            let record = draft.record_mut();
            record.failures = Default::default();
            record.set_last_verified_at(Some(now));
            if let Some(trusted) = record.trusted.as_mut() {
                trusted.browsers[index].last_used_at = Some(now);
            }
            draft.emit(EventKind::TrustedBrowserUsed { browser });
        }
        let session = draft.stamp(SessionProof::TrustedBrowser(browser));
        draft.done(Ok(SignInStep::TrustedBrowser { browser, session }))
    }

    /// Trusts the browser of the session `stamp` belongs to, for the policy's
    /// lifetime from now, labelled `label` (the user agent; shortened to 64
    /// printable characters). Allowed only right after a code, once: the
    /// stamp must be genuine and current, from a TOTP or backup code, at most
    /// [`SessionStamp::TRUST_AFTER_CODE_SECS`] old, and no browser may have
    /// been trusted since that code (one code trusts one browser). With the
    /// most browsers a user may keep, the oldest is forgotten.
    ///
    /// Errors: [`PolicyRefusal::TrustedBrowsersOff`], [`Error::InvalidStamp`],
    /// [`Error::SessionEnded`], [`Error::ProofRequired`] (no fresh code
    /// behind the stamp, or that code already trusted a browser), [`Error::NotEnrolled`].
    pub fn trust_browser<R: CryptoRng + ?Sized>(
        self,
        ctx: &Context<'_>,
        stamp: &SessionStamp,
        label: &str,
        rng: &mut R,
    ) -> Outcome<TrustedBrowserIssued> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            let lifetime = ctx.policy.trusted_browser_lifetime_secs();
            if lifetime == 0 {
                return Err(Error::NotAllowed(PolicyRefusal::TrustedBrowsersOff));
            }
            draft.check_session(stamp)?;
            if !stamp.code_proven_within(ctx.now, SessionStamp::TRUST_AFTER_CODE_SECS) {
                return Err(Error::ProofRequired);
            }
            // One code, one browser: a stamp cannot trust a stream of browsers (pushing the user's own out).
            if draft
                .record()
                .trusted_browsers()
                .iter()
                .any(|b| b.created_at >= stamp.proven_at())
            {
                return Err(Error::ProofRequired);
            }
            if !draft.record().mfa_enabled() {
                return Err(Error::NotEnrolled);
            }
            let id = draft
                .record()
                .next_browser_id
                .checked_add(1)
                .ok_or(Error::NotAllowed(PolicyRefusal::TrustedBrowsersOff))?;
            // Expired ones first, then the oldest while full.
            let expired: Vec<usize> = draft
                .record()
                .trusted_browsers()
                .iter()
                .enumerate()
                .filter(|(_, b)| ctx.now >= b.expires_under(lifetime))
                .map(|(index, _)| index)
                .collect();
            for index in expired.into_iter().rev() {
                draft.forget_browsers(Some(index), ForgetCause::Evicted);
            }
            if draft.record().trusted_browsers().len() >= TrustedBrowsers::MAX {
                let oldest = draft
                    .record()
                    .trusted_browsers()
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| (b.created_at, b.id))
                    .map(|(index, _)| index);
                if let Some(index) = oldest {
                    draft.forget_browsers(Some(index), ForgetCause::Evicted);
                }
            }
            let label = browser_label(label);
            let expires_at = ctx.now.saturating_add(lifetime);
            let record = draft.record_mut();
            record.next_browser_id = id;
            let trusted = record
                .trusted
                .get_or_insert_with(|| Box::new(TrustedBrowsers::new(rng)));
            let (token, hash) = trusted.issue(rng, ctx.portal, ctx.user);
            trusted.browsers.push(TrustedBrowser {
                id: BrowserId(id),
                label,
                created_at: ctx.now,
                last_used_at: None,
                expires_at,
                hash,
            });
            draft.emit(EventKind::BrowserTrusted {
                browser: BrowserId(id),
                expires_at,
            });
            Ok(TrustedBrowserIssued {
                browser: BrowserId(id),
                token,
                expires_at,
            })
        })();
        draft.done(result)
    }

    /// Forgets one trusted browser (`Some`; [`Error::UnknownBrowser`] if the
    /// user has none by that id) or all of them; answers how many were
    /// forgotten. The sessions those browsers signed in end with them.
    pub fn forget_browsers(
        self,
        ctx: &Context<'_>,
        session: &SessionStamp,
        browser: Option<BrowserId>,
    ) -> Outcome<u32> {
        let mut draft = Draft::new(self, ctx);
        if let Err(refused) = draft.check_signed_in(session) {
            return draft.done(Err(refused));
        }
        let result = match browser {
            None => Ok(draft.forget_browsers(None, ForgetCause::User)),
            Some(id) => match draft.record().trusted_browsers().iter().position(|b| b.id == id) {
                Some(index) => Ok(draft.forget_browsers(Some(index), ForgetCause::User)),
                None => Err(Error::UnknownBrowser),
            },
        };
        draft.done(result)
    }
}

/// The host's label for a browser, made printable and at most 64 characters:
/// user agents are long, and a browser is trusted whatever it calls itself.
fn browser_label(label: &str) -> std::sync::Arc<str> {
    let printable: String = label
        .chars()
        .filter(|&c| crate::otp::text::printable(c))
        .take(LABEL_CHARS)
        .collect();
    match crate::otp::text::printable_name(&printable) {
        Some(name) => name.into(),
        None => "Unnamed browser".into(),
    }
}

//! The lost-device path, as transitions: a user's request for a reset, its
//! withdrawal by their own sign-in, an admin's approval or decline, and one
//! user's step of a bulk reset for an incident.
//!
//! A request never weakens anything by itself: only an admin's approval (a
//! reset, with the request's note as its reason) removes a factor.

use std::sync::Arc;

use super::answers::ResetSummary;
use super::context::{Context, Outcome};
use super::draft::Draft;
use super::record::{MfaRecord, ResetRecord, ResetRequest, Resets};
use crate::backup::BackupCodes;
use crate::error::{Error, RequestRefusal, Result};
use crate::event::{EventKind, RemovalCause, ResetMode, ResetReason, SessionEndCause};
use crate::ids::{AuthenticatorId, UserKind};
use crate::policy::PortalPolicy;
use crate::users::{RecordSummary, StatusFilter};

/// Which users a [`BulkReset`] resets: every condition given must hold (none
/// given: everyone with a factor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct ResetSelection {
    /// Only users of this kind.
    pub kind: Option<UserKind>,
    /// Only users in this status at the moment each is reset.
    pub status: StatusFilter,
    /// Only users holding a factor added before this Unix time.
    pub added_before: Option<u64>,
    /// Only users holding a factor last used (or, never used, added) before this Unix time.
    pub last_used_before: Option<u64>,
}

impl ResetSelection {
    /// Everyone with a factor.
    pub fn everyone() -> Self {
        Self::default()
    }

    /// Only users of `kind`.
    #[must_use]
    pub fn kind(mut self, kind: UserKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only users in `status`.
    #[must_use]
    pub fn status(mut self, status: StatusFilter) -> Self {
        self.status = status;
        self
    }

    /// Only users holding a factor added before `at`.
    #[must_use]
    pub fn added_before(mut self, at: u64) -> Self {
        self.added_before = Some(at);
        self
    }

    /// Only users holding a factor last used before `at`.
    #[must_use]
    pub fn last_used_before(mut self, at: u64) -> Self {
        self.last_used_before = Some(at);
        self
    }
}

/// A bulk **Reset MFA** for a security incident (a leaked seed backup, a
/// compromised authenticator vendor): which users, under which incident id
/// and reason, since when. Run by [`Portal::bulk_reset`](crate::Portal::bulk_reset).
///
/// A user is reset once per incident: one whose every factor was added at
/// or after [`BulkReset::started_at`] (they re-enrolled after the incident
/// began, whether this sweep or an admin reset them) is left alone, so a
/// sweep resumed or run again never resets anyone twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BulkReset {
    /// The incident's id, on every reset it makes.
    pub incident: Arc<str>,
    /// Why, on every reset it makes.
    pub note: Arc<str>,
    /// When the incident began: factors added from then on are not its concern.
    pub started_at: u64,
    /// Who.
    pub selection: ResetSelection,
    /// What the users are left with.
    pub mode: ResetMode,
}

impl BulkReset {
    /// Longest incident id, in characters.
    pub const MAX_INCIDENT_CHARS: usize = 64;

    /// A bulk reset under `incident` (1 to 64 printable characters) for
    /// `note` (at most [`ResetRequest::MAX_NOTE_CHARS`]), of the users
    /// `selection` names, for an incident that began at `started_at`.
    pub fn new(incident: &str, note: &str, started_at: u64, selection: ResetSelection) -> Result<Self> {
        let id = incident.trim();
        if id.is_empty() || id.chars().count() > Self::MAX_INCIDENT_CHARS || id.chars().any(char::is_control) {
            return Err(Error::ResetRequest(RequestRefusal::InvalidIncident));
        }
        Ok(Self {
            incident: id.into(),
            note: check_note(note)?,
            started_at,
            selection,
            mode: ResetMode::ForceReenrolment,
        })
    }

    /// With `mode` (the default: re-enrolment at the next sign-in).
    #[must_use]
    pub fn with_mode(mut self, mode: ResetMode) -> Self {
        self.mode = mode;
        self
    }

    /// The reason each of its resets records.
    pub fn reason(&self) -> ResetReason {
        ResetReason::Incident {
            id: self.incident.clone(),
            note: self.note.clone(),
        }
    }
}

/// A note as a request or a decline keeps it: at most
/// [`ResetRequest::MAX_NOTE_CHARS`] characters, no control character but a
/// line feed; surrounding space trimmed.
pub(crate) fn check_note(note: &str) -> Result<Arc<str>> {
    let note = note.trim();
    if note.chars().count() > ResetRequest::MAX_NOTE_CHARS || note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::ResetRequest(RequestRefusal::InvalidNote));
    }
    Ok(note.into())
}

impl MfaRecord {
    /// The user, past the password but with no second factor to give, asks
    /// an admin for a reset. Refused when they have no factor, when a request
    /// is open, or within [`ResetRequest::COOLDOWN_SECS`] of a decline.
    pub fn request_reset(self, ctx: &Context<'_>, note: &str) -> Outcome<ResetRequest> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            let note = check_note(note)?;
            let record = draft.record();
            if record.factor_count() == 0 {
                return Err(Error::ResetRequest(RequestRefusal::NothingToReset));
            }
            if let Some(open) = record.reset_request() {
                return Err(Error::ResetRequest(RequestRefusal::AlreadyOpen { since: open.at }));
            }
            if let Some(declined) = record.reset_request_declined_at() {
                let until = declined.saturating_add(ResetRequest::COOLDOWN_SECS);
                if ctx.now < until {
                    return Err(Error::ResetRequest(RequestRefusal::CoolingDown { until }));
                }
            }
            let request = ResetRequest { at: ctx.now, note };
            draft.requests_mut().open = Some(request.clone());
            draft.emit(EventKind::ResetRequested {
                note: request.note.clone(),
            });
            Ok(request)
        })();
        draft.done(result)
    }

    /// Admin: approves the user's open request: a **Reset MFA** whose reason
    /// is the request ([`ResetReason::Requested`], with the user's note).
    pub fn approve_reset_request(self, ctx: &Context<'_>, mode: ResetMode) -> Outcome<ResetSummary> {
        let mut draft = Draft::new(self, ctx);
        let result = draft.require_admin().and_then(|admin| {
            let note = draft
                .record()
                .reset_request()
                .map(|r| r.note.clone())
                .ok_or(Error::ResetRequest(RequestRefusal::NoneOpen))?;
            Ok(draft.reset(admin, ResetReason::Requested(note), mode))
        });
        draft.done(result)
    }

    /// Admin: declines the user's open request, telling them `note` (may be
    /// empty). They may ask again after [`ResetRequest::COOLDOWN_SECS`].
    pub fn decline_reset_request(self, ctx: &Context<'_>, note: &str) -> Outcome<()> {
        let mut draft = Draft::new(self, ctx);
        let result = (|| {
            draft.require_admin()?;
            let note = check_note(note)?;
            if draft.record().reset_request().is_none() {
                return Err(Error::ResetRequest(RequestRefusal::NoneOpen));
            }
            let now = ctx.now;
            let requests = draft.requests_mut();
            requests.open = None;
            requests.declined_at = Some(now);
            draft.emit(EventKind::ResetRequestDeclined { note });
            Ok(())
        })();
        draft.done(result)
    }

    /// One user's step of `plan`: resets them if `plan` selects them now
    /// (under `ctx.policy` at `ctx.now`) and they still hold a factor from
    /// before the incident began; answers `None`, changing nothing, otherwise.
    pub fn incident_reset(self, ctx: &Context<'_>, plan: &BulkReset) -> Outcome<Option<ResetSummary>> {
        let mut draft = Draft::new(self, ctx);
        let result = draft.require_admin().map(|admin| {
            let selected = draft.record().selected_by(plan, ctx.user.kind(), ctx.policy, ctx.now);
            selected.then(|| draft.reset(admin, plan.reason(), plan.mode))
        });
        draft.done(result)
    }

    /// Whether `plan` resets this record (of a user of `kind`) at `now`.
    pub fn selected_by(&self, plan: &BulkReset, kind: UserKind, policy: &PortalPolicy, now: u64) -> bool {
        let selection = &plan.selection;
        let factors = self.factor_times();
        let status = selection
            .status
            .summary_filter(policy, now)
            .is_some_and(|filter| filter.matches(&RecordSummary::of(self)));
        selection.kind.is_none_or(|k| k == kind)
            && status
            && factors.iter().any(|&(added, _)| added < plan.started_at)
            && selection
                .added_before
                .is_none_or(|t| factors.iter().any(|&(added, _)| added < t))
            && selection
                .last_used_before
                .is_none_or(|t| factors.iter().any(|&(_, used)| used < t))
    }

    /// Each factor's (added, last used or else added) times.
    fn factor_times(&self) -> Vec<(u64, u64)> {
        let apps = self.authenticators.iter().map(|a| {
            // A step's start, but never before the app was added (its confirming code's step began earlier).
            let used = a
                .last_used_step
                .and_then(|step| a.params().step_start(step).ok())
                .map_or(a.added_at, |start| start.max(a.added_at));
            (a.added_at, used)
        });
        let passkeys = self
            .passkeys()
            .iter()
            .map(|p| (p.added_at, p.last_used_at.unwrap_or(p.added_at)));
        apps.chain(passkeys).collect()
    }
}

impl Draft<'_> {
    /// The record's requests, to change.
    fn requests_mut(&mut self) -> &mut Resets {
        self.record_mut().resets.get_or_insert_with(Default::default)
    }

    /// The user proved a second factor: an open request is withdrawn (they
    /// found their phone).
    pub(super) fn withdraw_reset_request(&mut self) {
        if self.record().reset_request().is_some() {
            self.requests_mut().open = None;
            self.emit(EventKind::ResetRequestWithdrawn);
        }
    }

    /// **Reset MFA** by `admin`: every factor, the pending enrolment and the
    /// backup codes go, the failure count clears, an open request is
    /// resolved, every session and trusted browser ends.
    pub(super) fn reset(&mut self, admin: Arc<str>, reason: ResetReason, mode: ResetMode) -> ResetSummary {
        let passkeys: Vec<AuthenticatorId> = self.record().passkeys().iter().map(|p| p.id).collect();
        for &id in &passkeys {
            self.emit(EventKind::PasskeyRemoved {
                authenticator: id,
                cause: RemovalCause::AdminReset,
            });
        }
        let now = self.ctx.now;
        let record = self.record_mut();
        let authenticators_removed = record.authenticators.len() as u32;
        let backup_codes_removed = record.backup_codes.as_ref().map_or(0, BackupCodes::remaining);
        record.authenticators = Box::default();
        record.passkeys = None;
        record.pending = None;
        record.backup_codes = None;
        record.failures = Default::default();
        record.must_enrol = mode == ResetMode::ForceReenrolment;
        let resets = record.resets.get_or_insert_with(Default::default);
        resets.open = None;
        resets.last = Some(ResetRecord {
            by: admin,
            reason: reason.clone(),
            at: now,
        });
        let must_enrol = record.must_enrol;
        self.emit(EventKind::MfaReset {
            reason,
            mode,
            authenticators_removed,
            backup_codes_removed,
        });
        self.end_sessions(SessionEndCause::AdminReset);
        ResetSummary {
            authenticators_removed,
            passkeys_removed: passkeys.len() as u32,
            backup_codes_removed,
            must_enrol,
        }
    }
}

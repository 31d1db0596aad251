//! Users by MFA status, for the admin's user list ("who is locked out?",
//! "who has not enrolled yet?"): what [`Portal::users`](crate::Portal::users) answers;
//! and the plan of a bulk reset ([`BulkReset`]), which judges each record as the
//! listing judges its summary.
//!
//! The listing is served from each record's [`RecordSummary`] (indexed columns
//! in SQL stores), never by opening a record. It covers the users the store
//! has a record for: a user who never touched MFA has none (their status is
//! "MFA off"), so a host that lists all its users joins its own user table.

use crate::error::{Error, RequestRefusal, Result};
use crate::ids::{PortalId, UserId, UserKind};
use crate::page::{Cursor, Fingerprint, page_size};
use crate::policy::{Enforcement, Grace, Lock, PortalPolicy};
use std::sync::Arc;

use crate::event::{ResetMode, ResetReason};
use crate::state::{Context, MfaRecord, Outcome, ResetSummary, check_note};

/// A plain summary of a record, written beside its bytes so a database can
/// answer admin questions ("who is locked out?") from indexed columns.
///
/// It holds no secret and nothing a sign-in depends on: the bytes are the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub struct RecordSummary {
    /// Confirmed factors: authenticator apps and passkeys (0: MFA is off).
    pub authenticators: u8,
    /// Of those, passkeys and security keys.
    pub passkeys: u8,
    /// Whether an enrolment awaits its first code, or a passkey registration its response.
    pub pending_enrolment: bool,
    /// Whether an admin reset requires enrolment at the next sign-in.
    pub must_enrol: bool,
    /// The current or last lock ([`Lock::holds_at`] says whether it still holds).
    pub locked: Option<Lock>,
    /// Unused backup codes.
    pub backup_codes_left: u8,
    /// When the second factor was last proven (Unix time).
    pub last_verified_at: Option<u64>,
    /// Grace sign-ins used since enforcement.
    pub grace_sign_ins_used: u32,
    /// Browsers the user trusts, as of the record's last write (one that has
    /// expired since is counted until the user trusts another or forgets it).
    pub trusted_browsers: u8,
    /// When the user asked for a reset that is still open.
    pub reset_requested_at: Option<u64>,
}

impl RecordSummary {
    /// The summary of `record`.
    pub fn of(record: &MfaRecord) -> Self {
        Self {
            authenticators: record.factor_count() as u8,
            passkeys: record.passkeys().len() as u8,
            pending_enrolment: record.pending().is_some() || record.pending_passkey().is_some(),
            must_enrol: record.must_enrol(),
            locked: record.failures().last_lock(),
            backup_codes_left: record.backup_codes().map_or(0, |c| c.remaining() as u8),
            last_verified_at: record.last_verified_at(),
            grace_sign_ins_used: record.grace_sign_ins_used(),
            trusted_browsers: record.trusted_browsers().len() as u8,
            reset_requested_at: record.reset_request().map(|r| r.at),
        }
    }
}

/// Which records [`MfaStore::users`](crate::store::MfaStore::users) lists: a portal's, in a filter over their
/// [`RecordSummary`], optionally of one kind of user, in user order (kind
/// name, then id, as [`UserId`]'s `Ord` compares them), after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserListing {
    /// The portal.
    pub portal: PortalId,
    /// Only users of this kind.
    pub kind: Option<UserKind>,
    /// Only records whose summary passes.
    pub filter: SummaryFilter,
    /// Only users after this one (the last of the previous page).
    pub after: Option<UserId>,
    /// At most this many.
    pub limit: usize,
}

/// A filter on [`RecordSummary`] columns: each is one indexed predicate in SQL
/// (see [`SummaryFilter::matches`] for the exact rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SummaryFilter {
    /// Every record.
    Any,
    /// No authenticator, nothing pending, no re-enrolment required.
    MfaOff,
    /// At least one authenticator.
    Enrolled,
    /// An enrolment awaits its first code.
    PendingEnrolment,
    /// An admin reset requires enrolment at the next sign-in.
    MustEnrol,
    /// Locked at this Unix time ([`Lock::holds_at`] it).
    LockedAt(u64),
    /// No authenticator, no re-enrolment required, and fewer grace sign-ins
    /// used than this (any number when `None`).
    GraceUsedBelow(Option<u32>),
    /// The user asked for a reset and no admin has decided yet.
    ResetRequested,
}

impl SummaryFilter {
    /// Whether a record with `summary` passes: the filter a store without
    /// indexes applies in code.
    pub fn matches(&self, summary: &RecordSummary) -> bool {
        let s = summary;
        match *self {
            Self::Any => true,
            Self::MfaOff => s.authenticators == 0 && !s.pending_enrolment && !s.must_enrol,
            Self::Enrolled => s.authenticators > 0,
            Self::PendingEnrolment => s.pending_enrolment,
            Self::MustEnrol => s.must_enrol,
            Self::LockedAt(now) => s.locked.is_some_and(|lock| lock.holds_at(now)),
            Self::GraceUsedBelow(limit) => {
                s.authenticators == 0 && !s.must_enrol && limit.is_none_or(|n| s.grace_sign_ins_used < n)
            }
            Self::ResetRequested => s.reset_requested_at.is_some(),
        }
    }
}

impl UserListing {
    /// Whether `user`, with `summary`, is on this listing's page range and passes its filters.
    pub fn selects(&self, user: &UserId, summary: &RecordSummary) -> bool {
        self.kind.is_none_or(|k| user.kind() == k)
            && self.after.as_ref().is_none_or(|a| user > a)
            && self.filter.matches(summary)
    }
}

/// Which users [`Portal::users`](crate::Portal::users) lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum StatusFilter {
    /// Every user with a record.
    #[default]
    Any,
    /// No authenticator, nothing pending and no re-enrolment required.
    MfaOff,
    /// At least one authenticator.
    Enrolled,
    /// An enrolment waits for its confirmation code.
    PendingEnrolment,
    /// An admin reset requires enrolment at the next sign-in.
    MustReenrol,
    /// Locked out now.
    LockedOut,
    /// Not enrolled, under an enforced policy whose grace still lets them sign in.
    InGrace,
    /// Asked for a reset that no admin has approved or declined yet.
    ResetRequested,
}

impl StatusFilter {
    /// A stable snake_case name, for query strings and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::MfaOff => "mfa_off",
            Self::Enrolled => "enrolled",
            Self::PendingEnrolment => "pending_enrolment",
            Self::MustReenrol => "must_reenrol",
            Self::LockedOut => "locked_out",
            Self::InGrace => "in_grace",
            Self::ResetRequested => "reset_requested",
        }
    }

    /// The summary filter this status is at `now` under `policy`; `None`
    /// when nobody can have it (no grace is running).
    pub(crate) fn summary_filter(self, policy: &PortalPolicy, now: u64) -> Option<SummaryFilter> {
        Some(match self {
            Self::Any => SummaryFilter::Any,
            Self::MfaOff => SummaryFilter::MfaOff,
            Self::Enrolled => SummaryFilter::Enrolled,
            Self::PendingEnrolment => SummaryFilter::PendingEnrolment,
            Self::MustReenrol => SummaryFilter::MustEnrol,
            Self::LockedOut => SummaryFilter::LockedAt(now),
            Self::InGrace => SummaryFilter::GraceUsedBelow(active_grace(policy, now)?.sign_ins),
            Self::ResetRequested => SummaryFilter::ResetRequested,
        })
    }

    /// The filter named by [`StatusFilter::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Any,
            Self::MfaOff,
            Self::Enrolled,
            Self::PendingEnrolment,
            Self::MustReenrol,
            Self::LockedOut,
            Self::InGrace,
            Self::ResetRequested,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }
}

/// A page request for [`Portal::users`](crate::Portal::users).
///
/// ```
/// use portal_mfa::UserKind;
/// use portal_mfa::admin::{StatusFilter, UserQuery};
/// let locked_vendors = UserQuery::new().status(StatusFilter::LockedOut).kind(UserKind::Vendor).limit(50);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserQuery {
    /// Which users.
    pub status: StatusFilter,
    /// Only users of this kind.
    pub kind: Option<UserKind>,
    /// Users per page: 50 unless set; 0 is refused, more than
    /// [`MAX_PAGE`](crate::MAX_PAGE) is capped.
    pub limit: usize,
    cursor: Option<Cursor>,
}

impl Default for UserQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl UserQuery {
    /// Users per page unless [`UserQuery::limit`] is set.
    pub const DEFAULT_LIMIT: usize = 50;

    /// Every user with a record, first page.
    pub fn new() -> Self {
        Self {
            status: StatusFilter::Any,
            kind: None,
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
        }
    }

    /// Only users with this status.
    #[must_use]
    pub fn status(mut self, status: StatusFilter) -> Self {
        self.status = status;
        self
    }

    /// Only users of this kind.
    #[must_use]
    pub fn kind(mut self, kind: UserKind) -> Self {
        self.kind = Some(kind);
        self
    }

    crate::page::paged_query_builders!("users");

    const LISTING: &'static str = "us1";

    fn fingerprint(&self, portal: &PortalId) -> Fingerprint {
        Fingerprint::default()
            .part(portal.as_str().as_bytes())
            .part(self.status.name().as_bytes())
            .part(self.kind.map_or("", UserKind::as_str).as_bytes())
    }

    /// The store's listing for this page (with one look-ahead row) and the page size.
    pub(crate) fn resolve(
        &self,
        portal: &PortalId,
        policy: &PortalPolicy,
        now: u64,
    ) -> Result<(Option<UserListing>, usize)> {
        let size = page_size(self.limit)?;
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(user_at(cursor.position_in(Self::LISTING, &self.fingerprint(portal))?)?),
        };
        // No grace now: nobody is in it, and the store need not be asked.
        let Some(filter) = self.status.summary_filter(policy, now) else {
            return Ok((None, size));
        };
        let listing = UserListing {
            portal: portal.clone(),
            kind: self.kind,
            filter,
            after,
            limit: size + 1,
        };
        Ok((Some(listing), size))
    }

    pub(crate) fn cursor_at(&self, portal: &PortalId, user: &UserId) -> Cursor {
        let id: String = user.id().bytes().map(|b| format!("{b:02x}")).collect();
        // An empty id still leaves a non-empty position: the kind and its dot.
        Cursor::new(
            Self::LISTING,
            &self.fingerprint(portal),
            &format!("{}.{id}", user.kind().as_str()),
        )
    }
}

/// The user a cursor's position names: `kind.hex(id)`.
fn user_at(position: &str) -> Result<UserId> {
    let bad = || Error::InvalidCursor("not a cursor");
    let (kind, hex) = position.split_once('.').ok_or_else(bad)?;
    let kind = UserKind::from_name(kind).ok_or_else(bad)?;
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()?;
    Ok(UserId::new(kind, String::from_utf8(bytes).map_err(|_| bad())?))
}

/// The grace of an enforced policy, while it still lets users without MFA sign in at `now`.
fn active_grace(policy: &PortalPolicy, now: u64) -> Option<Grace> {
    match policy.enforcement() {
        Enforcement::Enforced { grace: Some(grace) } if grace.until.is_none_or(|until| now <= until) => Some(grace),
        _ => None,
    }
}

/// What is left of a user's grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GraceLeft {
    /// Grace sign-ins left, if counted.
    pub sign_ins: Option<u32>,
    /// When the grace ends, if dated.
    pub until: Option<u64>,
}

/// One user's MFA status, for an admin's list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UserStatus {
    /// The user.
    pub user: UserId,
    /// Confirmed factors, authenticator apps and passkeys (0: not enrolled).
    pub authenticators: u8,
    /// Of those, passkeys and security keys (the rest are authenticator apps).
    pub passkeys: u8,
    /// Whether an enrolment waits for its confirmation code, or a passkey registration for its response.
    pub pending_enrolment: bool,
    /// Whether an admin reset requires enrolment at the next sign-in.
    pub must_reenrol: bool,
    /// The lock in force now, if any.
    pub locked: Option<Lock>,
    /// The grace left, while the user may still sign in without MFA under an enforced policy.
    pub grace: Option<GraceLeft>,
    /// Unused backup codes.
    pub backup_codes_left: u8,
    /// When the user last proved their second factor (Unix time).
    pub last_verified_at: Option<u64>,
    /// Browsers the user trusts to skip the second factor, as of the record's
    /// last write (0 while the policy trusts none).
    pub trusted_browsers: u8,
    /// When the user asked for a reset no admin has decided yet (the note is
    /// on the record: [`MfaRecord::reset_request`]).
    pub reset_requested_at: Option<u64>,
}

impl UserStatus {
    pub(crate) fn of(user: UserId, summary: &RecordSummary, policy: &PortalPolicy, now: u64) -> Self {
        let locked = summary.locked.filter(|lock| lock.holds_at(now));
        let grace = active_grace(policy, now)
            .filter(|_| SummaryFilter::GraceUsedBelow(None).matches(summary))
            .and_then(|grace| {
                let left = grace.sign_ins.map(|n| n.saturating_sub(summary.grace_sign_ins_used));
                (left != Some(0)).then_some(GraceLeft {
                    sign_ins: left,
                    until: grace.until,
                })
            });
        Self {
            user,
            authenticators: summary.authenticators,
            passkeys: summary.passkeys,
            pending_enrolment: summary.pending_enrolment,
            must_reenrol: summary.must_enrol,
            locked,
            grace,
            backup_codes_left: summary.backup_codes_left,
            last_verified_at: summary.last_verified_at,
            trusted_browsers: if policy.trusted_browser_lifetime_secs() == 0 {
                0
            } else {
                summary.trusted_browsers
            },
            reset_requested_at: summary.reset_requested_at,
        }
    }

    /// Whether MFA is on: at least one authenticator.
    pub fn mfa_on(&self) -> bool {
        self.authenticators > 0
    }
}

// ----- a bulk reset's plan: which users, judged on the record as the listing judges its summary -----

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
    /// `note` (at most [`ResetRequest::MAX_NOTE_CHARS`](crate::record::ResetRequest::MAX_NOTE_CHARS)), of the users
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

impl BulkReset {
    /// Whether this plan resets `record` (of a user of `kind`) under `policy` at `now`: the
    /// selection holds, and the user still holds a factor added before the incident began.
    pub fn selects(&self, record: &MfaRecord, kind: UserKind, policy: &PortalPolicy, now: u64) -> bool {
        let selection = &self.selection;
        // The cheap tests first: a sweep asks this of every record.
        selection.kind.is_none_or(|k| k == kind)
            && factor_times(record).any(|(added, _)| added < self.started_at)
            && selection
                .added_before
                .is_none_or(|t| factor_times(record).any(|(added, _)| added < t))
            && selection
                .last_used_before
                .is_none_or(|t| factor_times(record).any(|(_, used)| used < t))
            && selection
                .status
                .summary_filter(policy, now)
                .is_some_and(|filter| filter.matches(&RecordSummary::of(record)))
    }

    /// One user's step, as a transition: **Reset MFA** with [`BulkReset::reason`] if the plan
    /// [`selects`](BulkReset::selects) the record now; `None`, changing nothing, otherwise.
    pub fn step(&self, record: MfaRecord, ctx: &Context<'_>) -> Outcome<Option<ResetSummary>> {
        if !self.selects(&record, ctx.user.kind(), ctx.policy, ctx.now) {
            return Outcome {
                record,
                changed: false,
                events: Vec::new(),
                result: Ok(None),
            };
        }
        let outcome = record.admin_reset(ctx, self.reason(), self.mode);
        Outcome {
            record: outcome.record,
            changed: outcome.changed,
            events: outcome.events,
            result: outcome.result.map(Some),
        }
    }
}

/// Each factor's (added, last used or else added) times.
fn factor_times(record: &MfaRecord) -> impl Iterator<Item = (u64, u64)> + '_ {
    let apps = record.authenticators().iter().map(|a| {
        // A step's start, but never before the app was added (its confirming code's step began earlier).
        let used = a
            .last_used_step()
            .and_then(|step| a.params().step_start(step).ok())
            .map_or(a.added_at(), |start| start.max(a.added_at()));
        (a.added_at(), used)
    });
    let passkeys = record
        .passkeys()
        .iter()
        .map(|p| (p.added_at(), p.last_used_at().unwrap_or(p.added_at())));
    apps.chain(passkeys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_cursor_round_trips_any_id_and_refuses_damage() {
        let query = UserQuery::new().status(StatusFilter::LockedOut);
        let portal = PortalId::new("acme");
        for user in [
            UserId::customer("c-1"),
            UserId::vendor(""),
            UserId::contact("ünïcode.with.dots"),
            UserId::customer("é".repeat(UserId::MAX_LEN / 2)),
        ] {
            let cursor = query.cursor_at(&portal, &user);
            // Even the longest id's cursor reads back from its text.
            let cursor = crate::Cursor::parse(cursor.as_str()).unwrap();
            let position = cursor
                .position_in(UserQuery::LISTING, &query.fingerprint(&portal))
                .unwrap();
            assert_eq!(user_at(position).unwrap(), user);
        }
        for position in ["customer", "nobody.00", "customer.0", "customer.zz", "customer.ff"] {
            assert!(matches!(user_at(position), Err(Error::InvalidCursor(_))), "{position}");
        }
        let other = UserQuery::new().status(StatusFilter::Enrolled);
        let cursor = query.cursor_at(&portal, &UserId::customer("c-1"));
        let policy = PortalPolicy::default();
        assert!(matches!(
            other.after(cursor).resolve(&portal, &policy, 0),
            Err(Error::InvalidCursor(_))
        ));
    }
}

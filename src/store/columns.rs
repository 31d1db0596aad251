//! What the SQL stores share about the summary columns: the listing query over
//! them, and reading a summary back. Each store keeps its own placeholders.

use crate::policy::Lock;

use super::{RecordSummary, StorageError, StorageErrorKind, SummaryFilter, UserListing};

/// Counts and versions in signed 64-bit columns; no real store passes `i64::MAX`.
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Times in SQL columns are plain Unix seconds, clamped at `i64::MAX` (the year
/// 292 billion): the clamp keeps their order, and such a time means "never".
pub(crate) fn time(value: u64) -> i64 {
    int(value)
}

/// A lock as its column holds it: its end, or `i64::MAX` for a lock until an
/// admin reset (which a clock never reaches: the driver refuses times past it).
pub(crate) fn lock_column(lock: Lock) -> i64 {
    lock.until.map_or(i64::MAX, time)
}

/// A query's time range `[from, until)` as SQL binds it: `None` when it
/// selects nothing, else the lower bound and the upper one (`None`: unbounded,
/// bound as NULL in `(until IS NULL OR at < until)`). Stored times never pass
/// `i64::MAX` (the driver refuses such a clock), so a lower bound past it
/// selects nothing and an upper bound past it bounds nothing, as the memory
/// store's plain range does.
pub(crate) fn time_range(from: Option<u64>, until: Option<u64>) -> Option<(i64, Option<i64>)> {
    let from = match from {
        None => 0,
        Some(from) => i64::try_from(from).ok()?,
    };
    Some((from, until.and_then(|until| i64::try_from(until).ok())))
}

/// The statement listing a page of users, and the value of its sixth
/// parameter. Every filter, the kind and the cursor are each an indexable
/// predicate, so each combination is its own statement; all bind the same six
/// parameters (portal, kind, after kind, after id, limit, the filter's bound),
/// the unused ones NULL. `param(n)` writes the store's placeholder for parameter `n`.
pub(crate) fn users_sql(table: &str, listing: &UserListing, param: impl Fn(usize) -> String) -> (String, Option<i64>) {
    let bound = param(6);
    let (filter, value) = match listing.filter {
        SummaryFilter::Any => (String::new(), None),
        SummaryFilter::MfaOff => (
            "AND authenticators = 0 AND NOT pending_enrolment AND NOT must_enrol".to_owned(),
            None,
        ),
        SummaryFilter::Enrolled => ("AND authenticators > 0".to_owned(), None),
        SummaryFilter::PendingEnrolment => ("AND pending_enrolment".to_owned(), None),
        SummaryFilter::MustEnrol => ("AND must_enrol".to_owned(), None),
        // A column of i64::MAX is a lock until an admin reset, locked even at
        // the last second a clock may show: compare below it.
        SummaryFilter::LockedAt(now) => (
            format!("AND locked_until IS NOT NULL AND locked_until > {bound}"),
            Some(time(now).min(i64::MAX - 1)),
        ),
        SummaryFilter::ResetRequested => ("AND reset_requested_at IS NOT NULL".to_owned(), None),
        SummaryFilter::GraceUsedBelow(None) => ("AND authenticators = 0 AND NOT must_enrol".to_owned(), None),
        SummaryFilter::GraceUsedBelow(Some(n)) => (
            format!("AND authenticators = 0 AND NOT must_enrol AND grace_sign_ins_used < {bound}"),
            Some(n.into()),
        ),
    };
    let unused = |n| format!("AND {} IS NULL", param(n));
    let bound_used = if value.is_some() { String::new() } else { unused(6) };
    let kind = match listing.kind {
        Some(_) => format!("AND user_kind = {}", param(2)),
        None => unused(2),
    };
    let after = match listing.after {
        Some(_) => format!("AND (user_kind, user_id) > ({}, {})", param(3), param(4)),
        None => format!("{} {}", unused(3), unused(4)),
    };
    let sql = format!(
        "SELECT user_kind, user_id, authenticators, pending_enrolment, must_enrol, locked_until,
                backup_codes_left, last_verified_at, grace_sign_ins_used, trusted_browsers, passkeys,
                reset_requested_at
         FROM {table} WHERE portal = {} {filter} {bound_used} {kind} {after}
         ORDER BY user_kind, user_id LIMIT {}",
        param(1),
        param(5)
    );
    (sql, value)
}

/// A record's summary columns as a SQL row holds them, columns 2 to 11 of
/// [`users_sql`]'s rows.
pub(crate) struct SummaryColumns {
    pub(crate) authenticators: i64,
    pub(crate) pending_enrolment: bool,
    pub(crate) must_enrol: bool,
    pub(crate) locked_until: Option<i64>,
    pub(crate) backup_codes_left: i64,
    pub(crate) last_verified_at: Option<i64>,
    pub(crate) grace_sign_ins_used: i64,
    pub(crate) trusted_browsers: i64,
    pub(crate) passkeys: i64,
    pub(crate) reset_requested_at: Option<i64>,
}

impl SummaryColumns {
    /// The summary they hold; a value no summary can have is `Corrupt`.
    pub(crate) fn summary(self) -> Result<RecordSummary, StorageError> {
        let corrupt = || StorageError::of_kind(StorageErrorKind::Corrupt).because("a summary column is out of range");
        let small = |n: i64| u8::try_from(n).map_err(|_| corrupt());
        let time = |t: Option<i64>| t.map(|t| u64::try_from(t).map_err(|_| corrupt())).transpose();
        Ok(RecordSummary {
            authenticators: small(self.authenticators)?,
            pending_enrolment: self.pending_enrolment,
            must_enrol: self.must_enrol,
            locked: time(self.locked_until)?.map(|t| Lock {
                until: (t != i64::MAX as u64).then_some(t),
            }),
            backup_codes_left: small(self.backup_codes_left)?,
            last_verified_at: time(self.last_verified_at)?,
            grace_sign_ins_used: u32::try_from(self.grace_sign_ins_used).map_err(|_| corrupt())?,
            trusted_browsers: small(self.trusted_browsers)?,
            passkeys: small(self.passkeys)?,
            reset_requested_at: time(self.reset_requested_at)?,
        })
    }
}

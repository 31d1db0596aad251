//! What a user is told about an event, ready for an email: who it concerns,
//! what happened, when, by whom, and why. Built from the audit event alone,
//! so it never holds a secret or a code.

use crate::event::{AuditEvent, EventKind, RemovalCause, ResetMode, ResetReason};
use crate::ids::{Actor, UserId};

/// A message for the user an event concerns: [`AuditEvent::notice`] builds it
/// for the events a user must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notice {
    /// The user to tell (the host looks up their address).
    pub to: UserId,
    /// A one-line subject, starting with the portal's name.
    pub subject: String,
    /// Plain text: what happened, when (UTC), by whom, why (for resets), and
    /// what to do if it was not them.
    pub body: String,
}

impl AuditEvent {
    /// The notice for this event's user, under the portal's display name;
    /// `None` for events a user need not hear about
    /// ([`EventKind::user_must_hear`]) and for portal-wide events.
    ///
    /// ```
    /// # use portal_mfa::*;
    /// # use portal_mfa::{admin::*, audit::*, otp::*, store::MemoryStore};
    /// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())?;
    /// let admin = Admin::authorised("admin@acme.example");
    /// let user = UserId::customer("c-1");
    /// portal.admin_reset(&admin, &user, ResetReason::LostDevice, ResetMode::default()).run()?;
    /// let trail = portal.audit_events(EventQuery::portal(portal.id()).user(&user)).run()?;
    /// let notice = trail.items[0].notice("Acme Portal").unwrap();
    /// assert!(notice.subject.starts_with("Acme Portal: "));
    /// assert!(notice.body.contains("admin@acme.example") && notice.body.contains("lost device"));
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    pub fn notice(&self, portal_name: &str) -> Option<Notice> {
        let to = self.user.clone()?;
        if !self.kind.user_must_hear() {
            return None;
        }
        let (headline, what) = describe(&self.kind)?;
        let mut body = format!("What: {what}\nWhen: {}\nBy: {}\n", utc(self.at), by_whom(&self.actor));
        if let EventKind::MfaReset { reason, .. } = &self.kind {
            body.push_str(&format!("Why: {}\n", reason_text(reason)));
        }
        body.push_str("If you did not expect this, contact your administrator at once.\n");
        Some(Notice {
            to,
            subject: format!("{portal_name}: {headline}"),
            body,
        })
    }
}

/// A subject line and the sentence for the body, for the kinds a user hears about.
fn describe(kind: &EventKind) -> Option<(&'static str, String)> {
    Some(match kind {
        EventKind::AuthenticatorAdded { label, .. } => (
            "an authenticator was added",
            format!("The authenticator \"{label}\" was added to your account's two-factor sign-in."),
        ),
        EventKind::AuthenticatorRemoved { cause, .. } => (
            "an authenticator was removed",
            match cause {
                RemovalCause::Deleted => "An authenticator was deleted from your account.",
                RemovalCause::Replaced => "An authenticator was replaced by the new one you set up.",
                RemovalCause::AdminReset => "An authenticator was removed when your two-factor sign-in was reset.",
            }
            .to_owned(),
        ),
        EventKind::PasskeyAdded { label, .. } => (
            "a passkey was added",
            format!("The passkey or security key \"{label}\" was added to your account's two-factor sign-in."),
        ),
        EventKind::PasskeyRemoved { cause, .. } => (
            "a passkey was removed",
            match cause {
                RemovalCause::Deleted => "A passkey or security key was deleted from your account.",
                RemovalCause::Replaced => "A passkey or security key was replaced by the new one you set up.",
                RemovalCause::AdminReset => {
                    "A passkey or security key was removed when your two-factor sign-in was reset."
                }
            }
            .to_owned(),
        ),
        EventKind::PasskeyRegistrationFailed { failures } => (
            "a passkey setup was cancelled",
            format!("Setting up a passkey or security key was cancelled after {failures} refused attempts."),
        ),
        EventKind::PasskeyCounterRegressed { .. } => (
            "a possible copy of your security key",
            "A sign-in with your passkey or security key was refused: its counter went backwards, which a \
             copied key does. If you did not try to sign in, contact an administrator."
                .to_owned(),
        ),
        EventKind::BackupCodesIssued { count, .. } => (
            "new backup codes",
            format!("{count} new backup codes were generated; the earlier ones no longer work."),
        ),
        EventKind::BackupCodeUsed { remaining } => (
            "a backup code was used",
            format!("A backup code was used to sign in; {remaining} unused codes are left."),
        ),
        EventKind::LockedOut { until } => (
            "two-factor sign-in locked",
            match until {
                Some(until) => format!(
                    "Two-factor sign-in was locked after too many wrong codes, until {}.",
                    utc(*until)
                ),
                None => "Two-factor sign-in was locked after too many wrong codes, until an administrator \
                         resets it."
                    .to_owned(),
            },
        ),
        EventKind::EnrolmentFailed { wrong_codes } => (
            "an authenticator setup was cancelled",
            format!("Setting up an authenticator was cancelled after {wrong_codes} wrong codes."),
        ),
        EventKind::MfaReset { mode, .. } => (
            "two-factor sign-in was reset",
            match mode {
                ResetMode::ForceReenrolment => {
                    "Your two-factor sign-in was reset; you will set up an authenticator at your next sign-in."
                }
                ResetMode::RemoveOnly => "Your two-factor sign-in was reset; your authenticators were removed.",
            }
            .to_owned(),
        ),
        EventKind::ResetRequested { .. } => (
            "you asked for a reset of your two-factor sign-in",
            "You asked for your two-factor sign-in to be reset. An administrator will review the request; \
             nothing is removed until one approves it."
                .to_owned(),
        ),
        EventKind::ResetRequestWithdrawn => (
            "your reset request was withdrawn",
            "Your request for a reset was withdrawn because you signed in with your second factor.".to_owned(),
        ),
        EventKind::ResetRequestDeclined { note } => (
            "your reset request was declined",
            if note.is_empty() {
                "An administrator declined your request for a reset of your two-factor sign-in.".to_owned()
            } else {
                format!("An administrator declined your request for a reset of your two-factor sign-in: {note}")
            },
        ),
        _ => return None,
    })
}

fn by_whom(actor: &Actor) -> String {
    match actor {
        Actor::User => "you".to_owned(),
        Actor::Admin(name) => format!("an administrator ({name})"),
        Actor::System => "the system".to_owned(),
        Actor::Operator { name, .. } => format!("an administrator at the command line ({name})"),
    }
}

fn reason_text(reason: &ResetReason) -> String {
    match reason {
        ResetReason::LostDevice => "lost device".to_owned(),
        ResetReason::NewDevice => "new device".to_owned(),
        ResetReason::LockedOut => "locked out".to_owned(),
        ResetReason::SecurityIncident => "security incident".to_owned(),
        ResetReason::Other(note) => format!("other: {note}"),
        ResetReason::Requested(note) => format!("you asked for it (\"{note}\")"),
        ResetReason::Incident { id, note } => format!("security incident {id}: {note}"),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time (proleptic Gregorian calendar).
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_matches_known_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_763_800_000), "2025-11-22 08:26:40 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
        // The driver refuses times past i64::MAX; the largest it stores still formats.
        assert!(utc(i64::MAX as u64).ends_with(" UTC"));
    }
}

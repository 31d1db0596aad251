//! The emails the portal would send, kept for the admin to read: the
//! stand-in for a mail server. Each is built by portal-mfa from a committed
//! audit event (`AuditEvent::notice`), so it never holds a secret or a code.
//!
//! Bounded, so someone holding only a password cannot flood a user's inbox
//! (or the server's memory) by repeating a failure: a recipient gets at most
//! [`Outbox::SAME_NOTICE_PER_HOUR`] notices with the same subject in an hour
//! (a different notice, such as a reset, always goes), and the outbox keeps
//! the newest [`Outbox::KEPT`] emails.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use portal_mfa::audit::AuditEvent;

/// One email.
#[derive(Debug, Clone)]
pub struct Email {
    /// Unix time of the event.
    pub at: u64,
    /// The address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Every email so far, oldest first, within the bounds.
#[derive(Debug, Default, Clone)]
pub struct Outbox(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    emails: VecDeque<Email>,
    /// Per (recipient, subject): the hour's window start and how many went in it.
    recent: HashMap<(String, String), (u64, u32)>,
    withheld: u64,
}

impl Outbox {
    /// Notices of one kind one recipient gets in an hour.
    pub const SAME_NOTICE_PER_HOUR: u32 = 3;
    /// Emails kept.
    pub const KEPT: usize = 1_000;

    /// A portal-mfa notifier that writes each event's notice here, as from `portal_name`.
    pub fn notifier(&self, portal_name: &'static str) -> impl Fn(&AuditEvent) + Send + Sync + 'static {
        let outbox = self.clone();
        move |event: &AuditEvent| {
            if let Some(notice) = event.notice(portal_name) {
                outbox.send(Email {
                    at: event.at,
                    to: notice.to.id().to_owned(),
                    subject: notice.subject,
                    body: notice.body,
                });
            }
        }
    }

    /// Sends `email` unless its recipient had this notice too often this hour.
    pub fn send(&self, email: Email) {
        let mut state = self.lock();
        let key = (email.to.clone(), email.subject.clone());
        let (start, sent) = state.recent.get(&key).copied().unwrap_or((email.at, 0));
        let (start, sent) = if email.at >= start.saturating_add(3_600) {
            (email.at, 0)
        } else {
            (start, sent)
        };
        if sent >= Self::SAME_NOTICE_PER_HOUR {
            state.withheld += 1;
            return;
        }
        if state.recent.len() >= 4 * Self::KEPT {
            let now = email.at;
            state.recent.retain(|_, (start, _)| now < start.saturating_add(3_600));
            // Still full within one hour: forget the counts rather than grow.
            if state.recent.len() >= 4 * Self::KEPT {
                state.recent.clear();
            }
        }
        state.recent.insert(key, (start, sent + 1));
        state.emails.push_back(email);
        while state.emails.len() > Self::KEPT {
            state.emails.pop_front();
        }
    }

    /// Every email kept, newest first.
    pub fn newest_first(&self) -> Vec<Email> {
        self.lock().emails.iter().rev().cloned().collect()
    }

    /// Notices withheld as repeats.
    pub fn withheld(&self) -> u64 {
        self.lock().withheld
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(at: u64, to: &str, subject: &str) -> Email {
        Email {
            at,
            to: to.to_owned(),
            subject: subject.to_owned(),
            body: String::new(),
        }
    }

    #[test]
    fn repeats_are_withheld_for_the_hour_other_notices_go_and_the_outbox_is_bounded() {
        let outbox = Outbox::default();
        for i in 0..10 {
            outbox.send(email(1_000 + i, "carol", "Set-up failed"));
        }
        outbox.send(email(1_010, "carol", "MFA reset"));
        outbox.send(email(1_011, "dan", "Set-up failed"));
        let carol: Vec<Email> = outbox.newest_first().into_iter().filter(|e| e.to == "carol").collect();
        assert_eq!(carol.iter().filter(|e| e.subject == "Set-up failed").count(), 3);
        assert!(carol.iter().any(|e| e.subject == "MFA reset"));
        assert_eq!(outbox.withheld(), 7);
        // An hour on, the notice goes again.
        outbox.send(email(1_000 + 3_600, "carol", "Set-up failed"));
        assert_eq!(outbox.withheld(), 7);
        for i in 0..3 * Outbox::KEPT as u64 {
            outbox.send(email(10_000 + i, &format!("user-{i}"), "Hello"));
        }
        assert_eq!(outbox.newest_first().len(), Outbox::KEPT);
        assert!(outbox.lock().recent.len() <= 4 * Outbox::KEPT + 1);
    }
}

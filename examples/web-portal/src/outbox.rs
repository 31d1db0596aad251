//! The emails the portal would send, kept for the admin to read: the
//! stand-in for a mail server. Each is built by portal-mfa from a committed
//! audit event (`AuditEvent::notice`), so it never holds a secret or a code.

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

/// Every email so far, oldest first.
#[derive(Debug, Default, Clone)]
pub struct Outbox(Arc<Mutex<Vec<Email>>>);

impl Outbox {
    /// A portal-mfa notifier that writes each event's notice here, as from `portal_name`.
    pub fn notifier(&self, portal_name: &'static str) -> impl Fn(&AuditEvent) + Send + Sync + 'static {
        let outbox = self.clone();
        move |event: &AuditEvent| {
            if let Some(notice) = event.notice(portal_name) {
                outbox.lock().push(Email {
                    at: event.at,
                    to: notice.to.id().to_owned(),
                    subject: notice.subject,
                    body: notice.body,
                });
            }
        }
    }

    /// Every email, newest first.
    pub fn newest_first(&self) -> Vec<Email> {
        self.lock().iter().rev().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Email>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

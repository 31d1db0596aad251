//! A change of the portal's policy, as the pure state machine sees it: which
//! audit events it emits (the driver commits them with the policy's bytes).

use crate::event::{AuditEvent, EventKind};
use crate::ids::{Actor, PortalId};
use crate::policy::PortalPolicy;

/// The audit events of a change from `old` to `new`, made by `actor` on
/// `portal` at `now`: one per setting group that changed.
pub(crate) fn policy_change_events(
    old: &PortalPolicy,
    new: &PortalPolicy,
    portal: &PortalId,
    actor: &Actor,
    now: u64,
) -> Vec<AuditEvent> {
    let mut kinds = Vec::new();
    if old.enforcement() != new.enforcement() {
        kinds.push(EventKind::EnforcementChanged {
            enforcement: new.enforcement(),
        });
    }
    if old.sign_in_method() != new.sign_in_method() {
        kinds.push(EventKind::SignInMethodChanged {
            method: new.sign_in_method(),
        });
    }
    let settings = |p: &PortalPolicy| {
        (
            p.otp(),
            p.window(),
            p.lockout(),
            p.enrolment_lifetime_secs(),
            p.backup_code_count(),
            p.backup_codes_low_at(),
            p.trusted_browser_days(),
        )
    };
    if settings(old) != settings(new) {
        kinds.push(EventKind::PolicySettingsChanged);
    }
    kinds
        .into_iter()
        .map(|kind| AuditEvent {
            at: now,
            portal: portal.clone(),
            user: None,
            actor: actor.clone(),
            kind,
        })
        .collect()
}

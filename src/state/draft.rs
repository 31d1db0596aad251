//! A record being changed, with the events the change emits. Whether it
//! changed is derived from the change itself: any mutable access to the record
//! marks it changed (as does any event), so a transition cannot alter a field
//! and have the store skip the write.

use super::record::MfaRecord;
use super::transitions::{Context, Outcome};
use crate::error::Result;
use crate::event::{AuditEvent, EventKind};

pub(super) struct Draft<'c> {
    record: MfaRecord,
    events: Vec<AuditEvent>,
    changed: bool,
    pub(super) ctx: &'c Context<'c>,
}

impl<'c> Draft<'c> {
    pub(super) fn new(record: MfaRecord, ctx: &'c Context<'c>) -> Self {
        Self {
            record,
            events: Vec::new(),
            changed: false,
            ctx,
        }
    }

    pub(super) fn record(&self) -> &MfaRecord {
        &self.record
    }

    /// The record, to change: from here on it is written back.
    pub(super) fn record_mut(&mut self) -> &mut MfaRecord {
        self.changed = true;
        &mut self.record
    }

    /// Records an event; the trail changed, so the record is written with it.
    pub(super) fn emit(&mut self, kind: EventKind) {
        self.events.push(AuditEvent {
            at: self.ctx.now,
            portal: self.ctx.portal.clone(),
            user: Some(self.ctx.user.clone()),
            actor: self.ctx.actor.clone(),
            kind,
        });
        self.changed = true;
    }

    pub(super) fn done<T>(self, result: Result<T>) -> Outcome<T> {
        Outcome {
            record: self.record,
            changed: self.changed,
            events: self.events,
            result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Actor;
    use crate::ids::{PortalId, UserId};
    use crate::policy::PortalPolicy;

    #[test]
    fn a_field_changed_without_an_event_is_still_a_change() {
        let (portal, user, policy, actor) = (
            PortalId::new("p"),
            UserId::customer("u"),
            PortalPolicy::default(),
            Actor::User,
        );
        let ctx = Context {
            portal: &portal,
            user: &user,
            policy: &policy,
            now: 1,
            actor: &actor,
        };
        let untouched = Draft::new(MfaRecord::default(), &ctx).done(Ok(()));
        assert!(!untouched.changed);
        let mut draft = Draft::new(MfaRecord::default(), &ctx);
        draft.record_mut().must_enrol = true;
        let flipped = draft.done(Ok(()));
        assert!(flipped.changed && flipped.events.is_empty() && flipped.record.must_enrol());
    }
}

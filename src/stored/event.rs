//! An [`AuditEvent`] in its stored form. It holds no secret.

use std::sync::Arc;

use super::parts::{read_reason, reason};
use super::policy::{enforcement, method_tag, read_enforcement, read_method};
use super::{EVENT_FORMAT, Reader, Writer, corrupt, format_version};
use crate::error::Result;
use crate::event::{AuditEvent, EventKind, Factor, ForgetCause, RemovalCause, ResetMode, SessionEndCause};
use crate::ids::Actor;
use crate::ids::{AuthenticatorId, BrowserId, PortalId, UserId, UserKind};

pub(crate) fn encode_event(e: &AuditEvent) -> Vec<u8> {
    let mut w = Writer::new(EVENT_FORMAT);
    w.uint(e.at);
    w.str(e.portal.as_str());
    match &e.user {
        None => w.u8(0),
        Some(user) => {
            w.u8(kind_tag(user.kind()));
            w.str(user.id());
        }
    }
    match &e.actor {
        Actor::User => w.u8(0),
        Actor::Admin(name) => {
            w.u8(1);
            w.str(name);
        }
        Actor::System => w.u8(2),
        Actor::Operator { name, reason } => {
            w.u8(3);
            w.str(name);
            w.str(reason);
        }
    }
    kind(&mut w, &e.kind);
    w.0
}

pub(crate) fn decode_event(bytes: &[u8]) -> Result<AuditEvent> {
    format_version(bytes, EVENT_FORMAT)?;
    let mut r = Reader::after_format(bytes);
    let at = r.uint()?;
    let portal = PortalId::new(r.str()?);
    let user = match r.u8()? {
        0 => None,
        tag => Some(UserId::new(read_kind(tag)?, r.str()?)),
    };
    let actor = match r.u8()? {
        0 => Actor::User,
        1 => Actor::Admin(Arc::from(r.str()?)),
        2 => Actor::System,
        3 => Actor::Operator {
            name: Arc::from(r.str()?),
            reason: Arc::from(r.str()?),
        },
        _ => return corrupt("unknown actor"),
    };
    let kind = read_event_kind(&mut r)?;
    r.finish()?;
    Ok(AuditEvent {
        at,
        portal,
        user,
        actor,
        kind,
    })
}

fn kind_tag(kind: UserKind) -> u8 {
    match kind {
        UserKind::Customer => 1,
        UserKind::Vendor => 2,
        UserKind::Contact => 3,
        UserKind::Member => 4,
    }
}

fn read_kind(tag: u8) -> Result<UserKind> {
    Ok(match tag {
        1 => UserKind::Customer,
        2 => UserKind::Vendor,
        3 => UserKind::Contact,
        4 => UserKind::Member,
        _ => return corrupt("unknown user kind"),
    })
}

fn kind(w: &mut Writer, kind: &EventKind) {
    match kind {
        EventKind::EnforcementChanged { enforcement: e } => {
            w.u8(1);
            enforcement(w, *e);
        }
        EventKind::SignInMethodChanged { method } => {
            w.u8(2);
            w.u8(method_tag(*method));
        }
        EventKind::PolicySettingsChanged => w.u8(3),
        EventKind::GraceSignIn { remaining } => {
            w.u8(4);
            w.opt_uint(remaining.map(u64::from));
        }
        EventKind::EnrolmentStarted { replaces } => {
            w.u8(5);
            w.opt_uint(replaces.map(|r| r.0.into()));
        }
        EventKind::EnrolmentCancelled => w.u8(6),
        EventKind::EnrolmentFailed { wrong_codes } => {
            w.u8(16);
            w.u8(*wrong_codes);
        }
        EventKind::AuthenticatorAdded { authenticator, label } => {
            w.u8(7);
            w.uint(authenticator.0.into());
            w.str(label);
        }
        EventKind::AuthenticatorRemoved { authenticator, cause } => {
            w.u8(8);
            w.uint(authenticator.0.into());
            w.u8(removal_cause(*cause));
        }
        EventKind::BackupCodesIssued { count, regenerated } => {
            w.u8(9);
            w.u8(*count);
            w.u8((*regenerated).into());
        }
        EventKind::BackupCodeUsed { remaining } => {
            w.u8(10);
            w.uint((*remaining).into());
        }
        EventKind::Verified { factor } => {
            w.u8(11);
            match factor {
                Factor::Totp(id) => {
                    w.u8(1);
                    w.uint(id.0.into());
                }
                Factor::BackupCode => w.u8(2),
                Factor::Passkey(id) => {
                    w.u8(3);
                    w.uint(id.0.into());
                }
            }
        }
        EventKind::VerificationFailed { consecutive_failures } => {
            w.u8(12);
            w.uint((*consecutive_failures).into());
        }
        EventKind::ReplayRejected { authenticator } => {
            w.u8(13);
            w.uint(authenticator.0.into());
        }
        EventKind::LockedOut { until } => {
            w.u8(14);
            w.opt_uint(*until);
        }
        EventKind::MfaReset {
            reason: why,
            mode,
            authenticators_removed,
            backup_codes_removed,
        } => {
            w.u8(15);
            reason(w, why);
            w.u8(match mode {
                ResetMode::ForceReenrolment => 1,
                ResetMode::RemoveOnly => 2,
            });
            w.uint((*authenticators_removed).into());
            w.uint((*backup_codes_removed).into());
        }
        EventKind::SessionsEnded {
            cause,
            browsers_forgotten,
        } => {
            w.u8(17);
            w.u8(match cause {
                SessionEndCause::AdminReset => 1,
                SessionEndCause::AuthenticatorRemoved => 2,
                SessionEndCause::AuthenticatorReplaced => 3,
                SessionEndCause::MfaTurnedOff => 4,
                SessionEndCause::BackupCodesRegenerated => 5,
                SessionEndCause::Host => 6,
            });
            w.uint((*browsers_forgotten).into());
        }
        EventKind::BrowserTrusted { browser, expires_at } => {
            w.u8(18);
            w.uint(browser.0.into());
            w.uint(*expires_at);
        }
        EventKind::TrustedBrowserUsed { browser } => {
            w.u8(19);
            w.uint(browser.0.into());
        }
        EventKind::TrustedBrowserRefused => w.u8(20),
        EventKind::BrowsersForgotten { count, cause } => {
            w.u8(21);
            w.uint((*count).into());
            w.u8(match cause {
                ForgetCause::User => 1,
                ForgetCause::BackupCodeUsed => 2,
                ForgetCause::Evicted => 3,
            });
        }
        EventKind::PasskeyRegistrationStarted { replaces } => {
            w.u8(22);
            w.opt_uint(replaces.map(|r| r.0.into()));
        }
        EventKind::PasskeyRegistrationCancelled => w.u8(23),
        EventKind::PasskeyRegistrationFailed { failures } => {
            w.u8(24);
            w.u8(*failures);
        }
        EventKind::PasskeyAdded { authenticator, label } => {
            w.u8(25);
            w.uint(authenticator.0.into());
            w.str(label);
        }
        EventKind::PasskeyRemoved { authenticator, cause } => {
            w.u8(26);
            w.uint(authenticator.0.into());
            w.u8(removal_cause(*cause));
        }
        EventKind::ResetRequested { note } => {
            w.u8(28);
            w.str(note);
        }
        EventKind::ResetRequestWithdrawn => w.u8(29),
        EventKind::ResetRequestDeclined { note } => {
            w.u8(30);
            w.str(note);
        }
        EventKind::PasskeyCounterRegressed { authenticator } => {
            w.u8(27);
            w.uint(authenticator.0.into());
        }
    }
}

fn removal_cause(cause: RemovalCause) -> u8 {
    match cause {
        RemovalCause::Deleted => 1,
        RemovalCause::Replaced => 2,
        RemovalCause::AdminReset => 3,
    }
}

fn read_removal_cause(r: &mut Reader<'_>) -> Result<RemovalCause> {
    Ok(match r.u8()? {
        1 => RemovalCause::Deleted,
        2 => RemovalCause::Replaced,
        3 => RemovalCause::AdminReset,
        _ => return corrupt("unknown removal cause"),
    })
}

fn read_event_kind(r: &mut Reader<'_>) -> Result<EventKind> {
    let id = |r: &mut Reader<'_>| r.uint_as().map(AuthenticatorId);
    Ok(match r.u8()? {
        1 => EventKind::EnforcementChanged {
            enforcement: read_enforcement(r)?,
        },
        2 => EventKind::SignInMethodChanged {
            method: read_method(r.u8()?)?,
        },
        3 => EventKind::PolicySettingsChanged,
        4 => EventKind::GraceSignIn {
            remaining: r.opt_uint_as::<u32>()?,
        },
        5 => EventKind::EnrolmentStarted {
            replaces: r.opt_uint_as::<u32>()?.map(AuthenticatorId),
        },
        6 => EventKind::EnrolmentCancelled,
        7 => EventKind::AuthenticatorAdded {
            authenticator: id(r)?,
            label: r.str()?.into(),
        },
        8 => EventKind::AuthenticatorRemoved {
            authenticator: id(r)?,
            cause: read_removal_cause(r)?,
        },
        9 => EventKind::BackupCodesIssued {
            count: r.u8()?,
            regenerated: r.bool()?,
        },
        10 => EventKind::BackupCodeUsed {
            remaining: r.uint_as()?,
        },
        11 => EventKind::Verified {
            factor: match r.u8()? {
                1 => Factor::Totp(id(r)?),
                2 => Factor::BackupCode,
                3 => Factor::Passkey(id(r)?),
                _ => return corrupt("unknown factor"),
            },
        },
        12 => EventKind::VerificationFailed {
            consecutive_failures: r.uint_as()?,
        },
        13 => EventKind::ReplayRejected { authenticator: id(r)? },
        14 => EventKind::LockedOut { until: r.opt_uint()? },
        15 => EventKind::MfaReset {
            reason: read_reason(r)?,
            mode: match r.u8()? {
                1 => ResetMode::ForceReenrolment,
                2 => ResetMode::RemoveOnly,
                _ => return corrupt("unknown reset mode"),
            },
            authenticators_removed: r.uint_as()?,
            backup_codes_removed: r.uint_as()?,
        },
        16 => EventKind::EnrolmentFailed { wrong_codes: r.u8()? },
        17 => EventKind::SessionsEnded {
            cause: match r.u8()? {
                1 => SessionEndCause::AdminReset,
                2 => SessionEndCause::AuthenticatorRemoved,
                3 => SessionEndCause::AuthenticatorReplaced,
                4 => SessionEndCause::MfaTurnedOff,
                5 => SessionEndCause::BackupCodesRegenerated,
                6 => SessionEndCause::Host,
                _ => return corrupt("unknown session end cause"),
            },
            browsers_forgotten: r.uint_as()?,
        },
        18 => EventKind::BrowserTrusted {
            browser: BrowserId(r.uint_as()?),
            expires_at: r.uint()?,
        },
        19 => EventKind::TrustedBrowserUsed {
            browser: BrowserId(r.uint_as()?),
        },
        20 => EventKind::TrustedBrowserRefused,
        21 => EventKind::BrowsersForgotten {
            count: r.uint_as()?,
            cause: match r.u8()? {
                1 => ForgetCause::User,
                2 => ForgetCause::BackupCodeUsed,
                3 => ForgetCause::Evicted,
                _ => return corrupt("unknown forget cause"),
            },
        },
        22 => EventKind::PasskeyRegistrationStarted {
            replaces: r.opt_uint_as::<u32>()?.map(AuthenticatorId),
        },
        23 => EventKind::PasskeyRegistrationCancelled,
        24 => EventKind::PasskeyRegistrationFailed { failures: r.u8()? },
        25 => EventKind::PasskeyAdded {
            authenticator: id(r)?,
            label: r.str()?.into(),
        },
        26 => EventKind::PasskeyRemoved {
            authenticator: id(r)?,
            cause: read_removal_cause(r)?,
        },
        27 => EventKind::PasskeyCounterRegressed { authenticator: id(r)? },
        28 => EventKind::ResetRequested { note: r.str()?.into() },
        29 => EventKind::ResetRequestWithdrawn,
        30 => EventKind::ResetRequestDeclined { note: r.str()?.into() },
        _ => return corrupt("unknown event kind"),
    })
}

impl AuditEvent {
    /// The event's stored form (it holds no secret).
    pub fn encode(&self) -> Vec<u8> {
        encode_event(self)
    }

    /// Reads a stored form written by [`AuditEvent::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_event(bytes)
    }
}

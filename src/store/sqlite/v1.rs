//! Reads a schema-1 database (one column per field, secrets in plaintext)
//! for the upgrade to the sealed stored form. Nothing writes this layout;
//! this is its only reader, kept while upgrades from schema 1 are supported.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, Row};

use super::{corrupt, storage};
use crate::backup::BackupCodes;
use crate::error::Error;
use crate::event::{AuditEvent, EventKind, Factor, RemovalCause, ResetMode, ResetReason};
use crate::ids::Actor;
use crate::ids::{AuthenticatorId, PortalId, UserId, UserKind};
use crate::otp::{Algorithm, Digits, Secret, TotpParams, Window};
use crate::policy::{Enforcement, Grace, LockoutRule, PortalPolicy, SignInMethod};
use crate::state::{Authenticator, Failures, Key, MfaRecord, PendingEnrolment, ResetRecord};
use crate::store::{StorageError, Version};

type R<T> = Result<T, StorageError>;

fn small<T: TryFrom<i64>>(value: i64) -> R<T> {
    T::try_from(value).map_err(|_| corrupt("a stored number is out of range"))
}

fn bad(error: Error) -> StorageError {
    StorageError::new(crate::store::StorageErrorKind::Corrupt, error.to_string())
}

pub(super) fn policies(tx: &Connection) -> R<Vec<(PortalId, Version, PortalPolicy)>> {
    let mut statement = tx
        .prepare(
            "SELECT portal, version, enforced, grace_until, grace_sign_ins, sign_in, algorithm, digits, period, t0,
                    window_past, window_future, max_failures, first_lock, longest_lock, enrolment_lifetime,
                    backup_codes, backup_low_at
             FROM portal_mfa_v1_policies ORDER BY portal",
        )
        .map_err(storage)?;
    let mut rows = statement.query([]).map_err(storage)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(storage)? {
        let get = |i| r.get::<_, i64>(i).map_err(storage);
        let params = otp(&r.get::<_, String>(6).map_err(storage)?, get(7)?, get(8)?, get(9)?)?;
        let enforcement = enforcement(get(2)? != 0, r.get(3).map_err(storage)?, r.get(4).map_err(storage)?)?;
        let policy = PortalPolicy::new()
            .with_sign_in_method(method(&r.get::<_, String>(5).map_err(storage)?)?)
            .and_then(|p| p.with_enforcement(enforcement))
            .map(|p| p.with_otp(params))
            .and_then(|p| Ok(p.with_window(Window::new(small(get(10)?)?, small(get(11)?)?)?)))
            .and_then(|p| Ok(p.with_lockout(LockoutRule::new(small(get(12)?)?, get(13)? as u64, get(14)? as u64)?)))
            .and_then(|p| p.with_enrolment_lifetime(get(15)? as u64))
            .and_then(|p| p.with_backup_codes(small(get(16)?)?, small(get(17)?)?))
            .map_err(bad)?;
        out.push((
            PortalId::new(r.get::<_, String>(0).map_err(storage)?),
            get(1)? as u64,
            policy,
        ));
    }
    Ok(out)
}

fn otp(algorithm: &str, digits: i64, period: i64, t0: i64) -> R<TotpParams> {
    Ok(TotpParams::new(
        Algorithm::from_uri_name(algorithm).ok_or_else(|| corrupt("unknown algorithm"))?,
        Digits::new(small(digits)?).ok_or_else(|| corrupt("digits out of range"))?,
        period as u64,
    )
    .map_err(bad)?
    .with_t0(t0 as u64))
}

fn enforcement(enforced: bool, until: Option<i64>, sign_ins: Option<i64>) -> R<Enforcement> {
    if !enforced {
        return Ok(Enforcement::SelfConfigured);
    }
    let grace = match (until, sign_ins) {
        (None, None) => None,
        (until, sign_ins) => Some(Grace {
            until: until.map(|u| u as u64),
            sign_ins: sign_ins.map(small).transpose()?,
        }),
    };
    Ok(Enforcement::Enforced { grace })
}

fn method(name: &str) -> R<SignInMethod> {
    match name {
        "password" => Ok(SignInMethod::Password),
        "saml" => Ok(SignInMethod::Saml),
        _ => Err(corrupt("unknown sign-in method")),
    }
}

fn user(kind: &str, id: String) -> R<UserId> {
    Ok(UserId::new(
        UserKind::from_name(kind).ok_or_else(|| corrupt("unknown user kind"))?,
        id,
    ))
}

/// Every record, with its version.
pub(super) fn records(tx: &Connection) -> R<Vec<(PortalId, UserId, Version, MfaRecord)>> {
    let mut statement = tx
        .prepare(
            "SELECT portal, user_kind, user_id, version, must_enrol, consecutive_failures, locks, locked_until,
                    grace_used, next_authenticator, backup_salt, backup_hashes, backup_used,
                    reset_by, reset_reason, reset_note, reset_at
             FROM portal_mfa_v1_records ORDER BY portal, user_kind, user_id",
        )
        .map_err(storage)?;
    let mut rows = statement.query([]).map_err(storage)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(storage)? {
        out.push(record(r)?);
    }
    drop(rows);
    let mut statement = tx
        .prepare(
            "SELECT portal, user_kind, user_id, id, pending, label, secret, algorithm, digits, period, t0, added_at,
                    last_used_step, expires_at, replaces
             FROM portal_mfa_v1_authenticators ORDER BY portal, user_kind, user_id, id",
        )
        .map_err(storage)?;
    // By owner, not by a scan of `out`: an upgrade of a million users stays linear.
    let index: HashMap<(PortalId, UserId), usize> = out
        .iter()
        .enumerate()
        .map(|(i, (portal, user, ..))| ((portal.clone(), user.clone()), i))
        .collect();
    let mut rows = statement.query([]).map_err(storage)?;
    while let Some(r) = rows.next().map_err(storage)? {
        let owner = (
            PortalId::new(r.get::<_, String>(0).map_err(storage)?),
            user(&r.get::<_, String>(1).map_err(storage)?, r.get(2).map_err(storage)?)?,
        );
        let Some((_, _, _, record)) = index.get(&owner).and_then(|&i| out.get_mut(i)) else {
            return Err(corrupt("an authenticator without a record"));
        };
        let get = |i| r.get::<_, i64>(i).map_err(storage);
        let id: u32 = small(get(3)?)?;
        let label: Arc<str> = r.get::<_, String>(5).map_err(storage)?.into();
        let secret_bytes = zeroize::Zeroizing::new(r.get::<_, Vec<u8>>(6).map_err(storage)?);
        let secret = Secret::from_bytes(&secret_bytes, 8).map_err(|_| corrupt("stored secret is unusable"))?;
        let key = Key::new(
            secret,
            otp(&r.get::<_, String>(7).map_err(storage)?, get(8)?, get(9)?, get(10)?)?,
        );
        let added_at = get(11)? as u64;
        if get(4)? != 0 {
            if record.pending.is_some() {
                return Err(corrupt("two pending enrolments"));
            }
            let expires_at: Option<i64> = r.get(13).map_err(storage)?;
            let replaces: Option<i64> = r.get(14).map_err(storage)?;
            record.pending = Some(Box::new(PendingEnrolment {
                id: AuthenticatorId(id),
                label,
                key,
                started_at: added_at,
                expires_at: expires_at.ok_or_else(|| corrupt("pending without expiry"))? as u64,
                replaces: replaces.map(small).transpose()?.map(AuthenticatorId),
                wrong_codes: 0,
            }));
        } else {
            let last: Option<i64> = r.get(12).map_err(storage)?;
            record.add_authenticator(Authenticator {
                id: AuthenticatorId(id),
                label,
                key,
                added_at,
                last_used_step: last.map(|s| s as u64),
            });
        }
    }
    for (_, _, _, record) in &out {
        record.check_consistent().map_err(bad)?;
    }
    Ok(out)
}

fn record(r: &Row<'_>) -> R<(PortalId, UserId, Version, MfaRecord)> {
    let get = |i| r.get::<_, i64>(i).map_err(storage);
    let opt = |i| r.get::<_, Option<i64>>(i).map_err(storage);
    let backup_codes = match (
        r.get::<_, Option<Vec<u8>>>(10).map_err(storage)?,
        r.get::<_, Option<Vec<u8>>>(11).map_err(storage)?,
    ) {
        (Some(salt), Some(hashes)) => {
            let salt: [u8; 16] = salt.try_into().map_err(|_| corrupt("backup salt is not 16 bytes"))?;
            if hashes.len() % 16 != 0 {
                return Err(corrupt("backup hashes are not 16-byte blocks"));
            }
            let hashes = hashes
                .chunks_exact(16)
                .map(|c| c.try_into().unwrap_or([0u8; 16]))
                .collect();
            Some(BackupCodes::from_parts(salt, hashes, small(get(12)?)?).map_err(bad)?)
        }
        (None, None) => None,
        _ => return Err(corrupt("backup salt without hashes")),
    };
    let reset: (Option<String>, Option<String>, Option<String>, Option<i64>) = (
        r.get(13).map_err(storage)?,
        r.get(14).map_err(storage)?,
        r.get(15).map_err(storage)?,
        opt(16)?,
    );
    let last_reset = match reset {
        (Some(by), Some(reason), note, Some(at)) => Some(ResetRecord {
            by: by.into(),
            reason: reset_reason(&reason, note)?,
            at: at as u64,
        }),
        (None, None, None, None) => None,
        _ => return Err(corrupt("incomplete reset record")),
    };
    let record = MfaRecord {
        authenticators: Box::default(),
        pending: None,
        backup_codes,
        failures: Failures {
            consecutive: small(get(5)?)?,
            locks: small(get(6)?)?,
            locked_until: opt(7)?.map(|t| t as u64),
        },
        must_enrol: get(4)? != 0,
        grace_sign_ins_used: small(get(8)?)?,
        next_authenticator_id: small(get(9)?)?,
        resets: crate::state::Resets::after(last_reset),
        // Schema 1 did not keep when the factor was last verified.
        ..MfaRecord::default()
    };
    Ok((
        PortalId::new(r.get::<_, String>(0).map_err(storage)?),
        user(&r.get::<_, String>(1).map_err(storage)?, r.get(2).map_err(storage)?)?,
        get(3)? as u64,
        record,
    ))
}

fn reset_reason(name: &str, note: Option<String>) -> R<ResetReason> {
    Ok(match (name, note) {
        ("lost_device", None) => ResetReason::LostDevice,
        ("new_device", None) => ResetReason::NewDevice,
        ("locked_out", None) => ResetReason::LockedOut,
        ("security_incident", None) => ResetReason::SecurityIncident,
        ("other", Some(note)) => ResetReason::Other(note.into()),
        _ => return Err(corrupt("unknown reset reason")),
    })
}

/// Every event, in the order schema 1's store answered portal-wide queries (time, then user and commit).
pub(super) fn events(tx: &Connection, mut each: impl FnMut(AuditEvent) -> R<()>) -> R<()> {
    let mut statement = tx
        .prepare(
            "SELECT portal, user_kind, user_id, at, actor, admin, kind, n1, n2, n3, text, note
             FROM portal_mfa_v1_events ORDER BY portal, at, user_kind, user_id, version, n",
        )
        .map_err(storage)?;
    let mut rows = statement.query([]).map_err(storage)?;
    while let Some(r) = rows.next().map_err(storage)? {
        let kind: String = r.get(1).map_err(storage)?;
        let id: String = r.get(2).map_err(storage)?;
        let actor = match (
            r.get::<_, String>(4).map_err(storage)?.as_str(),
            r.get::<_, Option<String>>(5).map_err(storage)?,
        ) {
            ("user", None) => Actor::User,
            ("admin", Some(name)) => Actor::Admin(name.into()),
            ("system", None) => Actor::System,
            _ => return Err(corrupt("unknown actor")),
        };
        let n = |i| r.get::<_, Option<i64>>(i).map_err(storage);
        each(AuditEvent {
            at: r.get::<_, i64>(3).map_err(storage)? as u64,
            portal: PortalId::new(r.get::<_, String>(0).map_err(storage)?),
            user: if kind.is_empty() && id.is_empty() {
                None
            } else {
                Some(user(&kind, id)?)
            },
            actor,
            kind: event_kind(
                &r.get::<_, String>(6).map_err(storage)?,
                [n(7)?, n(8)?, n(9)?],
                r.get(10).map_err(storage)?,
                r.get(11).map_err(storage)?,
            )?,
        })?;
    }
    Ok(())
}

fn event_kind(kind: &str, [n1, n2, n3]: [Option<i64>; 3], text: Option<String>, note: Option<String>) -> R<EventKind> {
    let need = |v: Option<i64>| v.ok_or_else(|| corrupt("event field missing"));
    let id = |v: Option<i64>| -> R<AuthenticatorId> { Ok(AuthenticatorId(small(need(v)?)?)) };
    Ok(match kind {
        "enforcement_changed" => EventKind::EnforcementChanged {
            enforcement: enforcement(need(n1)? != 0, n2, n3)?,
        },
        "sign_in_method_changed" => EventKind::SignInMethodChanged {
            method: method(text.as_deref().unwrap_or_default())?,
        },
        "policy_settings_changed" => EventKind::PolicySettingsChanged,
        "grace_sign_in" => EventKind::GraceSignIn {
            remaining: n1.map(small).transpose()?,
        },
        "enrolment_started" => EventKind::EnrolmentStarted {
            replaces: n1.map(|v| id(Some(v))).transpose()?,
        },
        "enrolment_cancelled" => EventKind::EnrolmentCancelled,
        "authenticator_added" => EventKind::AuthenticatorAdded {
            authenticator: id(n1)?,
            label: text.ok_or_else(|| corrupt("event field missing"))?.into(),
        },
        "authenticator_removed" => EventKind::AuthenticatorRemoved {
            authenticator: id(n1)?,
            cause: match text.as_deref() {
                Some("replaced") => RemovalCause::Replaced,
                Some("admin_reset") => RemovalCause::AdminReset,
                Some("deleted") => RemovalCause::Deleted,
                _ => return Err(corrupt("unknown removal cause")),
            },
        },
        "backup_codes_issued" => EventKind::BackupCodesIssued {
            count: small(need(n1)?)?,
            regenerated: need(n2)? != 0,
        },
        "backup_code_used" => EventKind::BackupCodeUsed {
            remaining: small(need(n1)?)?,
        },
        "verified" => EventKind::Verified {
            factor: match text.as_deref() {
                Some("totp") => Factor::Totp(id(n1)?),
                Some("backup_code") => Factor::BackupCode,
                _ => return Err(corrupt("unknown factor")),
            },
        },
        "verification_failed" => EventKind::VerificationFailed {
            consecutive_failures: small(need(n1)?)?,
        },
        "replay_rejected" => EventKind::ReplayRejected { authenticator: id(n1)? },
        "locked_out" => EventKind::LockedOut {
            until: n1.map(|t| t as u64),
        },
        "mfa_reset" => EventKind::MfaReset {
            reason: reset_reason(text.as_deref().unwrap_or_default(), note)?,
            mode: if need(n3)? == 1 {
                ResetMode::RemoveOnly
            } else {
                ResetMode::ForceReenrolment
            },
            authenticators_removed: small(need(n1)?)?,
            backup_codes_removed: small(need(n2)?)?,
        },
        _ => return Err(corrupt("unknown event kind")),
    })
}

//! One `tracing` span per operation (feature `tracing`): what a web host's
//! logs and traces show of MFA.
//!
//! Span `portal_mfa`, fields:
//! - `portal`: the portal id;
//! - `op`: the [`Portal`](crate::Portal) method (`verify_sign_in`, `admin_reset`, …);
//! - `user_kind`: `customer`, `vendor`, `contact`, `member`, or empty for portal-wide operations;
//! - `outcome`: `ok`, or the [`ErrorKind`](crate::ErrorKind) in snake_case (`wrong_code`, `locked`, …);
//! - `retries`: attempts lost to other writers (0 almost always);
//! - `duration_us`: the operation's wall time, in microseconds.
//!
//! Never a user id, a secret, a code or a backup code: the user's id is the
//! host's to log (it knows whether it is personal data); what the user typed never is.

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;
use tracing::field::Empty;

use crate::error::{ErrorKind, Result};
use crate::ids::{PortalId, UserId};

pub(super) async fn traced<T>(
    portal: &PortalId,
    op: &'static str,
    user: Option<&UserId>,
    body: impl Future<Output = Result<T>>,
) -> Result<T> {
    let span = tracing::info_span!(
        "portal_mfa",
        portal = portal.as_str(),
        op,
        user_kind = user.map_or("", |u| u.kind().as_str()),
        outcome = Empty,
        retries = 0u32,
        duration_us = Empty,
    );
    let started = Instant::now();
    let result = body.instrument(span.clone()).await;
    span.record(
        "outcome",
        result.as_ref().map_or_else(|e| kind_name(e.kind()), |_| "ok"),
    );
    span.record(
        "duration_us",
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    );
    result
}

/// Records that `attempt` attempts were lost to other writers, in the current span.
pub(super) fn retried(attempt: u32) {
    tracing::Span::current().record("retries", attempt);
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::WrongCode => "wrong_code",
        ErrorKind::Locked => "locked",
        ErrorKind::RefusedByPolicy => "refused_by_policy",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::Storage => "storage",
        ErrorKind::Misconfigured => "misconfigured",
        ErrorKind::SessionEnded => "session_ended",
    }
}

//! What the server keeps between requests, in a server-side session (the
//! cookie holds only a random id): the CSRF token, the sign-in in progress
//! and, once it is done, who is signed in.
//!
//! The id is rotated after the password and again after the second factor,
//! so an id planted or seen before sign-in is worth nothing after it.
//!
//! A signed-in session keeps the stamp portal-mfa answered for its sign-in
//! and checks it on every request ([`signed_in`]): once a reset, a removed
//! authenticator or a password change ends the user's sessions, the next
//! request of this one is signed out. Nothing is cached, so a revoked session
//! lives for no request after the revocation commits.

use portal_mfa::{Error, SessionStamp};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::App;
use crate::accounts::{Account, Area};
use crate::failure::Failure;

const CSRF: &str = "csrf";
const PENDING: &str = "pending";
const SIGNED_IN: &str = "signed_in";
const FLASH: &str = "flash";

/// A sign-in between the password and the second factor. It lives only
/// here, server-side, and expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// Where they are signing in.
    pub area: Area,
    /// Who (the password was right).
    pub email: String,
    /// What is asked of them now.
    pub stage: Stage,
    /// Unix time after which they must start again.
    pub expires_at: u64,
    /// The stamp of a second factor already proven (enrolment confirmed,
    /// backup codes on screen), kept until the sign-in completes.
    #[serde(default)]
    pub stamp: Option<SessionStamp>,
}

/// The step of a sign-in in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Type a code (or a backup code).
    Code,
    /// Set up an authenticator first.
    Enrol,
    /// MFA was just turned on: the backup codes are on screen until they say
    /// they saved them.
    SaveCodes,
}

/// Who is signed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIn {
    /// Where.
    pub area: Area,
    /// Who.
    pub email: String,
    /// Their display name.
    pub name: String,
    /// What the sign-in proved, checked on every request.
    pub stamp: SessionStamp,
    /// The trusted browser this session runs in, if the user trusted it.
    #[serde(default)]
    pub browser: Option<u32>,
    /// When the sign-in completed (Unix time): the session ends
    /// [`SESSION_ABSOLUTE_SECS`](crate::SESSION_ABSOLUTE_SECS) later, however active.
    #[serde(default)]
    pub since: u64,
}

/// The session's CSRF token, made on first use (32 random bytes, hex).
pub async fn csrf_token(session: &Session) -> Result<String, Failure> {
    if let Some(token) = session.get::<String>(CSRF).await.map_err(Failure::session)? {
        return Ok(token);
    }
    let token = new_token();
    session.insert(CSRF, &token).await.map_err(Failure::session)?;
    Ok(token)
}

/// The CSRF token for a form a visitor without a session sees (the sign-in
/// page): no session is created for it. The session's token once it has one;
/// otherwise the token in the visitor's CSRF cookie (double submit: a page of
/// another site can neither read nor send it, and with `__Host-` no other
/// subdomain can set it), or a new one with the cookie to set.
pub async fn form_token(
    session: &Session,
    headers: &axum::http::HeaderMap,
    secure: bool,
) -> Result<(String, Option<axum::http::HeaderValue>), Failure> {
    if let Some(token) = session.get::<String>(CSRF).await.map_err(Failure::session)? {
        return Ok((token, None));
    }
    // Past the password, only the session's own token counts.
    if has_privilege(session).await? {
        return Ok((csrf_token(session).await?, None));
    }
    if let Some(token) = cookie_token(headers, secure) {
        return Ok((token, None));
    }
    let token = new_token();
    let secure_attribute = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict{secure_attribute}",
        csrf_cookie(secure)
    );
    Ok((token, axum::http::HeaderValue::from_str(&cookie).ok()))
}

/// Whether the session holds anything past the password (a sign-in in
/// progress, or a signed-in user): then the CSRF cookie of the anonymous
/// visitor it was is worth nothing.
async fn has_privilege(session: &Session) -> Result<bool, Failure> {
    Ok(session
        .get::<serde_json::Value>(PENDING)
        .await
        .map_err(Failure::session)?
        .is_some()
        || session
            .get::<serde_json::Value>(SIGNED_IN)
            .await
            .map_err(Failure::session)?
            .is_some())
}

/// A `Set-Cookie` that ends the visitor's CSRF cookie: sent at every change
/// of privilege, so a token planted or seen before it is dead after it.
pub fn clear_csrf_cookie(secure: bool) -> axum::http::HeaderValue {
    let secure_attribute = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure_attribute}",
        csrf_cookie(secure)
    );
    axum::http::HeaderValue::from_str(&cookie).unwrap_or_else(|_| axum::http::HeaderValue::from_static(""))
}

fn csrf_cookie(secure: bool) -> &'static str {
    if secure { "__Host-acme_csrf" } else { "acme_csrf" }
}

/// The token of the visitor's CSRF cookie, if it holds one of ours (64 hex digits).
fn cookie_token(headers: &axum::http::HeaderMap, secure: bool) -> Option<String> {
    crate::trust::request_cookie(headers, csrf_cookie(secure))
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a form whose token is missing or is not this session's (or, for a
/// visitor who has not given a password yet, not the one in their CSRF
/// cookie). Past the password only the session's token counts: the cookie's
/// is dead from the first change of privilege on.
pub async fn check_csrf(
    session: &Session,
    submitted: Option<&str>,
    headers: &axum::http::HeaderMap,
    secure: bool,
) -> Result<(), Failure> {
    let expected = match session.get::<String>(CSRF).await.map_err(Failure::session)? {
        Some(token) => Some(token),
        None if has_privilege(session).await? => None,
        None => cookie_token(headers, secure),
    };
    match (expected, submitted) {
        (Some(expected), Some(submitted)) if bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) => Ok(()),
        _ => Err(Failure::csrf()),
    }
}

/// Starts a fresh session id and a fresh CSRF token for the next step: at
/// every change of privilege (the password, the second factor), so neither an
/// id nor a token planted or seen before it is worth anything after it.
pub async fn rotate(session: &Session) -> Result<(), Failure> {
    session.cycle_id().await.map_err(Failure::session)?;
    session.remove_value(CSRF).await.map_err(Failure::session)?;
    Ok(())
}

/// The sign-in in progress in `area`, if it has not expired. An expired one is
/// forgotten and refused with its own page.
pub async fn pending(session: &Session, area: Area, now: u64) -> Result<Pending, Failure> {
    match session.get::<Pending>(PENDING).await.map_err(Failure::session)? {
        Some(p) if p.area == area && now < p.expires_at => Ok(p),
        Some(p) if p.area == area => {
            session.remove_value(PENDING).await.map_err(Failure::session)?;
            Err(Failure::sign_in_expired(area))
        }
        _ => Err(Failure::no_sign_in(area)),
    }
}

/// The sign-in in progress, if it is at `stage` (else "sign in first").
pub async fn pending_at(session: &Session, area: Area, now: u64, stage: Stage) -> Result<Pending, Failure> {
    let pending = pending(session, area, now).await?;
    if pending.stage != stage {
        return Err(Failure::no_sign_in(area));
    }
    Ok(pending)
}

/// Records the sign-in in progress (after the password, or a step on).
pub async fn set_pending(session: &Session, pending: &Pending) -> Result<(), Failure> {
    session.insert(PENDING, pending).await.map_err(Failure::session)
}

/// Ends the sign-in: a new session id, then the user is signed in with the
/// stamp of what the sign-in proved.
pub async fn sign_in(session: &Session, account: &Account, stamp: SessionStamp, now: u64) -> Result<(), Failure> {
    session.remove_value(PENDING).await.map_err(Failure::session)?;
    rotate(session).await?;
    let who = SignedIn {
        area: account.area,
        email: account.email.clone(),
        name: account.name.clone(),
        stamp,
        browser: None,
        since: now,
    };
    session.insert(SIGNED_IN, who).await.map_err(Failure::session)
}

/// Who is signed in to `area` (their session's stamp still good), or a
/// redirect to its sign-in page. A session whose stamp has ended is
/// forgotten, and the sign-in page says why.
pub async fn signed_in(app: &App, session: &Session, area: Area) -> Result<SignedIn, Failure> {
    let who = match session.get::<SignedIn>(SIGNED_IN).await.map_err(Failure::session)? {
        Some(who) if who.area == area => who,
        _ => return Err(Failure::sign_in_first(area)),
    };
    if app.now() >= who.since.saturating_add(crate::SESSION_ABSOLUTE_SECS) {
        session.flush().await.map_err(Failure::session)?;
        flash(session, "Your session reached its 12-hour limit. Please sign in again.").await?;
        return Err(Failure::sign_in_first(area));
    }
    match app.portal(area).check_session(&area.user(&who.email), &who.stamp).await {
        Ok(()) => Ok(who),
        Err(Error::SessionEnded | Error::InvalidStamp) => {
            session.flush().await.map_err(Failure::session)?;
            flash(
                session,
                "You were signed out because your sign-in details changed. Please sign in again.",
            )
            .await?;
            Err(Failure::sign_in_first(area))
        }
        // The store cannot vouch for the session now: refuse this request, keep the session.
        Err(e) => Err(e.into()),
    }
}

/// Notes that this session's browser is the trusted browser `browser`.
pub async fn remember_browser(session: &Session, browser: portal_mfa::session::BrowserId) -> Result<(), Failure> {
    let who = session.get::<SignedIn>(SIGNED_IN).await.map_err(Failure::session)?;
    match who {
        Some(mut who) => {
            who.browser = Some(browser.0);
            session.insert(SIGNED_IN, who).await.map_err(Failure::session)
        }
        None => Ok(()),
    }
}

/// Keeps the session signed in under `stamp`, the one portal-mfa answered
/// for a change this session made (every other session of the user ended).
pub async fn renew(session: &Session, mut who: SignedIn, stamp: SessionStamp) -> Result<(), Failure> {
    who.stamp = stamp;
    session.insert(SIGNED_IN, who).await.map_err(Failure::session)
}

/// Forgets everything, cookie included.
pub async fn sign_out(session: &Session) -> Result<(), Failure> {
    session.flush().await.map_err(Failure::session)
}

/// A one-time message for the next page ("Authenticator added").
pub async fn flash(session: &Session, message: impl Into<String>) -> Result<(), Failure> {
    session.insert(FLASH, message.into()).await.map_err(Failure::session)
}

/// The message left by [`flash`], once.
pub async fn take_flash(session: &Session) -> Result<Option<String>, Failure> {
    session.remove::<String>(FLASH).await.map_err(Failure::session)
}

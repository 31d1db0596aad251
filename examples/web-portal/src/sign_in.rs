//! Sign-in: the password, then what portal-mfa says comes next (nothing, a
//! grace sign-in, setting up an authenticator, or a code), then a new
//! session id. Between the steps the state is server-side and expires.

use axum::extract::{ConnectInfo, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};
use portal_mfa::passkey::PasskeyOptions;
use portal_mfa::session::GraceSpent;
use portal_mfa::{
    EnrolReason, EnrolmentOptions, Error, IssuedBackupCodes, PasskeyRegistrationStarted, SignInStep, StartedEnrolment,
};
use serde::Deserialize;
use tower_sessions::Session;

use crate::accounts::{Account, Area, normalise};
use crate::failure::Failure;
use crate::session::{self, Pending, Stage};
use crate::views::{self, Frame, code_field, csrf_field};
use crate::{Posted, Shared, Visit};

/// Longest email accepted (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;
/// Longest password accepted, in bytes.
pub const MAX_PASSWORD: usize = 1_024;

/// The password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    email: String,
    password: String,
}

/// `GET /{area}/sign-in`: no session is created for it (see [`session::form_token`]).
pub async fn form(Visit { app, area, session }: Visit, headers: HeaderMap) -> Result<Response, Failure> {
    if session::signed_in(&app, &session, area).await.is_ok() {
        return Ok(Redirect::to(&format!("/{}/account", area.segment())).into_response());
    }
    let (csrf, cookie) = session::form_token(&session, &headers, app.secure_cookies).await?;
    let flash = session::take_flash(&session).await?;
    Ok(with_cookie(
        password_page(area, &csrf, flash.as_deref(), None, "").into_response(),
        cookie,
    ))
}

/// `response` with `cookie` set, if any.
fn with_cookie(mut response: Response, cookie: Option<axum::http::HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /{area}/sign-in`: the password step.
pub async fn password(
    Visit { app, area, session }: Visit,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Posted(form): Posted<PasswordForm>,
) -> Result<Response, Failure> {
    let now = app.now();
    // Sizes are checked before any work: nothing longer reaches the limiter or argon2.
    if form.email.len() > MAX_EMAIL || form.password.len() > MAX_PASSWORD {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Too long",
            "An email has at most 254 characters and a password at most 1 024.",
        )
        .link(crate::failure::sign_in_href(area), "Back to sign in"));
    }
    let email = normalise(&form.email);
    let account_key = format!("{}:{email}", area.segment());
    let address_key = crate::limits::address_key(peer.ip());
    // Counted before the hash, in the step that checks the limit: parallel
    // requests cannot all pass the check before any failure is recorded.
    app.account_limits
        .attempt(&account_key, now)
        .map_err(Failure::rate_limited)?;
    if let Err(seconds) = app.address_limits.attempt(&address_key, now) {
        app.account_limits.refund(&account_key);
        return Err(Failure::rate_limited(seconds));
    }
    let checked = app.accounts.check(area, &email, &form.password).await;
    let Ok(checked) = checked else {
        // No hash ran: the attempt is not a failure.
        app.account_limits.refund(&account_key);
        app.address_limits.refund(&address_key);
        return Err(Failure::busy(1));
    };
    let Some(account) = checked else {
        let (csrf, cookie) = session::form_token(&session, &headers, app.secure_cookies).await?;
        let page = password_page(area, &csrf, None, Some("Wrong email or password."), &email);
        return Ok(with_cookie((StatusCode::UNAUTHORIZED, page).into_response(), cookie));
    };
    app.account_limits.clear(&account_key);
    app.address_limits.refund(&address_key);
    // The password is right: a new session id before anything else is kept,
    // and the anonymous visitor's CSRF cookie ends.
    session::rotate(&session).await?;
    let mut response = signed_past_password(&app, area, &session, &headers, &account).await?;
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::clear_csrf_cookie(app.secure_cookies));
    Ok(response)
}

/// The password was right: what portal-mfa says comes next.
async fn signed_past_password(
    app: &Shared,
    area: Area,
    session: &Session,
    headers: &HeaderMap,
    account: &Account,
) -> Result<Response, Failure> {
    let user = area.user(&account.email);
    let portal = app.portal(area);
    // A remembered browser may skip the code; any other answer ends its cookie.
    let Some(token) = crate::trust::token(headers, area, app.secure_cookies) else {
        let step = portal.begin_sign_in(&user).await?;
        return next_step(app, session, account, step).await;
    };
    let response = match portal.begin_sign_in_with_browser(&user, &token).await {
        Ok(step @ SignInStep::TrustedBrowser { .. }) => return next_step(app, session, account, step).await,
        Ok(step) => next_step(app, session, account, step).await,
        Err(Error::UntrustedBrowser { .. }) => {
            let step = portal.begin_sign_in(&user).await?;
            next_step(app, session, account, step).await
        }
        Err(e) => Err(e.into()),
    };
    let mut response = response.unwrap_or_else(IntoResponse::into_response);
    response
        .headers_mut()
        .append(header::SET_COOKIE, crate::trust::clear(area, app.secure_cookies));
    Ok(response)
}

/// Where portal-mfa's answer after the password sends the user.
async fn next_step(app: &Shared, session: &Session, account: &Account, step: SignInStep) -> Result<Response, Failure> {
    let area = account.area;
    let user = area.user(&account.email);
    let pending = |stage| Pending {
        area,
        email: account.email.clone(),
        stage,
        expires_at: app.now() + app.pending_ttl,
        stamp: None,
    };
    match step {
        SignInStep::NoMfaNeeded { session: stamp } => {
            session::sign_in(session, account, stamp, app.now()).await?;
            Ok(Redirect::to(&home(area)).into_response())
        }
        SignInStep::TrustedBrowser {
            browser,
            session: stamp,
        } => {
            session::sign_in(session, account, stamp, app.now()).await?;
            session::remember_browser(session, browser).await?;
            Ok(Redirect::to(&home(area)).into_response())
        }
        SignInStep::GraceSignIn { .. } => match app.portal(area).complete_grace_sign_in(&user).await {
            Ok(GraceSpent {
                remaining,
                until,
                session: stamp,
                ..
            }) => {
                session::sign_in(session, account, stamp, app.now()).await?;
                session::flash(session, grace_text(remaining, until)).await?;
                Ok(Redirect::to(&home(area)).into_response())
            }
            // The grace ran out in between: ask again what comes next.
            Err(Error::NotAllowed(_)) => {
                let step = app.portal(area).begin_sign_in(&user).await?;
                Box::pin(next_step(app, session, account, step)).await
            }
            Err(e) => Err(e.into()),
        },
        SignInStep::MustEnrol { session: stamp, .. } => {
            // The password step's stamp: an admin's reset meanwhile ends it, and the enrolment with it.
            let enrol = Pending {
                stamp: Some(stamp),
                ..pending(Stage::Enrol)
            };
            session::set_pending(session, &enrol).await?;
            Ok(Redirect::to(&format!("/{}/sign-in/enrol", area.segment())).into_response())
        }
        SignInStep::EnterCode { .. } => {
            session::set_pending(session, &pending(Stage::Code)).await?;
            Ok(Redirect::to(&format!("/{}/sign-in/code", area.segment())).into_response())
        }
        SignInStep::LockedOut { until } => Err(Failure::locked(until)),
        _ => Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unknown step",
            "This version of the portal does not know the next sign-in step.",
        )),
    }
}

/// Which form the code page shows.
#[derive(Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    backup: Option<String>,
}

/// `GET /{area}/sign-in/code`
pub async fn code_form(
    Visit { app, area, session }: Visit,
    Query(query): Query<CodeQuery>,
) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::Code).await?;
    let csrf = session::csrf_token(&session).await?;
    show_code_page(&app, area, &pending.email, &csrf, query.backup.is_some(), None).await
}

/// The code page as the record stands: the attempts left, the user's
/// factors and, for a user with passkeys, a fresh challenge (it replaces
/// the one an earlier page held). `refused` is why the last answer was not
/// accepted, with its status.
async fn show_code_page(
    app: &Shared,
    area: Area,
    email: &str,
    csrf: &str,
    backup: bool,
    refused: Option<Failure>,
) -> Result<Response, Failure> {
    let user = area.user(email);
    let portal = app.portal(area);
    // portal-mfa's answer says the lock and the attempts left: the page shows
    // exactly those, never a count of its own.
    let (attempts_left, apps, passkey) = match portal.begin_sign_in(&user).await? {
        SignInStep::EnterCode {
            attempts_left,
            authenticator_apps,
            passkey,
            ..
        } => (attempts_left, authenticator_apps, passkey),
        SignInStep::LockedOut { until } => {
            return Err(Failure::locked(until).link(lost_href(area), LOST));
        }
        _ => return Err(Failure::no_sign_in(area)),
    };
    let failed = refused.is_none() && portal.record(&user).await?.failures().consecutive() > 0;
    let note = failed.then(|| format!("{attempts_left} attempts left before two-factor sign-in locks."));
    let page = CodePage {
        area,
        csrf,
        backup,
        remember_days: portal.policy().await?.trusted_browser_days(),
        apps,
        passkey: passkey.as_ref(),
        note: note.as_deref(),
        error: refused.as_ref().map(Failure::message),
    };
    let status = refused.as_ref().map_or(StatusCode::OK, Failure::status);
    Ok((status, code_page(&page)).into_response())
}

/// A typed code (`backup` is set by the backup-code form, `remember` by
/// "Remember this browser").
#[derive(Deserialize)]
pub struct CodeForm {
    pub(crate) code: String,
    #[serde(default)]
    backup: Option<String>,
    #[serde(default)]
    remember: Option<String>,
}

/// `POST /{area}/sign-in/code`: the second factor.
pub async fn code(
    Visit { app, area, session }: Visit,
    headers: HeaderMap,
    Posted(form): Posted<CodeForm>,
) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::Code).await?;
    let account = app.account(area, &pending.email)?;
    let user = area.user(&account.email);
    let backup = form.backup.is_some();
    match app.portal(area).verify_sign_in(&user, &form.code).await {
        Ok(verified) => {
            session::sign_in(&session, &account, verified.session, app.now()).await?;
            let mut response = Redirect::to(&home(area)).into_response();
            if form.remember.is_some() {
                let label = crate::trust::label(&headers);
                let trusted = app.portal(area).trust_browser(&user, &verified.session, &label).await?;
                let seconds = trusted.expires_at.saturating_sub(app.now());
                let cookie = crate::trust::set(area, app.secure_cookies, trusted.token.expose(), seconds);
                response.headers_mut().append(header::SET_COOKIE, cookie);
                session::remember_browser(&session, trusted.browser).await?;
            }
            if verified.low_on_backup_codes {
                session::flash(
                    &session,
                    format!(
                        "You have {} backup codes left. Generate new ones under Two-factor authentication.",
                        verified.backup_codes_remaining
                    ),
                )
                .await?;
            }
            Ok(response)
        }
        Err(Error::NotEnrolled) => {
            // An admin reset the user meanwhile: what now?
            let step = app.portal(area).begin_sign_in(&user).await?;
            next_step(&app, &session, &account, step).await
        }
        Err(e) if asks_again(&e) => {
            let csrf = session::csrf_token(&session).await?;
            show_code_page(&app, area, &account.email, &csrf, backup, Some(Failure::mfa(e))).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The way out for a user with no second factor left to give.
const LOST: &str = "Lost your authenticator and your backup codes?";

fn lost_href(area: Area) -> String {
    format!("/{}/sign-in/lost", area.segment())
}

/// `GET /{area}/sign-in/lost`: past the password, ask an admin for a reset
/// (or see the request already made).
pub async fn lost_form(Visit { app, area, session }: Visit) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::Code).await?;
    let csrf = session::csrf_token(&session).await?;
    let record = app.portal(area).record(&area.user(&pending.email)).await?;
    Ok(lost_page(area, &csrf, record.reset_request(), None).into_response())
}

fn lost_page(area: Area, csrf: &str, open: Option<&portal_mfa::record::ResetRequest>, error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(error) = error { p.error role="alert" { (error) } }
        @if let Some(request) = open {
            p.flash role="status" #reset-requested {
                "You asked for a reset on " (views::when(request.at)) ". An administrator will check it is you "
                "(they may contact you) and then reset your two-factor sign-in; you will get an email either way. "
                "If you find your phone or your backup codes, just sign in: that withdraws the request."
            }
        } @else {
            p { "If you have neither your authenticator nor a backup code, an administrator can reset your two-factor "
                "sign-in so you can set it up again. Nothing is removed until they approve, and you get an email either way." }
            form #lost-form method="post" action=(lost_href(area)) {
                (csrf_field(csrf))
                label for="lost-note" { "What happened (for the administrator; no passwords or codes)" }
                textarea #lost-note name="note" maxlength=(portal_mfa::record::ResetRequest::MAX_NOTE_CHARS) {}
                div { button type="submit" { "Ask for a reset" } }
            }
        }
        p { a href=(format!("/{}/sign-in/code", area.segment())) { "Back to the code" } }
    };
    let frame = Frame {
        who: None,
        csrf,
        flash: None,
    };
    views::page("Ask for a reset", Some(&frame), body)
}

/// The reset request form.
#[derive(Deserialize)]
pub struct LostForm {
    #[serde(default)]
    note: String,
}

/// `POST /{area}/sign-in/lost`: the request, with its note.
pub async fn lost(Visit { app, area, session }: Visit, Posted(form): Posted<LostForm>) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::Code).await?;
    let csrf = session::csrf_token(&session).await?;
    let user = area.user(&pending.email);
    // Browsers send a textarea's line breaks as CR LF; the note keeps plain line feeds.
    let note = form.note.replace("\r\n", "\n");
    match app.portal(area).request_reset(&user, &note).await {
        Ok(request) => Ok(lost_page(area, &csrf, Some(&request), None).into_response()),
        Err(Error::ResetRequest(refusal)) => {
            let failure = Failure::mfa(Error::ResetRequest(refusal));
            let open = app.portal(area).record(&user).await?.reset_request().cloned();
            let page = lost_page(area, &csrf, open.as_ref(), Some(failure.message()));
            Ok((failure.status(), page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /{area}/sign-in/enrol`: "Set up two-factor authentication".
pub async fn enrol_form(Visit { app, area, session }: Visit) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::Enrol).await?;
    let csrf = session::csrf_token(&session).await?;
    let reason = match app.portal(area).begin_sign_in(&area.user(&pending.email)).await? {
        SignInStep::MustEnrol {
            reason: EnrolReason::AdminReset,
            ..
        } => "Your administrator reset your two-factor authentication. Set up your authenticator app again to sign in.",
        _ => "Your administrator requires two-factor authentication. Set up an authenticator app to sign in.",
    };
    let action = format!("/{}/sign-in/enrol", area.segment());
    let body = html! {
        p { (reason) }
        div.card {
            h2 { "Authenticator app" }
            p { "You need an authenticator app on your phone, such as OneAuth, Google Authenticator or Microsoft Authenticator." }
            (label_form(&action, &csrf, None, None, None))
        }
        @if app.passkeys {
            div.card {
                h2 { "Passkey or security key" }
                p { "Use this device's passkey (fingerprint, face or screen lock) or a security key. This needs JavaScript." }
                (passkey_label_form(&format!("/{}/sign-in/passkey", area.segment()), &csrf, None, None))
            }
        }
    };
    let frame = Frame {
        who: None,
        csrf: &csrf,
        flash: None,
    };
    Ok(views::page("Set up two-factor authentication", Some(&frame), body).into_response())
}

/// The name for a new authenticator.
#[derive(Deserialize)]
pub struct LabelForm {
    label: String,
}

/// `POST /{area}/sign-in/enrol`: a new secret, shown once as a QR code and a key.
pub async fn enrol_start(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<LabelForm>,
) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::Enrol).await?;
    let user = area.user(&pending.email);
    let stamp = pending.stamp.ok_or_else(|| Failure::no_sign_in(area))?;
    let started = app
        .portal(area)
        .start_enrolment(&user, &stamp, &pending.email, &form.label, EnrolmentOptions::default())
        .await?;
    let csrf = session::csrf_token(&session).await?;
    let action = format!("/{}/sign-in/enrol/confirm", area.segment());
    let restart = format!("/{}/sign-in/enrol", area.segment());
    Ok(enrolment_page(&started, &form.label, &action, &restart, &csrf, None)?.into_response())
}

/// `POST /{area}/sign-in/enrol/confirm`: the first code from the new app.
pub async fn enrol_confirm(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<CodeForm>,
) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::Enrol).await?;
    let account = app.account(area, &pending.email)?;
    let user = area.user(&account.email);
    let csrf = session::csrf_token(&session).await?;
    let retry = format!("/{}/sign-in/enrol/confirm", area.segment());
    let restart = format!("/{}/sign-in/enrol", area.segment());
    let stamp = pending.stamp.ok_or_else(|| Failure::no_sign_in(area))?;
    match app.portal(area).confirm_enrolment(&user, &stamp, &form.code).await {
        Ok(confirmed) => enrolled(&app, &session, &account, pending, confirmed).await,
        Err(e) => ask_again(e, |why| retry_confirm_page(why, &retry, &restart, &csrf))
            .map_err(|e| Failure::mfa(e).link(restart.clone(), "Start the setup again")),
    }
}

/// `POST /{area}/sign-in/passkey`: a registration challenge, for the browser.
pub async fn passkey_start(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<LabelForm>,
) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::Enrol).await?;
    let user = area.user(&pending.email);
    let stamp = pending.stamp.ok_or_else(|| Failure::no_sign_in(area))?;
    let restart = format!("/{}/sign-in/enrol", area.segment());
    let started = app
        .portal(area)
        .start_passkey_registration(&user, &stamp, &pending.email, &form.label, EnrolmentOptions::default())
        .await
        .map_err(|e| Failure::mfa(e).link(restart.clone(), "Back to the setup"))?;
    let csrf = session::csrf_token(&session).await?;
    let action = format!("/{}/sign-in/passkey/finish", area.segment());
    Ok(passkey_page(&started, &form.label, &action, &restart, &csrf, None).into_response())
}

/// The browser's answer to a registration challenge.
#[derive(Deserialize)]
pub struct RegistrationForm {
    pub(crate) response: String,
}

/// `POST /{area}/sign-in/passkey/finish`: the new passkey, then the backup codes.
pub async fn passkey_finish(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<RegistrationForm>,
) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::Enrol).await?;
    let account = app.account(area, &pending.email)?;
    let stamp = pending.stamp.ok_or_else(|| Failure::no_sign_in(area))?;
    let restart = format!("/{}/sign-in/enrol", area.segment());
    let confirmed = app
        .portal(area)
        .finish_passkey_registration(&area.user(&account.email), &stamp, &form.response)
        .await
        .map_err(|e| Failure::mfa(e).link(restart, "Start the setup again"))?;
    enrolled(&app, &session, &account, pending, confirmed).await
}

/// A first factor confirmed at sign-in: the backup codes to save, or (when
/// MFA was already on) straight in.
async fn enrolled(
    app: &Shared,
    session: &Session,
    account: &Account,
    mut pending: Pending,
    confirmed: portal_mfa::EnrolmentConfirmed,
) -> Result<Response, Failure> {
    let area = account.area;
    match confirmed.backup_codes {
        Some(codes) => {
            pending.stage = Stage::SaveCodes;
            pending.stamp = Some(confirmed.session);
            session::set_pending(session, &pending).await?;
            let csrf = session::csrf_token(session).await?;
            let finish = format!("/{}/sign-in/finish", area.segment());
            Ok(backup_codes_page(&codes, &finish, "Continue to sign in", &csrf).into_response())
        }
        None => {
            session::sign_in(session, account, confirmed.session, app.now()).await?;
            Ok(Redirect::to(&home(area)).into_response())
        }
    }
}

/// The "I have saved them" box.
#[derive(Deserialize)]
pub struct SavedForm {
    #[serde(default)]
    saved: Option<String>,
}

/// `POST /{area}/sign-in/finish`: after the backup codes were saved.
pub async fn finish(Visit { app, area, session }: Visit, Posted(form): Posted<SavedForm>) -> Result<Response, Failure> {
    let pending = session::pending_at(&session, area, app.now(), Stage::SaveCodes).await?;
    if form.saved.is_none() {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Save your backup codes",
            "Tick \"I have saved my backup codes\" once they are somewhere safe. If you lost them, generate new ones under My account after signing in.",
        ));
    }
    let account = app.account(area, &pending.email)?;
    let stamp = pending.stamp.ok_or_else(|| Failure::no_sign_in(area))?;
    session::sign_in(&session, &account, stamp, app.now()).await?;
    session::flash(&session, "Two-factor authentication is on.").await?;
    Ok(Redirect::to(&home(area)).into_response())
}

/// `POST /sign-out`
pub async fn sign_out(session: Session, Posted(_): Posted<crate::account::Empty>) -> Result<Response, Failure> {
    session::sign_out(&session).await?;
    Ok(Redirect::to("/").into_response())
}

/// After a wrong, replayed or malformed code: `form` again, saying why, with
/// the refusal's status. Any other error is handed back.
pub fn ask_again(error: Error, form: impl FnOnce(&str) -> Markup) -> Result<Response, Error> {
    if asks_again(&error) {
        let failure = Failure::mfa(error);
        Ok((failure.status(), form(failure.message())).into_response())
    } else {
        Err(error)
    }
}

/// Whether `error` refused an answer the user can give again (a wrong,
/// replayed or malformed code, a refused passkey), rather than ending the step.
pub fn asks_again(error: &Error) -> bool {
    matches!(
        error,
        Error::WrongCode { .. } | Error::ReplayedCode | Error::MalformedCode(_) | Error::PasskeyRefused { .. }
    )
}

fn home(area: Area) -> String {
    format!("/{}/account", area.segment())
}

fn grace_text(remaining: Option<u32>, until: Option<u64>) -> String {
    let mut text = "Your administrator requires two-factor authentication. Set it up now".to_owned();
    match (remaining, until) {
        (Some(n), _) => text.push_str(&format!(": {n} more sign-ins without it are allowed.")),
        (None, Some(t)) => text.push_str(&format!(": it is required from {}.", views::when(t))),
        (None, None) => text.push('.'),
    }
    text
}

fn password_page(area: Area, csrf: &str, flash: Option<&str>, error: Option<&str>, email: &str) -> Markup {
    let body = html! {
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form method="post" action=(format!("/{}/sign-in", area.segment())) {
            (csrf_field(csrf))
            label for="email" { "Email" }
            input #email type="email" name="email" autocomplete="username" required value=(email);
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            div { button type="submit" { "Sign in" } }
        }
    };
    let frame = Frame { who: None, csrf, flash };
    views::page(&format!("Sign in to the {}", area.title()), Some(&frame), body)
}

/// What the code page shows.
struct CodePage<'a> {
    area: Area,
    csrf: &'a str,
    /// The backup-code form rather than the app's.
    backup: bool,
    remember_days: u8,
    /// Authenticator apps the user has.
    apps: u8,
    /// The sign-in challenge, when the user has passkeys.
    passkey: Option<&'a PasskeyOptions>,
    note: Option<&'a str>,
    error: Option<&'a str>,
}

fn code_page(page: &CodePage<'_>) -> Markup {
    let action = format!("/{}/sign-in/code", page.area.segment());
    let body = html! {
        @if let Some(error) = page.error { p.error role="alert" { (error) } }
        @if let Some(note) = page.note { p.warning { (note) } }
        form method="post" action=(action) {
            (csrf_field(page.csrf))
            @if page.backup {
                p { "Type one of the backup codes you saved when you set up two-factor authentication. Each works once." }
                input type="hidden" name="backup" value="1";
                label for="backup-code" { "Backup code" }
                input #backup-code type="text" name="code" autocomplete="off" autocapitalize="none" spellcheck="false" required;
            } @else if page.apps > 0 {
                p { "Open your authenticator app and type the code it shows for Acme." }
                (code_field("code", "Verification code"))
            } @else {
                p { "Use your passkey or security key." }
            }
            @if page.remember_days > 0 {
                label.choice for="remember" {
                    input #remember type="checkbox" name="remember" value="yes";
                    " Remember this browser for " (page.remember_days) @if page.remember_days == 1 { " day" } @else { " days" }
                }
            }
            div {
                @if page.backup || page.apps > 0 { button type="submit" { "Verify" } " " }
                @if let (false, Some(options)) = (page.backup, page.passkey) {
                    (views::passkey_button("get", options, "code", "Use a passkey"))
                }
            }
        }
        @if let (false, Some(_)) = (page.backup, page.passkey) {
            (views::passkey_notes("Signing in with a passkey needs JavaScript. Use a code or a backup code instead."))
        }
        p {
            @if page.backup {
                a href=(action) { "Use your authenticator app or passkey instead" }
            } @else {
                a href=(format!("{action}?backup=1")) { "Use a backup code instead" }
            }
        }
        p { a #lost href=(lost_href(page.area)) { (LOST) } }
    };
    let frame = Frame {
        who: None,
        csrf: page.csrf,
        flash: None,
    };
    views::page("Two-factor authentication", Some(&frame), body)
}

/// The form that names a new authenticator (and, for a user who already has
/// MFA, asks for a fresh code).
/// `proof_with` is the passkey challenge a user with passkeys may answer
/// instead of typing a code.
pub fn label_form(
    action: &str,
    csrf: &str,
    proof: Option<&str>,
    proof_with: Option<&PasskeyOptions>,
    replaces: Option<u32>,
) -> Markup {
    let id = replaces.map_or_else(|| "new".to_owned(), |r| r.to_string());
    let naming = Naming {
        form: &format!("enrol-{id}"),
        field: &format!("label-{id}"),
        proof_field: &format!("proof-{id}"),
        label: "Name for this authenticator",
        value: "Authenticator app",
        button: "Configure",
        with_passkey: "Configure, proven with a passkey",
        replaces,
    };
    name_form(&naming, action, csrf, proof, proof_with)
}

/// The form that names a new passkey (and, for a user who already has MFA,
/// asks for a fresh code or a passkey's answer).
pub fn passkey_label_form(
    action: &str,
    csrf: &str,
    proof: Option<&str>,
    proof_with: Option<&PasskeyOptions>,
) -> Markup {
    let naming = Naming {
        form: "add-passkey",
        field: "passkey-label",
        proof_field: "passkey-proof",
        label: "Name for this passkey or key",
        value: "Passkey",
        button: "Add a passkey",
        with_passkey: "Add, proven with a passkey",
        replaces: None,
    };
    name_form(&naming, action, csrf, proof, proof_with)
}

/// What a naming form says, and the ids the tests and the labels point at.
struct Naming<'a> {
    form: &'a str,
    field: &'a str,
    proof_field: &'a str,
    label: &'a str,
    value: &'a str,
    button: &'a str,
    with_passkey: &'a str,
    replaces: Option<u32>,
}

/// A new factor's name, the proof a user with MFA gives (a code, or a passkey's answer), and the submit buttons.
fn name_form(
    n: &Naming<'_>,
    action: &str,
    csrf: &str,
    proof: Option<&str>,
    proof_with: Option<&PasskeyOptions>,
) -> Markup {
    html! {
        form id=(n.form) method="post" action=(action) {
            (csrf_field(csrf))
            @if let Some(replaces) = n.replaces { input type="hidden" name="replaces" value=(replaces); }
            label for=(n.field) { (n.label) }
            input id=(n.field) type="text" name="label" maxlength="64" required value=(n.value);
            @if let Some(proof_label) = proof {
                (views::proof_field(n.proof_field, proof_label))
            }
            div {
                button type="submit" { (n.button) }
                @if let (Some(_), Some(options)) = (proof, proof_with) {
                    " " (views::passkey_button("get", options, "code", n.with_passkey))
                }
            }
        }
    }
}

/// The registration page: one button that asks the browser for a new
/// passkey and sends its answer.
pub fn passkey_page(
    started: &PasskeyRegistrationStarted,
    label: &str,
    action: &str,
    restart: &str,
    csrf: &str,
    who: Option<&crate::session::SignedIn>,
) -> Markup {
    let body = html! {
        p { "Your browser will ask you to create a passkey (with your fingerprint, face or screen lock) or to touch your security key. It will be called " strong { (label) } "." }
        form #passkey-register method="post" action=(action) {
            (csrf_field(csrf))
            (views::passkey_button("create", &started.options, "response", "Create the passkey"))
        }
        (views::passkey_notes("Creating a passkey needs JavaScript. Turn it on, or set up an authenticator app instead."))
        p { "This setup expires at " (views::when(started.expires_at)) ". "
            a href=(restart) { "Start again" } " or choose another way." }
    };
    let frame = Frame { who, csrf, flash: None };
    views::page("Add a passkey or security key", Some(&frame), body)
}

/// The QR code, the key for typing, and the confirm-code form.
pub fn enrolment_page(
    started: &StartedEnrolment,
    label: &str,
    action: &str,
    restart: &str,
    csrf: &str,
    who: Option<&crate::session::SignedIn>,
) -> Result<Markup, Failure> {
    let svg = started.uri.qr_svg()?;
    let svg = svg.find("<svg").and_then(|start| svg.get(start..)).unwrap_or_default();
    let key = started.uri.secret().to_grouped_base32();
    let body = html! {
        ol {
            li { "Open your authenticator app and add an account." }
            li { "Scan this QR code:" }
        }
        figure.qr aria-label="QR code to scan with your authenticator app" { (PreEscaped(svg)) }
        p { "Or type this key into the app (time-based, 6 digits):" }
        p { code #secret-key .key { (key.as_str()) } }
        p { "It will appear in the app as " strong { "Acme Portal" } " · " (label) "." }
        form method="post" action=(action) {
            (csrf_field(csrf))
            (code_field("code", "Code from the app"))
            div { button type="submit" { "Verify" } }
        }
        p { "This setup expires at " (views::when(started.expires_at)) ". "
            a href=(restart) { "Start again" } " for a new key." }
    };
    let frame = Frame { who, csrf, flash: None };
    Ok(views::page("Set up two-factor authentication", Some(&frame), body))
}

/// After a wrong confirm code: the app is already set up, so only the code
/// is asked again (the key is never shown twice).
pub fn retry_confirm_page(message: &str, action: &str, restart: &str, csrf: &str) -> Markup {
    let body = html! {
        p.error role="alert" { (message) }
        form method="post" action=(action) {
            (csrf_field(csrf))
            (code_field("code", "Code from the app"))
            div { button type="submit" { "Verify" } }
        }
        p { "Lost the QR code? " a href=(restart) { "Start again" } " for a new one." }
    };
    let frame = Frame {
        who: None,
        csrf,
        flash: None,
    };
    views::page("Set up two-factor authentication", Some(&frame), body)
}

/// The backup codes, shown once: copy, download, print, then "I have saved them".
pub fn backup_codes_page(codes: &IssuedBackupCodes, finish: &str, finish_text: &str, csrf: &str) -> Markup {
    let all: Vec<&str> = codes.expose().collect();
    let joined = all.join("\n");
    let body = html! {
        p { "Keep these " (all.len()) " backup codes somewhere safe. Each one signs you in once if you lose your phone. "
            strong { "They are shown only now." } }
        ul.codes #backup-codes { @for code in &all { li { (code) } } }
        label for="codes-copy" { "Your backup codes, to select and copy" }
        textarea.codes-copy #codes-copy readonly { (joined) }
        div.no-print {
            button.secondary type="button" data-copy="codes-copy" hidden { "Copy" }
            form.inline method="post" action="/backup-codes.txt" {
                (csrf_field(csrf))
                input type="hidden" name="codes" value=(joined);
                button.secondary type="submit" { "Download as .txt" }
            }
            " "
            form.inline method="post" action="/backup-codes/print" target="_blank" {
                (csrf_field(csrf))
                input type="hidden" name="codes" value=(joined);
                button.secondary type="submit" { "Print" }
            }
        }
        form method="post" action=(finish) {
            (csrf_field(csrf))
            label.choice for="saved" {
                input #saved type="checkbox" name="saved" value="yes" required;
                " I have saved my backup codes"
            }
            button type="submit" { (finish_text) }
        }
        script src="/static/app.js" {}
    };
    let frame = Frame {
        who: None,
        csrf,
        flash: None,
    };
    views::page("Your backup codes", Some(&frame), body)
}

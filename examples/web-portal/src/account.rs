//! My account · Two-factor authentication: the user's authenticators (add,
//! change, delete), their backup codes, and a banner when few are left.
//! Every change after the first needs a fresh code: a stolen session alone
//! cannot add or remove a factor.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use portal_mfa::session::BrowserId;
use portal_mfa::{AuthenticatorId, EnrolmentOptions};
use serde::Deserialize;
use tower_sessions::Session;

use crate::failure::Failure;
use crate::session;
use crate::sign_in::{
    CodeForm, RegistrationForm, ask_again, backup_codes_page, enrolment_page, label_form, passkey_label_form,
    passkey_page, retry_confirm_page,
};
use crate::views::{self, Frame, code_field, csrf_field};
use crate::{Posted, Visit};

/// `GET /{area}/account`
pub async fn security(Visit { app, area, session }: Visit) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let csrf = session::csrf_token(&session).await?;
    let flash = session::take_flash(&session).await?;
    let portal = app.portal(area);
    let user = area.user(&who.email);
    let record = portal.record(&user).await?;
    let policy = portal.policy().await?;
    let enforced = policy.is_enforced();
    let on = record.mfa_enabled();
    let base = format!("/{}/account", area.segment());
    let backup_left = record.backup_codes().map_or(0, |b| b.remaining());
    let low = on && backup_left <= u32::from(policy.backup_codes_low_at());
    let period = policy.otp().period();
    let browsers = portal.trusted_browsers(&user).await?;
    // A user with passkeys may prove a change with one instead of a code:
    // one challenge for the page, answered by whichever form is sent.
    let proof_with = if app.passkeys && !record.passkeys().is_empty() {
        portal.request_passkey_proof(&user, &who.stamp).await.ok()
    } else {
        None
    };
    let proof = proof_with.as_ref();
    let proof_label = if proof.is_some() {
        "A current code (or a backup code), or use a passkey"
    } else {
        "A current code (or a backup code)"
    };
    let body = html! {
        p { "Signed in as " strong { (who.name) } " (" (who.email) "). "
            a href=(format!("{base}/password")) { "Change password" } }
        h2 { "Two-factor authentication" }
        @if low {
            p.warning role="status" #low-backup-codes {
                "Only " (backup_left) " backup codes left. Generate new ones below so you can still sign in if you lose your phone."
            }
        }
        p #mfa-status {
            @if on && record.passkeys().is_empty() { "On: you sign in with a code from your authenticator app." }
            @else if on { "On: you sign in with a passkey, a security key or a code from your authenticator app." }
            @else if enforced { "Required by your administrator: set up an authenticator app." }
            @else { "Off. Turn it on to protect your account with a code from your phone." }
        }
        @if !record.authenticators().is_empty() {
            table #authenticators {
                thead { tr { th { "Authenticator" } th { "Added" } th { "Last used" } th { "Actions" } } }
                tbody {
                    @for a in record.authenticators() {
                        tr {
                            td { (a.label()) }
                            td { (views::day(a.added_at())) }
                            td { @match a.last_used_step() {
                                Some(step) => (views::when(step.saturating_mul(period))),
                                None => "Never",
                            } }
                            td {
                                details {
                                    summary { "Change" }
                                    p { "The current app keeps working until the new one is confirmed." }
                                    (label_form(&format!("{base}/enrol"), &csrf, Some(proof_label), proof, Some(a.id().0)))
                                }
                                details {
                                    summary { "Delete" }
                                    form method="post" action=(format!("{base}/delete")) {
                                        (csrf_field(&csrf))
                                        input type="hidden" name="authenticator" value=(a.id().0);
                                        (views::proof_field(&format!("delete-{}", a.id().0), proof_label))
                                        (delete_buttons(a.label(), proof))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !record.passkeys().is_empty() {
            table #passkeys {
                thead { tr { th { "Passkey or security key" } th { "Added" } th { "Last used" } th { "Actions" } } }
                tbody {
                    @for p in record.passkeys() {
                        tr {
                            td { (p.label()) }
                            td { (views::day(p.added_at())) }
                            td { (p.last_used_at().map(views::when).unwrap_or_else(|| "Never".to_owned())) }
                            td {
                                details {
                                    summary { "Delete" }
                                    form method="post" action=(format!("{base}/delete")) {
                                        (csrf_field(&csrf))
                                        input type="hidden" name="authenticator" value=(p.id().0);
                                        (views::proof_field(&format!("delete-{}", p.id().0), proof_label))
                                        (delete_buttons(p.label(), proof))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(pending) = record.pending() {
            div.card {
                p { "A setup of " strong { (pending.label()) } " is waiting for its first code (until "
                    (views::when(pending.expires_at())) ")." }
                form method="post" action=(format!("{base}/confirm")) {
                    (csrf_field(&csrf))
                    (code_field("finish-code", "Code from the new app"))
                    div { button type="submit" { "Finish that setup" } }
                }
                form method="post" action=(format!("{base}/cancel")) {
                    (csrf_field(&csrf))
                    button.secondary type="submit" { "Cancel that setup" }
                }
            }
        }
        div.card {
            @if on {
                h3 { "Add another authenticator app" }
                (label_form(&format!("{base}/enrol"), &csrf, Some(proof_label), proof, None))
            } @else {
                h3 { "Set up an authenticator app" }
                (label_form(&format!("{base}/enrol"), &csrf, None, None, None))
            }
        }
        @if app.passkeys {
            div.card {
                h3 { "Add a passkey or security key" }
                p { "Sign in with this device's fingerprint, face or screen lock, or a security key. This needs JavaScript." }
                (passkey_label_form(&format!("{base}/passkey"), &csrf, on.then_some(proof_label), proof))
            }
        }
        @if !browsers.is_empty() {
            h2 { "Trusted browsers" }
            p { "These browsers sign in without a code until they expire." }
            table #trusted-browsers {
                thead { tr { th { "Browser" } th { "Trusted" } th { "Last used" } th { "Expires" } th {} } }
                tbody {
                    @for b in &browsers {
                        tr {
                            td { (b.label()) @if who.browser == Some(b.id().0) { " (this browser)" } }
                            td { (views::when(b.created_at())) }
                            td { (b.last_used_at().map(views::when).unwrap_or_else(|| "Never".to_owned())) }
                            td { (views::when(b.expires_at())) }
                            td {
                                form.inline method="post" action=(format!("{base}/browsers/forget")) {
                                    (csrf_field(&csrf))
                                    input type="hidden" name="browser" value=(b.id().0);
                                    button.secondary type="submit" { "Forget" }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action=(format!("{base}/browsers/forget")) {
                (csrf_field(&csrf))
                button.secondary #forget-all type="submit" { "Forget all browsers" }
            }
        }
        @if on {
            h2 { "Backup codes" }
            p #backup-status { (backup_left) " unused backup codes left." }
            form method="post" action=(format!("{base}/backup-codes")) {
                (csrf_field(&csrf))
                p { "New codes replace all the old ones." }
                (views::proof_field("regenerate-code", proof_label))
                div {
                    button type="submit" { "Generate new backup codes" }
                    @if let Some(options) = proof { " " (views::passkey_button("get", options, "code", "Generate, proven with a passkey")) }
                }
            }
        }
        @if proof.is_some() || app.passkeys {
            (views::passkey_notes("Passkeys need JavaScript. Type a code from your app or a backup code instead."))
        }
    };
    let frame = Frame {
        who: Some(&who),
        csrf: &csrf,
        flash: flash.as_deref(),
    };
    Ok(views::page("My account", Some(&frame), body).into_response())
}

/// A new or replacing authenticator.
#[derive(Deserialize)]
pub struct EnrolForm {
    label: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    replaces: Option<u32>,
}

/// `POST /{area}/account/enrol`: add one, or change one (it keeps working
/// until the new one is confirmed).
pub async fn enrol(Visit { app, area, session }: Visit, Posted(form): Posted<EnrolForm>) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let user = area.user(&who.email);
    let mut options = EnrolmentOptions::default();
    if let Some(code) = form.code.as_deref().filter(|c| !c.trim().is_empty()) {
        options = options.with_proof(code);
    }
    if let Some(id) = form.replaces {
        options = options.replacing(AuthenticatorId(id));
    }
    let base = format!("/{}/account", area.segment());
    let started = app
        .portal(area)
        .start_enrolment(&user, &who.stamp, &who.email, &form.label, options)
        .await
        .map_err(|e| Failure::mfa(e).link(base.clone(), "Back to My account"))?;
    let csrf = session::csrf_token(&session).await?;
    Ok(enrolment_page(
        &started,
        &form.label,
        &format!("{base}/confirm"),
        &base,
        &csrf,
        Some(&who),
    )?
    .into_response())
}

/// `POST /{area}/account/confirm`: the new app's first code.
pub async fn confirm(Visit { app, area, session }: Visit, Posted(form): Posted<CodeForm>) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let base = format!("/{}/account", area.segment());
    let csrf = session::csrf_token(&session).await?;
    match app
        .portal(area)
        .confirm_enrolment(&area.user(&who.email), &who.stamp, &form.code)
        .await
    {
        // A replacement ended every other session: this one goes on.
        Ok(confirmed) => match session::renew(&session, who, confirmed.session)
            .await
            .map(|()| confirmed.backup_codes)?
        {
            Some(codes) => Ok(backup_codes_page(&codes, &format!("{base}/saved"), "Done", &csrf).into_response()),
            None => {
                session::flash(&session, "Authenticator confirmed.").await?;
                Ok(Redirect::to(&base).into_response())
            }
        },
        Err(e) => ask_again(e, |why| {
            retry_confirm_page(why, &format!("{base}/confirm"), &base, &csrf)
        })
        .map_err(|e| Failure::mfa(e).link(base.clone(), "Back to My account")),
    }
}

/// `POST /{area}/account/passkey`: a registration challenge, for the browser
/// (after a fresh code or passkey answer, when MFA is on).
pub async fn passkey_start(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<EnrolForm>,
) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let mut options = EnrolmentOptions::default();
    if let Some(code) = form.code.as_deref().filter(|c| !c.trim().is_empty()) {
        options = options.with_proof(code);
    }
    let base = format!("/{}/account", area.segment());
    let started = app
        .portal(area)
        .start_passkey_registration(&area.user(&who.email), &who.stamp, &who.email, &form.label, options)
        .await
        .map_err(|e| Failure::mfa(e).link(base.clone(), "Back to My account"))?;
    let csrf = session::csrf_token(&session).await?;
    Ok(passkey_page(
        &started,
        &form.label,
        &format!("{base}/passkey/finish"),
        &base,
        &csrf,
        Some(&who),
    )
    .into_response())
}

/// `POST /{area}/account/passkey/finish`: the browser's new passkey.
pub async fn passkey_finish(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<RegistrationForm>,
) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let base = format!("/{}/account", area.segment());
    let confirmed = app
        .portal(area)
        .finish_passkey_registration(&area.user(&who.email), &who.stamp, &form.response)
        .await
        .map_err(|e| Failure::mfa(e).link(base.clone(), "Back to My account"))?;
    session::renew(&session, who, confirmed.session).await?;
    match confirmed.backup_codes {
        Some(codes) => {
            let csrf = session::csrf_token(&session).await?;
            Ok(backup_codes_page(&codes, &format!("{base}/saved"), "Done", &csrf).into_response())
        }
        None => back(&session, area, "Passkey added.").await,
    }
}

/// A delete form's buttons: with a typed code, or proven with a passkey.
fn delete_buttons(label: &str, proof: Option<&portal_mfa::passkey::PasskeyOptions>) -> Markup {
    html! {
        div {
            button.danger type="submit" { "Delete " (label) }
            @if let Some(options) = proof { " " (views::passkey_button("get", options, "code", "Delete, proven with a passkey")) }
        }
    }
}

/// `POST /{area}/account/saved`: the codes are saved; back to the account.
pub async fn saved(Visit { app, area, session }: Visit, Posted(_): Posted<Empty>) -> Result<Response, Failure> {
    session::signed_in(&app, &session, area).await?;
    session::flash(&session, "Two-factor authentication is on.").await?;
    Ok(Redirect::to(&format!("/{}/account", area.segment())).into_response())
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub struct Empty {}

/// `POST /{area}/account/cancel`: drop a setup in progress.
pub async fn cancel(Visit { app, area, session }: Visit, Posted(_): Posted<Empty>) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    app.portal(area)
        .cancel_enrolment(&area.user(&who.email), &who.stamp)
        .await?;
    back(&session, area, "Setup cancelled.").await
}

/// Which authenticator, with a fresh code.
#[derive(Deserialize)]
pub struct DeleteForm {
    authenticator: u32,
    code: String,
}

/// `POST /{area}/account/delete`: refused under enforcement for the last one.
pub async fn delete(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<DeleteForm>,
) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let base = format!("/{}/account", area.segment());
    let stamp = app
        .portal(area)
        .delete_authenticator(
            &area.user(&who.email),
            &who.stamp,
            AuthenticatorId(form.authenticator),
            &form.code,
        )
        .await
        .map_err(|e| Failure::mfa(e).link(base, "Back to My account"))?;
    // Every other session ended, and every trusted browser with them.
    session::renew(&session, who, stamp).await?;
    forgot_this_browser(
        back(
            &session,
            area,
            "Authenticator deleted. You were signed out everywhere else.",
        )
        .await?,
        &app,
        area,
    )
}

/// `POST /{area}/account/backup-codes`: a new batch, shown once.
pub async fn regenerate(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<CodeForm>,
) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let base = format!("/{}/account", area.segment());
    let regenerated = app
        .portal(area)
        .regenerate_backup_codes(&area.user(&who.email), &who.stamp, &form.code)
        .await
        .map_err(|e| Failure::mfa(e).link(base.clone(), "Back to My account"))?;
    session::renew(&session, who, regenerated.session).await?;
    let csrf = session::csrf_token(&session).await?;
    let page = backup_codes_page(&regenerated.codes, &format!("{base}/saved"), "Done", &csrf).into_response();
    forgot_this_browser(page, &app, area)
}

/// Which trusted browser to forget; none: all of them.
#[derive(Deserialize)]
pub struct ForgetForm {
    #[serde(default)]
    browser: Option<u32>,
}

/// `POST /{area}/account/browsers/forget`: "Forget" one browser, or all.
pub async fn forget_browsers(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<ForgetForm>,
) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let user = area.user(&who.email);
    let base = format!("/{}/account", area.segment());
    let this_one = form.browser.is_none() || form.browser == who.browser;
    match form.browser {
        Some(id) => app.portal(area).forget_browser(&user, &who.stamp, BrowserId(id)).await,
        None => app.portal(area).forget_browsers(&user, &who.stamp).await,
    }
    .map_err(|e| Failure::mfa(e).link(base, "Back to My account"))?;
    let response = back(&session, area, "Forgotten: that browser will be asked for a code.").await?;
    Ok(if this_one {
        forgot_this_browser(response, &app, area)?
    } else {
        response
    })
}

/// The new password, with the current one.
#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
}

/// Shortest new password accepted.
const MIN_PASSWORD: usize = 12;

/// `GET /{area}/account/password`
pub async fn password_form(Visit { app, area, session }: Visit) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let csrf = session::csrf_token(&session).await?;
    let body = html! {
        p { "Changing your password signs you out everywhere else and makes every trusted browser ask for a code again." }
        form method="post" action=(format!("/{}/account/password", area.segment())) {
            (csrf_field(&csrf))
            label for="current" { "Current password" }
            input #current type="password" name="current" autocomplete="current-password" required;
            label for="new" { "New password (at least " (MIN_PASSWORD) " characters)" }
            input #new type="password" name="new" autocomplete="new-password" minlength=(MIN_PASSWORD) maxlength="256" required;
            div { button type="submit" { "Change password" } }
        }
    };
    let frame = Frame {
        who: Some(&who),
        csrf: &csrf,
        flash: None,
    };
    Ok(views::page("Change password", Some(&frame), body).into_response())
}

/// `POST /{area}/account/password`: a demo of what only the host knows: the
/// password changed, so portal-mfa ends every other session and trusted browser.
pub async fn change_password(
    Visit { app, area, session }: Visit,
    Posted(form): Posted<PasswordForm>,
) -> Result<Response, Failure> {
    let who = session::signed_in(&app, &session, area).await?;
    let again = format!("/{}/account/password", area.segment());
    let refuse = |message: &str| {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "Password not changed", message).link(again.clone(), "Try again")
    };
    if !(MIN_PASSWORD..=256).contains(&form.new.chars().count()) || form.new.len() > crate::sign_in::MAX_PASSWORD {
        return Err(refuse("The new password needs 12 to 256 characters."));
    }
    if form.current.len() > crate::sign_in::MAX_PASSWORD {
        return Err(refuse("The current password is wrong."));
    }
    // The same per-account limit as the sign-in: a stolen session cannot guess the password here.
    let account_key = format!("{}:{}", area.segment(), who.email);
    app.account_limits
        .attempt(&account_key, app.now())
        .map_err(Failure::rate_limited)?;
    let busy = |_| {
        app.account_limits.refund(&account_key);
        Failure::busy(1)
    };
    let Some(account) = app
        .accounts
        .check(area, &who.email, &form.current)
        .await
        .map_err(busy)?
    else {
        return Err(refuse("The current password is wrong."));
    };
    app.account_limits.clear(&account_key);
    // Hashed before anything changes: a busy server changes nothing.
    let hashed = app
        .accounts
        .hash_password(&form.new)
        .await
        .map_err(|_| Failure::busy(1))?;
    // The other sessions end first, in one step with this session's check: a
    // session that ended meanwhile (a reset racing this form) changes nothing,
    // not even the password.
    let stamp = match app
        .portal(area)
        .end_sessions(&area.user(&who.email), Some(&who.stamp))
        .await
    {
        Ok(Some(stamp)) => stamp,
        Ok(None) | Err(portal_mfa::Error::SessionEnded | portal_mfa::Error::InvalidStamp) => {
            return Err(Failure::session_ended(area));
        }
        Err(e) => return Err(e.into()),
    };
    app.accounts.store_password(&account, hashed);
    // A browser that signed this session in stays trusted; every other one was forgotten.
    let kept_browser = who.browser.is_some();
    session::renew(&session, who, stamp).await?;
    let done = back(&session, area, "Password changed. You were signed out everywhere else.").await?;
    if kept_browser {
        Ok(done)
    } else {
        forgot_this_browser(done, &app, area)
    }
}

/// `response`, clearing this browser's trusted-browser cookie (its trust is gone).
fn forgot_this_browser(
    mut response: Response,
    app: &crate::App,
    area: crate::accounts::Area,
) -> Result<Response, Failure> {
    response
        .headers_mut()
        .append(header::SET_COOKIE, crate::trust::clear(area, app.secure_cookies));
    Ok(response)
}

async fn back(session: &Session, area: crate::accounts::Area, message: &str) -> Result<Response, Failure> {
    session::flash(session, message).await?;
    Ok(Redirect::to(&format!("/{}/account", area.segment())).into_response())
}

/// `POST /backup-codes.txt`: the codes on screen, as a file.
pub async fn download_codes(Posted(form): Posted<CodesForm>) -> Response {
    let text = format!(
        "Acme Portal backup codes\nEach code signs you in once. Keep them somewhere safe.\n\n{}\n",
        form.codes.trim()
    );
    crate::admin::download(text.into_bytes(), "text/plain; charset=utf-8", "acme-backup-codes.txt")
}

/// The codes on screen, sent back for download or print.
#[derive(Deserialize)]
pub struct CodesForm {
    codes: String,
}

/// `POST /backup-codes/print`: the codes alone on a page, ready to print.
pub async fn print_codes(Posted(form): Posted<CodesForm>) -> Markup {
    let body = html! {
        p { "Acme Portal backup codes. Each code signs you in once." }
        ul.codes { @for code in form.codes.lines().map(str::trim).filter(|c| !c.is_empty()) { li { (code) } } }
        p.no-print { "Print this page with your browser (Ctrl+P or ⌘P), then close it." }
        button.secondary.no-print type="button" data-print hidden { "Print" }
        script src="/static/app.js" {}
    };
    views::page("Backup codes", None, body)
}

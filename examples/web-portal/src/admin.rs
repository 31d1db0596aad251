//! The admin console: the portal's MFA setting, the users with their MFA
//! status and **Reset MFA**, the outbox of notices, and the audit trail.
//! Every page needs an admin who signed in with their own second factor;
//! a reset needs a fresh code on top (step-up).

use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use portal_mfa::{
    Admin, Cursor, Enforcement, Grace, SignInMethod, UserId, UserKind,
    admin::{ResetMode, ResetReason, StatusFilter, UserQuery, UserStatus},
    audit::{Actor, AuditEvent, EventQuery},
};
use serde::Deserialize;
use tower_sessions::Session;

use crate::accounts::{Area, normalise};
use crate::failure::Failure;
use crate::session::{self, SignedIn};
use crate::views::{self, Frame, code_field, csrf_field};
use crate::{Desk, Posted, Shared};

async fn admin(app: &Shared, session: &Session) -> Result<(SignedIn, String), Failure> {
    let who = session::signed_in(app, session, Area::Admin).await?;
    let csrf = session::csrf_token(session).await?;
    Ok((who, csrf))
}

fn frame<'a>(who: &'a SignedIn, csrf: &'a str, flash: Option<&'a str>) -> Frame<'a> {
    Frame {
        who: Some(who),
        csrf,
        flash,
    }
}

// ----- Portal settings -----

/// `GET /admin/settings`
pub async fn settings(Desk { app, session }: Desk) -> Result<Response, Failure> {
    let (who, csrf) = admin(&app, &session).await?;
    let flash = session::take_flash(&session).await?;
    let policy = app.portal.policy().await?;
    let (enforced, grace) = match policy.enforcement() {
        Enforcement::Enforced { grace } => (true, grace),
        _ => (false, None),
    };
    let saml = policy.sign_in_method() == SignInMethod::Saml;
    let grace_until = grace.and_then(|g| g.until).map(views::day).unwrap_or_default();
    let grace_count = grace
        .and_then(|g| g.sign_ins)
        .map(|n| n.to_string())
        .unwrap_or_default();
    let body = html! {
        p { "One setting for the Customer Portal and the Vendor Portal: they share the portal name and URL, so MFA applies to every customer and vendor." }
        form method="post" action="/admin/settings" {
            (csrf_field(&csrf))
            h2 { "Multi-factor authentication (MFA)" }
            fieldset {
                legend { "Enforce multi-factor authentication for portal users" }
                (views::radio("mfa-off", "enforcement", "off", !enforced, "Off: users may set it up themselves (self-configured)"))
                (views::radio("mfa-enforced", "enforcement", "enforced", enforced, "Enforced: every customer and vendor signs in with a code"))
            }
            fieldset {
                legend { "Grace for users who have not set it up yet (when enforced)" }
                (views::radio("grace-none", "grace", "none", grace.is_none(), "None: set up at the next sign-in"))
                (views::radio("grace-date", "grace", "date", grace.is_some_and(|g| g.until.is_some()), "Until a date"))
                label for="grace-until" { "Grace ends on (UTC)" }
                input #grace-until type="date" name="grace_until" value=(grace_until);
                (views::radio("grace-count", "grace", "count", grace.is_some_and(|g| g.sign_ins.is_some()), "For a number of sign-ins"))
                label for="grace-sign-ins" { "Sign-ins allowed without MFA" }
                input #grace-sign-ins type="number" name="grace_sign_ins" min="1" max="100" value=(grace_count);
            }
            h2 { "Trusted browsers" }
            label for="trusted-days" { "Days a browser may skip the code after \"Remember this browser\" (0: never, up to 180)" }
            input #trusted-days type="number" name="trusted_browser_days" min="0" max="180" value=(policy.trusted_browser_days());
            p { "Lowering it shortens every trusted browser at once; raising it never lengthens one already trusted." }
            h2 { "Sign-in method" }
            fieldset {
                legend { "How portal users sign in" }
                (views::radio("method-password", "sign_in", "password", !saml, "Email and password"))
                (views::radio("method-saml", "sign_in", "saml", saml, "SAML single sign-on"))
                p { "Note: " (crate::failure::SAML_REFUSAL) }
            }
            h2 { "Confirm it is you" }
            p { "Needed for a change that weakens MFA: turning enforcement off, a longer grace, SAML, or trusting browsers for longer." }
            label for="settings-code" { "Your own authenticator code" }
            input #settings-code type="text" name="code" autocomplete="one-time-code" autocapitalize="none"
                spellcheck="false" inputmode="numeric" maxlength="20";
            div { button type="submit" { "Save" } }
        }
        p { "Turning enforcement off does not remove anyone's authenticator: users who set one up keep signing in with it until they delete it or you reset their MFA." }
    };
    Ok(views::page("Portal settings", Some(&frame(&who, &csrf, flash.as_deref())), body).into_response())
}

/// The settings form.
#[derive(Deserialize)]
pub struct SettingsForm {
    enforcement: String,
    #[serde(default)]
    grace: Option<String>,
    #[serde(default)]
    grace_until: Option<String>,
    #[serde(default)]
    grace_sign_ins: Option<String>,
    sign_in: String,
    #[serde(default)]
    trusted_browser_days: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// `POST /admin/settings`
pub async fn save_settings(
    Desk { app, session }: Desk,
    Posted(form): Posted<SettingsForm>,
) -> Result<Response, Failure> {
    let (who, _) = admin(&app, &session).await?;
    let invalid = |message: &str| {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "Setting not saved", message)
            .link("/admin/settings", "Back to settings")
    };
    let method = match form.sign_in.as_str() {
        "password" => SignInMethod::Password,
        "saml" => SignInMethod::Saml,
        _ => return Err(invalid("Choose a sign-in method.")),
    };
    let enforcement = match form.enforcement.as_str() {
        "off" => Enforcement::SelfConfigured,
        "enforced" => Enforcement::Enforced {
            grace: match form.grace.as_deref().unwrap_or("none") {
                "none" => None,
                "date" => Some(Grace::new(
                    Some(
                        parse_date(form.grace_until.as_deref().unwrap_or_default())
                            .ok_or_else(|| invalid("Give the grace end as a date."))?,
                    ),
                    None,
                )),
                "count" => Some(Grace::new(
                    None,
                    Some(
                        form.grace_sign_ins
                            .as_deref()
                            .and_then(|n| n.trim().parse().ok())
                            .filter(|n| (1..=100).contains(n))
                            .ok_or_else(|| invalid("Give the number of grace sign-ins, 1 to 100."))?,
                    ),
                )),
                _ => return Err(invalid("Choose a grace.")),
            },
        },
        _ => return Err(invalid("Choose whether MFA is enforced.")),
    };
    let trusted_days: u8 = match form.trusted_browser_days.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(days) => days
            .parse()
            .ok()
            .filter(|d| *d <= 180)
            .ok_or_else(|| invalid("Give the days a browser may be trusted, 0 to 180."))?,
    };
    let admin = Admin::authorised(who.email.as_str());
    // Enforcement off first, so a switch to SAML is judged against the new
    // setting, then the method, then the enforcement asked for.
    let change = move |p: portal_mfa::PortalPolicy| {
        p.with_enforcement(Enforcement::SelfConfigured)?
            .with_sign_in_method(method)?
            .with_enforcement(enforcement)?
            .with_trusted_browser_days(trusted_days)
    };
    // A stolen admin session must not weaken MFA: that takes a fresh code,
    // spent like a sign-in code (as a reset does). Whether the change weakens
    // MFA is decided against the policy it replaces, inside the
    // compare-and-swap, never against one read before it.
    let code = form.code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let proven = match code {
        Some(code) => {
            app.staff
                .verify_sign_in(&Area::Admin.user(&who.email), code)
                .await
                .map_err(|e| Failure::mfa(e).link("/admin/settings", "Back to settings"))?;
            true
        }
        None => false,
    };
    let saved = app
        .portal
        .update_policy(&admin, move |current| {
            let wanted = change(current)?;
            if weakens(&current, &wanted) && !proven {
                return Err(portal_mfa::Error::ProofRequired);
            }
            Ok(wanted)
        })
        .await;
    match saved {
        Ok(_) => {}
        Err(portal_mfa::Error::ProofRequired) => {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "Your code is needed",
                "This change weakens MFA for every portal user: type a current code from your own authenticator app.",
            )
            .link("/admin/settings", "Back to settings"));
        }
        Err(e) => return Err(Failure::mfa(e).link("/admin/settings", "Back to settings")),
    }
    session::flash(&session, "Settings saved.").await?;
    Ok(Redirect::to("/admin/settings").into_response())
}

/// Whether going from `old` to `new` weakens MFA: enforcement off, a grace
/// added or lengthened, SAML (the identity provider then owns MFA), or
/// browsers trusted for longer.
fn weakens(old: &portal_mfa::PortalPolicy, new: &portal_mfa::PortalPolicy) -> bool {
    let grace_longer = match (old.enforcement(), new.enforcement()) {
        (Enforcement::Enforced { grace: before }, Enforcement::Enforced { grace: after }) => match (before, after) {
            (_, None) => false,
            (None, Some(_)) => true,
            // No limit (`None`) is the longest.
            (Some(b), Some(a)) => {
                longer(a.until, b.until) || longer(a.sign_ins.map(u64::from), b.sign_ins.map(u64::from))
            }
        },
        (Enforcement::Enforced { .. }, _) => true,
        _ => false,
    };
    grace_longer
        || (new.sign_in_method() == SignInMethod::Saml && old.sign_in_method() != SignInMethod::Saml)
        || new.trusted_browser_days() > old.trusted_browser_days()
}

/// Whether the limit `new` is longer than `old` (`None`: no limit).
fn longer(new: Option<u64>, old: Option<u64>) -> bool {
    match (new, old) {
        (None, Some(_)) => true,
        (Some(new), Some(old)) => new > old,
        _ => false,
    }
}

/// `YYYY-MM-DD` as the Unix time of that day's midnight, UTC.
fn parse_date(text: &str) -> Option<u64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text.trim(), &format).ok()?;
    u64::try_from(date.midnight().assume_utc().unix_timestamp()).ok()
}

// ----- Users -----

/// The users page's filters and place.
#[derive(Deserialize, Default)]
pub struct UsersQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

const STATUSES: [(StatusFilter, &str); 8] = [
    (StatusFilter::Any, "Any"),
    (StatusFilter::Enrolled, "MFA on"),
    (StatusFilter::MfaOff, "MFA off"),
    (StatusFilter::PendingEnrolment, "Setting up"),
    (StatusFilter::MustReenrol, "Must set up again"),
    (StatusFilter::LockedOut, "Locked out"),
    (StatusFilter::InGrace, "In grace"),
    (StatusFilter::ResetRequested, "Reset requested"),
];

/// `GET /admin/users`
pub async fn users(Desk { app, session }: Desk, Query(q): Query<UsersQuery>) -> Result<Response, Failure> {
    let (who, csrf) = admin(&app, &session).await?;
    let status = q
        .status
        .as_deref()
        .and_then(StatusFilter::from_name)
        .unwrap_or(StatusFilter::Any);
    let kind = q.kind.as_deref().and_then(UserKind::from_name);
    let mut query = UserQuery::new().status(status).limit(app.page_size);
    if let Some(kind) = kind {
        query = query.kind(kind);
    }
    let first = q.after.is_none();
    if let Some(after) = q.after.as_deref() {
        let cursor: Cursor = after.parse().map_err(Failure::mfa)?;
        query = query.after(cursor);
    }
    let page = app.portal.users(query).await?;
    let now = app.now();
    let filters = |after: Option<&str>| {
        let mut pairs = vec![("status", status.name())];
        pairs.extend(kind.map(|k| ("kind", k.as_str())));
        pairs.extend(after.map(|a| ("after", a)));
        format!("/admin/users?{}", query_string(&pairs))
    };
    let body = html! {
        form method="get" action="/admin/users" {
            label for="status" { "MFA status" }
            select #status name="status" {
                @for (filter, text) in STATUSES {
                    option value=(filter.name()) selected[filter == status] { (text) }
                }
            }
            label for="kind" { "Users" }
            select #kind name="kind" {
                option value="" selected[kind.is_none()] { "Customers and vendors" }
                option value="customer" selected[kind == Some(UserKind::Customer)] { "Customers" }
                option value="vendor" selected[kind == Some(UserKind::Vendor)] { "Vendors" }
            }
            div { button type="submit" { "Filter" } }
        }
        form method="get" action="/admin/users/reset" {
            label for="find-email" { "Find a user by email" }
            input #find-email type="email" name="email" required;
            label for="find-kind" { "Who" }
            select #find-kind name="kind" {
                option value="customer" { "Customer" }
                option value="vendor" { "Vendor" }
            }
            div { button.secondary type="submit" { "Open" } }
        }
        p { a #bulk-reset href="/admin/users/bulk" { "Bulk Reset MFA (security incident)" } }
        @if page.items.is_empty() {
            p #no-users { "No users match." }
        } @else {
            table #users {
                thead { tr { th { "User" } th { "Kind" } th { "MFA status" } th { "Authenticator apps" } th { "Passkeys" } th { "Backup codes" } th { "Trusted browsers" } th { "Last verified" } th {} } }
                tbody {
                    @for user in &page.items {
                        tr {
                            td { (user.user.id()) }
                            td { (user.user.kind().as_str()) }
                            td.status { (status_text(user, now)) }
                            td.apps { (user.authenticators - user.passkeys) }
                            td.passkeys { (user.passkeys) }
                            td { (user.backup_codes_left) }
                            td.trusted { (user.trusted_browsers) }
                            td { (user.last_verified_at.map(views::when).unwrap_or_else(|| "Never".to_owned())) }
                            td { a href=(reset_href(&user.user)) { "Reset MFA" } }
                        }
                    }
                }
            }
        }
        div.pager {
            @if !first { a href=(filters(None)) { "First page" } }
            @if let Some(next) = &page.next { a #next-page href=(filters(Some(next.as_str()))) { "Next page" } }
        }
    };
    Ok(views::page("Users", Some(&frame(&who, &csrf, None)), body).into_response())
}

fn status_text(user: &UserStatus, now: u64) -> String {
    if let Some(at) = user.reset_requested_at {
        return format!("Reset requested {}", views::when(at));
    }
    if let Some(lock) = &user.locked {
        return match lock.until {
            Some(t) => format!("Locked until {}", views::when(t.max(now))),
            None => "Locked until reset".to_owned(),
        };
    }
    if user.must_reenrol {
        return "Must set up again".to_owned();
    }
    if user.pending_enrolment && !user.mfa_on() {
        return "Setting up".to_owned();
    }
    if user.grace.is_some() {
        return "In grace".to_owned();
    }
    if user.mfa_on() { "MFA on" } else { "MFA off" }.to_owned()
}

fn reset_href(user: &UserId) -> String {
    format!(
        "/admin/users/reset?{}",
        query_string(&[("kind", user.kind().as_str()), ("email", user.id())])
    )
}

/// Two query strings as one (either may be empty).
fn and(left: &str, right: &str) -> String {
    match (left.is_empty(), right.is_empty()) {
        (true, _) => right.to_owned(),
        (_, true) => left.to_owned(),
        _ => format!("{left}&{right}"),
    }
}

/// `pairs` as a URL query, every name and value encoded (an email may hold `+`, `&` or `#`).
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// Whose MFA to reset.
#[derive(Deserialize)]
pub struct WhoQuery {
    kind: String,
    email: String,
}

fn portal_user(kind: &str, email: &str) -> Result<UserId, Failure> {
    let area = match kind {
        "customer" => Area::Customer,
        "vendor" => Area::Vendor,
        _ => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "No such user",
                "Choose a customer or a vendor.",
            )
            .link("/admin/users", "Back to users"));
        }
    };
    let email = normalise(email);
    if email.is_empty() || !email.contains('@') {
        return Err(
            Failure::new(StatusCode::BAD_REQUEST, "No such user", "Give the user's email.")
                .link("/admin/users", "Back to users"),
        );
    }
    Ok(area.user(&email))
}

/// The portal area a customer or vendor signs in to.
fn area_of(user: &UserId) -> Area {
    if user.kind() == UserKind::Vendor {
        Area::Vendor
    } else {
        Area::Customer
    }
}

/// `GET /admin/users/reset`: the Reset MFA form.
pub async fn reset_form(Desk { app, session }: Desk, Query(q): Query<WhoQuery>) -> Result<Response, Failure> {
    let (who, csrf) = admin(&app, &session).await?;
    let user = portal_user(&q.kind, &q.email)?;
    let record = app.portal.record(&user).await?;
    let browsers = app.portal.trusted_browsers(&user).await?;
    let known = app.accounts.get(area_of(&user), user.id()).is_some();
    let body = html! {
        p { strong { (user.id()) } " (" (user.kind().as_str()) ")"
            @if !known { " — not in the portal's user directory" } }
        p #user-mfa {
            (record.authenticators().len()) " authenticator apps, "
            (record.passkeys().len()) " passkeys or security keys, "
            (record.backup_codes().map_or(0, |b| b.remaining())) " unused backup codes"
            @if record.must_enrol() { ", must set up again" }
            @if let Some(lock) = record.failures().active_lock(app.now()) {
                ", locked " @match lock.until { Some(t) => { "until " (views::when(t)) }, None => "until reset" }
            }
            "."
        }
        @if !browsers.is_empty() {
            table #user-browsers {
                thead { tr { th { "Trusted browser" } th { "Trusted" } th { "Last used" } th { "Expires" } } }
                tbody {
                    @for b in &browsers {
                        tr {
                            td { (b.label()) }
                            td { (views::when(b.created_at())) }
                            td { (b.last_used_at().map(views::when).unwrap_or_else(|| "Never".to_owned())) }
                            td { (views::when(b.expires_at())) }
                        }
                    }
                }
            }
        }
        @if let Some(request) = record.reset_request() {
            div #reset-request {
                p { strong { "They asked for a reset" } " on " (views::when(request.at)) ": “" (request.note) "”" }
                p { "Confirm it is them out of band (call them back on a number you already have) before approving: "
                    "a request is what someone with a stolen password would file." }
                form #decline-form method="post" action="/admin/users/decline" {
                    (csrf_field(&csrf))
                    input type="hidden" name="kind" value=(user.kind().as_str());
                    input type="hidden" name="email" value=(user.id());
                    label for="decline-message" { "Message to the user (optional)" }
                    textarea #decline-message name="message" maxlength="280" {}
                    div { button.secondary type="submit" { "Decline the request" } }
                }
            }
        }
        p { "Resetting removes their authenticators, backup codes and trusted browsers, and signs them out everywhere. Their account, password and data stay as they are. They get an email saying who reset it and why." }
        form method="post" action="/admin/users/reset" {
            (csrf_field(&csrf))
            input type="hidden" name="kind" value=(user.kind().as_str());
            input type="hidden" name="email" value=(user.id());
            fieldset {
                legend { "Reason" }
                @let requested = record.reset_request().is_some();
                @if requested {
                    (views::radio("reason-request", "reason", "request", true, "Approve their request (its note is the reason)"))
                }
                @for (value, text) in [("lost_device", "Lost device"), ("new_device", "New device"), ("locked_out", "Locked out"), ("other", "Other")] {
                    (views::radio(&format!("reason-{value}"), "reason", value, !requested && value == "lost_device", text))
                }
                label for="note" { "Note (required for Other; no secrets)" }
                textarea #note name="note" maxlength="200" {}
            }
            fieldset {
                legend { "What happens next" }
                (views::radio("mode-force", "mode", "force", true, "Force re-enrolment: they set up MFA again at their next sign-in"))
                (views::radio("mode-remove", "mode", "remove", false, "Remove the device only: they set up again only if the portal enforces MFA"))
            }
            h2 { "Confirm it is you" }
            (code_field("admin-code", "Your own authenticator code"))
            div { button.danger type="submit" { "Reset MFA" } }
        }
    };
    Ok(views::page("Reset MFA", Some(&frame(&who, &csrf, None)), body).into_response())
}

/// The Reset MFA form.
#[derive(Deserialize)]
pub struct ResetForm {
    kind: String,
    email: String,
    reason: String,
    #[serde(default)]
    note: String,
    mode: String,
    code: String,
}

/// `POST /admin/users/reset`: step up with the admin's own code, then reset.
pub async fn reset(Desk { app, session }: Desk, Posted(form): Posted<ResetForm>) -> Result<Response, Failure> {
    let (who, csrf) = admin(&app, &session).await?;
    let user = portal_user(&form.kind, &form.email)?;
    let back = reset_href(&user);
    let invalid =
        |message: &str| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "Not reset", message).link(back.clone(), "Back");
    let note = form.note.trim();
    let reason = match form.reason.as_str() {
        "request" => None,
        "lost_device" => Some(ResetReason::LostDevice),
        "new_device" => Some(ResetReason::NewDevice),
        "locked_out" => Some(ResetReason::LockedOut),
        "other" if !note.is_empty() => Some(ResetReason::Other(note.into())),
        "other" => return Err(invalid("Say why in the note when the reason is Other.")),
        _ => return Err(invalid("Choose a reason.")),
    };
    let mode = match form.mode.as_str() {
        "force" => ResetMode::ForceReenrolment,
        "remove" => ResetMode::RemoveOnly,
        _ => return Err(invalid("Choose what happens next.")),
    };
    // Only a user the directory knows: a mistyped or mangled address resets nobody.
    if app.accounts.get(area_of(&user), user.id()).is_none() {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "No such user",
            "That user is not in the portal's user directory: nothing was reset.",
        )
        .link("/admin/users", "Back to users"));
    }
    // Step-up: a fresh code from the admin's own authenticator, spent like a sign-in code.
    app.staff
        .verify_sign_in(&Area::Admin.user(&who.email), &form.code)
        .await
        .map_err(|e| Failure::mfa(e).link(back.clone(), "Back to the reset form"))?;
    let admin = Admin::authorised(who.email.as_str());
    let summary = match reason {
        Some(reason) => app.portal.admin_reset(&admin, &user, reason, mode).await?,
        None => app
            .portal
            .approve_reset_request(&admin, &user, mode)
            .await
            .map_err(|e| Failure::mfa(e).link(back.clone(), "Back to the reset form"))?,
    };
    let body = html! {
        p.flash role="status" #reset-summary {
            "MFA was reset for " (user.id()) ": " (summary.authenticators_removed) " authenticators, "
            (summary.passkeys_removed) " passkeys and " (summary.backup_codes_removed) " backup codes removed. "
            @if summary.must_enrol { "They will set up MFA again at their next sign-in." }
            @else { "They sign in with their password only, unless the portal enforces MFA." }
        }
        p { "They were sent an email about it: see the " a href="/admin/outbox" { "Outbox" } "." }
        p { a href="/admin/users" { "Back to users" } }
    };
    Ok(views::page("MFA reset", Some(&frame(&who, &csrf, None)), body).into_response())
}

// ----- Outbox -----

/// `GET /admin/outbox`
pub async fn outbox(Desk { app, session }: Desk) -> Result<Response, Failure> {
    let (who, csrf) = admin(&app, &session).await?;
    let emails = app.outbox.newest_first();
    let body = html! {
        p { "The emails the portal sent, newest first (a stand-in for a mail server). A user gets at most "
            (crate::outbox::Outbox::SAME_NOTICE_PER_HOUR) " notices with the same subject an hour; the newest "
            (crate::outbox::Outbox::KEPT) " are kept." }
        p #withheld { (app.outbox.withheld()) " repeated notices withheld." }
        @if emails.is_empty() { p { "No emails yet." } }
        @for email in &emails {
            article.card.email {
                p { strong { "To: " } (email.to) br; strong { "Subject: " } span.subject { (email.subject) } br;
                    strong { "Sent: " } (views::when(email.at)) }
                pre.mail { (email.body) }
            }
        }
    };
    Ok(views::page("Outbox", Some(&frame(&who, &csrf, None)), body).into_response())
}

// ----- Audit trail -----

/// The audit page's filter and place.
#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

impl AuditQuery {
    fn user(&self) -> Result<Option<UserId>, Failure> {
        match self.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            None => Ok(None),
            Some(email) if self.console() => Ok(Some(Area::Admin.user(&normalise(email)))),
            Some(email) => portal_user(self.kind.as_deref().unwrap_or("customer"), email).map(Some),
        }
    }

    /// Whether the admin console's own trail is asked for (its step-ups,
    /// lockouts and enrolments), rather than the portal users'.
    fn console(&self) -> bool {
        self.kind.as_deref() == Some("admin")
    }

    /// The trail asked for: the admin console's or the portal users'.
    fn trail<'a>(&self, app: &'a Shared) -> &'a crate::MfaPortal {
        if self.console() { &app.staff } else { &app.portal }
    }

    fn filter(&self) -> String {
        match (&self.email, &self.kind) {
            (Some(email), kind) if !email.trim().is_empty() => query_string(&[
                ("email", &normalise(email)),
                ("kind", kind.as_deref().unwrap_or("customer")),
            ]),
            _ if self.console() => query_string(&[("kind", "admin")]),
            _ => String::new(),
        }
    }

    fn events(&self, app: &Shared) -> Result<EventQuery, Failure> {
        let mut query = EventQuery::portal(self.trail(app).id()).newest_first();
        if let Some(user) = self.user()? {
            query = query.user(&user);
        }
        Ok(query)
    }
}

/// `GET /admin/audit`
pub async fn audit(Desk { app, session }: Desk, Query(q): Query<AuditQuery>) -> Result<Response, Failure> {
    let (who, csrf) = admin(&app, &session).await?;
    let mut query = q.events(&app)?.limit(app.page_size);
    if let Some(after) = q.after.as_deref() {
        query = query.after(after.parse::<Cursor>().map_err(Failure::mfa)?);
    }
    let page = q.trail(&app).audit_events(query).await?;
    let filter = q.filter();
    let kind = q.kind.clone().unwrap_or_else(|| "customer".to_owned());
    let body = html! {
        form method="get" action="/admin/audit" {
            label for="audit-email" { "User's email (empty for everyone)" }
            input #audit-email type="email" name="email" value=(q.email.clone().unwrap_or_default());
            label for="audit-kind" { "Who" }
            select #audit-kind name="kind" {
                option value="customer" selected[kind == "customer"] { "Customer" }
                option value="vendor" selected[kind == "vendor"] { "Vendor" }
                option value="admin" selected[kind == "admin"] { "Admin console (step-ups, lockouts, enrolments)" }
            }
            div { button type="submit" { "Filter" } }
        }
        p {
            "Download: " a #download-csv href=(format!("/admin/audit.csv?{filter}")) { "CSV" } " · "
            a #download-jsonl href=(format!("/admin/audit.jsonl?{filter}")) { "JSON Lines" }
        }
        (events_table(&page.items))
        div.pager {
            @if q.after.is_some() { a href=(format!("/admin/audit?{filter}")) { "Newest" } }
            @if let Some(next) = &page.next {
                a #next-page href=(format!("/admin/audit?{}", and(&filter, &query_string(&[("after", next.as_str())])))) { "Older" }
            }
        }
    };
    Ok(views::page("Audit trail", Some(&frame(&who, &csrf, None)), body).into_response())
}

fn events_table(events: &[AuditEvent]) -> Markup {
    html! {
        @if events.is_empty() { p { "No events." } }
        @else {
            table #events {
                thead { tr { th { "When" } th { "User" } th { "By" } th { "Event" } th { "Details" } } }
                tbody {
                    @for event in events {
                        tr {
                            td { (views::when(event.at)) }
                            td { (event.user.as_ref().map(ToString::to_string).unwrap_or_default()) }
                            td { (actor(&event.actor)) }
                            td.event { (event.kind.name()) }
                            td { code { (details(event)) } }
                        }
                    }
                }
            }
        }
    }
}

fn actor(actor: &Actor) -> String {
    match actor {
        Actor::User => "the user".to_owned(),
        Actor::Admin(name) => format!("admin {name}"),
        Actor::System => "the system".to_owned(),
        Actor::Operator { name, reason } => format!("operator {name} at the command line ({reason})"),
        _ => "someone else".to_owned(),
    }
}

/// The event's fields besides its kind, as compact JSON.
fn details(event: &AuditEvent) -> String {
    match serde_json::to_value(&event.kind) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.remove("kind");
            if fields.is_empty() {
                String::new()
            } else {
                serde_json::Value::Object(fields).to_string()
            }
        }
        _ => String::new(),
    }
}

/// `GET /admin/audit.csv`: every matching event, oldest first.
pub async fn audit_csv(Desk { app, session }: Desk, Query(q): Query<AuditQuery>) -> Result<Response, Failure> {
    admin(&app, &session).await?;
    let mut query = q.events(&app)?;
    query.newest_first = false;
    let mut out = csv::Writer::from_writer(Vec::new());
    let csv_failed = |_| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Export failed",
            "The CSV could not be written.",
        )
    };
    out.write_record(["time_utc", "unix_time", "user", "actor", "event", "details"])
        .map_err(csv_failed)?;
    let mut next = Some(query.limit(portal_mfa::MAX_PAGE));
    while let Some(query) = next.take() {
        let page = q.trail(&app).audit_events(query.clone()).await?;
        for event in &page.items {
            let user = event.user.as_ref().map(ToString::to_string).unwrap_or_default();
            out.write_record([
                views::when(event.at),
                event.at.to_string(),
                spreadsheet_safe(&user),
                spreadsheet_safe(&actor(&event.actor)),
                event.kind.name().to_owned(),
                spreadsheet_safe(&details(event)),
            ])
            .map_err(csv_failed)?;
        }
        next = page.next.map(|cursor| query.after(cursor));
    }
    let bytes = out
        .into_inner()
        .map_err(|_| csv_failed(csv::Error::from(std::io::Error::other("flush"))))?;
    Ok(download(bytes, "text/csv; charset=utf-8", "audit-trail.csv"))
}

/// A cell a spreadsheet would read as a formula, made plain text (CSV injection).
fn spreadsheet_safe(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

/// `GET /admin/audit.jsonl`: every matching event as JSON Lines, oldest first.
pub async fn audit_jsonl(Desk { app, session }: Desk, Query(q): Query<AuditQuery>) -> Result<Response, Failure> {
    admin(&app, &session).await?;
    let mut query = q.events(&app)?;
    query.newest_first = false;
    let mut out = Vec::new();
    q.trail(&app).export_events(query, &mut out).await?;
    Ok(download(out, "application/jsonl; charset=utf-8", "audit-trail.jsonl"))
}

pub(crate) fn download(bytes: Vec<u8>, content_type: &'static str, name: &str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The Decline form.
#[derive(Deserialize)]
pub struct DeclineForm {
    kind: String,
    email: String,
    #[serde(default)]
    message: String,
}

/// `POST /admin/users/decline`: the user's request is declined; they hear of it and keep their factors.
pub async fn decline(Desk { app, session }: Desk, Posted(form): Posted<DeclineForm>) -> Result<Response, Failure> {
    let (who, csrf) = admin(&app, &session).await?;
    let user = portal_user(&form.kind, &form.email)?;
    let message = form.message.replace("\r\n", "\n");
    app.portal
        .decline_reset_request(&Admin::authorised(who.email.as_str()), &user, &message)
        .await
        .map_err(|e| Failure::mfa(e).link(reset_href(&user), "Back"))?;
    let body = html! {
        p.flash role="status" #decline-summary { "The request of " (user.id()) " was declined. They were sent an email; their factors stay as they were." }
        p { a href="/admin/users?status=reset_requested" { "Other requests" } }
    };
    Ok(views::page("Request declined", Some(&frame(&who, &csrf, None)), body).into_response())
}

/// The bulk reset form: which users, for which incident; previewed, then run.
#[derive(Deserialize, Default)]
pub struct BulkForm {
    #[serde(default)]
    incident: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
    /// `YYYY-MM-DD`: only users holding a factor added before that day.
    #[serde(default)]
    added_before: String,
    #[serde(default)]
    mode: String,
    /// When the incident began: set by the preview, so the run resets what was previewed.
    #[serde(default)]
    started_at: Option<u64>,
    #[serde(default)]
    code: String,
    /// `preview` or `run`.
    #[serde(default)]
    action: String,
}

/// `GET /admin/users/bulk`: the bulk Reset MFA form.
pub async fn bulk_form(Desk { app, session }: Desk) -> Result<Response, Failure> {
    let (who, csrf) = admin(&app, &session).await?;
    let form = BulkForm {
        status: "any".to_owned(),
        mode: "force".to_owned(),
        ..BulkForm::default()
    };
    let body = bulk_page(&csrf, &form, None);
    Ok(views::page("Bulk Reset MFA", Some(&frame(&who, &csrf, None)), body).into_response())
}

fn bulk_page(csrf: &str, form: &BulkForm, previewed: Option<(usize, u64)>) -> Markup {
    html! {
        p { "For a security incident (a leaked seed backup, a compromised authenticator vendor): resets every user the "
            "selection names, as Reset MFA does one at a time, and tells each of them. Preview first: a run resets what the preview counted." }
        form #bulk-form method="post" action="/admin/users/bulk" {
            (csrf_field(csrf))
            label for="incident" { "Incident id" }
            input #incident type="text" name="incident" maxlength="64" required value=(form.incident);
            label for="bulk-note" { "Reason (recorded on every reset; no secrets)" }
            textarea #bulk-note name="note" maxlength="280" { (form.note) }
            label for="bulk-kind" { "Users" }
            select #bulk-kind name="kind" {
                option value="" selected[form.kind.is_empty()] { "Customers and vendors" }
                option value="customer" selected[form.kind == "customer"] { "Customers" }
                option value="vendor" selected[form.kind == "vendor"] { "Vendors" }
            }
            label for="bulk-status" { "MFA status" }
            select #bulk-status name="status" {
                @for (filter, text) in STATUSES {
                    option value=(filter.name()) selected[filter.name() == form.status] { (text) }
                }
            }
            label for="added-before" { "Only factors added before (YYYY-MM-DD, optional)" }
            input #added-before type="date" name="added_before" value=(form.added_before);
            fieldset {
                legend { "What happens next" }
                (views::radio("bulk-mode-force", "mode", "force", form.mode != "remove", "Force re-enrolment"))
                (views::radio("bulk-mode-remove", "mode", "remove", form.mode == "remove", "Remove the devices only"))
            }
            @if let Some((count, started_at)) = previewed {
                input type="hidden" name="started_at" value=(started_at);
                p.warning #bulk-preview { (count) " users would be reset." }
                h2 { "Confirm it is you" }
                (code_field("bulk-code", "Your own authenticator code"))
                div {
                    button.danger #bulk-run type="submit" name="action" value="run" { "Reset these users" } " "
                    button.secondary type="submit" name="action" value="preview" { "Preview again" }
                }
            } @else {
                div { button #bulk-preview-button type="submit" name="action" value="preview" { "Preview (dry run)" } }
            }
        }
    }
}

/// `POST /admin/users/bulk`: a preview (dry run) or, after the admin's fresh code, the run.
pub async fn bulk(Desk { app, session }: Desk, Posted(form): Posted<BulkForm>) -> Result<Response, Failure> {
    use portal_mfa::admin::{BulkReset, ResetSelection};
    let (who, csrf) = admin(&app, &session).await?;
    let invalid = |message: &str| {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "Not reset", message).link("/admin/users/bulk", "Back")
    };
    let status = StatusFilter::from_name(&form.status).ok_or_else(|| invalid("Choose an MFA status."))?;
    let mut selection = ResetSelection::everyone().status(status);
    match form.kind.as_str() {
        "" => {}
        "customer" => selection = selection.kind(UserKind::Customer),
        "vendor" => selection = selection.kind(UserKind::Vendor),
        _ => return Err(invalid("Choose customers, vendors or both.")),
    }
    if !form.added_before.is_empty() {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let day =
            time::Date::parse(&form.added_before, &format).map_err(|_| invalid("Give the date as YYYY-MM-DD."))?;
        let at = u64::try_from(day.midnight().assume_utc().unix_timestamp())
            .map_err(|_| invalid("Give a date after 1970."))?;
        selection = selection.added_before(at);
    }
    let mode = if form.mode == "remove" {
        ResetMode::RemoveOnly
    } else {
        ResetMode::ForceReenrolment
    };
    let started_at = form.started_at.unwrap_or_else(|| app.now());
    let plan = BulkReset::new(&form.incident, &form.note, started_at, selection)
        .map_err(|e| Failure::mfa(e).link("/admin/users/bulk", "Back"))?
        .with_mode(mode);
    let admin = Admin::authorised(who.email.as_str());
    let run = form.action == "run";
    if run {
        app.staff
            .verify_sign_in(&Area::Admin.user(&who.email), &form.code)
            .await
            .map_err(|e| Failure::mfa(e).link("/admin/users/bulk", "Back to the bulk reset form"))?;
    }
    // The whole sweep in this request, at a reference portal's scale. A host with many users runs
    // it as a job (or `portal-mfa-admin bulk-reset`), which keeps its place and resumes after a crash.
    let (mut after, mut count, mut failed) = (None, 0, 0);
    loop {
        let progress = if run {
            app.portal.bulk_reset(&admin, &plan, after.as_ref(), 200).await?
        } else {
            app.portal
                .bulk_reset_preview(&admin, &plan, after.as_ref(), 200)
                .await?
        };
        count += progress.reset;
        failed += progress.failed.len();
        after = progress.next;
        if after.is_none() {
            break;
        }
    }
    let body = if run {
        html! {
            p.flash role="status" #bulk-summary {
                "Incident " (plan.incident) ": " (count) " users reset"
                @if failed > 0 { ", " (failed) " could not be" } ". Each was sent an email."
            }
            p { a href="/admin/users" { "Back to users" } " · " a href="/admin/audit" { "Audit trail" } }
        }
    } else {
        bulk_page(&csrf, &form, Some((count, started_at)))
    };
    Ok(views::page("Bulk Reset MFA", Some(&frame(&who, &csrf, None)), body).into_response())
}

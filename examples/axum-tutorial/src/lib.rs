//! portal-mfa in an axum app, in one file to copy: a password stand-in,
//! enrolment by QR code or typed key, sign-in with a code or a backup code,
//! the session stamp checked on every request, and an admin's Reset MFA.
//! `examples/web-portal` is the complete product (CSRF tokens, rate limits,
//! passkeys, the admin console); this is the least that is right.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use portal_mfa::admin::{ResetMode, ResetReason};
use portal_mfa::store::{OffRuntime, SqliteStore};
use portal_mfa::{Admin, Error, Keyring, Portal, PortalId, SessionStamp, SignInStep, UserId};
use rand::RngExt;
use serde::Deserialize;

/// Where a browser is: past the password (waiting for a code or enrolment), or signed in with the stamp MFA gave.
#[derive(Clone)]
enum Stage {
    Code,
    Enrol(SessionStamp),
    SignedIn(SessionStamp),
}

struct Session {
    email: String,
    stage: Stage,
}

/// The app: the MFA portal, the users (a stand-in for your user table) and server-side sessions.
pub struct App {
    /// SQLite is a blocking store: `OffRuntime` serves it to async code off the runtime's threads.
    pub mfa: Portal<OffRuntime<SqliteStore>>,
    passwords: HashMap<String, String>,
    sessions: Mutex<HashMap<String, Session>>,
}

type Shared = Arc<App>;

/// The app over a SQLite file at `db`, sealing secrets under `key` (keep it out of the database:
/// an environment secret, a KMS; the web portal keeps it in a 0600 file).
pub fn app(db: &std::path::Path, key: &[u8; 32], users: &[(&str, &str)]) -> Result<Router, Error> {
    let store = OffRuntime::new(SqliteStore::open(db)?);
    let mfa = Portal::new(PortalId::new("acme"), "Acme", store)?.with_keyring(Keyring::new("k1", key)?);
    let app = App {
        mfa,
        // ⚠️ A stand-in: store argon2 hashes, never passwords.
        passwords: users.iter().map(|(e, p)| ((*e).to_owned(), (*p).to_owned())).collect(),
        sessions: Mutex::default(),
    };
    Ok(Router::new()
        .route("/", get(|| async { page(SIGN_IN) }))
        .route("/sign-in", post(sign_in))
        .route("/code", get(|| async { page(CODE) }).post(code))
        .route("/enrol", post(enrol))
        .route("/enrol/confirm", post(confirm))
        .route("/account", get(account))
        .route("/admin/reset", post(reset))
        .route("/sign-out", post(sign_out))
        .with_state(Arc::new(app)))
}

const SIGN_IN: &str = r#"<form method="post" action="/sign-in"><input name="email"> <input name="password" type="password"> <button>Sign in</button></form>"#;
const CODE: &str = r#"<form method="post" action="/code"><label>Code from your app, or a backup code <input name="code" autocomplete="one-time-code"></label> <button>Verify</button></form>"#;

fn page(body: &str) -> Html<String> {
    Html(format!("<!doctype html><meta charset=utf-8><title>Acme</title>{body}"))
}

/// A refusal the person can act on: portal-mfa's errors say what happened, `kind()` how to answer.
fn refused(e: &Error) -> Response {
    use portal_mfa::ErrorKind as K;
    let status = match e.kind() {
        K::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        K::WrongCode => StatusCode::UNAUTHORIZED,
        K::Locked => StatusCode::LOCKED,
        K::SessionEnded => return Redirect::to("/").into_response(),
        K::RefusedByPolicy | K::NotFound => StatusCode::FORBIDDEN,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, page(&format!("<p>{}</p><a href=\"/\">Back</a>", html_escape(&e.to_string())))).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl App {
    fn cookie(headers: &HeaderMap) -> Option<String> {
        let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
        cookies.split(';').find_map(|c| c.trim().strip_prefix("sid=").map(str::to_owned))
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, String, Stage)> {
        let id = Self::cookie(headers)?;
        let sessions = self.sessions.lock().unwrap();
        sessions.get(&id).map(|s| (id.clone(), s.email.clone(), s.stage.clone()))
    }

    /// A new session id at every step up (password, second factor): a planted id gains nothing.
    fn start(&self, old: Option<&str>, email: &str, stage: Stage, to: &str) -> Response {
        (self.new_session(old, email, stage), Redirect::to(to)).into_response()
    }

    fn new_session(&self, old: Option<&str>, email: &str, stage: Stage) -> [(header::HeaderName, String); 1] {
        let id = hex(&rand::rng().random::<[u8; 32]>());
        let mut sessions = self.sessions.lock().unwrap();
        if let Some(old) = old {
            sessions.remove(old);
        }
        sessions.insert(id.clone(), Session { email: email.to_owned(), stage });
        // HttpOnly, SameSite=Strict (with POST-only changes, the CSRF defence here); add Secure behind HTTPS.
        [(header::SET_COOKIE, format!("sid={id}; HttpOnly; SameSite=Strict; Path=/"))]
    }

    /// The signed-in user, if the stamp still holds: checked on every request, no cache,
    /// so a reset or a removed authenticator signs the session out at its next request.
    async fn signed_in(&self, headers: &HeaderMap) -> Option<(UserId, SessionStamp)> {
        let (id, email, Stage::SignedIn(stamp)) = self.session(headers)? else {
            return None;
        };
        let user = UserId::customer(email);
        match self.mfa.check_session(&user, &stamp).await {
            Ok(()) => Some((user, stamp)),
            Err(_) => {
                self.sessions.lock().unwrap().remove(&id);
                None
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

async fn sign_in(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<Credentials>) -> Response {
    // ⚠️ Compare argon2 hashes in real life, and limit attempts per account and per address.
    if app.passwords.get(&f.email) != Some(&f.password) {
        return (StatusCode::UNAUTHORIZED, page("<p>Wrong email or password.</p>")).into_response();
    }
    let old = App::cookie(&headers);
    let user = UserId::customer(f.email.as_str());
    // Only after the password: portal-mfa says what comes next.
    match app.mfa.begin_sign_in(&user).await {
        Ok(SignInStep::NoMfaNeeded { session }) => {
            app.start(old.as_deref(), &f.email, Stage::SignedIn(session), "/account")
        }
        Ok(SignInStep::EnterCode { .. }) => app.start(old.as_deref(), &f.email, Stage::Code, "/code"),
        Ok(SignInStep::MustEnrol { session, .. }) => {
            app.start(old.as_deref(), &f.email, Stage::Enrol(session), "/account")
        }
        Ok(SignInStep::GraceSignIn { .. }) => match app.mfa.complete_grace_sign_in(&user).await {
            Ok(grace) => app.start(old.as_deref(), &f.email, Stage::SignedIn(grace.session), "/account"),
            Err(e) => refused(&e),
        },
        Ok(SignInStep::LockedOut { .. }) => refused(&Error::LockedOut { until: None }),
        Ok(_) => refused(&Error::NotEnrolled),
        Err(e) => refused(&e),
    }
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

async fn code(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<Code>) -> Response {
    let Some((id, email, Stage::Code)) = app.session(&headers) else {
        return Redirect::to("/").into_response();
    };
    // A TOTP code or a backup code: portal-mfa tells them apart, accepts each once, counts every wrong one.
    match app.mfa.verify_sign_in(&UserId::customer(email.as_str()), &f.code).await {
        Ok(verified) => app.start(Some(&id), &email, Stage::SignedIn(verified.session), "/account"),
        Err(e) => refused(&e),
    }
}

async fn account(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Some((_, email, Stage::Enrol(_))) = app.session(&headers) {
        return page(&format!("<p>{email}: your portal requires two-factor sign-in.</p>{ENROL}")).into_response();
    }
    let Some((user, _)) = app.signed_in(&headers).await else {
        return Redirect::to("/").into_response();
    };
    let record = match app.mfa.record(&user).await {
        Ok(record) => record,
        Err(e) => return refused(&e),
    };
    let mfa = if record.mfa_enabled() { "on" } else { "off" };
    page(&format!("<p>Signed in as {}. Two-factor sign-in is {mfa}.</p>{ENROL}", html_escape(user.id())))
        .into_response()
}

const ENROL: &str = r#"<form method="post" action="/enrol"><label>Name it <input name="label" value="Phone"></label> <label>Your current code, if you have MFA <input name="proof"></label> <button>Set up an authenticator app</button></form><form method="post" action="/sign-out"><button>Sign out</button></form>"#;

/// The stamp that may enrol: a signed-in session's, or the one `MustEnrol` gave.
async fn enrolling(app: &App, headers: &HeaderMap) -> Option<(UserId, SessionStamp)> {
    match app.session(headers)? {
        (_, email, Stage::Enrol(stamp)) => Some((UserId::customer(email), stamp)),
        _ => app.signed_in(headers).await,
    }
}

#[derive(Deserialize)]
struct Enrol {
    label: String,
    #[serde(default)]
    proof: String,
}

async fn enrol(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<Enrol>) -> Response {
    let Some((user, stamp)) = enrolling(&app, &headers).await else {
        return Redirect::to("/").into_response();
    };
    let mut options = portal_mfa::EnrolmentOptions::default();
    if !f.proof.is_empty() {
        options = options.with_proof(&f.proof); // a user who has MFA proves it before adding a factor
    }
    let started = match app.mfa.start_enrolment(&user, &stamp, user.id(), &f.label, options).await {
        Ok(started) => started,
        Err(e) => return refused(&e),
    };
    let Ok(qr) = started.uri.qr_svg() else {
        return refused(&Error::QrTooLong);
    };
    // The QR code and the typed key, shown once; the secret itself never leaves the record unsealed.
    let key = started.uri.secret().to_grouped_base32();
    page(&format!(
        "{}<p>Or type the key: <code id=\"secret-key\">{}</code></p>\
         <form method=\"post\" action=\"/enrol/confirm\"><input name=\"code\" autocomplete=\"one-time-code\"> <button>Confirm</button></form>",
        qr.as_str(),
        key.as_str()
    ))
    .into_response()
}

async fn confirm(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<Code>) -> Response {
    let Some((user, stamp)) = enrolling(&app, &headers).await else {
        return Redirect::to("/").into_response();
    };
    let confirmed = match app.mfa.confirm_enrolment(&user, &stamp, &f.code).await {
        Ok(confirmed) => confirmed,
        Err(e) => return refused(&e),
    };
    // Enrolled: the confirming code signed the session in (a new id, the stamp it gave).
    let cookie = app.new_session(App::cookie(&headers).as_deref(), user.id(), Stage::SignedIn(confirmed.session));
    let Some(codes) = confirmed.backup_codes else {
        return (cookie, Redirect::to("/account")).into_response();
    };
    let items: String = codes.expose().map(|code| format!("<li>{code}</li>")).collect();
    let body = format!(
        "<p>Save these backup codes: each works once, and they are not shown again.</p>\
         <ul id=\"backup-codes\">{items}</ul><a href=\"/account\">Done</a>"
    );
    (cookie, page(&body)).into_response()
}

#[derive(Deserialize)]
struct Reset {
    email: String,
}

/// Admin **Reset MFA**. ⚠️ Your own check that the caller is an admin, stepped up with a fresh code,
/// and the user's identity confirmed out of band: a reset is what an attacker talks a help desk into.
async fn reset(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<Reset>) -> Response {
    match app.signed_in(&headers).await {
        Some((who, _)) if who.id() == "admin@example.com" => {}
        _ => return StatusCode::FORBIDDEN.into_response(),
    }
    let admin = Admin::authorised("admin@example.com");
    let user = UserId::customer(f.email.as_str());
    match app.mfa.admin_reset(&admin, &user, ResetReason::LostDevice, ResetMode::ForceReenrolment).await {
        // Their sessions ended with it; they set up MFA again at their next sign-in.
        Ok(done) => {
            page(&format!("<p>Reset: {} authenticators removed.</p>", done.authenticators_removed)).into_response()
        }
        Err(e) => refused(&e),
    }
}

async fn sign_out(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(id) = App::cookie(&headers) {
        app.sessions.lock().unwrap().remove(&id);
    }
    Redirect::to("/").into_response()
}

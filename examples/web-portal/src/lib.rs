//! A reference web portal for portal-mfa, to run and to copy: axum on tokio,
//! server-side sessions, maud templates, no JavaScript needed but for the
//! passkey ceremony (one small same-origin script, [`views::SCRIPT`]).
//!
//! - [`sign_in`]: the password, then portal-mfa's next step (a code, setting
//!   up an authenticator, the backup codes), with the state between requests
//!   kept server-side ([`session`]).
//! - [`account`]: My account · Two-factor authentication.
//! - [`admin`]: Portal settings, Users with Reset MFA, Outbox, Audit trail.
//! - [`store`]: SQLite or PostgreSQL behind one async store.
//!
//! One `portal_mfa::Portal` serves the customer and the vendor portal (one
//! MFA setting for both, as the product documents describe); a second one, always
//! enforced, serves the admins.

pub mod account;
pub mod accounts;
pub mod admin;
pub mod failure;
pub mod limits;
pub mod outbox;
pub mod session;
pub mod session_store;
pub mod sign_in;
pub mod store;
pub mod trust;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::html;
use portal_mfa::passkey::RelyingParty;
use portal_mfa::store::AsyncMfaStore;
use portal_mfa::{Clock, Enforcement, Keyring, Portal, PortalId, PortalPolicy};
use serde::de::DeserializeOwned;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::accounts::{Account, Accounts, Area};
use crate::failure::Failure;
use crate::outbox::Outbox;
use crate::store::{Database, StartError};

/// A portal's MFA on whichever store was opened, with the portal's clock.
pub type MfaPortal = Portal<Arc<dyn AsyncMfaStore>, Arc<dyn Clock>>;

/// The name authenticator apps show for the customer and vendor portals.
pub const PORTAL_NAME: &str = "Acme Portal";

/// How the server is set up.
pub struct Config {
    /// Where MFA records live.
    pub database: Database,
    /// The key that seals TOTP secrets at rest.
    pub keyring: Keyring,
    /// Whether cookies are `Secure` and `__Host-` prefixed (the default; off
    /// only for plain-HTTP development, `--insecure-dev-cookies`).
    pub secure_cookies: bool,
    /// The clock for MFA, lockouts and expiries (the system clock, or a test's).
    pub clock: Arc<dyn Clock>,
    /// Rows per page on the admin's lists.
    pub page_size: usize,
    /// Seconds a sign-in may wait between the password and the second factor.
    pub pending_ttl: u64,
    /// Where each request's one log line goes (method, path, status: never a
    /// query string, form field, code or secret).
    pub log: Arc<dyn Fn(&str) + Send + Sync>,
    /// Password hashes run at once (each holds about 19 MiB while it runs),
    /// and how long a password waits for one before the answer is 503.
    pub password_hashes: usize,
    /// See [`Config::password_hashes`].
    pub hash_wait: std::time::Duration,
    /// How long a request's body may take to arrive (408 after).
    pub body_timeout: std::time::Duration,
    /// Keys each password limiter keeps (per account, per address).
    pub limiter_keys: usize,
    /// Sessions a user keeps at once (signed in, or between the password and
    /// the code); a new one ends the oldest.
    pub sessions_per_user: usize,
    /// The site passkeys are registered for (its id and the origins pages are
    /// served from); `None` offers authenticator apps only.
    pub passkeys: Option<RelyingParty>,
}

impl Config {
    /// The defaults: system clock, 20 rows a page, 10 minutes for the second
    /// factor, log lines to stderr, `Secure` `__Host-` cookies, sessions that
    /// end after 30 idle minutes or 12 hours in all.
    pub fn new(database: Database, keyring: Keyring) -> Self {
        Config {
            database,
            keyring,
            secure_cookies: true,
            clock: Arc::new(portal_mfa::SystemClock),
            page_size: 20,
            pending_ttl: 600,
            log: Arc::new(|line| eprintln!("{line}")),
            password_hashes: accounts::default_hash_slots(),
            hash_wait: std::time::Duration::from_secs(2),
            body_timeout: std::time::Duration::from_secs(10),
            limiter_keys: limits::Limiter::MAX_KEYS,
            sessions_per_user: 10,
            passkeys: None,
        }
    }
}

/// Everything the handlers share.
pub struct App {
    /// MFA for the customer and vendor portals (one setting).
    pub portal: MfaPortal,
    /// MFA for the admin console (always enforced).
    pub staff: MfaPortal,
    /// Who may sign in.
    pub accounts: Accounts,
    /// The emails sent.
    pub outbox: Outbox,
    clock: Arc<dyn Clock>,
    /// Password attempts per account.
    pub account_limits: limits::Limiter,
    /// Password attempts per client address.
    pub address_limits: limits::Limiter,
    /// Where sessions are kept: the MFA records' database.
    pub sessions: session_store::DbSessions,
    page_size: usize,
    pending_ttl: u64,
    /// Whether cookies are `Secure` (and the trusted-browser cookie `__Host-`).
    pub secure_cookies: bool,
    /// How long a request's body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// Whether passkeys and security keys are offered beside authenticator apps.
    pub passkeys: bool,
}

/// The state handlers receive.
pub type Shared = Arc<App>;

impl App {
    /// Unix time now, by the portal's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The MFA portal of `area`.
    pub fn portal(&self, area: Area) -> &MfaPortal {
        match area {
            Area::Admin => &self.staff,
            Area::Customer | Area::Vendor => &self.portal,
        }
    }

    fn account(&self, area: Area, email: &str) -> Result<Account, Failure> {
        self.accounts.get(area, email).ok_or_else(|| Failure::no_sign_in(area))
    }
}

/// Opens the store and builds the app and its routes.
pub async fn build(config: Config, accounts: Accounts) -> Result<(Router, Shared), StartError> {
    let store = store::open(&config.database).await?;
    let keyring = Arc::new(config.keyring);
    let outbox = Outbox::default();
    let mfa = |id: &str, name: &'static str| -> Result<MfaPortal, StartError> {
        let portal = Portal::new(PortalId::new(id), name, store.clone())?
            .with_clock(config.clock.clone())
            .with_keyring(keyring.clone())
            .with_notifier(outbox.notifier(name))
            .with_async_sleep(tokio::time::sleep);
        Ok(match &config.passkeys {
            Some(relying_party) => portal.with_passkeys(relying_party.clone()),
            None => portal,
        })
    };
    let db_sessions = match &config.database {
        Database::Sqlite(path) => session_store::DbSessions::sqlite(path)?,
        Database::Postgres(url) => session_store::DbSessions::postgres(url).await?,
    }
    .keeping_per_user(config.sessions_per_user);
    db_sessions.delete_expired_continuously();
    let staff_policy = PortalPolicy::new().with_enforcement(Enforcement::Enforced { grace: None })?;
    let app = Arc::new(App {
        portal: mfa("acme", PORTAL_NAME)?,
        staff: mfa("acme-admin", "Acme Admin Console")?.with_default_policy(staff_policy),
        accounts: accounts.limit_hashing(config.password_hashes, config.hash_wait),
        outbox,
        clock: config.clock.clone(),
        // 5 wrong passwords per account, 20 per address, in 15 minutes.
        account_limits: limits::Limiter::new(5, 900).with_keys(config.limiter_keys),
        address_limits: limits::Limiter::new(20, 900).with_keys(config.limiter_keys),
        page_size: config.page_size.max(1),
        pending_ttl: config.pending_ttl,
        secure_cookies: config.secure_cookies,
        sessions: db_sessions.clone(),
        body_timeout: config.body_timeout,
        passkeys: config.passkeys.is_some(),
    });
    let sessions = SessionManagerLayer::new(db_sessions.clone())
        .with_name(session_cookie_name(config.secure_cookies))
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(config.secure_cookies)
        .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::minutes(
            30,
        )));
    let log = config.log.clone();
    let router = Router::new()
        .route("/", get(start_page))
        .route(
            "/static/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], views::STYLE) }),
        )
        .route(
            "/static/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], views::SCRIPT) }),
        )
        .route("/sign-out", post(sign_in::sign_out))
        .route("/backup-codes.txt", post(account::download_codes))
        .route("/backup-codes/print", post(account::print_codes))
        .route("/{area}/sign-in", get(sign_in::form).post(sign_in::password))
        .route("/{area}/sign-in/code", get(sign_in::code_form).post(sign_in::code))
        .route(
            "/{area}/sign-in/enrol",
            get(sign_in::enrol_form).post(sign_in::enrol_start),
        )
        .route("/{area}/sign-in/enrol/confirm", post(sign_in::enrol_confirm))
        .route("/{area}/sign-in/finish", post(sign_in::finish))
        .route("/{area}/sign-in/lost", get(sign_in::lost_form).post(sign_in::lost))
        .route("/{area}/sign-in/passkey", post(sign_in::passkey_start))
        .route("/{area}/sign-in/passkey/finish", post(sign_in::passkey_finish))
        .route("/{area}/account", get(account::security))
        .route("/{area}/account/enrol", post(account::enrol))
        .route("/{area}/account/confirm", post(account::confirm))
        .route("/{area}/account/saved", post(account::saved))
        .route("/{area}/account/cancel", post(account::cancel))
        .route("/{area}/account/delete", post(account::delete))
        .route("/{area}/account/passkey", post(account::passkey_start))
        .route("/{area}/account/passkey/finish", post(account::passkey_finish))
        .route("/{area}/account/backup-codes", post(account::regenerate))
        .route("/{area}/account/browsers/forget", post(account::forget_browsers))
        .route(
            "/{area}/account/password",
            get(account::password_form).post(account::change_password),
        )
        .route("/admin/settings", get(admin::settings).post(admin::save_settings))
        .route("/admin/users", get(admin::users))
        .route("/admin/users/reset", get(admin::reset_form).post(admin::reset))
        .route("/admin/users/decline", post(admin::decline))
        .route("/admin/users/bulk", get(admin::bulk_form).post(admin::bulk))
        .route("/admin/outbox", get(admin::outbox))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/audit.csv", get(admin::audit_csv))
        .route("/admin/audit.jsonl", get(admin::audit_jsonl))
        .fallback(|| async {
            Failure::new(StatusCode::NOT_FOUND, "Not found", "There is no page here.").link("/", "Start page")
        })
        .layer(sessions)
        // Every form fits in a few KB (the longest holds 20 backup codes): nothing bigger is read.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let log = log.clone();
            async move {
                let line = format!("{} {}", request.method(), request.uri().path());
                let response = harden(next.run(request).await);
                log(&format!("{line} {}", response.status().as_u16()));
                response
            }
        }))
        .with_state(app.clone());
    Ok((router, app))
}

/// The session cookie's name: `__Host-` prefixed when `Secure`, so no
/// subdomain or plain-HTTP page can set or shadow it.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-acme_session" } else { "acme_session" }
}

/// The largest request body read, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// The longest a signed-in session lasts, however active: 12 hours.
pub const SESSION_ABSOLUTE_SECS: u64 = 12 * 3_600;

/// How the server treats connections: a slow or idle client is cut off,
/// and no more than so many are open at once.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Connections open at once; further ones wait in the listen queue.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive, counted from when the
    /// connection is ready for a request (so an idle keep-alive connection ends too).
    pub header_timeout: std::time::Duration,
    /// Connections open now, and the most at once.
    pub open: Arc<limits::Gauge>,
}

impl Default for ServeLimits {
    /// 512 connections, 10 seconds for the headers.
    fn default() -> Self {
        ServeLimits {
            max_connections: 512,
            header_timeout: std::time::Duration::from_secs(10),
            open: Arc::default(),
        }
    }
}

/// Serves `router` on `listener` until the process ends, with the default [`ServeLimits`].
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    serve_with(listener, router, ServeLimits::default()).await
}

/// Serves `router` on `listener` within `limits` until the process ends:
/// HTTP/1.1 on hyper, each connection on its own task, the client's address
/// given to handlers as `ConnectInfo`.
pub async fn serve_with(listener: tokio::net::TcpListener, router: Router, limits: ServeLimits) -> std::io::Result<()> {
    use tower::ServiceExt;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A slot before the accept: past the cap, connections wait in the kernel's queue.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // A connection that failed before it was accepted, or out of file descriptors: go on.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let service = router
            .clone()
            .map_request(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                request
            });
        let (open, header_timeout) = (limits.open.clone(), limits.header_timeout);
        tokio::spawn(async move {
            let _counted = open.enter();
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = http
                .serve_connection(io, hyper_util::service::TowerToHyperService::new(service))
                .await;
            drop(slot);
        });
    }
}

/// Headers every response gets: nothing cached (pages show keys and backup
/// codes), no framing, no sniffing, no referrer, scripts and styles only
/// from this site.
fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn start_page(session: Session) -> Result<Response, Failure> {
    // Its only form is a signed-in visitor's sign-out: a visitor without a session gets none.
    let csrf = session
        .get::<String>("csrf")
        .await
        .map_err(Failure::session)?
        .unwrap_or_default();
    let body = html! {
        p { "A demo of portal-mfa. The customer and vendor portals share one MFA setting, which the admin sets." }
        ul {
            @for area in Area::ALL {
                li { a href=(failure::sign_in_href(area)) { (area.title()) } }
            }
        }
    };
    let frame = views::Frame {
        who: None,
        csrf: &csrf,
        flash: None,
    };
    Ok(views::page("Welcome", Some(&frame), body).into_response())
}

/// What a handler of a portal area works with: the app, the area its path
/// names (an unknown one is a 404), and the visitor's session.
pub struct Visit {
    /// The app.
    pub app: Shared,
    /// The portal area of the path.
    pub area: Area,
    /// The visitor's session.
    pub session: Session,
}

impl FromRequestParts<Shared> for Visit {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Failure> {
        let At(area) = At::from_request_parts(parts, app).await?;
        let Desk { app, session } = Desk::from_request_parts(parts, app).await?;
        Ok(Self { app, area, session })
    }
}

/// What a handler outside the areas (the admin console) works with: the app
/// and the visitor's session.
pub struct Desk {
    /// The app.
    pub app: Shared,
    /// The visitor's session.
    pub session: Session,
}

impl FromRequestParts<Shared> for Desk {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Failure> {
        let session = Session::from_request_parts(parts, app)
            .await
            .map_err(|(status, message)| Failure::new(status, "Session unavailable", message))?;
        Ok(Self {
            app: app.clone(),
            session,
        })
    }
}

/// The area a page belongs to, from the first path segment; an unknown one is a 404.
pub struct At(pub Area);

impl<S: Send + Sync> FromRequestParts<S> for At {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        parts
            .uri
            .path()
            .split('/')
            .nth(1)
            .and_then(Area::from_segment)
            .map(At)
            .ok_or_else(|| {
                Failure::new(StatusCode::NOT_FOUND, "Not found", "There is no such portal.").link("/", "Start page")
            })
    }
}

/// A posted form whose CSRF token was checked against the session's.
pub struct Posted<T>(pub T);

#[derive(serde::Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<Shared> for Posted<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, app: &Shared) -> Result<Self, Failure> {
        let session = request
            .extensions()
            .get::<Session>()
            .cloned()
            .ok_or_else(Failure::csrf)?;
        let headers = request.headers().clone();
        let bad_form = || {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "Form not understood",
                "The form could not be read. Go back and try again.",
            )
        };
        let too_slow = || {
            Failure::new(
                StatusCode::REQUEST_TIMEOUT,
                "Too slow",
                "The form took too long to arrive. Go back and try again.",
            )
        };
        let body = tokio::time::timeout(app.body_timeout, axum::body::Bytes::from_request(request, app))
            .await
            .map_err(|_| too_slow())?
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Failure::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Form too large",
                        "That form was far larger than any of this site's. Go back and try again.",
                    )
                } else {
                    bad_form()
                }
            })?;
        let token = serde_urlencoded::from_bytes::<CsrfField>(&body)
            .ok()
            .and_then(|f| f.csrf);
        session::check_csrf(&session, token.as_deref(), &headers, app.secure_cookies).await?;
        serde_urlencoded::from_bytes(&body).map(Posted).map_err(|_| bad_form())
    }
}

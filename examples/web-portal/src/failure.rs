//! Every refusal a person can meet, as a page with the right status code:
//! bad input is a 4xx with words that say what to do next, never a 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use portal_mfa::{Error, ErrorKind, PasskeyRefusal, PolicyRefusal, RequestRefusal, StorageErrorKind};

use crate::accounts::Area;
use crate::views;

/// The refusal, in the product documentation's words, to enforce MFA on a SAML portal.
pub const SAML_REFUSAL: &str = "You won't be able to enable MFA if you've configured SAML for your portal.";
/// The refusal, in the product documentation's words, to delete the last authenticator under enforcement.
pub const DELETE_REFUSAL: &str = "You cannot delete your existing authenticator app if MFA for your portal account has been enabled by your app admin.";

/// Why a change was refused when its session ended while it was under way.
const SESSION_ENDED: &str = "You were signed out because your sign-in details changed (an administrator may have reset your two-factor authentication). Nothing was changed. Please sign in again.";

/// A refusal, shown as a page (or, for "sign in first", a redirect). Boxed:
/// handlers return it on every path, and a small `Result` stays cheap.
#[derive(Debug)]
pub struct Failure(Box<Details>);

#[derive(Debug)]
struct Details {
    status: StatusCode,
    title: String,
    message: String,
    link: Option<(String, String)>,
    redirect: Option<String>,
    retry_after: Option<u64>,
    /// When a lock ends (Unix time): `Retry-After` as that date.
    retry_at: Option<u64>,
}

impl Failure {
    /// A page with `status`, a title and a sentence.
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Failure(Box::new(Details {
            status,
            title: title.into(),
            message: message.into(),
            link: None,
            redirect: None,
            retry_after: None,
            retry_at: None,
        }))
    }

    /// With a link to go on from (usually back to the form).
    #[must_use]
    pub fn link(mut self, href: impl Into<String>, text: impl Into<String>) -> Self {
        self.0.link = Some((href.into(), text.into()));
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The sentence shown.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The session store failed (the in-memory store does not; a networked one could).
    pub fn session(_: tower_sessions::session::Error) -> Self {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again",
            "Your session could not be read or saved. Please try again in a moment.",
        )
    }

    /// A form without this session's CSRF token.
    pub fn csrf() -> Self {
        Failure::new(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was not sent from this site, or your session ended. Go back, reload the page and try again.",
        )
        .link("/", "Start page")
    }

    /// The sign-in in progress timed out.
    pub fn sign_in_expired(area: Area) -> Self {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "Your sign-in expired",
            "You took too long between the password and the code. Please sign in again.",
        )
        .link(sign_in_href(area), "Sign in again")
    }

    /// A step of a sign-in that is not in progress: a form sent twice, or a
    /// page opened out of order.
    pub fn no_sign_in(area: Area) -> Self {
        Failure::new(
            StatusCode::CONFLICT,
            "Nothing to continue",
            "This sign-in step is already done or was never started (was the form sent twice?). Please sign in again.",
        )
        .link(sign_in_href(area), "Sign in")
    }

    /// A change refused because the session ended meanwhile (a reset, a
    /// password change elsewhere): nothing was changed.
    pub fn session_ended(area: Area) -> Self {
        Failure::mfa(Error::SessionEnded).link(sign_in_href(area), "Sign in again")
    }

    /// A page that needs a signed-in user: off to the sign-in page.
    pub fn sign_in_first(area: Area) -> Self {
        let mut failure = Failure::new(StatusCode::SEE_OTHER, "Sign in", "Please sign in first.");
        failure.0.redirect = Some(sign_in_href(area));
        failure
    }

    /// Too many password attempts.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut failure = Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            format!(
                "Too many sign-in attempts. Please wait {} before trying again.",
                views::duration(retry_after)
            ),
        );
        failure.0.retry_after = Some(retry_after);
        failure
    }

    /// Every password hash slot is taken: try again in `retry_after` seconds.
    pub fn busy(retry_after: u64) -> Self {
        let mut failure = Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Sign-in is very busy right now. Please try again in a moment.",
        );
        failure.0.retry_after = Some(retry_after);
        failure
    }

    /// MFA is locked for this user.
    pub fn locked(until: Option<u64>) -> Self {
        let message = match until {
            Some(t) => format!(
                "Too many wrong codes. Two-factor sign-in is locked until {}; try again then, or ask your administrator to reset your MFA.",
                views::when(t)
            ),
            None => "Too many wrong codes. Two-factor sign-in is locked until your administrator resets your MFA."
                .to_owned(),
        };
        let mut failure = Failure::new(StatusCode::LOCKED, "Account locked", message);
        failure.0.retry_at = until;
        failure
    }

    /// What portal-mfa refused, in words for the person who caused it.
    pub fn mfa(error: Error) -> Self {
        use StatusCode as S;
        let (status, title, message) = match error {
            Error::WrongCode { attempts_left } => (
                S::UNAUTHORIZED,
                "Wrong code",
                format!("That code is not right.{}", attempts_text(attempts_left)),
            ),
            Error::ReplayedCode => (
                S::UNAUTHORIZED,
                "Code already used",
                "That code was already used. Your app can show the same digits twice in a row: wait until it shows a new code, then type that one.".to_owned(),
            ),
            Error::MalformedCode(_) => (
                S::UNPROCESSABLE_ENTITY,
                "Not a code",
                "Type the digits your app shows (or one of your backup codes), without anything else.".to_owned(),
            ),
            Error::LockedOut { until } => return Failure::locked(until),
            Error::PasskeyRefused { reason, attempts_left } => (
                S::UNAUTHORIZED,
                "Passkey not accepted",
                format!("{}{}", passkey_text(reason), attempts_text(attempts_left)),
            ),
            Error::EnrolmentExpired => (
                S::GONE,
                "Setup expired",
                "The setup took too long and expired. Start again to get a new QR code.".to_owned(),
            ),
            Error::EnrolmentCancelled => (
                S::GONE,
                "Setup cancelled",
                "Too many wrong codes: that setup was cancelled. Start again to get a new QR code.".to_owned(),
            ),
            Error::NoPendingEnrolment => (
                S::CONFLICT,
                "No setup in progress",
                "There is no authenticator setup waiting to be confirmed (was the form sent twice?).".to_owned(),
            ),
            Error::ProofRequired => (
                S::UNPROCESSABLE_ENTITY,
                "Code needed",
                "Type a current code from your authenticator app (or a backup code) to make this change.".to_owned(),
            ),
            Error::NotEnrolled => (
                S::CONFLICT,
                "No authenticator",
                "You have no authenticator set up.".to_owned(),
            ),
            Error::SessionEnded | Error::InvalidStamp => (
                S::UNAUTHORIZED,
                "Signed out",
                SESSION_ENDED.to_owned(),
            ),
            Error::UnknownBrowser => (
                S::NOT_FOUND,
                "No such browser",
                "That browser is not among the ones you trust (any more).".to_owned(),
            ),
            Error::UnknownAuthenticator => (
                S::NOT_FOUND,
                "No such authenticator",
                "That authenticator is not on your account (any more).".to_owned(),
            ),
            Error::TooManyAuthenticators => (
                S::CONFLICT,
                "Too many authenticators",
                "You have as many authenticators as allowed. Delete one first.".to_owned(),
            ),
            Error::InvalidLabel => (
                S::UNPROCESSABLE_ENTITY,
                "Name not allowed",
                "Give the authenticator a name of 1 to 64 ordinary characters.".to_owned(),
            ),
            Error::NotAllowed(PolicyRefusal::EnforcementWithSaml) => {
                (S::CONFLICT, "MFA cannot be enforced", SAML_REFUSAL.to_owned())
            }
            Error::NotAllowed(PolicyRefusal::LastAuthenticatorWhileEnforced) => (
                S::CONFLICT,
                "Authenticator cannot be deleted",
                DELETE_REFUSAL.to_owned(),
            ),
            Error::NotAllowed(refusal) => (S::FORBIDDEN, "Not allowed", format!("Not allowed: {refusal}.")),
            Error::ResetRequest(refusal) => {
                let (status, message) = match refusal {
                    RequestRefusal::AlreadyOpen { .. } => (S::CONFLICT, "You have already asked; an administrator will review it.".to_owned()),
                    RequestRefusal::CoolingDown { until } => (
                        S::TOO_MANY_REQUESTS,
                        format!("An administrator declined your last request. You can ask again after {}.", views::when(until)),
                    ),
                    RequestRefusal::NothingToReset => (S::CONFLICT, "Your account has no two-factor sign-in to reset.".to_owned()),
                    RequestRefusal::InvalidNote => (
                        S::UNPROCESSABLE_ENTITY,
                        "Keep the note to 280 characters, without tabs or other control characters.".to_owned(),
                    ),
                    RequestRefusal::NoneOpen => (
                        S::CONFLICT,
                        "There is no open request: the user signed in meanwhile, or another admin decided it.".to_owned(),
                    ),
                    RequestRefusal::InvalidIncident => (
                        S::UNPROCESSABLE_ENTITY,
                        "Give the incident an id of 1 to 64 printable characters.".to_owned(),
                    ),
                    _ => (S::CONFLICT, format!("Not possible now: {refusal}.")),
                };
                (status, "Reset request", message)
            }
            Error::InvalidPolicy { field, reason } => (
                S::UNPROCESSABLE_ENTITY,
                "Setting not allowed",
                format!("The setting {field} is not allowed: {reason}."),
            ),
            Error::InvalidCursor(_) | Error::InvalidPageSize => (
                S::BAD_REQUEST,
                "Page not found",
                "That page of the list no longer matches its filters. Start from the first page.".to_owned(),
            ),
            Error::Conflict { .. } => (
                S::SERVICE_UNAVAILABLE,
                "Busy",
                "The account is busy with another change. Please try again.".to_owned(),
            ),
            Error::Storage(ref e)
                if matches!(
                    e.kind(),
                    StorageErrorKind::Unavailable | StorageErrorKind::Busy | StorageErrorKind::Timeout
                ) =>
            {
                (
                    S::SERVICE_UNAVAILABLE,
                    "Try again",
                    "The database did not answer in time. Nothing was changed; please try again.".to_owned(),
                )
            }
            other if other.kind() == ErrorKind::InvalidInput => (
                S::UNPROCESSABLE_ENTITY,
                "Not accepted",
                format!("That was not accepted: {other}."),
            ),
            // Faults of the server, not of what the person typed: say so, and
            // log what kind (portal-mfa's errors never hold a secret or a code).
            other => {
                eprintln!("web-portal: internal error: {other}");
                (
                    S::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side. Nothing was half-done; please try again later.".to_owned(),
                )
            }
        };
        Failure::new(status, title, message)
    }
}

/// Why a passkey's answer was refused, for the person holding it.
fn passkey_text(reason: PasskeyRefusal) -> &'static str {
    match reason {
        PasskeyRefusal::UnknownCredential => {
            "That passkey is not on your account (it may have been deleted or reset). Use another one, or a code."
        }
        PasskeyRefusal::UserNotVerified => {
            "Your passkey did not verify you (PIN, fingerprint or face), which this portal requires."
        }
        PasskeyRefusal::NoChallenge | PasskeyRefusal::ChallengeExpired | PasskeyRefusal::WrongChallenge => {
            "That passkey answer was for an older page, or came too late. Try again on this page."
        }
        PasskeyRefusal::CounterRegressed => {
            "That security key's counter went backwards, as a copied key's would. Use another way, and tell your administrator."
        }
        PasskeyRefusal::AlreadyRegistered => "That passkey is already on your account.",
        _ => "That passkey answer was not accepted.",
    }
}

/// " 3 attempts left." after a wrong code, when the count is known.
pub fn attempts_text(attempts_left: Option<u32>) -> String {
    match attempts_left {
        Some(1) => " 1 attempt left before two-factor sign-in locks.".to_owned(),
        Some(n) => format!(" {n} attempts left before two-factor sign-in locks."),
        None => String::new(),
    }
}

/// The sign-in page of `area`.
pub fn sign_in_href(area: Area) -> String {
    format!("/{}/sign-in", area.segment())
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::mfa(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let failure = *self.0;
        if let Some(to) = failure.redirect {
            return Redirect::to(&to).into_response();
        }
        let body = html! {
            p.error role="alert" { (failure.message) }
            @if let Some((href, text)) = &failure.link {
                p { a href=(href) { (text) } }
            }
        };
        let mut response = (failure.status, views::page(&failure.title, None, body)).into_response();
        let retry = failure
            .retry_after
            .map(|seconds| seconds.to_string())
            .or_else(|| failure.retry_at.and_then(http_date));
        if let Some(value) = retry.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// Unix time as an HTTP date (`Tue, 01 Dec 2026 22:14:00 GMT`), the absolute form
/// of `Retry-After`: a lock's end needs no clock of the reader's.
fn http_date(unix: u64) -> Option<String> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).ok()?).ok()?;
    at.format(&format).ok()
}

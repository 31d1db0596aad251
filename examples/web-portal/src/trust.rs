//! The trusted-browser cookie: the token portal-mfa issued when the user
//! ticked "Remember this browser", one cookie per portal area.
//!
//! The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, and, behind HTTPS,
//! `Secure` with the `__Host-` prefix (a cookie no subdomain or plain-HTTP page
//! can set or shadow). On plain-HTTP loopback development neither can be used,
//! and the name is the same without the prefix. It lasts exactly as long as
//! the library says the trust does; the library, not the cookie, decides.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::accounts::Area;

/// The cookie's name for `area`.
pub fn cookie_name(area: Area, secure: bool) -> String {
    let prefix = if secure { "__Host-" } else { "" };
    format!("{prefix}acme_trusted_{}", area.segment())
}

/// The token this browser presents for `area`, if any.
pub fn token(headers: &HeaderMap, area: Area, secure: bool) -> Option<String> {
    // A token is 52 characters: anything longer is not one, and is not read.
    request_cookie(headers, &cookie_name(area, secure)).filter(|value| value.len() <= 64)
}

/// The value of the request's cookie `name`, if it sent one.
pub fn request_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Sets the cookie to `token` for `seconds`.
pub fn set(area: Area, secure: bool, token: &str, seconds: u64) -> HeaderValue {
    cookie(area, secure, token, seconds)
}

/// Removes the cookie.
pub fn clear(area: Area, secure: bool) -> HeaderValue {
    cookie(area, secure, "", 0)
}

fn cookie(area: Area, secure: bool, value: &str, seconds: u64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{}={value}; Max-Age={seconds}; Path=/; HttpOnly; SameSite=Strict{secure}",
        cookie_name(area, !secure.is_empty())
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A label for the browser, from its user agent (portal-mfa shortens it).
pub fn label(headers: &HeaderMap) -> String {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/"]
        .iter()
        .find(|b| agent.contains(*b))
        .map(|b| b.trim_end_matches('/').replace("Edg", "Edge"));
    let system = ["Windows", "Android", "iPhone", "Mac OS X", "Linux"]
        .iter()
        .find(|s| agent.contains(*s))
        .map(|s| s.replace("Mac OS X", "macOS"));
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b,
        _ if agent.is_empty() => "Unknown browser".to_owned(),
        _ => agent.to_owned(),
    }
}

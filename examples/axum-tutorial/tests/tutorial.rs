//! The tutorial over HTTP (no server socket: the router itself): sign in,
//! enrol by the typed key, sign out, sign in with a code and with a backup
//! code, and an admin's reset ending the session at its next request.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use portal_mfa::otp::{Secret, Totp, TotpParams};
use tower::ServiceExt;

struct Browser {
    app: axum::Router,
    cookie: Option<String>,
}

struct Reply {
    status: StatusCode,
    location: String,
    body: String,
}

impl Browser {
    async fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Reply {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('@', "%40").replace(' ', "+")))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if method == "POST" {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let response = self.app.clone().oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
        if let Some(set) = response.headers().get(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        let status = response.status();
        let location =
            response.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        Reply { status, location, body: String::from_utf8(bytes.to_vec()).unwrap() }
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Reply {
        self.send("POST", "/sign-in", &[("email", email), ("password", password)]).await
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap() + start.len();
    &text[from..from + text[from..].find(end).unwrap()]
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_sign_in_with_a_code_or_a_backup_code_and_a_reset_signs_out() {
    let dir = std::env::temp_dir().join(format!("axum-tutorial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = [("alice@example.com", "alice"), ("admin@example.com", "admin")];
    let app = axum_tutorial::app(&dir.join("mfa.sqlite3"), &[7; 32], &users).unwrap();
    let mut alice = Browser { app: app.clone(), cookie: None };
    assert_eq!(alice.sign_in("alice@example.com", "wrong").await.status, StatusCode::UNAUTHORIZED);
    // No MFA yet: the password signs her in; she sets up an app by its typed key.
    assert_eq!(alice.sign_in("alice@example.com", "alice").await.location, "/account");
    assert!(alice.send("GET", "/account", &[]).await.body.contains("Two-factor sign-in is off"));
    let qr = alice.send("POST", "/enrol", &[("label", "Phone")]).await;
    assert!(qr.body.contains("<svg"), "the QR code is inline SVG");
    let key: String = between(&qr.body, "id=\"secret-key\">", "<").split_whitespace().collect();
    let phone = Totp::new(&Secret::from_base32(&key).unwrap(), TotpParams::standard());
    let mut at = now();
    let code = |t: u64| phone.generate(t).unwrap().expose().to_string();
    let done = alice.send("POST", "/enrol/confirm", &[("code", &code(at))]).await;
    let backup: Vec<String> = done.body.split("<li>").skip(1).map(|s| s[..s.find('<').unwrap()].to_owned()).collect();
    assert_eq!(backup.len(), 10, "{}", done.body);
    assert!(alice.send("GET", "/account", &[]).await.body.contains("Two-factor sign-in is on"));
    alice.send("POST", "/sign-out", &[]).await;
    assert_eq!(alice.send("GET", "/account", &[]).await.location, "/");

    // Now the password asks for a code: the one that confirmed is spent, the next step's is not.
    assert_eq!(alice.sign_in("alice@example.com", "alice").await.location, "/code");
    assert_eq!(alice.send("GET", "/account", &[]).await.location, "/", "not signed in yet");
    assert_eq!(alice.send("POST", "/code", &[("code", &code(at))]).await.status, StatusCode::UNAUTHORIZED);
    at += 30;
    assert_eq!(alice.send("POST", "/code", &[("code", &code(at))]).await.location, "/account");
    assert!(alice.send("GET", "/account", &[]).await.body.contains("Signed in as alice@example.com"));

    // A backup code works once.
    let mut other = Browser { app: app.clone(), cookie: None };
    other.sign_in("alice@example.com", "alice").await;
    assert_eq!(other.send("POST", "/code", &[("code", &backup[0])]).await.location, "/account");
    other.send("POST", "/sign-out", &[]).await;
    other.sign_in("alice@example.com", "alice").await;
    assert_eq!(other.send("POST", "/code", &[("code", &backup[0])]).await.status, StatusCode::UNAUTHORIZED);

    // The admin resets her MFA: her session ends at its next request, and she must set up again.
    let mut admin = Browser { app: app.clone(), cookie: None };
    admin.sign_in("admin@example.com", "admin").await;
    assert_eq!(
        alice.send("POST", "/admin/reset", &[("email", "admin@example.com")]).await.status,
        StatusCode::FORBIDDEN,
        "only the admin resets"
    );
    let reset = admin.send("POST", "/admin/reset", &[("email", "alice@example.com")]).await;
    assert!(reset.body.contains("1 authenticators removed"), "{}", reset.body);
    assert_eq!(alice.send("GET", "/account", &[]).await.location, "/", "signed out by the reset");
    alice.sign_in("alice@example.com", "alice").await;
    let must = alice.send("GET", "/account", &[]).await;
    assert!(must.body.contains("requires two-factor sign-in"), "{}", must.body);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Two portal processes on one PostgreSQL server share their sessions, as
//! instances behind a load balancer do: sign in on one, continue on the other.
//! The server is the library's throwaway one (`tests/flows/pg.rs`).

#![cfg(feature = "postgres")]

#[path = "../../../tests/flows/patience.rs"]
#[allow(dead_code, unreachable_pub)]
mod patience;
#[path = "../../../tests/flows/pg.rs"]
#[allow(dead_code, unreachable_pub, missing_docs, unused_macros)]
mod pg;
mod support;

use patience::{PATIENCE, wait_for, wait_until};

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{TempDir, between};

/// A portal process, killed when dropped (a failing test leaves none behind).
struct Portal(Child);

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A portal process on `port`; answers it and the demo password of `email` it printed.
fn portal(url: &str, data: &TempDir, port: u16, email: &str) -> (Portal, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_web-portal"))
        .args(["--postgres", url, "--data"])
        .arg(&data.0)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--insecure-dev-cookies"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the portal starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let password = loop {
        let line = lines.next().expect("the portal prints its accounts").unwrap();
        if line.contains(email) {
            break line.split_whitespace().last().unwrap().to_owned();
        }
    };
    // Keep reading what it prints, so its stdout never closes under it.
    std::thread::spawn(move || lines.for_each(drop));
    (Portal(child), password)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn send(http: &Client<HttpConnector, Body>, request: Request<Body>) -> (StatusCode, Option<String>, String) {
    let response = http.request(request).await.unwrap();
    let status = response.status();
    // The cookie set (a sign-in also ends the CSRF cookie: that one is empty).
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| !c.ends_with('='));
    let bytes = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20)
        .await
        .unwrap();
    (status, cookie, String::from_utf8_lossy(&bytes).into_owned())
}

/// GETs `url` with the session cookie, if any.
async fn get(
    http: &Client<HttpConnector, Body>,
    url: String,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut request = Request::get(url);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    send(http, request.body(Body::empty()).unwrap()).await
}

/// POSTs the form `body` to `url` with the session cookie.
async fn post(
    http: &Client<HttpConnector, Body>,
    url: String,
    cookie: &str,
    body: String,
) -> (StatusCode, Option<String>, String) {
    let request = Request::post(url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body))
        .unwrap();
    send(http, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_portal_processes_on_one_postgresql_share_sessions() {
    let Some(server) = pg::shared() else { return };
    let data = TempDir::new("two-processes");
    let (a_port, b_port) = (free_port(), free_port());
    let (_a, password) = portal(server.url(), &data, a_port, "dan@customer.example");
    // The second starts once the first has migrated and printed (same keyring file in `data`).
    let (_b, _) = portal(server.url(), &data, b_port, "dan@customer.example");
    let http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let (_, cookie, form) = get(&http, format!("http://127.0.0.1:{a_port}/customer/sign-in"), None).await;
    let cookie = cookie.expect("a session for the form");
    let csrf = between(&form, "name=\"csrf\" value=\"", "\"").unwrap().to_owned();
    let body = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("email", "dan@customer.example"),
        ("password", password.as_str()),
    ])
    .unwrap();
    let (status, signed_in, _) = post(
        &http,
        format!("http://127.0.0.1:{a_port}/customer/sign-in"),
        &cookie,
        body,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed in on the first process");
    let signed_in = signed_in.expect("a new session id after the password");
    // The second process knows the session: it lives in PostgreSQL.
    let (status, _, page) = get(
        &http,
        format!("http://127.0.0.1:{b_port}/customer/account"),
        Some(&signed_in),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Dan Diaz"));
    // Signed out on the second, the first no longer knows it either.
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").unwrap().to_owned();
    post(
        &http,
        format!("http://127.0.0.1:{b_port}/sign-out"),
        &signed_in,
        format!("csrf={csrf}"),
    )
    .await;
    let (status, _, _) = get(
        &http,
        format!("http://127.0.0.1:{a_port}/customer/account"),
        Some(&signed_in),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

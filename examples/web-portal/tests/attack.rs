//! The portal attacked as an attacker would: many requests at once over real
//! TCP to the running server, and floods of oversized input. Counts and
//! sizes are asserted, never timings.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{Server, between};

/// The server on a loopback port.
async fn listen(server: &Server) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(web_portal::serve(listener, server.router.clone()));
    address
}

/// A client whose connections come from `from` (any 127.x.y.z address).
fn client(from: IpAddr) -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(from));
    // A connection per request: a refused oversized body closes its connection.
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

/// A visitor of the sign-in page: its session cookie and CSRF token.
async fn visit(http: &Client<HttpConnector, Body>, base: SocketAddr) -> (String, String) {
    let request = Request::get(format!("http://{base}/customer/sign-in"))
        .body(Body::empty())
        .unwrap();
    let response = http.request(request).await.unwrap();
    let set = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let bytes = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20)
        .await
        .unwrap();
    let page = String::from_utf8_lossy(&bytes).into_owned();
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").unwrap().to_owned();
    (cookie, csrf)
}

/// Posts the password form as that visitor; answers the status.
async fn password(
    http: &Client<HttpConnector, Body>,
    base: SocketAddr,
    (cookie, csrf): &(String, String),
    email: &str,
    password: &str,
) -> StatusCode {
    let body =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("email", email), ("password", password)]).unwrap();
    let request = Request::post(format!("http://{base}/customer/sign-in"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body))
        .unwrap();
    http.request(request)
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

/// Sends every `(visitor, email, password)` at once; answers the statuses.
async fn all_at_once(
    http: &Client<HttpConnector, Body>,
    base: SocketAddr,
    tries: Vec<((String, String), String, String)>,
) -> Vec<StatusCode> {
    let tasks: Vec<_> = tries
        .into_iter()
        .map(|(visitor, email, pass)| {
            let http = http.clone();
            tokio::spawn(async move { password(&http, base, &visitor, &email, &pass).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_reach_argon2_at_most_the_limit() {
    let server = Server::start("parallel-passwords", 20).await;
    let base = listen(&server).await;
    let http = client(IpAddr::from([127, 0, 0, 1]));
    let checks = || server.app.accounts.checks.load(Ordering::SeqCst);
    // 60 wrong passwords for one account from one address, all at once.
    let mut tries = Vec::new();
    for _ in 0..60 {
        tries.push((
            visit(&http, base).await,
            "alice@customer.example".to_owned(),
            "wrong".to_owned(),
        ));
    }
    let statuses = all_at_once(&http, base, tries).await;
    assert_eq!(checks(), 5, "the account's limit: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count(), 5);
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(),
        55
    );
    // 150 at once for 150 different addresses of the directory and not: the address's limit (20 in all).
    let mut tries = Vec::new();
    for i in 0..150 {
        tries.push((
            visit(&http, base).await,
            format!("spray-{i}@customer.example"),
            "wrong".to_owned(),
        ));
    }
    let statuses = all_at_once(&http, base, tries).await;
    assert_eq!(checks(), 20, "the address's limit: {statuses:?}");
    // The right password is still refused while the account waits; another address is not affected.
    let (_, right) = server.account("carol@customer.example");
    let other = client(IpAddr::from([127, 0, 3, 1]));
    let visitor = visit(&other, base).await;
    assert_eq!(
        password(&other, base, &visitor, "carol@customer.example", &right).await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_huge_or_distinct_emails_keeps_the_limiters_bounded() {
    let server = Server::start("flood", 20).await;
    let base = listen(&server).await;
    let huge = "x".repeat(1_900_000) + "@customer.example";
    let long = "y".repeat(300) + "@customer.example";
    for i in 0..200u8 {
        let http = client(IpAddr::from([127, 0, 7, i]));
        let visitor = visit(&http, base).await;
        // A body past the limit is refused unread: a 413, or (when the server
        // closes while the client is still sending) a connection cut short.
        let huge_answer = password(&http, base, &visitor, &huge, "x").await;
        assert!(
            [StatusCode::PAYLOAD_TOO_LARGE, StatusCode::BAD_GATEWAY].contains(&huge_answer),
            "{huge_answer}"
        );
        // A field past its cap, before any work.
        assert_eq!(
            password(&http, base, &visitor, &long, "x").await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(server.app.account_limits.keys(), 0);
    assert_eq!(server.app.address_limits.keys(), 0);
    assert_eq!(server.app.accounts.checks.load(Ordering::SeqCst), 0);
    // Distinct emails of the longest size: one key each (a 64-bit hash, not the text).
    for i in 0..200u8 {
        let http = client(IpAddr::from([127, 0, 8, i]));
        let visitor = visit(&http, base).await;
        let email = format!("{i:03}{}@customer.example", "z".repeat(230));
        assert_eq!(
            password(&http, base, &visitor, &email, "x").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(server.app.account_limits.keys(), 200);
    assert_eq!(server.app.address_limits.keys(), 200);
}

/// The resident memory of this process and its peak, in MiB (Linux).
fn memory_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_passwords_runs_at_most_the_hash_slots_and_a_right_password_gets_through() {
    const SLOTS: usize = 2;
    let server = Server::start_with("hash-flood", 20, |c| {
        c.password_hashes = SLOTS;
        c.hash_wait = std::time::Duration::from_millis(50);
    })
    .await;
    let base = listen(&server).await;
    // 200 wrong passwords from 200 addresses at once (each address within its own limit).
    let mut visitors = Vec::new();
    for i in 0..200u8 {
        let http = client(IpAddr::from([127, 0, 10, i]));
        let visitor = visit(&http, base).await;
        visitors.push((i, http, visitor));
    }
    // Measured from here: what the flood itself costs (the 200 clients above cost the test's side).
    let (_, peak_before) = memory_mib();
    let mut flood = Vec::new();
    for (i, http, visitor) in visitors {
        flood.push(tokio::spawn(async move {
            let body = serde_urlencoded::to_string([
                ("csrf", visitor.1.as_str()),
                ("email", &format!("spray-{i}@customer.example")),
                ("password", "wrong"),
            ])
            .unwrap();
            let request = Request::post(format!("http://{base}/customer/sign-in"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, visitor.0)
                .body(Body::from(body))
                .unwrap();
            let response = http.request(request).await.unwrap();
            (response.status(), response.headers().get(header::RETRY_AFTER).cloned())
        }));
    }
    // Meanwhile Carol types her right password, and tries again when told to.
    let (_, right) = server.account("carol@customer.example");
    let carol = client(IpAddr::from([127, 0, 11, 1]));
    let mut carol_tries = 0;
    let carol_in = loop {
        carol_tries += 1;
        let visitor = visit(&carol, base).await;
        match password(&carol, base, &visitor, "carol@customer.example", &right).await {
            StatusCode::SERVICE_UNAVAILABLE if carol_tries < 600 => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            status => break status,
        }
    };
    let mut busy = 0;
    for answer in flood {
        let (status, retry_after) = answer.await.unwrap();
        match status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert!(retry_after.is_some(), "a 503 says when to try again");
            }
            other => panic!("the flood was answered {other}"),
        }
    }
    let hashes = &server.app.accounts.hashes;
    let (resident, peak) = memory_mib();
    let most = hashes.most();
    println!(
        "hashes at once: at most {most} ({SLOTS} slots); {busy} of 200 told to wait; Carol in after {carol_tries} tries; \
         resident {resident} MiB, peak {peak_before} -> {peak} MiB"
    );
    assert_eq!(carol_in, StatusCode::SEE_OTHER, "the right password got through");
    assert!(hashes.most() <= SLOTS && hashes.most() >= 1, "{}", hashes.most());
    assert_eq!(hashes.now(), 0);
    // Unbounded, 200 hashes of 19 MiB each would have held about 3.8 GB at once. What the
    // flood costs beyond its hashes (at most SLOTS × 19 MiB) is its 200 requests in flight.
    assert!(
        peak.saturating_sub(peak_before) < 1024,
        "peak memory grew {peak_before} -> {peak} MiB"
    );
}

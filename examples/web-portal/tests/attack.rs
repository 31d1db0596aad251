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

/// The server on a loopback port within `limits`.
async fn listen_within(server: &Server, limits: web_portal::ServeLimits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(web_portal::serve_with(listener, server.router.clone(), limits));
    address
}

/// Sends `head` and then `trickle` one byte every 200 ms; answers how many
/// trickled bytes were sent before the server closed the connection, or
/// `None` if it never did.
async fn slow_client(base: SocketAddr, head: String, trickle: usize) -> Option<usize> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base).await.unwrap();
    stream.write_all(head.as_bytes()).await.ok()?;
    let (mut read, mut write) = stream.into_split();
    let closed = tokio::spawn(async move {
        // Whatever the server answers (a 408), then the end of the connection.
        let mut sink = Vec::new();
        let _ = read.read_to_end(&mut sink).await;
    });
    for sent in 0..trickle {
        if closed.is_finished() {
            return Some(sent);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if write.write_all(b"a").await.is_err() {
            return Some(sent);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_normal_requests_are_still_served() {
    const CAP: usize = 40;
    // Header and body must each arrive within a second; a slow client sends a byte every 200 ms
    // for 60 s (300 bytes), so one that is not cut off finishes its trickle.
    let server = Server::start_with("slow-clients", 20, |c| {
        c.body_timeout = std::time::Duration::from_secs(1)
    })
    .await;
    let limits = web_portal::ServeLimits {
        max_connections: CAP,
        header_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let open = limits.open.clone();
    let base = listen_within(&server, limits).await;
    let mut slow = Vec::new();
    for i in 0..60 {
        let head = if i % 2 == 0 {
            // Headers that never end.
            "GET /customer/sign-in HTTP/1.1\r\nHost: portal\r\nX-Slow: ".to_owned()
        } else {
            // Headers, then a body that never ends.
            "POST /customer/sign-in HTTP/1.1\r\nHost: portal\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nemail="
                .to_owned()
        };
        slow.push(tokio::spawn(slow_client(base, head, 300)));
    }
    // Meanwhile ordinary visitors are served (they may wait for a slot a slow client held).
    let http = client(IpAddr::from([127, 0, 12, 1]));
    for _ in 0..10 {
        let request = Request::get(format!("http://{base}/customer/sign-in"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(http.request(request).await.unwrap().status(), StatusCode::OK);
    }
    let mut cut_after = Vec::new();
    for client in slow {
        cut_after.push(client.await.unwrap().expect("a slow client was never cut off"));
    }
    println!(
        "60 slow clients cut off after {}..{} trickled bytes; at most {} connections open (cap {CAP})",
        cut_after.iter().min().unwrap(),
        cut_after.iter().max().unwrap(),
        open.most()
    );
    assert!(open.most() <= CAP, "{} connections open at once", open.most());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csrf_token_from_before_the_password_is_dead_after_it() {
    use support::agent::Agent;
    let server = Server::start("csrf-privilege", 20).await;
    let admin = portal_mfa::Admin::authorised("admin@acme.example");
    let enforced = portal_mfa::Enforcement::Enforced { grace: None };
    server.app.portal.set_enforcement(&admin, enforced).await.unwrap();
    let base = listen(&server).await;
    let (mut phone, _) = Agent::over_tcp(&server, base, [127, 0, 13, 1])
        .enrol_and_sign_in("carol@customer.example")
        .await;
    // A visitor's token and cookie from before the password, as a forger would send them
    // along with the session the password gave.
    async fn planted(agent: &mut Agent<'_>, email: &str) -> (String, String) {
        agent.get("/customer/sign-in").await;
        let token = agent.csrf.clone().expect("a token for the sign-in form");
        let cookie = agent.csrf_cookie.clone().expect("the visitor's CSRF cookie");
        let reply = agent.password(email).await;
        assert!(
            reply.headers.get_all(header::SET_COOKIE).iter().any(|c| {
                let c = c.to_str().unwrap();
                c.starts_with("acme_csrf=;") && c.contains("Max-Age=0")
            }),
            "the password step ends the CSRF cookie"
        );
        (token, cookie)
    }
    async fn forged(agent: &mut Agent<'_>, (token, cookie): &(String, String), path: &str, fields: &[(&str, &str)]) {
        agent.csrf_cookie = Some(cookie.clone());
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        let refused = agent.post_raw(path, serde_urlencoded::to_string(&all).unwrap()).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}: {}", refused.body);
        agent.csrf_cookie = None;
    }
    // At the code step, then on My account once signed in.
    let mut carol = Agent::over_tcp(&server, base, [127, 0, 13, 2]);
    let old = planted(&mut carol, "carol@customer.example").await;
    let code = phone.code(&server.clock);
    forged(&mut carol, &old, "/customer/sign-in/code", &[("code", &code)]).await;
    // The page's own token still works (and the forged attempt spent nothing).
    carol.get("/customer/sign-in/code").await;
    let signed_in = carol.post("/customer/sign-in/code", &[("code", &code)]).await;
    assert_eq!(signed_in.location(), "/customer/account", "{}", signed_in.body);
    forged(&mut carol, &old, "/customer/account/browsers/forget", &[]).await;
    // At the enrolment a sign-in requires.
    let mut dan = Agent::over_tcp(&server, base, [127, 0, 13, 3]);
    let old = planted(&mut dan, "dan@customer.example").await;
    forged(&mut dan, &old, "/customer/sign-in/enrol", &[("label", "forged")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_racing_a_reset_changes_nothing_and_says_so() {
    use support::agent::Agent;
    let server = Server::start("password-reset-race", 20).await;
    let base = listen(&server).await;
    let admin = portal_mfa::Admin::authorised("admin@acme.example");
    let enforced = portal_mfa::Enforcement::Enforced { grace: None };
    server.app.portal.set_enforcement(&admin, enforced).await.unwrap();
    let (_, old_password) = server.account("carol@customer.example");
    let mut carol = Agent::over_tcp(&server, base, [127, 0, 14, 1]);
    carol.enrol_and_sign_in("carol@customer.example").await;
    carol.get("/customer/account/password").await;
    // The reset commits while the form is on its way.
    server
        .app
        .portal
        .admin_reset(
            &admin,
            &portal_mfa::UserId::customer("carol@customer.example"),
            portal_mfa::admin::ResetReason::LostDevice,
            portal_mfa::admin::ResetMode::ForceReenrolment,
        )
        .await
        .unwrap();
    let new_password = "a brand new password";
    let answer = carol
        .post(
            "/customer/account/password",
            &[("current", &old_password), ("new", new_password)],
        )
        .await;
    assert!(
        answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::SEE_OTHER,
        "{}: {}",
        answer.status,
        answer.body
    );
    assert!(!answer.body.contains("half"), "{}", answer.body);
    // The password did not change: the old one still signs in, the new one does not.
    let mut again = Agent::over_tcp(&server, base, [127, 0, 14, 2]);
    again.get("/customer/sign-in").await;
    let wrong = again
        .post(
            "/customer/sign-in",
            &[("email", "carol@customer.example"), ("password", new_password)],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right = again.password("carol@customer.example").await;
    assert_eq!(right.location(), "/customer/sign-in/enrol", "{}", right.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_keeps_at_most_ten_sessions_and_the_oldest_ends() {
    use support::agent::Agent;
    let server = Server::start("session-cap", 20).await;
    let base = listen(&server).await;
    // Dan has no MFA: each password is a signed-in session (15 of them, from 15 addresses).
    let mut agents = Vec::new();
    for i in 0..15u8 {
        let mut dan = Agent::over_tcp(&server, base, [127, 0, 15, i]);
        assert_eq!(
            dan.password("dan@customer.example").await.location(),
            "/customer/account"
        );
        agents.push(dan);
    }
    let kept = server
        .app
        .sessions
        .count_of("customer:dan@customer.example")
        .await
        .unwrap();
    assert_eq!(kept, 10);
    for (i, dan) in agents.iter_mut().enumerate() {
        let page = dan.get("/customer/account").await;
        let signed_in = page.status == StatusCode::OK;
        assert_eq!(signed_in, i >= 5, "session {i}: {}", page.status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_limiter_table_lets_everyone_else_in_and_keeps_a_victims_count() {
    const KEYS: usize = 20;
    let server = Server::start_with("limiter-full", 20, |c| c.limiter_keys = KEYS).await;
    let base = listen(&server).await;
    // A victim account with three failures (its limit is five).
    let attacker = client(IpAddr::from([127, 0, 16, 1]));
    for _ in 0..3 {
        let visitor = visit(&attacker, base).await;
        assert_eq!(
            password(&attacker, base, &visitor, "alice@customer.example", "wrong").await,
            StatusCode::UNAUTHORIZED
        );
    }
    // A flood of new keys, three times the table, from as many addresses.
    for i in 0..(3 * KEYS) as u8 {
        let http = client(IpAddr::from([127, 0, 17, i]));
        let visitor = visit(&http, base).await;
        let email = format!("flood-{i}@customer.example");
        assert_eq!(
            password(&http, base, &visitor, &email, "wrong").await,
            StatusCode::UNAUTHORIZED,
            "flood key {i}"
        );
    }
    assert_eq!(server.app.account_limits.keys(), KEYS);
    // Someone else, new to the table, still gets in.
    let (_, right) = server.account("carol@customer.example");
    let carol = client(IpAddr::from([127, 0, 18, 1]));
    let visitor = visit(&carol, base).await;
    assert_eq!(
        password(&carol, base, &visitor, "carol@customer.example", &right).await,
        StatusCode::SEE_OTHER
    );
    // And the victim's count outlived the flood: two more failures, then it waits.
    let statuses = [0, 1, 2].map(|_| ());
    let mut answers = Vec::new();
    for () in statuses {
        let visitor = visit(&attacker, base).await;
        answers.push(password(&attacker, base, &visitor, "alice@customer.example", "wrong").await);
    }
    assert_eq!(
        answers,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_save_is_judged_against_the_policy_it_replaces() {
    use support::agent::Agent;
    const ROUNDS: usize = 15;
    let server = Server::start("settings-race", 20).await;
    let base = listen(&server).await;
    // Two sessions of the admin: one with a phone in hand, one (stolen, say) without.
    let mut with_code = Agent::over_tcp(&server, base, [127, 0, 19, 1]);
    let (mut phone, _) = with_code.enrol_and_sign_in("admin@acme.example").await;
    let mut without_code = Agent::over_tcp(&server, base, [127, 0, 19, 2]);
    without_code.sign_in_with("admin@acme.example", &mut phone).await;
    let off = [
        ("enforcement", "off"),
        ("sign_in", "password"),
        ("trusted_browser_days", "0"),
    ];
    let on = [
        ("enforcement", "enforced"),
        ("grace", "none"),
        ("sign_in", "password"),
        ("trusted_browser_days", "0"),
    ];
    // One turns MFA on and off (off with a fresh code each time); the other keeps asking for off without one.
    let clock = server.clock.clone();
    let toggler = async {
        let mut turned_off = 0;
        for _ in 0..ROUNDS {
            let saved = with_code.post("/admin/settings", &on).await;
            assert_eq!(saved.location(), "/admin/settings", "{}", saved.body);
            let code = phone.code(&clock);
            let saved = with_code
                .post("/admin/settings", &[&off[..], &[("code", code.as_str())]].concat())
                .await;
            assert_eq!(saved.location(), "/admin/settings", "{}", saved.body);
            turned_off += 1;
        }
        turned_off
    };
    let asker = async {
        let mut answers = Vec::new();
        for _ in 0..3 * ROUNDS {
            answers.push(without_code.post("/admin/settings", &off).await.status);
        }
        answers
    };
    let (turned_off, answers) = tokio::join!(toggler, asker);
    assert!(
        answers
            .iter()
            .all(|s| [StatusCode::SEE_OTHER, StatusCode::FORBIDDEN].contains(s)),
        "{answers:?}"
    );
    // Every switch to off in the trail is one the admin with a code made.
    let trail = server
        .app
        .portal
        .audit_events(portal_mfa::audit::EventQuery::portal(server.app.portal.id()).limit(portal_mfa::MAX_PAGE))
        .await
        .unwrap()
        .items;
    let offs = trail
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                portal_mfa::audit::EventKind::EnforcementChanged {
                    enforcement: portal_mfa::Enforcement::SelfConfigured
                }
            )
        })
        .count();
    let refused = answers.iter().filter(|s| **s == StatusCode::FORBIDDEN).count();
    println!(
        "{turned_off} switched off with a code; {refused} of {} asked without one refused",
        answers.len()
    );
    assert_eq!(offs, turned_off, "a save without a code weakened MFA");
}

/// Every form the portal has, with every field it reads.
const FORMS: &[&str] = &[
    "/customer/sign-in",
    "/customer/sign-in/code",
    "/customer/sign-in/enrol",
    "/customer/sign-in/enrol/confirm",
    "/customer/sign-in/finish",
    "/customer/account/enrol",
    "/customer/account/confirm",
    "/customer/account/saved",
    "/customer/account/cancel",
    "/customer/account/delete",
    "/customer/account/backup-codes",
    "/customer/account/browsers/forget",
    "/customer/account/password",
    "/backup-codes.txt",
    "/backup-codes/print",
    "/admin/settings",
    "/admin/users/reset",
    "/sign-out",
];
const FIELDS: &[&str] = &[
    "email",
    "password",
    "code",
    "backup",
    "remember",
    "label",
    "replaces",
    "saved",
    "authenticator",
    "browser",
    "current",
    "new",
    "codes",
    "enforcement",
    "grace",
    "grace_until",
    "grace_sign_ins",
    "sign_in",
    "trusted_browser_days",
    "kind",
    "reason",
    "note",
    "mode",
];

/// Values no form expects: empty, foreign or impossible ids, oversized, non-ASCII, control characters.
fn odd_values() -> Vec<String> {
    vec![
        String::new(),
        "1".into(),
        "2".into(),
        "999999".into(),
        "4294967295".into(),
        "4294967296".into(),
        "-1".into(),
        "x".repeat(600),
        "é🙂\u{202e}ǅ".into(),
        "\u{0}\r\n\t".into(),
        "%%".into(),
    ]
}

/// Posts every form with every field set to each odd value (and once with no
/// field at all), then a few pages with odd queries; answers what got a 5xx.
async fn sweep(agent: &mut support::agent::Agent<'_>) -> Vec<String> {
    let mut broken = Vec::new();
    for form in FORMS.iter().filter(|f| **f != "/sign-out") {
        let mut bodies: Vec<Vec<(&str, String)>> = vec![vec![]];
        for value in odd_values() {
            bodies.push(FIELDS.iter().map(|f| (*f, value.clone())).collect());
        }
        for fields in bodies {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let reply = agent.post(form, &fields).await;
            if reply.status.is_server_error() {
                broken.push(format!("POST {form} {:?}: {}", fields.first(), reply.status));
            }
        }
    }
    for page in [
        "/customer/account",
        "/customer/sign-in/code",
        "/customer/sign-in/enrol",
        "/customer/account/password",
        "/admin/users?status=nonsense&kind=%FF&after=%00&q=%F0%9F%99%82",
        "/admin/users/reset?kind=customer&email=nobody%40example.com",
        "/admin/users/reset?kind=teleport&email=",
        "/admin/audit?after=999999999999&user=%E2%80%AE&kind=x",
        "/admin/audit.csv?after=-1",
        "/admin/audit.jsonl?before=abc",
    ] {
        let reply = agent.get(page).await;
        if reply.status.is_server_error() {
            broken.push(format!("GET {page}: {}", reply.status));
        }
    }
    broken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_form_answers_a_500_to_odd_input_or_a_session_that_ended() {
    use support::agent::Agent;
    let server = Server::start("sweep", 20).await;
    let base = listen(&server).await;
    let admin = portal_mfa::Admin::authorised("admin@acme.example");
    let enforced = portal_mfa::Enforcement::Enforced { grace: None };
    server.app.portal.set_enforcement(&admin, enforced).await.unwrap();
    // Dan trusts a browser: its id is foreign to everyone else.
    server
        .app
        .portal
        .update_policy(&admin, |p| p.with_trusted_browser_days(30))
        .await
        .unwrap();
    let mut broken = Vec::new();
    let mut dan = Agent::over_tcp(&server, base, [127, 0, 20, 1]);
    dan.enrol_and_sign_in("dan@customer.example").await;
    let mut carol = Agent::over_tcp(&server, base, [127, 0, 20, 2]);
    carol.enrol_and_sign_in("carol@customer.example").await;
    let mut staff = Agent::over_tcp(&server, base, [127, 0, 20, 3]);
    staff.enrol_and_sign_in("admin@acme.example").await;
    let mut anonymous = Agent::over_tcp(&server, base, [127, 0, 20, 4]);
    let mut half_way = Agent::over_tcp(&server, base, [127, 0, 20, 5]);
    half_way.password("vera@vendor.example").await;
    for agent in [&mut carol, &mut staff, &mut anonymous, &mut half_way] {
        broken.extend(sweep(agent).await);
    }
    // A session that ended between its page and its form (an admin reset Dan meanwhile).
    dan.get("/customer/account").await;
    server
        .app
        .portal
        .admin_reset(
            &admin,
            &portal_mfa::UserId::customer("dan@customer.example"),
            portal_mfa::admin::ResetReason::LostDevice,
            portal_mfa::admin::ResetMode::ForceReenrolment,
        )
        .await
        .unwrap();
    broken.extend(sweep(&mut dan).await);
    assert!(broken.is_empty(), "answered with a 5xx:\n{}", broken.join("\n"));
}

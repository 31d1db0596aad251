//! The portal over HTTP, without a browser: the security properties a
//! browser cannot show (cookie flags, headers, session ids, status codes),
//! every kind of bad input, and the downloads.

mod support;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{StatusCode, header};
use portal_mfa::{
    Enforcement, UserId,
    admin::{StatusFilter, UserQuery},
};
use support::agent::{Agent, backup_codes};
use support::{Phone, Server, between};
use tower::ServiceExt;

/// An admin resets Alice's MFA (forcing re-enrolment) through the library.
async fn reset_alice(server: &Server, reason: portal_mfa::admin::ResetReason) {
    server
        .app
        .portal
        .admin_reset(
            &portal_mfa::Admin::authorised("admin@acme.example"),
            &UserId::customer("alice@customer.example"),
            reason,
            portal_mfa::admin::ResetMode::ForceReenrolment,
        )
        .await
        .unwrap();
}

/// The admin, enrolled and signed in, and the portal set to `enforcement`.
async fn admin_setting<'a>(server: &'a Server, settings: &[(&str, &str)]) -> (Agent<'a>, Phone) {
    let mut admin = Agent::from(server, [127, 0, 0, 9]);
    let (mut phone, _) = admin.enrol_and_sign_in("admin@acme.example").await;
    if !settings.is_empty() {
        // With a fresh code, in case the change weakens MFA.
        let code = phone.code(&server.clock);
        let settings = [settings, &[("code", code.as_str())]].concat();
        let saved = admin.post("/admin/settings", &settings).await;
        assert_eq!(saved.location(), "/admin/settings", "{}", saved.body);
    }
    (admin, phone)
}

const ENFORCED: &[(&str, &str)] = &[("enforcement", "enforced"), ("grace", "none"), ("sign_in", "password")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_http_only_and_same_site_strict_and_every_page_is_no_store() {
    let server = Server::start("cookies", 20).await;
    let mut agent = Agent::new(&server);
    let page = agent.get("/customer/sign-in").await;
    let cookie = agent.cookies_seen.last().expect("a session cookie").clone();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain-HTTP loopback by default: {cookie}");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // The enrolment page (a key) and the backup codes page: never cached.
    let (_admin, _) = admin_setting(&server, ENFORCED).await;
    agent.password("alice@customer.example").await;
    let qr = agent.post("/customer/sign-in/enrol", &[("label", "Phone")]).await;
    assert!(qr.body.contains("id=\"secret-key\""));
    assert_eq!(qr.headers[header::CACHE_CONTROL], "no-store");
    let mut phone = Phone::typed(between(&qr.body, "id=\"secret-key\">", "<").unwrap());
    let code = phone.code(&server.clock);
    let codes = agent.post("/customer/sign-in/enrol/confirm", &[("code", &code)]).await;
    assert_eq!(backup_codes(&codes.body).len(), 10);
    assert_eq!(codes.headers[header::CACHE_CONTROL], "no-store");

    let secure_server = Server::start_with("cookies-secure", 20, |config| config.secure_cookies = true).await;
    let mut agent = Agent::new(&secure_server);
    agent.password("dan@customer.example").await;
    for name in ["__Host-acme_csrf=", "__Host-acme_session="] {
        let cookie = agent.cookies_seen.iter().find(|c| c.starts_with(name)).expect(name);
        assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    }
    assert!(
        web_portal::Config::new(
            web_portal::store::Database::Sqlite("unused".into()),
            portal_mfa::Keyring::new("k", &[1; 32]).unwrap()
        )
        .secure_cookies,
        "Secure by default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_this_sessions_csrf_token_is_refused_and_changes_nothing() {
    let server = Server::start("csrf", 20).await;
    let (mut admin, _) = admin_setting(&server, &[]).await;
    let before = server.app.portal.policy().await.unwrap();
    // No token, another session's token, an empty one.
    let mut other = Agent::new(&server);
    other.get("/customer/sign-in").await;
    let foreign = other.csrf.clone().unwrap();
    for body in [
        "enforcement=enforced&grace=none&sign_in=password".to_owned(),
        format!("csrf={foreign}&enforcement=enforced&grace=none&sign_in=password"),
        "csrf=&enforcement=enforced&grace=none&sign_in=password".to_owned(),
    ] {
        let reply = admin.post_raw("/admin/settings", body).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        assert!(reply.body.contains("This form has expired"));
    }
    assert_eq!(server.app.portal.policy().await.unwrap(), before, "nothing was applied");
    // The sign-in form too.
    let (_, password) = server.account("alice@customer.example");
    let reply = other
        .post_raw(
            "/customer/sign-in",
            format!("email=alice%40customer.example&password={password}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_id_changes_after_the_password_and_again_after_the_code() {
    let server = Server::start("rotate", 20).await;
    let (_admin, _) = admin_setting(&server, ENFORCED).await;
    let mut agent = Agent::new(&server);
    let (mut phone, _) = agent.enrol_and_sign_in("alice@customer.example").await;
    agent.post("/sign-out", &[]).await;

    // A visitor before sign-in has no session at all; one planted by an attacker is replaced.
    agent.get("/customer/sign-in").await;
    assert_eq!(agent.cookie, None, "no session before sign-in");
    let mut planter = Agent::new(&server);
    planter.password("dan@customer.example").await;
    let anonymous = planter.cookie.clone().unwrap();
    agent.cookie = Some(anonymous.clone());
    agent.password("alice@customer.example").await;
    let after_password = agent.cookie.clone().unwrap();
    let code = phone.code(&server.clock);
    let reply = agent.post("/customer/sign-in/code", &[("code", &code)]).await;
    assert_eq!(reply.location(), "/customer/account");
    let after_code = agent.cookie.clone().unwrap();
    assert_ne!(anonymous, after_password);
    assert_ne!(after_password, after_code);
    assert_ne!(anonymous, after_code);

    // The old ids are dead: a browser holding the pre-sign-in id is not signed in.
    let mut stale = Agent::new(&server);
    stale.cookie = Some(after_password);
    assert_eq!(stale.get("/customer/account").await.location(), "/customer/sign-in");
    let mut fresh = Agent::new(&server);
    fresh.cookie = Some(after_code);
    assert_eq!(fresh.get("/customer/account").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csrf_token_changes_after_the_password_and_again_after_the_code() {
    let server = Server::start("csrf-rotate", 20).await;
    let (_admin, _) = admin_setting(&server, ENFORCED).await;
    let mut agent = Agent::new(&server);
    let (mut phone, _) = agent.enrol_and_sign_in("alice@customer.example").await;
    agent.post("/sign-out", &[]).await;
    agent.get("/customer/sign-in").await;
    let before = agent.csrf.clone().unwrap();
    agent.password("alice@customer.example").await;
    agent.get("/customer/sign-in/code").await;
    let after_password = agent.csrf.clone().unwrap();
    let code = phone.code(&server.clock);
    agent.post("/customer/sign-in/code", &[("code", &code)]).await;
    agent.get("/customer/account").await;
    let after_code = agent.csrf.clone().unwrap();
    assert_ne!(before, after_password);
    assert_ne!(after_password, after_code);
    // A token planted or seen before the sign-in is refused after it.
    for stale in [before, after_password] {
        let body = format!("csrf={stale}&authenticator=1&code=000000");
        let reply = agent.post_raw("/customer/account/delete", body).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_limited_per_account_and_per_address() {
    let server = Server::start("limits", 20).await;
    let mut agent = Agent::from(&server, [10, 0, 0, 1]);
    agent.get("/customer/sign-in").await;
    for _ in 0..5 {
        let reply = agent
            .post(
                "/customer/sign-in",
                &[("email", "alice@customer.example"), ("password", "wrong")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.body.contains("Wrong email or password."));
    }
    // Now even the right password waits, from any address.
    let (_, password) = server.account("alice@customer.example");
    let mut elsewhere = Agent::from(&server, [10, 0, 0, 2]);
    elsewhere.get("/customer/sign-in").await;
    let reply = elsewhere
        .post(
            "/customer/sign-in",
            &[("email", "alice@customer.example"), ("password", &password)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.body);
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    // Another account from the first address is still let in.
    let reply = agent.password("carol@customer.example").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);

    // One address spraying many accounts is stopped too.
    let mut sprayer = Agent::from(&server, [10, 0, 0, 3]);
    sprayer.get("/vendor/sign-in").await;
    for n in 0..20 {
        let email = format!("nobody{n}@vendor.example");
        let reply = sprayer
            .post("/vendor/sign-in", &[("email", &email), ("password", "x")])
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let (_, vera) = server.account("vera@vendor.example");
    let reply = sprayer
        .post(
            "/vendor/sign-in",
            &[("email", "vera@vendor.example"), ("password", &vera)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);

    // After the window, the right password works again.
    server.clock.advance(901);
    let reply = elsewhere
        .post(
            "/customer/sign-in",
            &[("email", "alice@customer.example"), ("password", &password)],
        )
        .await;
    assert_eq!(reply.location(), "/customer/account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sign_ins_replayed_forms_replayed_codes_and_lockouts_get_their_own_status() {
    let server = Server::start("statuses", 20).await;
    let (_admin, _) = admin_setting(&server, ENFORCED).await;
    let mut agent = Agent::new(&server);
    let (mut phone, _) = agent.enrol_and_sign_in("alice@customer.example").await;
    agent.post("/sign-out", &[]).await;

    // An expired pending sign-in: 401, and it is forgotten.
    agent.password("alice@customer.example").await;
    agent.get("/customer/sign-in/code").await;
    server.clock.advance(601);
    let code = phone.code(&server.clock);
    let reply = agent.post("/customer/sign-in/code", &[("code", &code)]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("Your sign-in expired"));
    let reply = agent.post("/customer/sign-in/code", &[("code", &code)]).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "nothing to continue any more");

    // A replayed code: 401 with words; a replayed form after success: 409.
    agent.sign_in_with("alice@customer.example", &mut phone).await;
    agent.post("/sign-out", &[]).await;
    agent.password("alice@customer.example").await;
    let reply = agent
        .post("/customer/sign-in/code", &[("code", &phone.last_code())])
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("already used"), "{}", reply.body);
    assert!(
        reply.body.contains("wait until it shows a new code"),
        "what to do: {}",
        reply.body
    );
    let code = phone.code(&server.clock);
    assert_eq!(
        agent
            .post("/customer/sign-in/code", &[("code", &code)])
            .await
            .location(),
        "/customer/account"
    );
    let replayed = agent.post("/customer/sign-in/code", &[("code", &code)]).await;
    assert_eq!(replayed.status, StatusCode::CONFLICT);

    // Malformed: 422. Wrong codes count down, then 423 with the time the lock ends.
    agent.post("/sign-out", &[]).await;
    agent.password("alice@customer.example").await;
    let reply = agent.post("/customer/sign-in/code", &[("code", "12ab")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let wrong = phone.wrong_code(&server.clock);
    let reply = agent.post("/customer/sign-in/code", &[("code", &wrong)]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("4 attempts left"), "{}", reply.body);
    let page = agent.get("/customer/sign-in/code").await;
    assert!(page.body.contains("4 attempts left"), "the code page says so too");
    let mut last = reply;
    for _ in 0..4 {
        last = agent.post("/customer/sign-in/code", &[("code", &wrong)]).await;
    }
    assert_eq!(last.status, StatusCode::LOCKED, "{}", last.body);
    assert!(last.body.contains("locked until"), "{}", last.body);
    let code = phone.code(&server.clock);
    let reply = agent.post("/customer/sign-in/code", &[("code", &code)]).await;
    assert_eq!(reply.status, StatusCode::LOCKED, "even the right code waits");
    // A new password step meets the lock at once; every 423 says when to come back.
    agent.get("/customer/sign-in").await;
    let reply = agent.password("alice@customer.example").await;
    assert_eq!(reply.status, StatusCode::LOCKED);
    let until = server
        .app
        .portal
        .record(&UserId::customer("alice@customer.example"))
        .await
        .unwrap();
    let until = until.failures().locked_until().unwrap();
    let retry = reply.headers[header::RETRY_AFTER].to_str().unwrap().to_owned();
    let expected = time::OffsetDateTime::from_unix_timestamp(until as i64).unwrap();
    assert!(
        retry.ends_with(" GMT") && retry.contains(&expected.year().to_string()),
        "{retry}"
    );
    assert!(
        retry.contains(&format!(
            "{:02}:{:02}:{:02}",
            expected.hour(),
            expected.minute(),
            expected.second()
        )),
        "{retry}"
    );
    // Once the lock has ended, a full round of attempts: the page shows the library's count.
    server.clock.set(until);
    agent.get("/customer/sign-in").await;
    agent.password("alice@customer.example").await;
    let page = agent.get("/customer/sign-in/code").await;
    assert!(page.body.contains("5 attempts left"), "{}", page.body);
    let wrong = phone.wrong_code(&server.clock);
    let reply = agent.post("/customer/sign-in/code", &[("code", &wrong)]).await;
    assert!(reply.body.contains("4 attempts left"), "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_mid_flow_half_applies_nothing() {
    let server = Server::start("mid-flow", 20).await;
    let (_admin, _) = admin_setting(&server, ENFORCED).await;
    let user = UserId::customer("alice@customer.example");

    // Gone after seeing the QR code: still no MFA, still must enrol; that key never confirms.
    let mut first = Agent::new(&server);
    first.password("alice@customer.example").await;
    let qr = first.post("/customer/sign-in/enrol", &[("label", "Lost tab")]).await;
    let mut abandoned = Phone::typed(between(&qr.body, "id=\"secret-key\">", "<").unwrap());
    assert!(!server.app.portal.record(&user).await.unwrap().mfa_enabled());
    let mut second = Agent::new(&server);
    assert_eq!(
        second.password("alice@customer.example").await.location(),
        "/customer/sign-in/enrol"
    );
    second.post("/customer/sign-in/enrol", &[("label", "Phone")]).await;
    let code = abandoned.code(&server.clock);
    let reply = second.post("/customer/sign-in/enrol/confirm", &[("code", &code)]).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "the abandoned key is not the one waiting"
    );

    // Gone after the backup codes, before "I have saved them": MFA is on and whole.
    let mut third = Agent::new(&server);
    third.password("alice@customer.example").await;
    let (mut phone, codes) = third.enrol_at_sign_in("customer").await;
    let record = server.app.portal.record(&user).await.unwrap();
    assert!(record.mfa_enabled());
    assert_eq!(record.backup_codes().unwrap().remaining(), 10);
    let mut fourth = Agent::new(&server);
    assert_eq!(
        fourth.password("alice@customer.example").await.location(),
        "/customer/sign-in/code"
    );
    let reply = fourth
        .post("/customer/sign-in/code", &[("code", &codes[0]), ("backup", "1")])
        .await;
    assert_eq!(reply.location(), "/customer/account");
    // The tab that saw the codes proved the code: its "I have saved them"
    // still finishes its own sign-in, once; sent again it is a replayed form.
    let reply = third.post("/customer/sign-in/finish", &[("saved", "yes")]).await;
    assert_eq!(reply.location(), "/customer/account");
    let reply = third.post("/customer/sign-in/finish", &[("saved", "yes")]).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let code = phone.code(&server.clock);
    fourth.post("/sign-out", &[]).await;
    fourth.password("alice@customer.example").await;
    assert_eq!(
        fourth
            .post("/customer/sign-in/code", &[("code", &code)])
            .await
            .location(),
        "/customer/account"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_enrolment_is_gone_and_a_new_one_works() {
    let server = Server::start("expired-enrolment", 20).await;
    let mut agent = Agent::new(&server);
    // Self-configured (the default): Dan signs in with the password alone.
    assert_eq!(
        agent.password("dan@customer.example").await.location(),
        "/customer/account"
    );
    let qr = agent.post("/customer/account/enrol", &[("label", "Phone")]).await;
    let mut phone = Phone::typed(between(&qr.body, "id=\"secret-key\">", "<").unwrap());
    server.clock.advance(601);
    let code = phone.code(&server.clock);
    let reply = agent.post("/customer/account/confirm", &[("code", &code)]).await;
    assert_eq!(reply.status, StatusCode::GONE, "{}", reply.body);
    let qr = agent.post("/customer/account/enrol", &[("label", "Phone")]).await;
    let mut phone = Phone::typed(between(&qr.body, "id=\"secret-key\">", "<").unwrap());
    let code = phone.code(&server.clock);
    let codes = agent.post("/customer/account/confirm", &[("code", &code)]).await;
    assert_eq!(backup_codes(&codes.body).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_by_date_and_by_count_and_saml_refused() {
    let server = Server::start("grace", 20).await;
    let (mut admin, mut admin_phone) = admin_setting(&server, &[]).await;
    // Enforcing with SAML: the product documents' words, 409, nothing saved.
    let reply = admin
        .post(
            "/admin/settings",
            &[("enforcement", "enforced"), ("grace", "none"), ("sign_in", "saml")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(
        reply
            .body
            .contains("You won't be able to enable MFA if you've configured SAML for your portal.")
    );
    assert_eq!(
        server.app.portal.policy().await.unwrap().enforcement(),
        Enforcement::SelfConfigured
    );

    let reply = admin
        .post(
            "/admin/settings",
            &[
                ("enforcement", "enforced"),
                ("grace", "count"),
                ("grace_sign_ins", "2"),
                ("sign_in", "password"),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/admin/settings");
    let mut victor = Agent::new(&server);
    for left in [1, 0] {
        assert_eq!(
            victor.password("victor@vendor.example").await.location(),
            "/vendor/account"
        );
        let page = victor.get("/vendor/account").await;
        assert!(
            page.body.contains(&format!("{left} more sign-ins without it")),
            "{}",
            page.body
        );
        victor.post("/sign-out", &[]).await;
    }
    assert_eq!(
        victor.password("victor@vendor.example").await.location(),
        "/vendor/sign-in/enrol"
    );

    // No deadline of sign-ins any more: a longer grace, so the admin's code.
    let code = admin_phone.code(&server.clock);
    let reply = admin
        .post(
            "/admin/settings",
            &[
                ("enforcement", "enforced"),
                ("grace", "date"),
                ("grace_until", "2099-12-31"),
                ("sign_in", "password"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/admin/settings");
    let mut vera = Agent::new(&server);
    assert_eq!(vera.password("vera@vendor.example").await.location(), "/vendor/account");
    assert!(
        vera.get("/vendor/account")
            .await
            .body
            .contains("required from 2099-12-31")
    );
    let page = admin.get("/admin/settings").await;
    assert!(page.body.contains("value=\"2099-12-31\""));

    for bad in [
        vec![
            ("enforcement", "enforced"),
            ("grace", "date"),
            ("grace_until", "31/12/2099"),
            ("sign_in", "password"),
        ],
        vec![
            ("enforcement", "enforced"),
            ("grace", "count"),
            ("grace_sign_ins", "0"),
            ("sign_in", "password"),
        ],
        vec![("enforcement", "sometimes"), ("sign_in", "password")],
    ] {
        assert_eq!(
            admin.post("/admin/settings", &bad).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_needs_the_admins_fresh_code_and_remove_only_lets_a_self_configured_user_in() {
    let server = Server::start("reset", 2).await;
    let (mut admin, mut admin_phone) = admin_setting(&server, &[]).await;
    let mut dan = Agent::new(&server);
    dan.password("dan@customer.example").await;
    let qr = dan.post("/customer/account/enrol", &[("label", "Phone")]).await;
    let mut phone = Phone::typed(between(&qr.body, "id=\"secret-key\">", "<").unwrap());
    let code = phone.code(&server.clock);
    dan.post("/customer/account/confirm", &[("code", &code)]).await;
    let user = UserId::customer("dan@customer.example");

    let form = admin
        .get("/admin/users/reset?kind=customer&email=dan@customer.example")
        .await;
    assert!(form.body.contains("1 authenticator apps, 0 passkeys"), "{}", form.body);
    let mut fields = vec![
        ("kind", "customer"),
        ("email", "dan@customer.example"),
        ("reason", "other"),
        ("note", ""),
        ("mode", "remove"),
        ("code", ""),
    ];
    // Other without a note; then a wrong admin code: nothing is reset.
    assert_eq!(
        admin.post("/admin/users/reset", &fields).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    fields[3] = ("note", "Phone replaced by IT");
    let wrong = admin_phone.wrong_code(&server.clock);
    fields[5] = ("code", &wrong);
    assert_eq!(
        admin.post("/admin/users/reset", &fields).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(server.app.portal.record(&user).await.unwrap().mfa_enabled());

    let code = admin_phone.code(&server.clock);
    fields[5] = ("code", &code);
    let done = admin.post("/admin/users/reset", &fields).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.body
            .contains("1 authenticators, 0 passkeys and 10 backup codes removed"),
        "{}",
        done.body
    );
    // The same step-up code again is a replay.
    assert_eq!(
        admin.post("/admin/users/reset", &fields).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Remove only, self-configured portal: the password alone signs Dan in.
    dan.post("/sign-out", &[]).await;
    assert_eq!(
        dan.password("dan@customer.example").await.location(),
        "/customer/account"
    );
    let outbox = admin.get("/admin/outbox").await;
    assert!(outbox.body.contains("dan@customer.example") && outbox.body.contains("Phone replaced by IT"));

    // The users list: MFA off now, paged two at a time.
    let page = server
        .app
        .portal
        .users(UserQuery::new().status(StatusFilter::MfaOff))
        .await
        .unwrap();
    assert!(page.items.iter().any(|u| u.user == user));
    let listed = admin.get("/admin/users?status=mfa_off").await;
    assert!(listed.body.contains("dan@customer.example"));
    assert_eq!(
        admin.get("/admin/users?after=garbage").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        admin.get("/admin/users/reset?kind=robot&email=x@y").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_downloads_as_csv_and_json_lines_for_admins_only() {
    let server = Server::start("audit", 20).await;
    let (mut admin, _) = admin_setting(&server, ENFORCED).await;
    let mut alice = Agent::new(&server);
    alice.enrol_and_sign_in("alice@customer.example").await;
    let mut carol = Agent::new(&server);
    carol.enrol_and_sign_in("carol@customer.example").await;

    let csv = admin
        .get("/admin/audit.csv?email=alice@customer.example&kind=customer")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("audit-trail.csv")
    );
    let mut rows = csv::Reader::from_reader(csv.body.as_bytes());
    let events: Vec<String> = rows.records().map(|r| r.unwrap()[4].to_owned()).collect();
    assert!(events.contains(&"authenticator_added".to_owned()), "{events:?}");
    assert!(events.contains(&"enrolment_started".to_owned()));
    assert!(
        rows.records().all(|r| !r.unwrap()[2].contains("carol")),
        "filtered to Alice"
    );

    let jsonl = admin.get("/admin/audit.jsonl").await;
    assert_eq!(jsonl.status, StatusCode::OK);
    let lines: Vec<serde_json::Value> = jsonl.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        lines.iter().any(|e| e["user"]["id"] == "carol@customer.example"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|e| e["kind"] == "enforcement_changed"));

    // Not for customers, nor for nobody.
    assert_eq!(alice.get("/admin/audit.csv").await.location(), "/admin/sign-in");
    assert_eq!(
        Agent::new(&server).get("/admin/audit.jsonl").await.location(),
        "/admin/sign-in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_page_with_a_4xx_never_a_500_and_no_secret_reaches_a_log_line() {
    let server = Server::start("bad-input", 20).await;
    let (mut admin, _) = admin_setting(&server, ENFORCED).await;
    let mut alice = Agent::new(&server);
    let (mut phone, codes) = alice.enrol_and_sign_in("alice@customer.example").await;
    // The signed-in session's token, from the page the sign-in leads to.
    alice.get("/customer/account").await;
    let cases: Vec<(&str, String, StatusCode)> = vec![
        ("/nowhere/sign-in", String::new(), StatusCode::NOT_FOUND),
        ("/customer/sign-in", "%%%".to_owned(), StatusCode::BAD_REQUEST),
        (
            "/customer/account/delete",
            "authenticator=abc&code=1".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/customer/account/delete",
            "authenticator=9&code=".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            "/customer/account/enrol",
            "label=&code=".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/customer/account/backup-codes",
            "code=999999999999".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/customer/account/confirm",
            "code=123456".to_owned(),
            StatusCode::CONFLICT,
        ),
    ];
    for (path, body, status) in cases {
        let csrf = alice.csrf.clone().unwrap();
        let body = if body.is_empty() {
            format!("csrf={csrf}")
        } else {
            format!("csrf={csrf}&{body}")
        };
        let reply = alice.post_raw(path, body).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(reply.body.contains("<main>"), "{path}: a page, not a bare error");
    }
    assert_eq!(
        admin.get("/admin/audit?after=nonsense").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(alice.get("/admin/users").await.location(), "/admin/sign-in");

    // Deleting the last authenticator under enforcement: the product documents' words.
    let code = phone.code(&server.clock);
    let reply = alice
        .post("/customer/account/delete", &[("authenticator", "1"), ("code", &code)])
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(reply.body.contains(
        "You cannot delete your existing authenticator app if MFA for your portal account has been enabled by your app admin."
    ));

    let log = server.log_lines().join("\n");
    let (_, password) = server.account("alice@customer.example");
    assert!(log.contains("POST /customer/sign-in/code") || log.contains("POST /customer/sign-in/enrol/confirm"));
    for secret in [
        password.as_str(),
        phone.key.replace(' ', "").as_str(),
        phone.key.as_str(),
        codes[0].as_str(),
        code.as_str(),
    ] {
        assert!(!log.contains(secret), "a log line holds a secret");
    }
    assert!(!log.contains('?'), "no query string is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_or_a_reset_ends_the_other_sessions_on_their_next_request() {
    let server = Server::start("sessions", 20).await;
    let (_admin, _) = admin_setting(&server, ENFORCED).await;
    let mut laptop = Agent::new(&server);
    let (mut phone, _) = laptop.enrol_and_sign_in("alice@customer.example").await;
    let mut tablet = Agent::from(&server, [127, 0, 0, 2]);
    tablet.sign_in_with("alice@customer.example", &mut phone).await;
    assert_eq!(tablet.get("/customer/account").await.status, StatusCode::OK);
    // The password changes on the laptop: the laptop stays, the tablet is out.
    let (_, password) = server.account("alice@customer.example");
    let changed = laptop
        .post(
            "/customer/account/password",
            &[("current", &password), ("new", "correct horse battery staple")],
        )
        .await;
    assert_eq!(changed.location(), "/customer/account", "{}", changed.body);
    assert_eq!(laptop.get("/customer/account").await.status, StatusCode::OK);
    let ended = tablet.get("/customer/account").await;
    assert_eq!(
        (ended.status, ended.location()),
        (StatusCode::SEE_OTHER, "/customer/sign-in")
    );
    assert!(
        tablet
            .get("/customer/sign-in")
            .await
            .body
            .contains("You were signed out")
    );
    // An admin reset ends the laptop's session too.
    reset_alice(&server, portal_mfa::admin::ResetReason::LostDevice).await;
    let ended = laptop.get("/customer/account").await;
    assert_eq!(ended.location(), "/customer/sign-in");
    // A stale session cannot change the password either.
    let refused = laptop
        .post(
            "/customer/account/password",
            &[
                ("current", "correct horse battery staple"),
                ("new", "x".repeat(20).as_str()),
            ],
        )
        .await;
    assert_ne!(refused.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_browser_skips_the_code_with_a_host_prefixed_http_only_strict_cookie() {
    for secure in [false, true] {
        let server = Server::start_with("trusted", 20, |config| config.secure_cookies = secure).await;
        let mut settings = ENFORCED.to_vec();
        settings.push(("trusted_browser_days", "7"));
        let (_admin, _) = admin_setting(&server, &settings).await;
        let mut agent = Agent::new(&server);
        let (mut phone, _) = agent.enrol_and_sign_in("alice@customer.example").await;
        agent.post("/sign-out", &[]).await;
        agent.password("alice@customer.example").await;
        let page = agent.get("/customer/sign-in/code").await;
        assert!(page.body.contains("Remember this browser for 7 days"), "{}", page.body);
        let code = phone.code(&server.clock);
        let reply = agent
            .post("/customer/sign-in/code", &[("code", &code), ("remember", "yes")])
            .await;
        assert_eq!(reply.location(), "/customer/account");
        let cookie = agent
            .cookies_seen
            .iter()
            .rfind(|c| c.contains("acme_trusted_"))
            .unwrap()
            .clone();
        let name = if secure {
            "__Host-acme_trusted_customer="
        } else {
            "acme_trusted_customer="
        };
        assert!(cookie.starts_with(name), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert_eq!(cookie.contains("; Secure"), secure, "{cookie}");
        let listed = agent.get("/customer/account").await;
        assert!(listed.body.contains("(this browser)"), "{}", listed.body);
        // Signed out, the password alone signs this browser in.
        agent.post("/sign-out", &[]).await;
        let reply = agent.password("alice@customer.example").await;
        assert_eq!(reply.location(), "/customer/account", "{}", reply.body);
        // A made-up token: the cookie is cleared, a code is asked, and the failure counts.
        agent.post("/sign-out", &[]).await;
        agent.trusted = Some(format!("{name}{}", "a".repeat(52)));
        let reply = agent.password("alice@customer.example").await;
        assert_eq!(reply.location(), "/customer/sign-in/code");
        assert!(agent.trusted.is_none(), "the cookie was cleared");
        let user = UserId::customer("alice@customer.example");
        assert_eq!(
            server.app.portal.record(&user).await.unwrap().failures().consecutive(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_links_encode_the_email_and_a_user_outside_the_directory_is_not_reset() {
    let server = Server::start("encoded", 20).await;
    let (mut admin, mut admin_phone) = admin_setting(&server, &[]).await;
    // A user with MFA records whose address holds a `+` (not in the demo directory).
    let bob = UserId::customer("bob+tag@customer.example");
    let stamp = match server.app.portal.begin_sign_in(&bob).await.unwrap() {
        portal_mfa::SignInStep::NoMfaNeeded { session } | portal_mfa::SignInStep::MustEnrol { session, .. } => session,
        other => panic!("{other:?}"),
    };
    server
        .app
        .portal
        .start_enrolment(&bob, &stamp, bob.id(), "phone", portal_mfa::EnrolmentOptions::default())
        .await
        .unwrap();
    let users = admin.get("/admin/users").await;
    let href = between(&users.body, "href=\"/admin/users/reset?", "\"")
        .unwrap()
        .replace("&amp;", "&");
    assert!(href.contains("email=bob%2Btag%40customer.example"), "{href}");
    let form = admin.get(&format!("/admin/users/reset?{href}")).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("bob+tag@customer.example"), "{}", form.body);
    assert!(form.body.contains("not in the portal"));
    // Submitted, it resets nobody: the directory does not know the address.
    let code = admin_phone.code(&server.clock);
    let reply = admin
        .post(
            "/admin/users/reset",
            &[
                ("kind", "customer"),
                ("email", "bob+tag@customer.example"),
                ("reason", "lost_device"),
                ("mode", "force"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert!(server.app.portal.record(&bob).await.unwrap().pending().is_some());
    // The audit filter and its pager keep the address whole too.
    let audit = admin
        .get("/admin/audit?email=bob%2Btag%40customer.example&kind=customer")
        .await;
    assert!(
        audit.body.contains("email=bob%2Btag%40customer.example"),
        "{}",
        audit.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_alone_cannot_flood_a_users_inbox_with_set_up_failures() {
    let server = Server::start("outbox", 20).await;
    let (_admin, _) = admin_setting(&server, ENFORCED).await;
    let mut attacker = Agent::from(&server, [127, 0, 0, 66]);
    for _ in 0..8 {
        let reply = attacker.password("alice@customer.example").await;
        assert_eq!(reply.location(), "/customer/sign-in/enrol");
        attacker.post("/customer/sign-in/enrol", &[("label", "x")]).await;
        for _ in 0..5 {
            attacker
                .post("/customer/sign-in/enrol/confirm", &[("code", "000000")])
                .await;
        }
        attacker.post("/sign-out", &[]).await;
    }
    let to_alice: Vec<_> = server
        .app
        .outbox
        .newest_first()
        .into_iter()
        .filter(|e| e.to == "alice@customer.example")
        .collect();
    assert_eq!(to_alice.len(), 3, "{to_alice:?}");
    assert_eq!(server.app.outbox.withheld(), 5);
    // A different notice still goes: an admin reset.
    reset_alice(&server, portal_mfa::admin::ResetReason::LockedOut).await;
    assert_eq!(
        server
            .app
            .outbox
            .newest_first()
            .iter()
            .filter(|e| e.to == "alice@customer.example")
            .count(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_after_twelve_hours_however_active() {
    let server = Server::start("absolute", 20).await;
    let (_admin, _) = admin_setting(&server, ENFORCED).await;
    let mut agent = Agent::new(&server);
    agent.enrol_and_sign_in("alice@customer.example").await;
    // Active every 20 minutes (the idle limit is 30): still signed in until the 12th hour.
    for _ in 0..35 {
        server.clock.advance(20 * 60);
        assert_eq!(agent.get("/customer/account").await.status, StatusCode::OK);
    }
    server.clock.advance(20 * 60);
    let ended = agent.get("/customer/account").await;
    assert_eq!(ended.location(), "/customer/sign-in");
    assert!(agent.get("/customer/sign-in").await.body.contains("12-hour limit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_change_that_weakens_mfa_needs_the_admins_fresh_code() {
    let server = Server::start("weaken", 20).await;
    let (mut admin, mut phone) = admin_setting(&server, ENFORCED).await;
    let off = [("enforcement", "off"), ("grace", "none"), ("sign_in", "password")];
    let before = server.app.portal.policy().await.unwrap();
    // A stolen session alone: refused, nothing changed.
    let refused = admin.post("/admin/settings", &off).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("type a current code"));
    let longer_trust = [ENFORCED, &[("trusted_browser_days", "30")]].concat();
    assert_eq!(
        admin.post("/admin/settings", &longer_trust).await.status,
        StatusCode::FORBIDDEN
    );
    let wrong = [ENFORCED, &[("trusted_browser_days", "30"), ("code", "000000")]].concat();
    assert_eq!(
        admin.post("/admin/settings", &wrong).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.app.portal.policy().await.unwrap(), before);
    // With a fresh code it is saved; a change that strengthens MFA needs none.
    let code = phone.code(&server.clock);
    let with_code = [&off[..], &[("code", code.as_str())]].concat();
    assert_eq!(
        admin.post("/admin/settings", &with_code).await.location(),
        "/admin/settings"
    );
    assert!(!server.app.portal.policy().await.unwrap().is_enforced());
    assert_eq!(
        admin.post("/admin/settings", ENFORCED).await.location(),
        "/admin/settings"
    );
    assert!(server.app.portal.policy().await.unwrap().is_enforced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_consoles_own_events_are_in_the_audit_trail() {
    let server = Server::start("console-audit", 20).await;
    let (mut admin, _) = admin_setting(&server, &[]).await;
    // A failed step-up: a wrong code on a reset.
    admin
        .post(
            "/admin/users/reset",
            &[
                ("kind", "customer"),
                ("email", "alice@customer.example"),
                ("reason", "lost_device"),
                ("mode", "force"),
                ("code", "000000"),
            ],
        )
        .await;
    let page = admin.get("/admin/audit?kind=admin").await;
    assert_eq!(page.status, StatusCode::OK);
    for kind in ["authenticator_added", "verification_failed"] {
        assert!(page.body.contains(kind), "{kind} in {}", page.body);
    }
    assert!(page.body.contains("member:admin@acme.example"), "{}", page.body);
    let mine = admin.get("/admin/audit?kind=admin&email=admin%40acme.example").await;
    assert!(mine.body.contains("verification_failed"));
    let csv = admin.get("/admin/audit.csv?kind=admin").await;
    assert!(csv.body.contains("verification_failed"), "{}", csv.body);
    // The portal users' trail does not mix them in.
    let users = admin.get("/admin/audit").await;
    assert!(!users.body.contains("member:admin@acme.example"), "{}", users.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_live_in_the_database_shared_by_instances_and_expired_ones_are_deleted() {
    let server = Server::start("db-sessions", 20).await;
    let mut agent = Agent::new(&server);
    let reply = agent.password("dan@customer.example").await;
    assert_eq!(reply.location(), "/customer/account", "MFA is off: signed in");
    // Another instance on the same database (or this one after a restart) knows the session.
    let other = server.another_instance().await;
    let mut request = axum::http::Request::get("/customer/account")
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(agent.address));
    request.headers_mut().insert(
        header::COOKIE,
        format!("acme_session={}", agent.cookie.clone().unwrap())
            .parse()
            .unwrap(),
    );
    let page = other.oneshot(request).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let body = axum::body::to_bytes(page.into_body(), 1 << 20).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("Dan Diaz"));
    // Expired sessions go.
    let kept = server.app.sessions.count().await.unwrap();
    assert!(kept >= 1);
    let far = portal_mfa::Clock::now(&server.clock) as i64 + 365 * 86_400;
    assert_eq!(server.app.sessions.delete_expired(far).await.unwrap(), kept);
    assert_eq!(server.app.sessions.count().await.unwrap(), 0);
    assert_eq!(agent.get("/customer/account").await.location(), "/customer/sign-in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_without_a_session_create_none_and_their_form_is_bound_to_their_browser() {
    let server = Server::start("no-session", 20).await;
    let before = server.app.sessions.count().await.unwrap();
    // A flood of cookieless visits to the sign-in pages and the start page: no session is kept.
    for i in 0..2_000 {
        let mut visitor = Agent::new(&server);
        let path = if i % 2 == 0 { "/customer/sign-in" } else { "/" };
        assert_eq!(visitor.get(path).await.status, StatusCode::OK);
    }
    assert_eq!(server.app.sessions.count().await.unwrap(), before);
    // The sign-in form's token is bound to the visitor's CSRF cookie.
    let mut alice = Agent::new(&server);
    alice.get("/customer/sign-in").await;
    let cookie = alice
        .cookies_seen
        .iter()
        .find(|c| c.starts_with("acme_csrf="))
        .unwrap()
        .clone();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let (_, password) = server.account("alice@customer.example");
    let form = [("email", "alice@customer.example"), ("password", password.as_str())];
    // Without the cookie (a page of another site posting it), refused.
    let mut forger = Agent::new(&server);
    forger.csrf = alice.csrf.clone();
    assert_eq!(
        forger.post("/customer/sign-in", &form).await.status,
        StatusCode::FORBIDDEN
    );
    // With it, signed in: only now is there a session.
    let reply = alice.post("/customer/sign-in", &form).await;
    assert_eq!(reply.location(), "/customer/account", "{}", reply.body);
    assert_eq!(server.app.sessions.count().await.unwrap(), before + 1);
}

/// The lost-device path through the pages: from the code page to a request,
/// seen by the admin under "Reset requested", approved with the admin's
/// fresh code (or declined, which starts the cooldown); and a bulk reset,
/// previewed, then run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_asks_for_a_reset_from_the_code_page_and_an_admin_approves_declines_or_resets_in_bulk() {
    let server = Server::start("lost", 20).await;
    let (mut admin, mut admin_phone) = admin_setting(&server, &[]).await;
    let mut enrolled = Vec::new();
    for email in ["dan@customer.example", "carol@customer.example"] {
        let mut agent = Agent::new(&server);
        agent.password(email).await;
        let qr = agent.post("/customer/account/enrol", &[("label", "Phone")]).await;
        let mut phone = Phone::typed(between(&qr.body, "id=\"secret-key\">", "<").unwrap());
        let code = phone.code(&server.clock);
        agent.post("/customer/account/confirm", &[("code", &code)]).await;
        agent.post("/sign-out", &[]).await;
        enrolled.push(phone);
    }
    let dan = UserId::customer("dan@customer.example");
    let carol = UserId::customer("carol@customer.example");

    // Dan is past the password and has nothing to give: the code page says where to go.
    let mut lost = Agent::new(&server);
    assert_eq!(
        lost.password("dan@customer.example").await.location(),
        "/customer/sign-in/code"
    );
    let page = lost.get("/customer/sign-in/code").await;
    assert!(
        page.body.contains("id=\"lost\"") && page.body.contains("Lost your authenticator"),
        "{}",
        page.body
    );
    let form = lost.get("/customer/sign-in/lost").await;
    assert!(form.body.contains("id=\"lost-form\""), "{}", form.body);
    let too_long = "x".repeat(281);
    assert_eq!(
        lost.post("/customer/sign-in/lost", &[("note", &too_long)]).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let asked = lost
        .post(
            "/customer/sign-in/lost",
            &[("note", "Phone fell in the lake\r\nTicket 77")],
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert!(asked.body.contains("id=\"reset-requested\""), "{}", asked.body);
    let request = server
        .app
        .portal
        .record(&dan)
        .await
        .unwrap()
        .reset_request()
        .cloned()
        .unwrap();
    assert_eq!(&*request.note, "Phone fell in the lake\nTicket 77");
    assert_eq!(
        lost.post("/customer/sign-in/lost", &[("note", "again")]).await.status,
        StatusCode::CONFLICT
    );
    // Without the password step there is no form to reach.
    let mut stranger = Agent::new(&server);
    assert_ne!(stranger.get("/customer/sign-in/lost").await.status, StatusCode::OK);

    // The admin sees it under Reset requested, and on the reset form.
    let listed = admin.get("/admin/users?status=reset_requested").await;
    assert!(
        listed.body.contains("dan@customer.example") && !listed.body.contains("carol@"),
        "{}",
        listed.body
    );
    assert!(listed.body.contains("Reset requested"));
    let form = admin
        .get("/admin/users/reset?kind=customer&email=dan@customer.example")
        .await;
    assert!(
        form.body.contains("id=\"reset-request\"") && form.body.contains("Phone fell in the lake"),
        "{}",
        form.body
    );
    assert!(form.body.contains("id=\"reason-request\""));
    // Approving needs the admin's fresh code, as a reset does.
    let mut fields = vec![
        ("kind", "customer"),
        ("email", "dan@customer.example"),
        ("reason", "request"),
        ("mode", "force"),
        ("code", ""),
    ];
    let wrong = admin_phone.wrong_code(&server.clock);
    fields[4] = ("code", &wrong);
    assert_eq!(
        admin.post("/admin/users/reset", &fields).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(server.app.portal.record(&dan).await.unwrap().reset_request().is_some());
    let code = admin_phone.code(&server.clock);
    fields[4] = ("code", &code);
    let done = admin.post("/admin/users/reset", &fields).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.body
            .contains("1 authenticators, 0 passkeys and 10 backup codes removed"),
        "{}",
        done.body
    );
    let outbox = admin.get("/admin/outbox").await;
    assert!(outbox.body.contains("you asked for it"), "{}", outbox.body);
    // Dan signs in and sets up again.
    let mut dan_again = Agent::new(&server);
    assert_eq!(
        dan_again.password("dan@customer.example").await.location(),
        "/customer/sign-in/enrol"
    );

    // Carol asks, and is declined: she keeps her factor, hears why, and must wait to ask again.
    let mut carol_agent = Agent::new(&server);
    carol_agent.password("carol@customer.example").await;
    carol_agent.post("/customer/sign-in/lost", &[("note", "lost it")]).await;
    let declined = admin
        .post(
            "/admin/users/decline",
            &[
                ("kind", "customer"),
                ("email", "carol@customer.example"),
                ("message", "Please call us."),
            ],
        )
        .await;
    assert_eq!(declined.status, StatusCode::OK, "{}", declined.body);
    assert!(declined.body.contains("id=\"decline-summary\""));
    assert_eq!(server.app.portal.record(&carol).await.unwrap().factor_count(), 1);
    assert_eq!(
        carol_agent
            .post("/customer/sign-in/lost", &[("note", "again")])
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!(admin.get("/admin/outbox").await.body.contains("Please call us."));
    assert_eq!(
        admin
            .post(
                "/admin/users/decline",
                &[("kind", "customer"), ("email", "carol@customer.example")]
            )
            .await
            .status,
        StatusCode::CONFLICT,
        "nothing open to decline"
    );

    // A bulk reset of the customers: previewed (Carol; Dan has nothing now), then run with a fresh code.
    server.clock.advance(60);
    assert_eq!(admin.get("/admin/users/bulk").await.status, StatusCode::OK);
    let plan = [
        ("incident", "INC-42"),
        ("note", "seed backup leaked"),
        ("kind", "customer"),
        ("status", "any"),
        ("added_before", ""),
        ("mode", "force"),
        ("action", "preview"),
    ];
    let preview = admin.post("/admin/users/bulk", &plan).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(preview.body.contains("1 users would be reset"), "{}", preview.body);
    assert_eq!(
        server.app.portal.record(&carol).await.unwrap().factor_count(),
        1,
        "a preview changes nothing"
    );
    let started_at = between(&preview.body, "name=\"started_at\" value=\"", "\"")
        .unwrap()
        .to_owned();
    let code = admin_phone.code(&server.clock);
    let mut run = plan.to_vec();
    run.retain(|(name, _)| *name != "action");
    run.extend([
        ("action", "run"),
        ("started_at", started_at.as_str()),
        ("code", code.as_str()),
    ]);
    let done = admin.post("/admin/users/bulk", &run).await;
    assert!(
        done.body.contains("id=\"bulk-summary\"") && done.body.contains("1 users reset"),
        "{}",
        done.body
    );
    assert!(server.app.portal.record(&carol).await.unwrap().must_enrol());
    assert_eq!(
        admin
            .post(
                "/admin/users/bulk",
                &[("incident", ""), ("status", "any"), ("action", "preview")]
            )
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let _ = enrolled;
}

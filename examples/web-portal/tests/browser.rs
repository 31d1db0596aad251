//! Every flow, by a person, in Debian's Chromium driven through
//! chromium-driver (WebDriver) with fantoccini: headless, JavaScript off,
//! a fresh profile, the portal on a random loopback port. Codes come from
//! portal-mfa's own engine, fed the key the page shows.
//!
//! A screenshot of every page is saved under `target/web-portal-screenshots/`
//! and checked not blank; every page is checked for unlabelled inputs and for
//! a code or key in its URL. With `PORTAL_SCREENSHOTS_TO_DOCS=1` the main
//! pages are also copied to `docs/screenshots/` for the README.

#[path = "../../../tests/flows/patience.rs"]
#[allow(dead_code, unreachable_pub)]
mod patience;
mod support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use support::{Phone, Server, TempDir};

/// Pages copied to `docs/screenshots/` for the README.
const FOR_DOCS: [&str; 8] = [
    "enrol-qr",
    "backup-codes",
    "code-page",
    "my-account",
    "settings-saml-refused",
    "users",
    "reset-form",
    "audit",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn installed(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Skips, or under CI fails: CI installs the browser, so a missing one is a broken machine.
fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {why}: .ci/run installs chromium and chromium-driver");
    }
    eprintln!("skipped: {why} (install Debian's chromium and chromium-driver)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Browser {
    client: Client,
    driver: Child,
    base: String,
    shots: PathBuf,
    taken: usize,
    profile: TempDir,
}

impl Drop for Browser {
    /// Chromium is chromedriver's child and outlives it: killing the driver alone
    /// left browsers running after the test. Both sit in the driver's own process
    /// group, so one signal to the group ends them, on a panic too.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// A fresh browser on `base`, its screenshots under `target/{shots}/`,
    /// with JavaScript off unless `javascript`.
    async fn launch(base: String, shots: &str, javascript: bool) -> Option<Browser> {
        let Some(chromium) = installed(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]) else {
            skip("no chromium");
            return None;
        };
        let Some(chromedriver) = installed(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]) else {
            skip("no chromedriver");
            return None;
        };
        let port = free_port();
        let driver = Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < patience::PATIENCE, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = TempDir::new("chromium-profile");
        let mut args = vec![
            "--headless".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", profile.0.display()),
        ];
        // Root cannot use Chromium's sandbox.
        if std::env::var("USER").is_ok_and(|u| u == "root") || is_root() {
            args.push("--no-sandbox".to_owned());
        }
        let mut capabilities = serde_json::Map::new();
        // Every flow but the passkey ceremony must work without JavaScript.
        let javascript = if javascript { 1 } else { 2 };
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": chromium,
                "args": args,
                "prefs": { "profile.managed_default_content_settings.javascript": javascript },
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        let shots = workspace().join("target").join(shots);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser {
            client,
            driver,
            base,
            shots,
            taken: 0,
            profile,
        })
    }

    /// Ends the WebDriver session, so Chromium quits as it would for a user
    /// (the drop then finds nothing left to kill), and checks that no process
    /// of this browser is left.
    async fn close(self) {
        self.client.clone().close().await.expect("the browser closes");
        let profile = format!("--user-data-dir={}", self.profile.0.display());
        drop(self);
        let started = Instant::now();
        while let Some(pid) = process_with_arg(&profile) {
            assert!(
                started.elapsed() < patience::PATIENCE,
                "Chromium process {pid} outlived its test"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn go(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        let clicked = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await;
        if let Err(e) = clicked {
            panic!("{css} on {}: {e}", self.path().await);
        }
    }

    /// Clicks what leaves the page (a submit button, a link) and waits
    /// until the next page has replaced it.
    async fn submit(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.click(css).await;
        let started = Instant::now();
        while old.tag_name().await.is_ok() {
            assert!(
                started.elapsed() < patience::PATIENCE,
                "{css} did not lead to a new page"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn main_text(&self) -> String {
        self.text("main").await
    }

    async fn has(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.unwrap().is_empty()
    }

    /// Saves a screenshot of the page, checks it is not blank, that every
    /// input has a label, and that the URL holds no code or key.
    async fn shot(&mut self, name: &str, secrets: &[&str]) {
        self.taken += 1;
        let png = self.client.screenshot().await.unwrap();
        assert_not_blank(&png, name);
        let file = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&file, &png).unwrap();
        if FOR_DOCS.contains(&name) && std::env::var("PORTAL_SCREENSHOTS_TO_DOCS").is_ok() {
            let docs = workspace().join("docs/screenshots");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
        }
        for field in self
            .client
            .find_all(Locator::Css("input:not([type=hidden]), select, textarea"))
            .await
            .unwrap()
        {
            let id = field.attr("id").await.unwrap().unwrap_or_default();
            let labelled = !id.is_empty() && self.has(&format!("label[for='{id}']")).await
                || field.find(Locator::XPath("ancestor::label")).await.is_ok();
            let name = field.attr("name").await.unwrap();
            assert!(labelled, "{name:?} on {} has no label", self.path().await);
        }
        let url = self.client.current_url().await.unwrap().to_string();
        for secret in secrets {
            assert!(!url.contains(secret), "{url} holds a secret");
        }
    }

    async fn sign_in(&self, area: &str, email: &str, password: &str) {
        self.go(&format!("/{area}/sign-in")).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.submit("main button[type=submit]").await;
    }

    async fn sign_out(&self) {
        self.submit("header form button").await;
        assert_eq!(self.path().await, "/");
    }

    /// On the code page: a code from `phone`, then on to My account.
    async fn code(&self, phone: &mut Phone, server: &Server, area: &str) {
        assert_eq!(self.path().await, format!("/{area}/sign-in/code"));
        self.fill("#code", &phone.code(&server.clock)).await;
        self.submit("main button[type=submit]").await;
        assert_eq!(
            self.path().await,
            format!("/{area}/account"),
            "{}",
            self.main_text().await
        );
    }

    /// The QR page on screen: the typed key, as a phone.
    async fn scan(&self) -> Phone {
        assert!(self.has(".qr svg").await, "the QR code is inline SVG");
        Phone::typed(&self.text("#secret-key").await)
    }

    /// The id of the first authenticator in My account's table.
    async fn first_authenticator_id(&self) -> String {
        let field = self
            .client
            .find(Locator::Css(
                "#authenticators tr:nth-child(1) input[name=authenticator]",
            ))
            .await
            .unwrap();
        field.attr("value").await.unwrap().expect("an authenticator id")
    }

    /// The backup codes on screen.
    async fn backup_codes(&self) -> Vec<String> {
        let mut codes = Vec::new();
        for item in self.client.find_all(Locator::Css("#backup-codes li")).await.unwrap() {
            codes.push(item.text().await.unwrap());
        }
        codes
    }
}

/// A running process with `arg` on its command line, if any.
fn process_with_arg(arg: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes()).then_some(pid)
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Not one flat colour: many colours, and a good share of pixels off the commonest.
fn assert_not_blank(png: &[u8], name: &str) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let channels = info.color_type.samples();
    let mut counts = std::collections::HashMap::new();
    for pixel in pixels[..info.buffer_size()].chunks(channels) {
        *counts.entry(pixel[..3.min(channels)].to_vec()).or_insert(0usize) += 1;
    }
    let total: usize = counts.values().sum();
    let commonest = counts.values().max().copied().unwrap_or(0);
    assert!(counts.len() > 16, "{name}: only {} colours", counts.len());
    assert!(total - commonest > total / 50, "{name}: almost all one colour");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_in_a_real_browser_with_javascript_off() {
    let server = Server::start("browser", 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(web_portal::serve(listener, server.router.clone()));
    let Some(mut b) = Browser::launch(base.clone(), "web-portal-screenshots", false).await else {
        return;
    };
    let (_, admin_password) = server.account("admin@acme.example");
    let (_, alice_password) = server.account("alice@customer.example");
    let (_, carol_password) = server.account("carol@customer.example");
    let (_, victor_password) = server.account("victor@vendor.example");
    let (_, dan_password) = server.account("dan@customer.example");

    b.go("/").await;
    b.shot("start", &[]).await;

    // --- The admin's own first sign-in: the admin console always enforces MFA.
    b.go("/admin/sign-in").await;
    b.shot("sign-in", &[]).await;
    b.sign_in("admin", "admin@acme.example", &admin_password).await;
    assert_eq!(b.path().await, "/admin/sign-in/enrol");
    b.shot("enrol-start", &[]).await;
    b.fill("#label-new", "Admin phone").await;
    b.submit("main button[type=submit]").await;
    let mut admin_phone = b.scan().await;
    b.shot("enrol-qr", &[&admin_phone.key]).await;
    let wrong = admin_phone.wrong_code(&server.clock);
    b.fill("#code", &wrong).await;
    b.submit("main form button[type=submit]").await;
    assert!(b.main_text().await.contains("attempts left"), "{}", b.main_text().await);
    b.shot("enrol-wrong-code", &[&wrong]).await;
    b.fill("#code", &admin_phone.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    let admin_codes = b.backup_codes().await;
    assert_eq!(admin_codes.len(), 10);
    assert!(
        b.text("#codes-copy").await.contains(&admin_codes[9]),
        "the codes are there to select and copy"
    );
    assert!(
        b.has("form[action='/backup-codes.txt'] button").await
            && b.has("form[action='/backup-codes/print'] button").await
    );
    b.shot("backup-codes", &[&admin_codes[0]]).await;
    b.click("#saved").await;

    b.submit("form[action='/admin/sign-in/finish'] button").await;
    assert_eq!(b.path().await, "/admin/account");

    // --- Portal settings: SAML refused in the product documents' words, then enforced.
    b.go("/admin/settings").await;
    b.shot("settings", &[]).await;
    b.click("#mfa-enforced").await;
    b.click("#method-saml").await;
    b.submit("main form button[type=submit]").await;
    assert!(
        b.main_text()
            .await
            .contains("You won't be able to enable MFA if you've configured SAML for your portal.")
    );
    b.shot("settings-saml-refused", &[]).await;
    b.go("/admin/settings").await;
    b.click("#mfa-enforced").await;
    b.click("#grace-none").await;
    b.click("#method-password").await;
    b.submit("main form button[type=submit]").await;
    assert!(b.main_text().await.contains("Settings saved."));
    b.sign_out().await;

    // --- Alice: a wrong password, then enrolment under enforcement.
    b.sign_in("customer", "alice@customer.example", "not her password")
        .await;
    assert!(b.main_text().await.contains("Wrong email or password."));
    b.shot("wrong-password", &[]).await;
    b.sign_in("customer", "alice@customer.example", &alice_password).await;
    assert_eq!(b.path().await, "/customer/sign-in/enrol");
    b.fill("#label-new", "Alice's phone").await;
    b.submit("main button[type=submit]").await;
    let mut phone = b.scan().await;
    b.fill("#code", &phone.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    assert_eq!(b.backup_codes().await.len(), 10);
    b.click("#saved").await;
    b.submit("form[action='/customer/sign-in/finish'] button").await;
    assert_eq!(b.path().await, "/customer/account");
    let table = b.text("#authenticators").await;
    assert!(
        table.contains("Alice's phone") && table.contains(&support::today()),
        "{table}"
    );
    b.shot("my-account", &[]).await;

    // --- The code page: a replayed code is refused, a fresh one signs in.
    b.sign_out().await;
    b.sign_in("customer", "alice@customer.example", &alice_password).await;
    let field = b.client.find(Locator::Css("#code")).await.unwrap();
    assert_eq!(
        field.attr("autocomplete").await.unwrap().as_deref(),
        Some("one-time-code")
    );
    assert_eq!(field.attr("inputmode").await.unwrap().as_deref(), Some("numeric"));
    assert!(
        b.has("a[href='/customer/sign-in/code?backup=1']").await,
        "use a backup code instead"
    );
    b.shot("code-page", &[]).await;
    b.fill("#code", &phone.last_code()).await;
    b.submit("main button[type=submit]").await;
    assert!(b.main_text().await.contains("already used"));
    b.code(&mut phone, &server, "customer").await;

    // --- My account: add a second authenticator (with a fresh code).
    b.fill("#label-new", "Tablet").await;
    b.fill("#proof-new", &phone.code(&server.clock)).await;
    b.submit("#enrol-new button").await;
    let mut tablet = b.scan().await;
    b.fill("#code", &tablet.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    assert!(b.main_text().await.contains("Authenticator confirmed."));

    // Change the phone: the old one keeps working until the new one is confirmed.
    b.click("#authenticators tr:nth-child(1) details:nth-of-type(1) summary")
        .await;
    b.fill("#label-1", "Alice's new phone").await;
    b.fill("#proof-1", &phone.code(&server.clock)).await;
    b.submit("#enrol-1 button").await;
    let mut new_phone = b.scan().await;
    b.go("/customer/account").await;
    assert!(b.main_text().await.contains("is waiting for its first code"));
    b.fill("#regenerate-code", &phone.code(&server.clock)).await;
    b.submit("form[action='/customer/account/backup-codes'] button").await;
    let alice_codes = b.backup_codes().await;
    assert_eq!(
        alice_codes.len(),
        10,
        "the old phone still works while the change waits"
    );
    b.click("#saved").await;
    b.submit("form[action='/customer/account/saved'] button").await;
    b.fill("#finish-code", &new_phone.code(&server.clock)).await;
    b.submit("form[action='/customer/account/confirm'] button").await;
    let table = b.text("#authenticators").await;
    assert!(
        table.contains("Alice's new phone") && table.contains("Tablet") && !table.contains("Alice's phone"),
        "{table}"
    );
    b.shot("authenticators", &[]).await;

    // Delete the tablet; the last one is refused under enforcement.
    b.click("#authenticators tr:nth-child(1) details:nth-of-type(2) summary")
        .await;
    let row = b.text("#authenticators tr:nth-child(1) td:first-child").await;
    let (first_phone, second_phone) = if row == "Tablet" {
        (&mut tablet, &mut new_phone)
    } else {
        (&mut new_phone, &mut tablet)
    };
    let first_id = b.first_authenticator_id().await;
    b.fill(&format!("#delete-{first_id}"), &first_phone.code(&server.clock))
        .await;
    b.submit("#authenticators tr:nth-child(1) details:nth-of-type(2) button")
        .await;
    assert!(b.main_text().await.contains("Authenticator deleted."));
    b.click("#authenticators tr:nth-child(1) details:nth-of-type(2) summary")
        .await;
    let last_id = b.first_authenticator_id().await;
    b.fill(&format!("#delete-{last_id}"), &second_phone.code(&server.clock))
        .await;
    b.submit("#authenticators tr:nth-child(1) details:nth-of-type(2) button")
        .await;
    assert!(b.main_text().await.contains(
        "You cannot delete your existing authenticator app if MFA for your portal account has been enabled by your app admin."
    ));
    b.shot("delete-refused", &[]).await;
    let mut phone = if row == "Tablet" { new_phone } else { tablet };

    // --- Backup codes at sign-in, until few are left: the banner.
    for (n, code) in alice_codes.iter().take(8).enumerate() {
        b.go("/customer/account").await;
        b.sign_out().await;
        b.sign_in("customer", "alice@customer.example", &alice_password).await;
        b.submit("a[href='/customer/sign-in/code?backup=1']").await;
        if n == 0 {
            b.shot("backup-code-page", &[]).await;
        }
        b.fill("#backup-code", code).await;
        b.submit("main button[type=submit]").await;
        assert_eq!(b.path().await, "/customer/account");
    }
    assert!(b.text("#low-backup-codes").await.contains("Only 2 backup codes left"));
    b.shot("low-backup-codes", &[]).await;
    b.sign_out().await;

    // --- Carol: enrols, then loses her phone and locks herself out.
    b.sign_in("customer", "carol@customer.example", &carol_password).await;
    b.fill("#label-new", "Carol's phone").await;
    b.submit("main button[type=submit]").await;
    let mut carol_phone = b.scan().await;
    b.fill("#code", &carol_phone.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    b.click("#saved").await;
    b.submit("form[action='/customer/sign-in/finish'] button").await;
    b.sign_out().await;
    b.sign_in("customer", "carol@customer.example", &carol_password).await;
    let wrong = carol_phone.wrong_code(&server.clock);
    for _ in 0..5 {
        b.fill("#code", &wrong).await;
        b.submit("main button[type=submit]").await;
    }
    assert!(b.main_text().await.contains("locked until"), "{}", b.main_text().await);
    b.shot("locked", &[]).await;

    // --- The admin resets Carol's MFA, stepping up with their own code.
    b.go("/").await;
    b.sign_in("admin", "admin@acme.example", &admin_password).await;
    b.code(&mut admin_phone, &server, "admin").await;
    b.go("/admin/users").await;
    assert!(b.has("#next-page").await, "one user a page: there is a next page");
    b.submit("#next-page").await;
    assert!(b.has("#users").await);
    b.go("/admin/users?status=locked_out").await;
    let users = b.text("#users").await;
    assert!(
        users.contains("carol@customer.example") && !users.contains("alice@"),
        "{users}"
    );
    b.shot("users", &[]).await;
    b.submit("#users a").await;
    b.shot("reset-form", &[]).await;
    b.click("#reason-lost_device").await;
    b.click("#mode-force").await;
    b.fill("#admin-code", &admin_phone.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    assert!(
        b.text("#reset-summary")
            .await
            .contains("1 authenticators, 0 passkeys and 10 backup codes removed")
    );
    b.shot("reset-done", &[]).await;
    b.go("/admin/outbox").await;
    let outbox = b.main_text().await;
    assert!(
        outbox.contains("To: carol@customer.example") && outbox.contains("admin@acme.example"),
        "{outbox}"
    );
    b.shot("outbox", &[]).await;
    b.go("/admin/audit").await;
    b.fill("#audit-email", "carol@customer.example").await;
    b.submit("main form button[type=submit]").await;
    // Newest first: the reset ended Carol's sessions, then (a page older) the reset itself.
    let events = b.text("#events").await;
    assert!(
        events.contains("sessions_ended") && events.contains("carol") && !events.contains("alice"),
        "{events}"
    );
    assert!(b.has("#download-csv").await && b.has("#download-jsonl").await);
    b.shot("audit", &[]).await;
    b.submit("#next-page").await;
    let older = b.text("#events").await;
    assert!(
        older.contains("carol") && older.contains("mfa_reset") && !older.contains("sessions_ended"),
        "the trail is paged, newest first: {older}"
    );
    b.sign_out().await;

    // --- Carol sets up her new phone and is back in, account untouched.
    b.sign_in("customer", "carol@customer.example", &carol_password).await;
    assert!(
        b.main_text()
            .await
            .contains("Your administrator reset your two-factor authentication")
    );
    b.fill("#label-new", "Carol's new phone").await;
    b.submit("main button[type=submit]").await;
    let mut carol_new = b.scan().await;
    b.fill("#code", &carol_new.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    assert_eq!(b.backup_codes().await.len(), 10);
    b.click("#saved").await;
    b.submit("form[action='/customer/sign-in/finish'] button").await;
    assert!(b.text("#authenticators").await.contains("Carol's new phone"));
    b.sign_out().await;

    // --- A grace of two sign-ins for vendors not set up yet.
    b.sign_in("admin", "admin@acme.example", &admin_password).await;
    b.code(&mut admin_phone, &server, "admin").await;
    b.go("/admin/settings").await;
    b.click("#grace-count").await;
    b.fill("#grace-sign-ins", "2").await;
    // A grace weakens MFA: the admin's own code.
    b.fill("#settings-code", &admin_phone.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    b.sign_out().await;
    b.sign_in("vendor", "victor@vendor.example", &victor_password).await;
    assert_eq!(b.path().await, "/vendor/account");
    assert!(b.main_text().await.contains("1 more sign-ins without it"));
    b.shot("grace", &[]).await;
    b.sign_out().await;

    // Alice's phone still signs her in.
    b.sign_in("customer", "alice@customer.example", &alice_password).await;
    b.code(&mut phone, &server, "customer").await;
    b.sign_out().await;

    // --- Dan remembers this browser; an admin's reset, in another browser, ends
    // his session on its next request and the trust with it.
    let Some(desk) = Browser::launch(base, "web-portal-screenshots-admin-desk", false).await else {
        return;
    };
    desk.sign_in("admin", "admin@acme.example", &admin_password).await;
    desk.code(&mut admin_phone, &server, "admin").await;
    desk.go("/admin/settings").await;
    desk.fill("#trusted-days", "30").await;
    desk.fill("#settings-code", &admin_phone.code(&server.clock)).await;
    desk.submit("main form button[type=submit]").await;
    assert!(
        desk.main_text().await.contains("Settings saved"),
        "{}",
        desk.main_text().await
    );
    // Dan's first sign-in is a grace one; he sets up MFA from My account.
    b.sign_in("customer", "dan@customer.example", &dan_password).await;
    assert_eq!(b.path().await, "/customer/account");
    b.fill("#label-new", "Dan's phone").await;
    b.submit("form#enrol-new button[type=submit]").await;
    let mut dan_phone = b.scan().await;
    b.fill("#code", &dan_phone.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    b.click("#saved").await;
    b.submit("form[action='/customer/account/saved'] button").await;
    b.sign_out().await;
    b.sign_in("customer", "dan@customer.example", &dan_password).await;
    assert!(b.main_text().await.contains("Remember this browser for 30 days"));
    b.click("#remember").await;
    b.shot("code-page-remember", &[]).await;
    b.code(&mut dan_phone, &server, "customer").await;
    assert!(b.text("#trusted-browsers").await.contains("(this browser)"));
    b.shot("trusted-browsers", &[]).await;
    let trusted = b.client.get_named_cookie("acme_trusted_customer").await.unwrap();
    assert_eq!(trusted.http_only(), Some(true));
    assert_eq!(format!("{:?}", trusted.same_site()), "Some(Strict)");
    b.sign_out().await;
    // The password alone signs him in now.
    b.sign_in("customer", "dan@customer.example", &dan_password).await;
    assert_eq!(b.path().await, "/customer/account", "{}", b.main_text().await);
    // The admin resets Dan while he is signed in.
    desk.go("/admin/users/reset?kind=customer&email=dan%40customer.example")
        .await;
    assert!(
        desk.text("#user-browsers").await.contains("Chrome"),
        "the admin sees Dan's trusted browser"
    );
    desk.click("#reason-lost_device").await;
    desk.click("#mode-force").await;
    desk.fill("#admin-code", &admin_phone.code(&server.clock)).await;
    desk.submit("main form button[type=submit]").await;
    assert!(desk.text("#reset-summary").await.contains("1 authenticators"));
    desk.close().await;
    // His old session ends on its next request.
    b.go("/customer/account").await;
    assert_eq!(b.path().await, "/customer/sign-in");
    assert!(
        b.main_text().await.contains("You were signed out"),
        "{}",
        b.main_text().await
    );
    b.shot("session-ended", &[]).await;
    // The remembered browser must set up MFA again, and forgets the token.
    b.sign_in("customer", "dan@customer.example", &dan_password).await;
    assert_eq!(b.path().await, "/customer/sign-in/enrol");
    assert!(
        b.main_text()
            .await
            .contains("Your administrator reset your two-factor authentication")
    );
    assert!(b.client.get_named_cookie("acme_trusted_customer").await.is_err());
    assert!(b.taken >= 20);
    b.close().await;
}

/// A command of chromedriver's WebAuthn extension (the W3C "Virtual
/// Authenticators" commands), which fantoccini has no method for.
#[derive(Debug)]
struct VirtualAuthenticators {
    method: http::Method,
    path: String,
    body: Option<serde_json::Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for VirtualAuthenticators {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/webauthn/{}",
            session.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (self.method.clone(), self.body.as_ref().map(ToString::to_string))
    }
}

impl Browser {
    async fn webauthn(&self, method: http::Method, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let command = VirtualAuthenticators {
            method,
            path: path.to_owned(),
            body,
        };
        self.client
            .issue_cmd(command)
            .await
            .unwrap_or_else(|e| panic!("webauthn/{path}: {e}"))
    }

    /// A platform authenticator as a laptop has: CTAP2, internal, resident
    /// keys, user verification that succeeds until told otherwise.
    async fn add_platform_authenticator(&self) -> String {
        let options = serde_json::json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        let id = self.webauthn(http::Method::POST, "authenticator", Some(options)).await;
        id.as_str().expect("an authenticator id").to_owned()
    }

    /// The credentials the authenticator holds: (id, sign count).
    async fn credentials(&self, authenticator: &str) -> Vec<(String, u64)> {
        let listed = self
            .webauthn(
                http::Method::GET,
                &format!("authenticator/{authenticator}/credentials"),
                None,
            )
            .await;
        listed
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| {
                (
                    c["credentialId"].as_str().expect("an id").to_owned(),
                    c["signCount"].as_u64().expect("a count"),
                )
            })
            .collect()
    }

    /// Clicks a passkey button and waits for the page its answer leads to.
    async fn passkey(&self, css: &str) {
        self.submit(css).await;
    }

    /// Clicks a passkey button whose ceremony the browser refuses, and waits
    /// for the script's message.
    async fn passkey_refused(&self, css: &str) -> String {
        self.click(css).await;
        let started = Instant::now();
        loop {
            let shown = self
                .client
                .find(Locator::Css("#passkey-error"))
                .await
                .unwrap()
                .is_displayed()
                .await
                .unwrap();
            if shown {
                return self.text("#passkey-error").await;
            }
            assert!(started.elapsed() < patience::PATIENCE, "{css}: no refusal shown");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Passkeys with Chromium's own WebAuthn implementation as the independent
/// peer: a virtual authenticator added through chromedriver, the portal on
/// `http://localhost` (a secure context), user verification required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_in_a_real_browser_with_chromiums_virtual_authenticator() {
    use portal_mfa::passkey::{RelyingParty, UserVerification};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let relying_party = RelyingParty::new("localhost", &[&base], "Acme Portal")
        .unwrap()
        .with_user_verification(UserVerification::Required);
    let server = Server::start_with("passkeys", 20, |config| config.passkeys = Some(relying_party)).await;
    tokio::spawn(web_portal::serve(listener, server.router.clone()));
    let Some(mut b) = Browser::launch(base, "web-portal-screenshots-passkeys", true).await else {
        return;
    };
    let laptop = b.add_platform_authenticator().await;
    let (_, password) = server.account("alice@customer.example");
    let alice = portal_mfa::UserId::customer("alice@customer.example");
    let record = || async { server.app.portal.record(&alice).await.unwrap() };

    // An authenticator app first (MFA is optional here), then a passkey beside it.
    b.sign_in("customer", "alice@customer.example", &password).await;
    assert_eq!(b.path().await, "/customer/account");
    assert!(b.has("#add-passkey").await, "My account offers a passkey");
    b.fill("#label-new", "Alice's phone").await;
    b.submit("form#enrol-new button[type=submit]").await;
    let mut phone = b.scan().await;
    b.fill("#code", &phone.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    let codes = b.backup_codes().await;
    b.click("#saved").await;
    b.submit("form[action='/customer/account/saved'] button").await;
    b.fill("#passkey-label", "Laptop").await;
    b.fill("#passkey-proof", &phone.code(&server.clock)).await;
    b.submit("#add-passkey button[type=submit]").await;
    assert_eq!(b.path().await, "/customer/account/passkey");
    b.shot("passkey-create", &[]).await;
    b.passkey("#passkey-register [data-passkey]").await;
    assert!(
        b.main_text().await.contains("Passkey added."),
        "{}",
        b.main_text().await
    );
    assert!(b.text("#passkeys").await.contains("Laptop"));
    b.shot("passkeys", &[]).await;
    let held = b.credentials(&laptop).await;
    assert_eq!(held.len(), 1, "the authenticator made one credential");
    let first = held[0].0.clone();
    assert_eq!(record().await.passkeys().len(), 1);

    // Sign out, sign in with it: the counter advances, in the record too.
    b.sign_out().await;
    b.sign_in("customer", "alice@customer.example", &password).await;
    assert_eq!(b.path().await, "/customer/sign-in/code");
    assert!(b.has("#code").await, "the app's code is still asked for");
    b.shot("code-page-passkey", &[]).await;
    b.passkey("main form [data-passkey]").await;
    assert_eq!(b.path().await, "/customer/account", "{}", b.main_text().await);
    let count = b.credentials(&laptop).await[0].1;
    assert!(count >= 1, "the sign-in advanced the counter ({count})");
    assert_eq!(u64::from(record().await.passkeys()[0].sign_count()), count);

    // User verification is required: an authenticator that fails it signs nobody in.
    b.sign_out().await;
    b.webauthn(
        http::Method::POST,
        &format!("authenticator/{laptop}/uv"),
        Some(serde_json::json!({ "isUserVerified": false })),
    )
    .await;
    b.sign_in("customer", "alice@customer.example", &password).await;
    let refused = b.passkey_refused("main form [data-passkey]").await;
    assert!(refused.contains("could not verify you"), "{refused}");
    assert_eq!(b.path().await, "/customer/sign-in/code");
    b.shot("passkey-uv-failed", &[]).await;
    b.webauthn(
        http::Method::POST,
        &format!("authenticator/{laptop}/uv"),
        Some(serde_json::json!({ "isUserVerified": true })),
    )
    .await;

    // The credential deleted on the authenticator: the browser has nothing to
    // answer with, and the authenticator app's code still signs in.
    b.webauthn(
        http::Method::DELETE,
        &format!("authenticator/{laptop}/credentials/{first}"),
        None,
    )
    .await;
    b.go("/customer/sign-in/code").await;
    let refused = b.passkey_refused("main form [data-passkey]").await;
    assert!(refused.contains("not used"), "{refused}");
    b.code(&mut phone, &server, "customer").await;

    // A second passkey, then the first deleted with the second as the proof.
    b.fill("#passkey-label", "Laptop again").await;
    b.fill("#passkey-proof", &phone.code(&server.clock)).await;
    b.submit("#add-passkey button[type=submit]").await;
    b.passkey("#passkey-register [data-passkey]").await;
    let table = b.text("#passkeys").await;
    assert!(table.contains("Laptop") && table.contains("Laptop again"), "{table}");
    assert_eq!(record().await.passkeys().len(), 2);
    let second = b
        .credentials(&laptop)
        .await
        .into_iter()
        .next()
        .expect("the new credential")
        .0;
    let old_id = record().await.passkeys()[0].id().0;
    assert_eq!(b.text("#passkeys tbody tr:nth-child(1) td").await, "Laptop");
    b.click("#passkeys tbody tr:nth-child(1) summary").await;
    b.passkey(&format!("#passkeys input[value='{old_id}'] ~ div [data-passkey]"))
        .await;
    assert!(
        b.main_text().await.contains("Authenticator deleted."),
        "{}",
        b.main_text().await
    );
    let left = record().await;
    assert_eq!(left.passkeys().len(), 1);
    assert_eq!(left.passkeys()[0].label(), "Laptop again");

    // The admin resets Alice: every factor goes, she sets up again, and the
    // old credential is refused.
    b.sign_out().await;
    let summary = server
        .app
        .portal
        .admin_reset(
            &portal_mfa::Admin::authorised("admin@acme.example"),
            &alice,
            portal_mfa::admin::ResetReason::LostDevice,
            portal_mfa::admin::ResetMode::ForceReenrolment,
        )
        .await
        .unwrap();
    assert_eq!((summary.authenticators_removed, summary.passkeys_removed), (1, 1));
    b.sign_in("customer", "alice@customer.example", &password).await;
    assert_eq!(b.path().await, "/customer/sign-in/enrol");
    assert!(b.main_text().await.contains("reset your two-factor authentication"));
    b.fill("#passkey-label", "New laptop passkey").await;
    b.submit("form#add-passkey button[type=submit]").await;
    b.passkey("#passkey-register [data-passkey]").await;
    assert_eq!(
        b.backup_codes().await.len(),
        10,
        "a first factor again: new backup codes"
    );
    b.click("#saved").await;
    b.submit("form[action='/customer/sign-in/finish'] button").await;
    assert_eq!(b.path().await, "/customer/account");
    b.sign_out().await;
    b.sign_in("customer", "alice@customer.example", &password).await;
    assert!(!b.has("#code").await, "no app now: the passkey or a backup code");
    // The page's challenge, answered by the credential the reset removed.
    b.client
        .execute(
            "var button = document.querySelector('main form [data-passkey]');
             var options = JSON.parse(button.getAttribute('data-options'));
             options.publicKey.allowCredentials = [{ type: 'public-key', id: arguments[0] }];
             button.setAttribute('data-options', JSON.stringify(options));",
            vec![serde_json::json!(second)],
        )
        .await
        .unwrap();
    b.passkey("main form [data-passkey]").await;
    let text = b.main_text().await;
    assert!(text.contains("not on your account"), "{text}");
    assert_eq!(b.path().await, "/customer/sign-in/code");
    b.passkey("main form [data-passkey]").await;
    assert_eq!(b.path().await, "/customer/account", "{}", b.main_text().await);
    assert!(b.text("#passkeys").await.contains("New laptop passkey"));
    assert!(!codes.is_empty());
    b.close().await;
}

/// The lost-device path in a real browser, JavaScript off: Vera, past her
/// password with neither her phone nor a backup code, asks from the code
/// page; the admin finds her under "Reset requested", approves with a fresh
/// code of their own; Vera signs in and sets up a new phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_request_from_the_code_page_to_an_admins_approval_and_a_new_phone() {
    let server = Server::start("browser-lost", 20).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(web_portal::serve(listener, server.router.clone()));
    let Some(mut b) = Browser::launch(base.clone(), "web-portal-screenshots-lost", false).await else {
        return;
    };
    let (_, admin_password) = server.account("admin@acme.example");
    let (_, vera_password) = server.account("vera@vendor.example");
    // Vera's phone, set up long ago (imported through the library); now lost.
    let vera = portal_mfa::UserId::vendor("vera@vendor.example");
    let lost_phone = portal_mfa::otp::Secret::from_bytes(&[42; 20], 128).unwrap();
    server
        .app
        .portal
        .import_authenticator(
            &portal_mfa::Admin::authorised("migration"),
            &vera,
            "Old phone",
            lost_phone,
            portal_mfa::otp::TotpParams::standard(),
        )
        .await
        .unwrap();

    // The admin enrols first (the console always enforces MFA), then signs out.
    b.sign_in("admin", "admin@acme.example", &admin_password).await;
    b.fill("#label-new", "Admin phone").await;
    b.submit("main button[type=submit]").await;
    let mut admin_phone = b.scan().await;
    b.fill("#code", &admin_phone.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    b.click("#saved").await;
    b.submit("form[action='/admin/sign-in/finish'] button").await;
    assert_eq!(b.path().await, "/admin/account");
    b.sign_out().await;

    // Vera: the password, then the way out on the code page.
    b.sign_in("vendor", "vera@vendor.example", &vera_password).await;
    assert_eq!(b.path().await, "/vendor/sign-in/code");
    b.submit("#lost").await;
    assert_eq!(b.path().await, "/vendor/sign-in/lost");
    b.shot("lost-form", &[]).await;
    b.fill(
        "#lost-note",
        "Phone stolen at the airport; my backup codes were in it. Ticket 5521.",
    )
    .await;
    b.submit("#lost-form button[type=submit]").await;
    assert!(b.text("#reset-requested").await.contains("You asked for a reset"));
    b.shot("lost-requested", &[]).await;
    assert!(server.app.portal.record(&vera).await.unwrap().reset_request().is_some());

    // The admin: Users, Reset requested, Vera's request, approved with a fresh code.
    b.go("/").await;
    b.sign_in("admin", "admin@acme.example", &admin_password).await;
    b.code(&mut admin_phone, &server, "admin").await;
    b.go("/admin/users?status=reset_requested").await;
    let users = b.text("#users").await;
    assert!(
        users.contains("vera@vendor.example") && users.contains("Reset requested"),
        "{users}"
    );
    b.shot("users-reset-requested", &[]).await;
    b.submit("#users a").await;
    assert!(b.text("#reset-request").await.contains("Phone stolen at the airport"));
    b.shot("reset-request", &[]).await;
    b.fill("#admin-code", &admin_phone.code(&server.clock)).await;
    b.submit("form[action='/admin/users/reset'] button[type=submit]").await;
    assert!(
        b.text("#reset-summary").await.contains("1 authenticators, 0 passkeys"),
        "{}",
        b.main_text().await
    );
    b.go("/admin/outbox").await;
    assert!(b.main_text().await.contains("you asked for it"));
    b.sign_out().await;

    // Vera signs in and sets up her new phone.
    b.sign_in("vendor", "vera@vendor.example", &vera_password).await;
    assert_eq!(b.path().await, "/vendor/sign-in/enrol");
    b.fill("#label-new", "New phone").await;
    b.submit("main button[type=submit]").await;
    let mut new_phone = b.scan().await;
    b.fill("#code", &new_phone.code(&server.clock)).await;
    b.submit("main form button[type=submit]").await;
    assert_eq!(b.backup_codes().await.len(), 10);
    b.click("#saved").await;
    b.submit("form[action='/vendor/sign-in/finish'] button").await;
    assert_eq!(b.path().await, "/vendor/account");
    assert!(b.text("#authenticators").await.contains("New phone"));
    b.shot("lost-new-phone", &[]).await;
    let record = server.app.portal.record(&vera).await.unwrap();
    assert!(record.reset_request().is_none() && record.authenticators().len() == 1);
    b.close().await;
}

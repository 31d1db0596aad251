//! What the HTTP and browser tests share: a portal server on a temporary
//! SQLite file with a clock the test moves, and a phone that computes codes
//! with portal-mfa's own engine from the key the page shows.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use portal_mfa::{
    Clock, Keyring, ManualClock,
    otp::{Secret, Totp, TotpParams},
};
use web_portal::accounts::{Accounts, Area, DemoAccount};
use web_portal::store::Database;
use web_portal::{Config, Shared};

pub mod agent;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("web-portal-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running app: its router, state, clock, demo accounts and log lines.
pub struct Server {
    pub router: axum::Router,
    pub app: Shared,
    pub clock: ManualClock,
    pub demo: Vec<DemoAccount>,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The sealing key, for another instance on the same database.
    pub key: Vec<u8>,
    pub _dir: TempDir,
}

impl Server {
    /// A fresh portal on its own SQLite file, the clock at the real time.
    pub async fn start(name: &str, page_size: usize) -> Server {
        Self::start_with(name, page_size, |_| {}).await
    }

    /// The same, with `adjust` applied to the configuration.
    pub async fn start_with(name: &str, page_size: usize, adjust: impl FnOnce(&mut Config)) -> Server {
        let dir = TempDir::new(name);
        let clock = ManualClock::at(now());
        let log = Arc::new(Mutex::new(Vec::new()));
        let key = Keyring::generate_key(&mut rand::rng());
        let mut config = Config::new(
            Database::Sqlite(dir.0.join("mfa.sqlite3")),
            Keyring::new("test-1", key.as_slice()).expect("keyring"),
        );
        config.clock = Arc::new(clock.clone());
        config.page_size = page_size;
        // Plain HTTP on loopback: the tests that check `Secure` cookies turn it back on.
        config.secure_cookies = false;
        let lines = log.clone();
        config.log = Arc::new(move |line| lines.lock().unwrap().push(line.to_owned()));
        // A busy test machine waits for a hash slot; the flood tests set a short wait.
        config.hash_wait = std::time::Duration::from_secs(120);
        adjust(&mut config);
        let (accounts, demo) = Accounts::seed();
        let (router, app) = web_portal::build(config, accounts).await.expect("the app starts");
        Server {
            router,
            app,
            clock,
            demo,
            log,
            key: key.to_vec(),
            _dir: dir,
        }
    }

    /// Another app instance on the same database and key (a restart, or a
    /// second instance behind a load balancer), with the same demo directory.
    pub async fn another_instance(&self) -> axum::Router {
        let mut config = Config::new(
            Database::Sqlite(self._dir.0.join("mfa.sqlite3")),
            Keyring::new("test-1", &self.key).expect("keyring"),
        );
        config.clock = Arc::new(self.clock.clone());
        config.secure_cookies = false;
        let (accounts, _) = Accounts::seed();
        web_portal::build(config, accounts).await.expect("the app starts").0
    }

    /// The demo account with this email.
    pub fn account(&self, email: &str) -> (Area, String) {
        let demo = self.demo.iter().find(|d| d.email == email).expect("a demo account");
        (demo.area, demo.password.to_string())
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An authenticator app: the key typed from the page, and the last time
/// step it showed a code for, so each code is a fresh step.
pub struct Phone {
    totp: Totp,
    pub key: String,
    last_step: Option<u64>,
}

impl Phone {
    /// The app after typing the page's grouped key.
    pub fn typed(key: &str) -> Phone {
        let secret = Secret::from_base32(key).expect("the page shows a valid key");
        Phone {
            totp: Totp::new(&secret, TotpParams::default()),
            key: key.to_owned(),
            last_step: None,
        }
    }

    /// A code for a step not used before: the current step, or the next one
    /// where the current one was spent or shows the digits of the step before
    /// (moving the clock on when that is beyond the one step ahead the portal accepts).
    pub fn code(&mut self, clock: &ManualClock) -> String {
        let current = clock.now() / 30;
        let mut step = match self.last_step {
            Some(last) if last >= current => last + 1,
            _ => current,
        };
        // The same digits as the step before: a person waits for the next
        // code, since the portal would refuse the repeat as already used.
        while self.totp.generate_at_step(step).expose() == self.totp.generate_at_step(step - 1).expose() {
            step += 1;
        }
        if step > current + 1 {
            clock.advance((step - current - 1) * 30);
        }
        self.last_step = Some(step);
        self.totp.generate_at_step(step).expose().to_string()
    }

    /// The code of the step last used (a replay).
    pub fn last_code(&self) -> String {
        let step = self.last_step.expect("a code was made");
        self.totp.generate_at_step(step).expose().to_string()
    }

    /// A six-digit code that is none of this key's codes around now.
    pub fn wrong_code(&self, clock: &ManualClock) -> String {
        let step = clock.now() / 30;
        let near: Vec<String> = (step.saturating_sub(2)..=step + 2)
            .map(|s| self.totp.generate_at_step(s).expose().to_string())
            .collect();
        (0..1000)
            .map(|n| format!("{:06}", 123_456 + n))
            .find(|c| !near.contains(c))
            .expect("a wrong code")
    }
}

/// The text between `start` and the next `end` after it in `html`.
pub fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = html.find(start)? + start.len();
    let len = html.get(from..)?.find(end)?;
    html.get(from..from + len)
}

/// Today's date (UTC) as the pages show it.
pub fn today() -> String {
    web_portal::views::day(now())
}

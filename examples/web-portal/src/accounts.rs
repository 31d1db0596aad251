//! The host's own user directory: who may sign in where, with which
//! password. MFA is portal-mfa's job; passwords are the host's, and here
//! they are argon2id hashes (PHC strings), checked off the async runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use portal_mfa::{UserId, UserKind};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::limits::Gauge;

/// Which portal a person signs in to. Customers and vendors share one MFA
/// setting (one `portal_mfa::Portal`); the admin console has its own,
/// always enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// The customer portal.
    Customer,
    /// The vendor portal.
    Vendor,
    /// The admin console.
    Admin,
}

impl Area {
    /// Every area, in the order the start page lists them.
    pub const ALL: [Area; 3] = [Area::Customer, Area::Vendor, Area::Admin];

    /// The first path segment of the area's pages.
    pub fn segment(self) -> &'static str {
        match self {
            Area::Customer => "customer",
            Area::Vendor => "vendor",
            Area::Admin => "admin",
        }
    }

    /// The area named by a path segment.
    pub fn from_segment(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.segment() == segment)
    }

    /// What the pages call it.
    pub fn title(self) -> &'static str {
        match self {
            Area::Customer => "Customer Portal",
            Area::Vendor => "Vendor Portal",
            Area::Admin => "Admin Console",
        }
    }

    /// The MFA user for `email` in this area.
    pub fn user(self, email: &str) -> UserId {
        let kind = match self {
            Area::Customer => UserKind::Customer,
            Area::Vendor => UserKind::Vendor,
            Area::Admin => UserKind::Member,
        };
        UserId::new(kind, email)
    }
}

/// One person who can sign in.
#[derive(Debug, Clone)]
pub struct Account {
    /// Their email, lower-case: also their MFA user id.
    pub email: String,
    /// Their display name.
    pub name: String,
    /// Where they sign in.
    pub area: Area,
    password_hash: String,
}

/// A seeded account with its password, to print at start.
#[derive(Clone)]
pub struct DemoAccount {
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Where they sign in.
    pub area: Area,
    /// The password in clear, generated at start.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for DemoAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoAccount")
            .field("email", &self.email)
            .field("area", &self.area)
            .finish_non_exhaustive()
    }
}

/// The directory: accounts by email.
#[derive(Debug)]
pub struct Accounts {
    // Behind a lock: a user may change their password.
    by_email: std::sync::RwLock<HashMap<String, Account>>,
    // Checked for unknown emails, so a wrong email costs what a wrong password does.
    decoy_hash: String,
    /// Passwords hashed so far (argon2 runs), for tests of the limits.
    pub checks: std::sync::atomic::AtomicU64,
    /// Hashes allowed to run at once: each holds about 19 MiB while it runs.
    hashing: Arc<tokio::sync::Semaphore>,
    /// How long a password waits for a free hash before the answer is "busy".
    hash_wait: Duration,
    /// Hashes running now, and the most at once.
    pub hashes: Arc<Gauge>,
}

/// Every hash slot stayed taken for the whole wait: answer 503, try again soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

const DEMO: [(&str, &str, Area); 6] = [
    ("alice@customer.example", "Alice Archer", Area::Customer),
    ("carol@customer.example", "Carol Chen", Area::Customer),
    ("dan@customer.example", "Dan Diaz", Area::Customer),
    ("victor@vendor.example", "Victor Vance", Area::Vendor),
    ("vera@vendor.example", "Vera Vogel", Area::Vendor),
    ("admin@acme.example", "Ada Admin", Area::Admin),
];

impl Accounts {
    /// The demo directory, each account with a fresh random password.
    pub fn seed() -> (Self, Vec<DemoAccount>) {
        let demo: Vec<DemoAccount> = DEMO
            .iter()
            .map(|(email, name, area)| DemoAccount {
                email: (*email).to_owned(),
                name: (*name).to_owned(),
                area: *area,
                password: random_password(),
            })
            .collect();
        let by_email = demo
            .iter()
            .map(|d| {
                let account = Account {
                    email: d.email.clone(),
                    name: d.name.clone(),
                    area: d.area,
                    password_hash: hash(&d.password),
                };
                (d.email.clone(), account)
            })
            .collect();
        let accounts = Accounts {
            by_email: std::sync::RwLock::new(by_email),
            decoy_hash: hash(&random_password()),
            checks: Default::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(default_hash_slots())),
            hash_wait: Duration::from_secs(2),
            hashes: Arc::default(),
        };
        (accounts, demo)
    }

    /// The account for `email` in `area`, if any.
    pub fn get(&self, area: Area, email: &str) -> Option<Account> {
        let by_email = self.by_email.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        by_email.get(&normalise(email)).filter(|a| a.area == area).cloned()
    }

    /// At most `slots` password hashes run at once (at least one); a password
    /// waits at most `wait` for a free one, then the answer is [`Busy`].
    pub fn limit_hashing(mut self, slots: usize, wait: Duration) -> Self {
        self.hashing = Arc::new(tokio::sync::Semaphore::new(slots.max(1)));
        self.hash_wait = wait;
        self
    }

    /// Runs `work` (an argon2 hash) on a blocking thread once a hash slot is
    /// free, holding the slot until the hash ends, even if the request that
    /// asked for it is gone: memory is bounded by the slots, whatever is sent.
    async fn hashed<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let permit = tokio::time::timeout(self.hash_wait, self.hashing.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let gauge = self.hashes.clone();
        tokio::task::spawn_blocking(move || {
            let counted = gauge.enter();
            let answer = work();
            // Counted out before the slot is free for the next hash.
            drop(counted);
            drop(permit);
            answer
        })
        .await
        .map_err(|_| Busy)
    }

    /// Hashes a new password (argon2id), to be stored with [`Accounts::store_password`].
    pub async fn hash_password(&self, password: &str) -> Result<String, Busy> {
        let password = Zeroizing::new(password.to_owned());
        self.hashed(move || hash(&password)).await
    }

    /// Keeps `hashed` as `account`'s password from now on.
    pub fn store_password(&self, account: &Account, hashed: String) {
        let mut by_email = self.by_email.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(stored) = by_email.get_mut(&account.email) {
            stored.password_hash = hashed;
        }
    }

    /// The account if `password` is its password (argon2id, constant time),
    /// or [`Busy`] when no hash slot came free in time. Runs the hash on a
    /// blocking thread: it takes tens of milliseconds.
    pub async fn check(&self, area: Area, email: &str, password: &str) -> Result<Option<Account>, Busy> {
        let account = self.get(area, email);
        let hash = account
            .as_ref()
            .map_or_else(|| self.decoy_hash.clone(), |a| a.password_hash.clone());
        let password = Zeroizing::new(password.to_owned());
        let checks = &self.checks;
        let matches = self
            .hashed(move || {
                PasswordHash::new(&hash)
                    .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            })
            .await?;
        checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(account.filter(|_| matches))
    }
}

/// One hash slot per core (at most 8): argon2 is CPU-bound, so more at once
/// would only hold more memory and finish no sooner.
pub fn default_hash_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// Emails compare without case or surrounding space.
pub fn normalise(email: &str) -> String {
    email.trim().to_lowercase()
}

fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Four groups of four from 31 characters without look-alikes: about 79 bits.
fn random_password() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let mut out = Zeroizing::new(String::with_capacity(19));
    for group in 0..4 {
        if group > 0 {
            out.push('-');
        }
        for _ in 0..4 {
            out.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
        }
    }
    out
}

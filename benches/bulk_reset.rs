//! A bulk Reset MFA over a million users on SQLite, and sign-ins during it.
//!
//! Not a criterion group: the sweep is one long run, timed once. It imports
//! `PORTAL_MFA_BENCH_USERS` users (default 1 000 000; 1 % vendors, the rest
//! customers) into a fresh SQLite file, then resets every customer in
//! batches of 500 while another app instance (its own connection) signs a
//! vendor in every 2 ms. It
//! prints the sweep's time and rate and the sign-in latencies (median, p99,
//! max) before and during the sweep. Measured, not asserted.
//!
//! `cargo bench --bench bulk_reset`; `PORTAL_MFA_BENCH_BATCH` and
//! `PORTAL_MFA_BENCH_PAUSE_MS` set the batch size (500) and a pause between
//! batches (0 ms), which is what lets the other instance's writes in: SQLite
//! has one writer, and a connection that finds it busy backs off in sleeps
//! of growing length.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portal_mfa::admin::{BulkReset, ResetSelection};
use portal_mfa::otp::{Secret, Totp, TotpParams};
use portal_mfa::store::SqliteStore;
use portal_mfa::{Admin, Keyring, ManualClock, Portal, PortalId, UserId, UserKind};

const T0: u64 = 1_763_800_000;

fn secret_of(i: u32) -> [u8; 20] {
    let mut key = [0x5a; 20];
    key[..4].copy_from_slice(&i.to_be_bytes());
    key
}

fn user(i: u32, vendors_every: u32) -> UserId {
    if i.is_multiple_of(vendors_every) {
        UserId::new(UserKind::Vendor, format!("v{i:07}"))
    } else {
        UserId::new(UserKind::Customer, format!("c{i:07}"))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{what}: {} sign-ins, median {:.1} µs, p99 {:.1} µs, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that is not ours means another bench was asked for.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && !"bulk_reset".contains(a.as_str()))
    {
        return;
    }
    let setting =
        |name: &str, default: u64| -> u64 { std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default) };
    let users = setting("PORTAL_MFA_BENCH_USERS", 1_000_000) as u32;
    // Users per batch, and a pause between batches that lets other writers in.
    let batch = setting("PORTAL_MFA_BENCH_BATCH", 500) as usize;
    let pause = Duration::from_millis(setting("PORTAL_MFA_BENCH_PAUSE_MS", 0));
    let vendors_every = 100;
    let dir = std::env::temp_dir().join(format!("portal-mfa-bulk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("mfa.sqlite3")).unwrap();
    let clock = ManualClock::at(T0);
    let portal = Portal::new(PortalId::new("acme"), "Acme", store)
        .unwrap()
        .with_keyring(Keyring::new("k1", &[7; 32]).unwrap())
        .with_clock(clock.clone());
    let admin = Admin::authorised("bench");
    let started = Instant::now();
    for i in 0..users {
        let secret = Secret::from_bytes(&secret_of(i), 128).unwrap();
        portal
            .import_authenticator(&admin, &user(i, vendors_every), "phone", secret, TotpParams::standard())
            .run()
            .unwrap();
    }
    println!(
        "setup: {users} users imported in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    clock.set(T0 + 60);
    // The sign-ins come from another app instance: its own connection to the file, its own clock,
    // which moves on a step each time every vendor has signed in once.
    let signer_clock = ManualClock::at(T0 + 60);
    let signer = Portal::new(
        PortalId::new("acme"),
        "Acme",
        SqliteStore::open(dir.join("mfa.sqlite3")).unwrap(),
    )
    .unwrap()
    .with_keyring(Keyring::new("k1", &[7; 32]).unwrap())
    .with_clock(signer_clock.clone());
    let vendors: Vec<u32> = (0..users).filter(|i| i.is_multiple_of(vendors_every)).collect();
    let sign_in = |n: usize| {
        let i = vendors[n % vendors.len()];
        let at = T0 + 60 + 30 * (n / vendors.len()) as u64;
        signer_clock.set(at);
        let totp = Totp::new(&Secret::from_bytes(&secret_of(i), 128).unwrap(), TotpParams::standard());
        let code = totp.generate(at).unwrap().expose().to_string();
        let started = Instant::now();
        signer.verify_sign_in(&user(i, vendors_every), &code).run().unwrap();
        started.elapsed()
    };
    // Before: the first 500 vendors, paced as during the sweep.
    let before: Vec<Duration> = (0..500)
        .map(|n| {
            std::thread::sleep(Duration::from_millis(2));
            sign_in(n)
        })
        .collect();
    let plan = BulkReset::new(
        "BENCH-1",
        "bench",
        T0 + 1,
        ResetSelection::everyone().kind(UserKind::Customer),
    )
    .unwrap();
    let done = AtomicBool::new(false);
    let (during, (reset, took)) = std::thread::scope(|s| {
        let signer = s.spawn(|| {
            let mut latencies = Vec::new();
            for n in 500.. {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
                latencies.push(sign_in(n));
            }
            latencies
        });
        let started = Instant::now();
        let (mut after, mut reset) = (None, 0);
        loop {
            let progress = portal.bulk_reset(&admin, &plan, after.as_ref(), batch).run().unwrap();
            assert!(progress.failed.is_empty());
            reset += progress.reset;
            after = progress.next;
            if after.is_none() {
                break;
            }
            std::thread::sleep(pause);
        }
        let took = started.elapsed();
        done.store(true, Ordering::Relaxed);
        (signer.join().unwrap(), (reset, took))
    });
    println!(
        "sweep: {reset} customers reset in {:.1} s ({:.0} users/s, batches of {batch}, {} ms between)",
        took.as_secs_f64(),
        reset as f64 / took.as_secs_f64(),
        pause.as_millis()
    );
    report("sign-ins before the sweep", before);
    report("sign-ins during the sweep", during);
    let _ = std::fs::remove_dir_all(&dir);
}

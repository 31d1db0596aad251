//! What a session costs past the code check, on SQLite (a file on disk, WAL),
//! in one run so the ratios hold on a noisy machine.
//!
//! Group `sessions_sqlite`, over 1 000 enrolled users, each with one trusted
//! browser, a random user each iteration:
//! - `begin_sign_in`: the step after the password, for a browser with no token;
//! - `begin_sign_in_trusted_browser`: the same for a browser presenting its
//!   token: the token is checked, its last use recorded and an audit event
//!   written, in one committed transaction;
//! - `check_session`: a session's stamp checked, as a host does on every request.
//!
//! Group `reads_sqlite`, on the same file, three app instances (a store each):
//! - `begin_sign_in_2_threads`: two instances answer `begin_sign_in` for
//!   random users; the time is per answer, so reads per second = 1 / time;
//! - `begin_sign_in_2_threads_beside_a_writer`: the same while a third
//!   instance signs users in with codes (a write each) as fast as it can: a
//!   read never waits for the writer's lock, so the two figures should be close.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portal_mfa::{
    Clock, EnrolmentOptions, Keyring, ManualClock, Portal, PortalId, SessionStamp, SignInStep, UserId, otp::Totp,
    store::SqliteStore,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const T0: u64 = 1_763_800_000;
const USERS: usize = 1_000;

/// A user with the stamp of their sign-in, their browser's token and their phone.
struct Signed {
    user: UserId,
    stamp: SessionStamp,
    token: String,
    phone: Totp,
}

fn sessions(c: &mut Criterion) {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-sessions");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let clock = ManualClock::at(T0);
    let portal = Portal::new(
        PortalId::new("bench"),
        "Bench",
        SqliteStore::open(dir.join("sessions.db")).expect("open"),
    )
    .expect("portal")
    .with_keyring(Keyring::new("bench", &[9; 32]).expect("keyring"))
    .with_clock(clock.clone())
    .with_rng(StdRng::seed_from_u64(7));
    let admin = portal_mfa::Admin::authorised("bench");
    portal
        .update_policy(&admin, |p| p.with_trusted_browser_days(180))
        .run()
        .expect("policy");
    let users: Vec<Signed> = (0..USERS)
        .map(|i| {
            let user = UserId::customer(format!("customer-{i:04}"));
            let session = portal
                .begin_sign_in(&user)
                .run()
                .expect("password step")
                .session()
                .expect("a stamp");
            let started = portal
                .start_enrolment(
                    &user,
                    &session,
                    "user@example.com",
                    "phone",
                    EnrolmentOptions::default(),
                )
                .run()
                .expect("start");
            let phone = Totp::new(started.uri.secret(), *started.uri.params());
            let code = phone.generate(T0).expect("code").expose().to_string();
            let stamp = portal
                .confirm_enrolment(&user, &session, &code)
                .run()
                .expect("confirm")
                .session;
            let token = portal.trust_browser(&user, &stamp, "bench").run().expect("trust").token;
            Signed {
                user,
                stamp,
                token: token.expose().to_owned(),
                phone,
            }
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(11);
    let mut group = c.benchmark_group("sessions_sqlite");
    group.sample_size(60).measurement_time(Duration::from_secs(6));
    group.bench_function("begin_sign_in", |b| {
        b.iter(|| {
            let s = &users[rng.random_range(0..USERS)];
            let step = portal.begin_sign_in(&s.user).run().expect("step");
            assert!(matches!(step, SignInStep::EnterCode { .. }));
            black_box(step)
        })
    });
    group.bench_function("begin_sign_in_trusted_browser", |b| {
        b.iter(|| {
            let s = &users[rng.random_range(0..USERS)];
            let step = portal
                .begin_sign_in_with_browser(&s.user, &s.token)
                .run()
                .expect("step");
            assert!(matches!(step, SignInStep::TrustedBrowser { .. }));
            black_box(step)
        })
    });
    group.bench_function("check_session", |b| {
        b.iter(|| {
            let s = &users[rng.random_range(0..USERS)];
            portal.check_session(&s.user, &s.stamp).run().expect("a good session");
        })
    });
    group.finish();
    drop(portal);
    reads_beside_a_writer(c, &dir.join("sessions.db"), &users);
}

/// An app instance on `path`: its own store (its own connection), its own clock at `at`.
fn instance(path: &std::path::Path, at: u64) -> (Portal<SqliteStore, ManualClock>, ManualClock) {
    let clock = ManualClock::at(at);
    let portal = Portal::new(PortalId::new("bench"), "Bench", SqliteStore::open(path).expect("open"))
        .expect("portal")
        .with_keyring(Keyring::new("bench", &[9; 32]).expect("keyring"))
        .with_clock(clock.clone());
    (portal, clock)
}

fn reads_beside_a_writer(c: &mut Criterion, path: &std::path::Path, users: &[Signed]) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let readers = [instance(path, T0 + 30).0, instance(path, T0 + 30).0];
    let (writer, writer_clock) = instance(path, T0 + 30);
    // Two readers answer `iters` sign-in steps between them; the writer, if any, writes until they are done.
    let run = |iters: u64, with_writer: bool| {
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            if with_writer {
                s.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        // One pass signs every user in at this step; the next pass, the next step.
                        writer_clock.advance(30);
                        for u in users {
                            if done.load(Ordering::Relaxed) {
                                break;
                            }
                            let code = u.phone.generate(writer_clock.now()).expect("code");
                            let _ = writer.verify_sign_in(&u.user, &code.expose()).run();
                        }
                    }
                });
            }
            let start = std::time::Instant::now();
            let reading: Vec<_> = readers
                .iter()
                .enumerate()
                .map(|(r, portal)| {
                    s.spawn(move || {
                        let mut rng = StdRng::seed_from_u64(r as u64);
                        for _ in 0..iters.div_ceil(2) {
                            let u = &users[rng.random_range(0..users.len())];
                            black_box(portal.begin_sign_in(&u.user).run().expect("a read answers"));
                        }
                    })
                })
                .collect();
            reading.into_iter().for_each(|t| t.join().expect("reader"));
            let elapsed = start.elapsed();
            done.store(true, Ordering::Relaxed);
            elapsed
        })
    };
    let mut group = c.benchmark_group("reads_sqlite");
    group.sample_size(30).measurement_time(Duration::from_secs(6));
    group.bench_function("begin_sign_in_2_threads", |b| b.iter_custom(|iters| run(iters, false)));
    group.bench_function("begin_sign_in_2_threads_beside_a_writer", |b| {
        b.iter_custom(|iters| run(iters, true))
    });
    group.finish();
}

criterion_group!(benches, sessions);
criterion_main!(benches);

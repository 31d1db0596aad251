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

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portal_mfa::{
    EnrolmentOptions, Keyring, ManualClock, Portal, PortalId, SessionStamp, SignInStep, UserId, otp::Totp,
    store::SqliteStore,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const T0: u64 = 1_763_800_000;
const USERS: usize = 1_000;

/// A user with the stamp of their sign-in and their browser's token.
struct Signed {
    user: UserId,
    stamp: SessionStamp,
    token: String,
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
}

criterion_group!(benches, sessions);
criterion_main!(benches);

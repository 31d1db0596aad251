//! A sign-in verification through the driver and a store, next to the raw
//! engine verify, in one run so the ratios hold on a noisy machine.
//!
//! Group `signin_verify`:
//! - `raw_engine_verify`: `Totp::verify_str`, the floor the driver builds on;
//! - `driver_memory_1k` / `driver_memory_1m`: `Portal::verify_sign_in(..).run()`
//!   (the blocking executor) on the in-memory store holding 1 000 / 1 000 000
//!   enrolled users, a random user each time, every code a fresh step (a
//!   successful sign-in each iteration);
//! - `driver_memory_1k_async`: the same operation through the async executor
//!   (`.await`), polled by `pollster` as a runtime would poll it;
//! - `driver_memory_1k_one_user`: the blocking driver signing in one of those
//!   users over and over, its record always in cache: what is left is the
//!   driver's own work and the store's audit trail;
//! - `driver_memory_1m_hot1k`: the million-user store, sign-ins spread over
//!   1 000 of them;
//! - `driver_sqlite_1k`: the same through `SqliteStore` on a file on disk (WAL),
//!   each sign-in one committed transaction with its audit event;
//! - `sqlite_minimal_tx`: a hand-written transaction on a file with the same
//!   pragmas, `BEGIN IMMEDIATE`, a SELECT by key, an UPDATE of one row and an
//!   INSERT of one event, over 1 000 rows of the same size: the SQL alone;
//! - `hand_memory_1k` / `hand_sqlite_1k`: the floor for the driver, the same
//!   work done by hand on the same byte store: load, decode and open, the pure
//!   `verify` transition, seal and encode, and a compare-and-swap commit with
//!   its event. `driver_*_1k` against `hand_*_1k` is what the driver costs.
//!
//! The memory each enrolled user costs (RSS growth while enrolling them, each
//! with an authenticator and 10 backup codes) is printed before the group runs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::future::IntoFuture;

use portal_mfa::store::{AsyncStore, BlockingStore};
use portal_mfa::{
    EnrolmentOptions, Keyring, ManualClock, Portal, PortalId, SignInVerified, UserId,
    otp::{Secret, Totp, TotpParams, Window},
    store::MemoryStore,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const T0: u64 = 1_763_800_000;

type BenchPortal<S> = Portal<S, ManualClock, StdRng>;

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// `users` users enrolled through the driver (start + confirm), each with its own secret.
/// Returns the portal and every user's verifier.
fn populated<S: BlockingStore>(store: S, users: usize, clock: &ManualClock) -> (BenchPortal<S>, Vec<(UserId, Totp)>) {
    let keyring = Keyring::new("bench", &[9; 32]).expect("keyring");
    let portal = Portal::new(PortalId::new("bench"), "Bench Portal", store)
        .expect("portal")
        .with_keyring(keyring)
        .with_clock(clock.clone())
        .with_rng(StdRng::seed_from_u64(7));
    let mut enrolled = Vec::with_capacity(users);
    for i in 0..users {
        let user = UserId::customer(format!("customer-{i:07}"));
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
        let totp = Totp::new(started.uri.secret(), *started.uri.params());
        let code = totp.generate(T0).expect("code").expose().to_string();
        portal.confirm_enrolment(&user, &session, &code).run().expect("confirm");
        enrolled.push((user, totp));
    }
    (portal, enrolled)
}

/// RSS growth per user while a store fills with enrolled users; the harness keeps nothing.
fn report_memory_per_user(users: usize) {
    let clock = ManualClock::at(T0);
    let store = Arc::new(MemoryStore::keeping_events(10_000));
    let before = resident_bytes();
    let (portal, kept) = populated(store.clone(), users, &clock);
    drop(kept);
    let after = resident_bytes();
    if let (Some(before), Some(after)) = (before, after) {
        let per_user = after.saturating_sub(before) / users as u64;
        eprintln!(
            "memory per enrolled user (in-memory store, {users} users, 1 authenticator + 10 backup codes): {per_user} bytes"
        );
    }
    drop(portal);
}

/// The next sign-in of a benchmark: a random user, the time one step on (so
/// every user's next code is fresh), and that user's code then.
fn next_sign_in(rng: &mut StdRng, time: &mut u64, users: &[(UserId, Totp)]) -> (UserId, u64, String) {
    *time += 30;
    let (user, totp) = &users[rng.random_range(0..users.len())];
    let code_at = |t: u64| totp.generate(t).expect("code").expose().to_string();
    // Where the app shows the previous step's digits again, a person waits for the
    // next code: the portal would refuse the repeat as already used.
    while code_at(*time) == code_at(*time - 30) {
        *time += 30;
    }
    // As a server would: the id arrives with the request, not shared with the store.
    (UserId::new(user.kind(), user.id()), *time, code_at(*time))
}

/// A sign-in on one executor.
type Execute<S> = fn(&BenchPortal<S>, &UserId, &str) -> portal_mfa::Result<SignInVerified>;

fn blocking<S: BlockingStore>(
    portal: &BenchPortal<S>,
    user: &UserId,
    code: &str,
) -> portal_mfa::Result<SignInVerified> {
    portal.verify_sign_in(user, code).run()
}

fn awaited<S: AsyncStore>(portal: &BenchPortal<S>, user: &UserId, code: &str) -> portal_mfa::Result<SignInVerified> {
    pollster::block_on(portal.verify_sign_in(user, code).into_future())
}

fn bench_driver<S>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    portal: &BenchPortal<S>,
    clock: &ManualClock,
    users: &[(UserId, Totp)],
    execute: Execute<S>,
) {
    let mut rng = StdRng::seed_from_u64(11);
    // Carry on from the clock: a store benchmarked before has used the earlier steps.
    let mut time = portal_mfa::Clock::now(clock);
    g.bench_function(name, |b| {
        // By reference: the request's id and code are freed outside the timed part, as the
        // raw verify next to it frees nothing either.
        b.iter_batched_ref(
            || next_sign_in(&mut rng, &mut time, users),
            |(user, now, code)| {
                clock.set(*now);
                execute(portal, user, black_box(code)).expect("a fresh code signs in")
            },
            BatchSize::SmallInput,
        )
    });
}

fn signin(c: &mut Criterion) {
    let secret = Secret::generate(&mut StdRng::seed_from_u64(3));
    let raw = Totp::new(&secret, TotpParams::standard());
    let raw_code = raw.generate(T0).expect("code").expose().to_string();

    let clock_small = ManualClock::at(T0);
    let (small, small_users) = populated(Arc::new(MemoryStore::keeping_events(10_000)), 1_000, &clock_small);

    report_memory_per_user(200_000);
    let clock_large = ManualClock::at(T0);
    let (large, large_users) = populated(Arc::new(MemoryStore::keeping_events(10_000)), 1_000_000, &clock_large);

    let mut g = c.benchmark_group("signin_verify");
    g.bench_function("raw_engine_verify", |b| {
        b.iter(|| raw.verify_str(black_box(&raw_code), black_box(T0), Window::default()))
    });
    bench_driver(&mut g, "driver_memory_1k", &small, &clock_small, &small_users, blocking);
    // Its floor next to it, in the same conditions (the million-user store is in memory for both).
    bench_hand(&mut g, "hand_memory_1k", &**small.store(), &clock_small, &small_users);
    bench_driver(
        &mut g,
        "driver_memory_1k_async",
        &small,
        &clock_small,
        &small_users,
        awaited,
    );
    bench_driver(
        &mut g,
        "driver_memory_1k_one_user",
        &small,
        &clock_small,
        &small_users[..1],
        blocking,
    );
    bench_driver(&mut g, "driver_memory_1m", &large, &clock_large, &large_users, blocking);
    // The same million users, sign-ins spread over 1 000 of them (a working set that stays
    // in cache): separates the store's algorithmic cost from DRAM latency.
    bench_driver(
        &mut g,
        "driver_memory_1m_hot1k",
        &large,
        &clock_large,
        &large_users[..1_000],
        blocking,
    );
    drop((large, large_users));

    let dir = std::env::temp_dir().join(format!("portal-mfa-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sqlite = portal_mfa::store::SqliteStore::open(dir.join("bench.db")).expect("open SQLite");
    let clock_sqlite = ManualClock::at(T0);
    let (on_disk, disk_users) = populated(sqlite, 1_000, &clock_sqlite);
    bench_driver(
        &mut g,
        "driver_sqlite_1k",
        &on_disk,
        &clock_sqlite,
        &disk_users,
        blocking,
    );
    bench_minimal_transaction(&mut g, &dir);
    bench_hand(&mut g, "hand_sqlite_1k", on_disk.store(), &clock_sqlite, &disk_users);
    g.finish();
    drop(on_disk);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sign-in done by hand on `store`, the driver's work without the driver:
/// load, decode and open, verify, seal and encode, commit.
fn bench_hand<S: portal_mfa::store::MfaStore>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    store: &S,
    clock: &ManualClock,
    users: &[(UserId, Totp)],
) {
    use portal_mfa::core::Context;
    use portal_mfa::record::MfaRecord;
    use portal_mfa::store::{RecordSummary, RecordWrite, StoredEvent};
    let keyring = Keyring::new("bench", &[9; 32]).expect("keyring");
    let (portal, policy, actor) = (
        PortalId::new("bench"),
        portal_mfa::PortalPolicy::default(),
        portal_mfa::audit::Actor::User,
    );
    let mut rng = StdRng::seed_from_u64(13);
    let mut seal_rng = StdRng::seed_from_u64(17);
    let mut time = portal_mfa::Clock::now(clock);
    g.bench_function(name, |b| {
        b.iter_batched_ref(
            || {
                let next = next_sign_in(&mut rng, &mut time, users);
                clock.set(next.1);
                next
            },
            |(user, now, code)| {
                let stored = store.load(&portal, user).expect("load").expect("a record");
                let record = MfaRecord::decode(&stored.bytes, &portal, user, &keyring).expect("decode");
                let ctx = Context::new(&portal, user, &policy, *now, &actor, &keyring);
                let outcome = record.verify(&ctx, black_box(code));
                let verified = outcome.result.expect("a fresh code signs in");
                let bytes = outcome
                    .record
                    .encode(&portal, user, &keyring, &mut seal_rng)
                    .expect("encode");
                let events = outcome.events.iter().map(StoredEvent::of).collect();
                let write = RecordWrite::new(bytes, RecordSummary::of(&outcome.record), events);
                store
                    .commit(&portal, user, Some(stored.version), &write)
                    .expect("commit");
                verified
            },
            BatchSize::SmallInput,
        )
    });
}

/// The hand-written floor for a SQLite sign-in: the same pragmas as `SqliteStore`,
/// one row per user with a record-sized blob, one event row per sign-in.
fn bench_minimal_transaction(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    dir: &std::path::Path,
) {
    let conn = rusqlite::Connection::open(dir.join("minimal.db")).expect("open");
    conn.pragma_update(None, "page_size", 2048).expect("pragma");
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())).expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL").expect("pragma");
    conn.pragma_update(None, "wal_autocheckpoint", 10_000).expect("pragma");
    conn.execute_batch(
        "CREATE TABLE records (portal TEXT, user_id TEXT, version INTEGER, record BLOB, PRIMARY KEY (portal, user_id)) WITHOUT ROWID;
         CREATE TABLE events (seq INTEGER PRIMARY KEY, portal TEXT, user_id TEXT, at INTEGER, event BLOB);",
    )
    .expect("schema");
    let mut rng = StdRng::seed_from_u64(5);
    let blob: Vec<u8> = (0..330).map(|_| rng.random()).collect();
    for i in 0..1_000 {
        conn.execute(
            "INSERT INTO records VALUES ('bench', ?1, 1, ?2)",
            rusqlite::params![format!("customer-{i:07}"), blob],
        )
        .expect("insert");
    }
    let event = vec![7u8; 60];
    let mut time = T0;
    g.bench_function("sqlite_minimal_tx", |b| {
        b.iter_batched_ref(
            || {
                time += 30;
                (format!("customer-{:07}", rng.random_range(0..1_000)), time)
            },
            |(user, now)| {
                conn.prepare_cached("BEGIN IMMEDIATE")
                    .and_then(|mut s| s.execute([]))
                    .expect("begin");
                let (version, record): (i64, Vec<u8>) = conn
                    .prepare_cached("SELECT version, record FROM records WHERE portal = 'bench' AND user_id = ?1")
                    .and_then(|mut s| s.query_row([&*user], |r| Ok((r.get(0)?, r.get(1)?))))
                    .expect("select");
                conn.prepare_cached(
                    "UPDATE records SET version = ?2, record = ?3 WHERE portal = 'bench' AND user_id = ?1",
                )
                .and_then(|mut s| s.execute(rusqlite::params![&*user, version + 1, black_box(record)]))
                .expect("update");
                conn.prepare_cached("INSERT INTO events (portal, user_id, at, event) VALUES ('bench', ?1, ?2, ?3)")
                    .and_then(|mut s| s.execute(rusqlite::params![&*user, *now as i64, event]))
                    .expect("insert");
                conn.prepare_cached("COMMIT")
                    .and_then(|mut s| s.execute([]))
                    .expect("commit");
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = signin
}
criterion_main!(benches);

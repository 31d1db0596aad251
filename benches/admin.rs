//! The admin's views at scale, on SQLite: 1 000 000 users and 10 000 000
//! audit events in one file.
//!
//! Group `admin_sqlite`:
//! - `users_locked_page_1` / `users_locked_page_1000`: `Portal::users`, 50
//!   locked-out users per page (100 000 are locked now and 100 000 more have an
//!   expired lock), the first page and the thousandth (its cursor taken by
//!   walking there once). Targets: ≤ 5 ms, and page 1 000 no slower than page 1.
//! - `events_one_user_newest_100`: `Portal::audit_events` for one user with
//!   100 000 events, newest first, 100 per page. Target: ≤ 5 ms.
//! - `events_portal_newest_100`: the portal's newest 100.
//! - `event_counts_24h`: `Portal::event_counts` over the last day (about
//!   111 000 events): a scan of the table, which has no time index so that
//!   sign-ins append without one.
//!
//! The database is built once (rows written straight in, with the bytes of
//! real records and events; about two minutes) under `target/bench-data/` and
//! reused; delete it to rebuild.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use portal_mfa::{
    Cursor, EnrolmentOptions, Keyring, ManualClock, Portal, PortalId, UserId,
    admin::{StatusFilter, UserQuery},
    audit::EventQuery,
    otp::Totp,
    store::SqliteStore,
};
use rusqlite::params;

const T0: u64 = 1_763_800_000;
const USERS: usize = 1_000_000;
const EVENTS: usize = 10_000_000;
/// The events span 90 days (a retention period), about 111 000 a day.
const SPAN: u64 = 90 * 86_400;
/// Every hundredth event is the busy user's.
const BUSY_EVERY: usize = 100;

fn keyring() -> Keyring {
    Keyring::new("bench", &[9; 32]).expect("keyring")
}

fn user(i: usize) -> UserId {
    UserId::customer(format!("user-{i:07}"))
}

fn database() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-data");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join(format!("admin-schema{}-90d.db", portal_mfa::store::SCHEMA_VERSION));
    if !path.exists() {
        let building = dir.join("admin-building.db");
        let _ = std::fs::remove_file(&building);
        let started = Instant::now();
        build(&building);
        std::fs::rename(&building, &path).expect("rename");
        println!("built {} in {:?}", path.display(), started.elapsed());
    }
    path
}

/// One real enrolled user's record bytes and one real event's bytes, then
/// `USERS` records and `EVENTS` events (each chained to its user's previous).
fn build(path: &PathBuf) {
    let clock = ManualClock::at(T0);
    let portal = Portal::new(PortalId::new("bench"), "Bench", SqliteStore::open(path).expect("open"))
        .expect("portal")
        .with_keyring(keyring())
        .with_clock(clock.clone());
    let template = UserId::customer("template");
    let session = portal
        .begin_sign_in(&template)
        .run()
        .expect("password step")
        .session()
        .expect("a stamp");
    let started = portal
        .start_enrolment(&template, &session, "t", "phone", EnrolmentOptions::default())
        .run()
        .expect("start");
    let phone = Totp::new(started.uri.secret(), *started.uri.params());
    let code = phone.generate(T0).expect("code").expose().to_string();
    portal
        .confirm_enrolment(&template, &session, &code)
        .run()
        .expect("confirm");
    drop(portal);
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "synchronous", "OFF").expect("pragma");
    let record: Vec<u8> = conn
        .query_row("SELECT record FROM portal_mfa_records", [], |r| r.get(0))
        .expect("record");
    let event: Vec<u8> = conn
        .query_row(
            "SELECT event FROM portal_mfa_events ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("event");
    let tx = conn.transaction().expect("tx");
    tx.execute_batch("DELETE FROM portal_mfa_events; DELETE FROM portal_mfa_records;")
        .expect("clear");
    let mut last = vec![None::<i64>; USERS];
    {
        let mut insert = tx
            .prepare("INSERT INTO portal_mfa_events (seq, portal, at, kind, prev, event) VALUES (?1, 'bench', ?2, 'verified', ?3, ?4)")
            .expect("prepare");
        for j in 0..EVENTS {
            let owner = if j % BUSY_EVERY == 0 { 0 } else { j % USERS };
            let seq = j as i64 + 1;
            let at = (T0 + j as u64 * SPAN / EVENTS as u64) as i64;
            insert.execute(params![seq, at, last[owner], event]).expect("event");
            last[owner] = Some(seq);
        }
        let mut insert = tx
            .prepare(
                "INSERT INTO portal_mfa_records VALUES ('bench', 'customer', ?1, 1, ?2, 1, 0, 0, ?3, 10, ?4, 0, ?5, 0)",
            )
            .expect("prepare");
        for (i, last_event) in last.iter().enumerate() {
            let locked_until = match i % 10 {
                0 => Some((T0 + 1_000_000_000) as i64),
                5 => Some(1_000),
                _ => None,
            };
            insert
                .execute(params![user(i).id(), record, locked_until, T0 as i64, last_event])
                .expect("record");
        }
    }
    tx.commit().expect("commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
}

fn admin(c: &mut Criterion) {
    let path = database();
    let now = T0 + SPAN;
    let portal = Portal::new(PortalId::new("bench"), "Bench", SqliteStore::open(&path).expect("open"))
        .expect("portal")
        .with_keyring(keyring())
        .with_clock(ManualClock::at(now));
    let locked = UserQuery::new().status(StatusFilter::LockedOut).limit(50);
    let mut cursor: Option<Cursor> = None;
    for _ in 0..999 {
        let query = cursor.take().map_or(locked.clone(), |c| locked.clone().after(c));
        let page = portal.users(query).run().expect("page");
        assert_eq!(page.items.len(), 50);
        cursor = page.next;
    }
    let page_1000 = locked.clone().after(cursor.expect("a thousandth page"));
    let busy = EventQuery::portal(portal.id()).user(&user(0)).newest_first().limit(100);
    assert_eq!(
        portal.audit_events(busy.clone()).run().expect("events").items.len(),
        100
    );

    let mut group = c.benchmark_group("admin_sqlite");
    group.sample_size(50).measurement_time(Duration::from_secs(4));
    group.bench_function("users_locked_page_1", |b| {
        b.iter(|| black_box(portal.users(locked.clone()).run().expect("page")))
    });
    group.bench_function("users_locked_page_1000", |b| {
        b.iter(|| black_box(portal.users(page_1000.clone()).run().expect("page")))
    });
    group.bench_function("events_one_user_newest_100", |b| {
        b.iter(|| black_box(portal.audit_events(busy.clone()).run().expect("events")))
    });
    let newest = EventQuery::portal(portal.id()).newest_first().limit(100);
    group.bench_function("events_portal_newest_100", |b| {
        b.iter(|| black_box(portal.audit_events(newest.clone()).run().expect("events")))
    });
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("event_counts_24h", |b| {
        b.iter(|| black_box(portal.event_counts(now - 86_400, now).run().expect("counts")))
    });
    group.finish();
}

criterion_group!(benches, admin);
criterion_main!(benches);

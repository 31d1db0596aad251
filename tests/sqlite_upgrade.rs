//! A database written by 0.1 (SQLite schema 1, plaintext secrets, committed in
//! `tests/fixtures/v1/` before the stored form changed) upgrades in one
//! transaction: every secret sealed, every user still signs in with their old
//! app and backup codes, the audit trail complete. A kill half-way leaves
//! schema 1 as it was, and the next open completes the upgrade.

#![cfg(feature = "sqlite")]

mod flows;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use flows::TempDir;
use portal_mfa::{
    Clock, ManualClock, Portal, PortalId, SignInStep, StorageErrorKind, UserId, UserKind,
    audit::{EventQuery, Factor},
    otp::{Secret, Totp, TotpParams},
    store::{SqliteOptions, SqliteStore},
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1/mfa-v1");

struct FixtureUser {
    portal: String,
    user: UserId,
    state: String,
    totp: Vec<(u32, Secret, TotpParams)>,
    backup: Vec<String>,
}

/// The sidecar the 0.1 generator wrote: the clock it stopped at, and every user.
fn sidecar() -> (u64, Vec<FixtureUser>) {
    sidecar_of(FIXTURE)
}

/// A generator's sidecar beside `fixture` (its path without extension).
fn sidecar_of(fixture: &str) -> (u64, Vec<FixtureUser>) {
    let text = std::fs::read_to_string(format!("{fixture}.txt")).unwrap();
    let mut end = 0;
    let mut users: Vec<FixtureUser> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[0] {
            "end" => end = fields[1].parse().unwrap(),
            "user" => users.push(FixtureUser {
                portal: fields[1].into(),
                user: UserId::new(UserKind::from_name(fields[2]).unwrap(), fields[3]),
                state: fields[4..].join(" "),
                totp: Vec::new(),
                backup: Vec::new(),
            }),
            "totp" => {
                let algorithm = portal_mfa::otp::Algorithm::from_uri_name(fields[3]).unwrap();
                let digits = portal_mfa::otp::Digits::new(fields[4].parse().unwrap()).unwrap();
                let params = TotpParams::new(algorithm, digits, fields[5].parse().unwrap()).unwrap();
                let id = fields[1].parse().unwrap();
                users
                    .last_mut()
                    .unwrap()
                    .totp
                    .push((id, Secret::from_base32(fields[2]).unwrap(), params));
            }
            "backup" => users.last_mut().unwrap().backup.push(fields[1].into()),
            other => panic!("unknown sidecar line {other}"),
        }
    }
    (end, users)
}

/// The app's code one period on (each sign-in a fresh step).
fn next_code(clock: &ManualClock, secret: &Secret, params: &TotpParams) -> String {
    clock.advance(params.period());
    Totp::new(secret, *params)
        .generate(clock.now())
        .unwrap()
        .expose()
        .to_string()
}

fn copy_fixture(dir: &TempDir) -> PathBuf {
    let path = dir.file("mfa.db");
    std::fs::copy(format!("{FIXTURE}.db"), &path).unwrap();
    path
}

/// Every secret of the fixture, as a scan would look for it: raw, base32 (both cases), hex (both cases).
fn needles(users: &[FixtureUser]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (_, secret, _) in users.iter().flat_map(|u| &u.totp) {
        let raw = secret.expose_bytes().to_vec();
        let base32 = secret.to_base32().to_string();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        out.extend([
            raw,
            base32.clone().into_bytes(),
            base32.to_lowercase().into_bytes(),
            hex.clone().into_bytes(),
            hex.to_uppercase().into_bytes(),
        ]);
    }
    out
}

fn secrets_found(db: &Path, needles: &[Vec<u8>]) -> usize {
    let mut files = vec![std::fs::read(db).unwrap()];
    files.extend(std::fs::read(db.with_extension("db-wal")).ok());
    needles
        .iter()
        .filter(|n| files.iter().any(|f| f.windows(n.len()).any(|w| w == n.as_slice())))
        .count()
}

/// An event as schema 1 kept it: portal, user kind, user id, time, kind name.
type EventRow = (String, String, String, i64, String);

fn schema_1_rows(db: &Path) -> (i64, i64, Vec<EventRow>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let version = conn
        .query_row("SELECT version FROM portal_mfa_schema", [], |r| r.get(0))
        .unwrap();
    let records = conn
        .query_row("SELECT count(*) FROM portal_mfa_records", [], |r| r.get(0))
        .unwrap();
    let mut statement = conn
        .prepare("SELECT portal, user_kind, user_id, at, kind FROM portal_mfa_events ORDER BY portal, at, user_kind, user_id, version, n")
        .unwrap();
    let events = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (version, records, events)
}

/// After the upgrade: every user signs in as the sidecar says they can, and the trail is whole.
fn everyone_signs_in(db: &Path, expected_events: &[EventRow]) {
    let (end, users) = sidecar();
    let store = flows::bytes(SqliteStore::open(db).expect("the upgraded file opens without options"));
    let clock = ManualClock::at(end + 3_600);
    let portal = |name: &str| {
        Portal::new(PortalId::new(name), "Acme Portal", store.clone())
            .unwrap()
            .with_keyring(flows::keyring())
            .with_clock(clock.clone())
    };
    let mut signed_in = 0;
    for u in &users {
        let p = portal(&u.portal);
        let step = p.begin_sign_in(&u.user).run().unwrap();
        if u.state == "locked until an admin reset" {
            assert_eq!(step, SignInStep::LockedOut { until: None }, "{}", u.user);
            continue;
        }
        for (id, secret, params) in &u.totp {
            let code = next_code(&clock, secret, params);
            let verified = p
                .verify_sign_in(&u.user, &code)
                .run()
                .unwrap_or_else(|e| panic!("{}: {e}", u.user));
            assert_eq!(verified.factor, Factor::Totp(portal_mfa::AuthenticatorId(*id)));
            signed_in += 1;
        }
        for code in &u.backup {
            let verified = p
                .verify_sign_in(&u.user, code)
                .run()
                .unwrap_or_else(|e| panic!("{} backup: {e}", u.user));
            assert_eq!(verified.factor, Factor::BackupCode);
            assert!(
                p.verify_sign_in(&u.user, code).run().is_err(),
                "a backup code still works once"
            );
        }
        if u.totp.is_empty() {
            assert!(!p.record(&u.user).run().unwrap().mfa_enabled(), "{}", u.user);
        }
    }
    assert_eq!(signed_in, 13, "every fixture app but the hard-locked user's signs in");
    // The trail: every event of schema 1 is there, decoded, in the same order.
    let mut trail = Vec::new();
    for name in ["customers", "enforced"] {
        let events = portal(name)
            .audit_events(EventQuery::portal(&PortalId::new(name)).limit(portal_mfa::MAX_PAGE))
            .run()
            .unwrap()
            .items;
        trail.extend(events.into_iter().filter(|e| e.at <= end).map(|e| {
            let (kind, id) = e.user.map_or((String::new(), String::new()), |u| {
                (u.kind().as_str().into(), u.id().into())
            });
            (name.to_owned(), kind, id, e.at as i64, e.kind.name().to_owned())
        }));
    }
    assert_eq!(trail, expected_events);
}

#[test]
fn a_schema_1_database_upgrades_with_every_secret_sealed() {
    let dir = TempDir::new("upgrade");
    let db = copy_fixture(&dir);
    let (_, users) = sidecar();
    assert_eq!(users.len(), 20);
    let needles = needles(&users);
    // The control: the scan finds every one of 0.1's plaintext secrets (raw bytes, its one form there).
    let raw: Vec<Vec<u8>> = needles.iter().step_by(5).cloned().collect();
    assert_eq!(secrets_found(&db, &raw), 14);
    let (version, records, events) = schema_1_rows(&db);
    assert_eq!((version, records), (1, 20));
    assert!(events.len() > 200);

    // Without a keyring, the file is refused and left as it was.
    let before = std::fs::read(&db).unwrap();
    let refused = SqliteStore::open(&db).expect_err("schema 1 needs a keyring");
    assert_eq!(refused.kind(), StorageErrorKind::IncompatibleSchema);
    assert_eq!(schema_1_rows(&db), (version, records, events.clone()));
    drop(before);

    let progress = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = progress.clone();
    let options = SqliteOptions::new()
        .upgrade_with(flows::keyring())
        .on_upgrade_progress(move |done, total| seen.lock().unwrap().push((done, total)));
    let store = SqliteStore::open_with(&db, options).unwrap();
    assert_eq!(store.schema_version().unwrap(), portal_mfa::store::SCHEMA_VERSION);
    store.check_integrity().unwrap();
    drop(store);
    assert_eq!(progress.lock().unwrap().last(), Some(&(20, 20)));
    assert_eq!(
        secrets_found(&db, &needles),
        0,
        "no secret is left in the file or its WAL"
    );
    everyone_signs_in(&db, &events);
}

#[test]
fn an_upgrade_killed_half_way_leaves_schema_1_and_completes_next_time() {
    let dir = TempDir::new("upgrade-kill");
    let db = copy_fixture(&dir);
    let (_, _, events) = schema_1_rows(&db);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "upgrader", "--ignored", "--nocapture", "--test-threads=1"])
        .env("PORTAL_MFA_UPGRADE_DB", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let half = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("upgraded 10 of 20"));
    assert!(half.is_some(), "the child reported progress");
    child.kill().unwrap(); // SIGKILL, inside the upgrade's transaction
    child.wait().unwrap();
    let (version, records, after) = schema_1_rows(&db);
    assert_eq!((version, records), (1, 20), "schema 1 is intact");
    assert_eq!(after, events);
    let store = SqliteStore::open_with(&db, SqliteOptions::new().upgrade_with(flows::keyring())).unwrap();
    assert_eq!(store.schema_version().unwrap(), portal_mfa::store::SCHEMA_VERSION);
    drop(store);
    everyone_signs_in(&db, &events);
}

/// The child of the kill test: upgrades, and stops for good half-way.
#[test]
#[ignore = "run by the kill test as a separate process"]
fn upgrader() {
    let Ok(db) = std::env::var("PORTAL_MFA_UPGRADE_DB") else {
        return;
    };
    let options = SqliteOptions::new()
        .upgrade_with(flows::keyring())
        .on_upgrade_progress(|done, total| {
            println!("upgraded {done} of {total}");
            if done * 2 == total {
                std::thread::sleep(std::time::Duration::from_secs(600));
            }
        });
    let _ = SqliteStore::open_with(db, options);
}

/// A file with one user ("c") enrolled and signed in once, then taken back
/// to an older layout by `sql`; answers its directory, path and clock.
fn one_user_taken_back(name: &str, sql: &str) -> (TempDir, PathBuf, ManualClock) {
    let dir = TempDir::new(name);
    let path = dir.file("mfa.db");
    let clock = ManualClock::at(flows::T0);
    let user = portal_mfa::UserId::customer("c");
    {
        let store = SqliteStore::open(&path).unwrap();
        let portal = flows::portal_on(flows::bytes(store), &clock);
        let (phone, _) = flows::enrol(flows::Executor::Blocking, &portal, &clock, &user);
        portal.verify_sign_in(&user, &phone.code(&clock)).run().unwrap();
    }
    rusqlite::Connection::open(&path).unwrap().execute_batch(sql).unwrap();
    (dir, path, clock)
}

/// A schema-2 file (this crate's unreleased main before user listings) opens
/// as the current schema: the locked index in user order, the prune mark,
/// the trusted-browser count and the passkey count are added, and nothing
/// else changes.
#[test]
fn a_schema_2_database_gains_the_listing_index_and_the_prune_mark() {
    // Back to schema 2's layout.
    let (_dir, path, clock) = one_user_taken_back("v2", "DROP TABLE portal_mfa_pruned;
         DROP INDEX portal_mfa_records_reset_requested;
         ALTER TABLE portal_mfa_records DROP COLUMN reset_requested_at;
         ALTER TABLE portal_mfa_records DROP COLUMN passkeys;
         ALTER TABLE portal_mfa_records DROP COLUMN trusted_browsers;
         DROP INDEX portal_mfa_records_locked;
         CREATE INDEX portal_mfa_records_locked ON portal_mfa_records (portal, locked_until) WHERE locked_until IS NOT NULL;
         UPDATE portal_mfa_schema SET version = 2;");
    let store = portal_mfa::store::SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), portal_mfa::store::SCHEMA_VERSION);
    let portal = flows::portal_on(flows::bytes(store), &clock);
    let listed = portal.users(portal_mfa::admin::UserQuery::new()).run().unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.items[0].mfa_on());
    clock.advance(3600);
    let pruned = portal.prune_events(portal_mfa::Clock::now(&clock)).run().unwrap();
    assert!(pruned >= 3, "enrolment and sign-in events: {pruned}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_info('portal_mfa_records_locked')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(columns, ["portal", "user_kind", "user_id", "locked_until"]);
}

/// A schema-4 file (0.3, before passkeys and reset requests) gains the
/// passkey count as 0 and the reset-request time as NULL, which is right for
/// every record 0.3 wrote, and lists as before.
#[test]
fn a_schema_4_database_gains_the_passkey_count() {
    let (_dir, path, clock) = one_user_taken_back(
        "v4",
        "DROP INDEX portal_mfa_records_reset_requested;
         ALTER TABLE portal_mfa_records DROP COLUMN reset_requested_at;
         ALTER TABLE portal_mfa_records DROP COLUMN passkeys;
         UPDATE portal_mfa_schema SET version = 4;",
    );
    let user = portal_mfa::UserId::customer("c");
    let store = portal_mfa::store::SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), portal_mfa::store::SCHEMA_VERSION);
    let portal = flows::portal_on(flows::bytes(store), &clock);
    let listed = portal.users(portal_mfa::admin::UserQuery::new()).run().unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!((listed.items[0].authenticators, listed.items[0].passkeys), (1, 0));
    assert_eq!(listed.items[0].reset_requested_at, None);
    portal.request_reset(&user, "lost").run().unwrap();
    let query = portal_mfa::admin::UserQuery::new().status(portal_mfa::admin::StatusFilter::ResetRequested);
    assert_eq!(portal.users(query).run().unwrap().items.len(), 1);
}

const FIXTURE_V3: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v3/mfa-v3");

/// The first byte of each stored record: its stored-form version.
fn record_formats(db: &Path) -> Vec<(String, u8)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut statement = conn
        .prepare("SELECT user_id, record FROM portal_mfa_records ORDER BY user_id")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?[0])))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A database 0.2 wrote (schema 3, records in stored form 1, from before
/// sessions and trusted browsers) opens as the current schema; every record reads at
/// session generation 0 with no trusted browser, every user signs in as
/// before, and a record is written in stored form 2 at its next change.
#[test]
fn a_schema_3_database_of_stored_form_1_records_upgrades_and_every_user_signs_in() {
    let dir = TempDir::new("upgrade-v3");
    let db = dir.file("mfa.db");
    std::fs::copy(format!("{FIXTURE_V3}.db"), &db).unwrap();
    assert!(record_formats(&db).iter().all(|(_, format)| *format == 1));
    let (end, users) = sidecar_of(FIXTURE_V3);
    assert_eq!(users.len(), 6);
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), portal_mfa::store::SCHEMA_VERSION);
    let clock = ManualClock::at(end + 3_600);
    let portal = Portal::new(PortalId::new("customers"), "Acme Portal", flows::bytes(store))
        .unwrap()
        .with_keyring(flows::keyring())
        .with_clock(clock.clone());
    for u in &users {
        let record = portal.record(&u.user).run().unwrap();
        assert_eq!(record.session_generation(), 0, "{}", u.user);
        assert!(record.trusted_browsers().is_empty());
        match u.state.as_str() {
            "reset: must re-enrol" => assert!(matches!(
                portal.begin_sign_in(&u.user).run().unwrap(),
                SignInStep::MustEnrol { .. }
            )),
            "first enrolment pending" => {
                assert!(record.pending().is_some());
                assert!(matches!(
                    portal.begin_sign_in(&u.user).run().unwrap(),
                    SignInStep::NoMfaNeeded { .. }
                ));
            }
            "two failures" => assert_eq!(record.failures().consecutive(), 2),
            _ => {}
        }
        for (id, secret, params) in &u.totp {
            let code = next_code(&clock, secret, params);
            let verified = portal.verify_sign_in(&u.user, &code).run().unwrap();
            assert_eq!(verified.factor, Factor::Totp(portal_mfa::AuthenticatorId(*id)));
            portal.check_session(&u.user, &verified.session).run().unwrap();
        }
        for code in &u.backup {
            assert_eq!(
                portal.verify_sign_in(&u.user, code).run().unwrap().factor,
                Factor::BackupCode
            );
        }
    }
    // A browser trusted on an upgraded record: the record is now in stored form 2.
    portal
        .update_policy(&flows::ADMIN, |p| p.with_trusted_browser_days(30))
        .run()
        .unwrap();
    let enrolled = &users[0];
    assert_eq!(enrolled.user.id(), "enrolled");
    let (_, secret, params) = &enrolled.totp[0];
    clock.advance(30);
    let code = Totp::new(secret, *params)
        .generate(clock.now())
        .unwrap()
        .expose()
        .to_string();
    let stamp = portal.verify_sign_in(&enrolled.user, &code).run().unwrap().session;
    let issued = portal.trust_browser(&enrolled.user, &stamp, "Firefox").run().unwrap();
    assert!(matches!(
        portal
            .begin_sign_in_with_browser(&enrolled.user, issued.token.expose())
            .run()
            .unwrap(),
        SignInStep::TrustedBrowser { .. }
    ));
    let listed = portal.users(portal_mfa::admin::UserQuery::new()).run().unwrap().items;
    let trusted: Vec<(&str, u8)> = listed.iter().map(|s| (s.user.id(), s.trusted_browsers)).collect();
    assert!(trusted.contains(&("enrolled", 1)) && trusted.iter().filter(|(_, n)| *n > 0).count() == 1);
    drop(portal);
    // Records written since are in stored form 4; the others stay in form 1, still read.
    let written: Vec<&str> = users
        .iter()
        .filter(|u| !u.totp.is_empty())
        .map(|u| u.user.id())
        .collect();
    for (user, format) in record_formats(&db) {
        assert_eq!(format, if written.contains(&user.as_str()) { 4 } else { 1 }, "{user}");
    }
}

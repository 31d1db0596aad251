//! Damaged, foreign, newer, read-only and locked database files: each gives a
//! clear `StorageError` kind, never a panic, and loses nothing already stored.

#![cfg(feature = "sqlite")]

mod flows;

use std::sync::Arc;
use std::time::Duration;

use flows::{T0, TempDir, enrol, portal_on};
use portal_mfa::store::MfaStore;
use portal_mfa::{
    Error, ManualClock, StorageErrorKind, UserId,
    store::{SqliteOptions, SqliteStore},
};

fn kind_of<T: std::fmt::Debug>(result: Result<T, portal_mfa::StorageError>) -> StorageErrorKind {
    result.expect_err("expected a storage error").kind()
}

/// A database holding one enrolled user.
fn populated(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.file("mfa.db");
    let clock = ManualClock::at(T0);
    let portal = portal_on(flows::bytes(SqliteStore::open(&path).unwrap()), &clock);
    enrol(flows::Executor::Blocking, &portal, &clock, &UserId::customer("alice"));
    path
}

fn alice_is_intact(path: &std::path::Path) {
    let store = flows::bytes(SqliteStore::open(path).unwrap());
    let portal = portal_on(store, &ManualClock::at(T0));
    let record = portal.record(&UserId::customer("alice")).run().unwrap();
    assert!(record.mfa_enabled());
    assert_eq!(record.backup_codes().unwrap().remaining(), 10);
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_as_corrupt() {
    let dir = TempDir::new("foreign");
    for (name, bytes) in [
        ("text.db", b"hello, this is not a database at all\n".repeat(200)),
        (
            "random.db",
            (0..8192u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        (
            "fake-header.db",
            [b"SQLite format 3\0".as_slice(), &[0xff; 4080]].concat(),
        ),
    ] {
        let path = dir.file(name);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(kind_of(SqliteStore::open(&path)), StorageErrorKind::Corrupt, "{name}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name}: the foreign file was not touched"
        );
    }
}

#[test]
fn a_damaged_database_is_reported_not_served() {
    let dir = TempDir::new("damaged");
    let path = populated(&dir);
    // Overwrite the middle of the file (table pages), keeping the header valid.
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    assert!(len > 8192, "populated database has several pages");
    for b in &mut bytes[4096..len - 100] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let _ = std::fs::remove_file(dir.file("mfa.db-wal"));
    let _ = std::fs::remove_file(dir.file("mfa.db-shm"));
    // Opening, reading or checking: one of them says Corrupt; none panics or returns garbage.
    let verdict = SqliteStore::open(&path).and_then(|store| {
        store.check_integrity()?;
        store.load(&portal_mfa::PortalId::new("acme-portal"), &UserId::customer("alice"))
    });
    assert_eq!(kind_of(verdict), StorageErrorKind::Corrupt);
}

#[test]
fn a_file_from_a_newer_version_is_refused() {
    let dir = TempDir::new("newer");
    let path = populated(&dir);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE portal_mfa_schema SET version = 99", []).unwrap();
    drop(conn);
    assert_eq!(kind_of(SqliteStore::open(&path)), StorageErrorKind::IncompatibleSchema);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE portal_mfa_schema SET version = ?1",
        [portal_mfa::store::SCHEMA_VERSION],
    )
    .unwrap();
    drop(conn);
    alice_is_intact(&path);
}

#[test]
fn our_tables_without_a_schema_version_are_refused() {
    let dir = TempDir::new("unversioned");
    let path = dir.file("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE portal_mfa_records (x TEXT); CREATE TABLE app_users (id INTEGER);")
        .unwrap();
    drop(conn);
    assert_eq!(kind_of(SqliteStore::open(&path)), StorageErrorKind::Corrupt);
}

#[test]
fn the_store_can_live_in_the_hosts_own_database() {
    let dir = TempDir::new("shared");
    let path = dir.file("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE app_users (id INTEGER PRIMARY KEY, email TEXT); INSERT INTO app_users VALUES (1, 'a@example.com');")
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), portal_mfa::store::SCHEMA_VERSION);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let email: String = conn
        .query_row("SELECT email FROM app_users WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(email, "a@example.com");
}

#[test]
fn a_locked_database_answers_busy_then_works_once_released() {
    let dir = TempDir::new("locked");
    let path = populated(&dir);
    let store = SqliteStore::open_with(&path, SqliteOptions::new().busy_timeout(Duration::from_millis(100))).unwrap();
    let clock = ManualClock::at(T0 + 60);
    let portal = portal_on(flows::bytes(store), &clock);
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let attempt = portal.verify_sign_in(&UserId::customer("alice"), "123456").run();
    assert!(
        matches!(&attempt, Err(Error::Storage(e)) if e.kind() == StorageErrorKind::Busy),
        "{attempt:?}"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    // The refused attempt changed nothing; the next one is counted normally.
    assert_eq!(
        portal
            .record(&UserId::customer("alice"))
            .run()
            .unwrap()
            .failures()
            .consecutive(),
        0
    );
    assert!(matches!(
        portal.verify_sign_in(&UserId::customer("alice"), "123456").run(),
        Err(Error::WrongCode { .. })
    ));
    drop(portal);
    alice_is_intact(&path);
}

/// Another app instance mid-commit holds the write lock: every read answers at
/// once (a plain read in WAL), and only a write waits and answers `Busy`.
#[test]
fn every_read_answers_while_another_connection_holds_the_write_lock() {
    let dir = TempDir::new("reads-under-a-writer");
    let path = dir.file("mfa.db");
    let clock = ManualClock::at(T0);
    let options = SqliteOptions::new().busy_timeout(Duration::from_millis(100));
    let portal = portal_on(flows::bytes(SqliteStore::open_with(&path, options).unwrap()), &clock);
    portal
        .update_policy(&flows::ADMIN, |p| p.with_trusted_browser_days(30))
        .run()
        .unwrap();
    let (alice, nobody) = (UserId::customer("alice"), UserId::customer("nobody"));
    let (phone, _, _) = flows::enrol_signed_in(flows::Executor::Blocking, &portal, &clock, &alice);
    let session = flows::signed_in(flows::Executor::Blocking, &portal, &clock, &alice, &phone);
    let token = portal.trust_browser(&alice, &session, "Firefox").run().unwrap().token;
    // Its first use is written down; the uses within the hour after it are reads.
    portal.begin_sign_in_with_browser(&alice, token.expose()).run().unwrap();
    clock.advance(60);

    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let busy = |what: &str, answer: Result<(), Error>| match answer {
        Err(Error::Storage(e)) if e.kind() == StorageErrorKind::Busy => panic!("{what} waited for the writer"),
        Err(e) => panic!("{what}: {e}"),
        Ok(()) => {}
    };
    busy("begin_sign_in", portal.begin_sign_in(&alice).run().map(drop));
    busy(
        "begin_sign_in (no record)",
        portal.begin_sign_in(&nobody).run().map(drop),
    );
    busy(
        "begin_sign_in_with_browser",
        portal
            .begin_sign_in_with_browser(&alice, token.expose())
            .run()
            .map(drop),
    );
    busy("record", portal.record(&alice).run().map(drop));
    busy("trusted_browsers", portal.trusted_browsers(&alice).run().map(drop));
    busy("check_session", portal.check_session(&alice, &session).run());
    busy("policy", portal.policy().run().map(drop));
    busy(
        "users",
        portal.users(portal_mfa::admin::UserQuery::new()).run().map(drop),
    );
    busy(
        "audit_events",
        portal
            .audit_events(portal_mfa::audit::EventQuery::portal(portal.id()))
            .run()
            .map(drop),
    );
    // A write does wait, and says so.
    let write = portal.verify_sign_in(&alice, &phone.code(&clock)).run();
    assert!(
        matches!(&write, Err(Error::Storage(e)) if e.kind() == StorageErrorKind::Busy),
        "{write:?}"
    );
    holder.execute_batch("ROLLBACK").unwrap();
}

/// Runs `read_only_worker` as an unprivileged user when this process is root
/// (root ignores file permissions).
fn run_unprivileged(path: &std::path::Path) -> Option<bool> {
    let status = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "read_only_worker",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PORTAL_MFA_DB", path)
        .output()
        .ok()?;
    if !status.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&status.stdout));
    }
    Some(status.status.success())
}

#[test]
#[ignore = "run by a_read_only_file_is_reported_and_left_untouched as another user"]
fn read_only_worker() {
    let Ok(path) = std::env::var("PORTAL_MFA_DB") else {
        return;
    };
    read_only_checks(std::path::Path::new(&path));
}

fn read_only_checks(path: &std::path::Path) {
    let kind = match SqliteStore::open(path) {
        Err(e) => e.kind(),
        Ok(store) => {
            let clock = ManualClock::at(T0 + 60);
            let portal = portal_on(flows::bytes(store), &clock);
            match portal.verify_sign_in(&UserId::customer("alice"), "123456").run() {
                Err(Error::Storage(e)) => e.kind(),
                other => panic!("a write to a read-only file answered {other:?}"),
            }
        }
    };
    eprintln!("read-only file answered {kind:?}");
    assert_eq!(kind, StorageErrorKind::ReadOnly);
}

#[test]
fn a_read_only_file_is_reported_and_left_untouched() {
    let dir = TempDir::new("readonly");
    let path = populated(&dir);
    let before = std::fs::read(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for f in [&path, &dir.0] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let root = std::fs::OpenOptions::new().append(true).open(&path).is_ok();
    if root {
        match run_unprivileged(&path) {
            Some(ok) => assert!(
                ok,
                "the unprivileged worker saw a read-only failure it did not report clearly"
            ),
            None => eprintln!("skipped: running as root and setpriv is not available to drop privileges"),
        }
    } else {
        read_only_checks(&path);
    }
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was written");
    alice_is_intact(&path);
}

#[test]
fn a_stale_writer_loses_the_compare_and_swap() {
    use portal_mfa::store::{Commit, RecordWrite};
    let dir = TempDir::new("stale");
    let path = populated(&dir);
    let store = SqliteStore::open(&path).unwrap();
    let portal_id = portal_mfa::PortalId::new("acme-portal");
    let alice = UserId::customer("alice");
    let loaded = store.load(&portal_id, &alice).unwrap().unwrap();
    let record = portal_mfa::record::MfaRecord::decode(&loaded.bytes, &portal_id, &alice, &flows::keyring()).unwrap();
    let resealed = record
        .encode(&portal_id, &alice, &flows::keyring(), &mut rand::rng())
        .unwrap();
    let summary = portal_mfa::store::RecordSummary::of(&record);
    let first = RecordWrite::new(resealed.clone(), summary, Vec::new());
    assert_eq!(
        store.commit(&portal_id, &alice, Some(loaded.version), &first).unwrap(),
        Commit::Committed(loaded.version + 1)
    );
    // A second writer that loaded the same version loses, and writes nothing.
    let stale = RecordWrite::new(loaded.bytes.clone(), summary, Vec::new());
    assert_eq!(
        store.commit(&portal_id, &alice, Some(loaded.version), &stale).unwrap(),
        Commit::Conflict
    );
    assert_eq!(
        store.commit(&portal_id, &alice, None, &stale).unwrap(),
        Commit::Conflict
    );
    let now = store.load(&portal_id, &alice).unwrap().unwrap();
    assert_eq!(now.version, loaded.version + 1);
    assert_eq!(now.bytes, resealed);
}

/// The summary columns follow the record through every kind of change, and
/// SQLite's own check finds the partial indexes over them consistent (a
/// sign-in that leaves them as they were does not rewrite them).
#[test]
fn summary_columns_and_their_indexes_follow_every_change() {
    let dir = TempDir::new("summary");
    let path = dir.file("mfa.db");
    let clock = ManualClock::at(T0);
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let portal = portal_on(flows::bytes::<SqliteStore>(store.clone()), &clock);
    let users: Vec<UserId> = (0..4).map(|i| UserId::customer(format!("u{i}"))).collect();
    let mut phones = Vec::new();
    for user in &users {
        phones.push(enrol(flows::Executor::Blocking, &portal, &clock, user).0);
    }
    portal.verify_sign_in(&users[0], &phones[0].code(&clock)).run().unwrap();
    for locked in [&users[1], &users[3]] {
        for _ in 0..5 {
            let _ = portal.verify_sign_in(locked, "000000").run();
        }
    }
    portal
        .admin_reset(
            &flows::ADMIN,
            &users[2],
            portal_mfa::admin::ResetReason::LostDevice,
            portal_mfa::admin::ResetMode::default(),
        )
        .run()
        .unwrap();
    let session = flows::password_step(flows::Executor::Blocking, &portal, &users[2]);
    portal
        .start_enrolment(
            &users[2],
            &session,
            "u2",
            "new",
            portal_mfa::EnrolmentOptions::default(),
        )
        .run()
        .unwrap();
    clock.advance(120);
    // u3's lock has passed: a success clears it (and its index entry); u1 keeps its lock's end.
    portal.verify_sign_in(&users[3], &phones[3].code(&clock)).run().unwrap();
    portal.verify_sign_in(&users[0], &phones[0].code(&clock)).run().unwrap();
    store.check_integrity().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let portal_id = portal_mfa::PortalId::new("acme-portal");
    for user in &users {
        let (authenticators, pending, must_enrol, locked_until, left, verified): (
            i64,
            bool,
            bool,
            Option<i64>,
            i64,
            Option<i64>,
        ) = conn
            .query_row(
                "SELECT authenticators, pending_enrolment, must_enrol, locked_until, backup_codes_left, last_verified_at
                 FROM portal_mfa_records WHERE user_id = ?1",
                [user.id()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
        let summary = portal_mfa::store::RecordSummary::of(&portal.record(user).run().unwrap());
        assert_eq!(authenticators, i64::from(summary.authenticators), "{user}");
        assert_eq!(
            (pending, must_enrol),
            (summary.pending_enrolment, summary.must_enrol),
            "{user}"
        );
        let column = summary.locked.map(|lock| lock.until.map_or(i64::MAX, |t| t as i64));
        assert_eq!(locked_until, column, "{user}");
        assert_eq!(left, i64::from(summary.backup_codes_left), "{user}");
        assert_eq!(verified, summary.last_verified_at.map(|t| t as i64), "{user}");
        let _ = &portal_id;
    }
    let locked: i64 = conn
        .query_row(
            "SELECT count(*) FROM portal_mfa_records INDEXED BY portal_mfa_records_locked WHERE portal = 'acme-portal' AND locked_until IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(locked, 1, "u1 keeps the end of its last lock");
    let must: i64 = conn
        .query_row(
            "SELECT count(*) FROM portal_mfa_records INDEXED BY portal_mfa_records_must_enrol WHERE portal = 'acme-portal' AND must_enrol",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(must, 1, "u2 must re-enrol");
}

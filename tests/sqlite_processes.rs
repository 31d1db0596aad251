//! Several OS processes on one SQLite file: the guarantees must hold across
//! processes, not just threads. The test binary re-runs itself as the worker
//! (`worker` below, ignored in normal runs).

#![cfg(feature = "sqlite")]

mod flows;

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use flows::{Phone, T0, TempDir, TestStore, enrol, portal_on};
use portal_mfa::{
    ManualClock, UserId,
    audit::{EventKind, EventQuery},
    store::{SqliteOptions, SqliteStore},
};

const TRIALS: usize = 100;

/// The shared file, opened to wait up to [`flows::PATIENCE`] for another process's lock.
fn open(path: &std::path::Path) -> Arc<dyn TestStore> {
    let options = SqliteOptions::new().busy_timeout(flows::PATIENCE);
    flows::bytes(SqliteStore::open_with(path, options).expect("open the shared database"))
}

/// The child side. Modes: `race` (submit each job's code at its scheduled instant,
/// print `<trial> ok|err`) and `burst` (enrol users one after another, print
/// `committed <i>` after each, until killed).
#[test]
#[ignore = "run by the tests in this file as a separate process"]
fn worker() {
    let Ok(mode) = std::env::var("PORTAL_MFA_WORKER") else {
        return;
    };
    let db = std::path::PathBuf::from(std::env::var("PORTAL_MFA_DB").unwrap());
    let clock = ManualClock::at(std::env::var("PORTAL_MFA_TIME").unwrap().parse().unwrap());
    let portal = portal_on(open(&db), &clock);
    let mut out = std::io::stdout().lock();
    match mode.as_str() {
        "race" => {
            let jobs = std::fs::read_to_string(std::env::var("PORTAL_MFA_JOBS").unwrap()).unwrap();
            let role: usize = std::env::var("PORTAL_MFA_ROLE").unwrap().parse().unwrap();
            let meeting = flows::Meeting::joined();
            meeting.ready(role);
            let start = meeting.start();
            for (trial, line) in jobs.lines().enumerate() {
                let at = start + trial as u64 * 15;
                std::thread::sleep(Duration::from_millis(at.saturating_sub(flows::now_ms())));
                let verdict = match std::env::var_os("PORTAL_MFA_MARKS") {
                    Some(marks) => flows::process::run_marked(
                        &portal,
                        flows::Executor::Blocking,
                        line,
                        role,
                        trial,
                        std::path::Path::new(&marks),
                    ),
                    None => flows::process::run_job(&portal, flows::Executor::Blocking, line, role),
                };
                writeln!(out, "\n@@ {trial} {verdict}").unwrap();
            }
        }
        "burst" => {
            for i in 0.. {
                let user = UserId::customer(format!("burst-{i}"));
                enrol(flows::Executor::Blocking, &portal, &clock, &user);
                writeln!(out, "\n@@ committed {i}").unwrap();
                out.flush().unwrap();
            }
        }
        other => panic!("unknown worker mode {other}"),
    }
}

/// Two processes submit the same codes at the same instants; returns, per trial, how many accepted.
fn race(dir: &TempDir, time: u64, jobs: &[(UserId, String)]) -> Vec<usize> {
    let lines: Vec<String> = jobs.iter().map(|(u, c)| format!("verify {} {c}", u.id())).collect();
    flows::tally(spawn_race(dir, time, &lines), jobs.len(), 2).0
}

/// Two processes, roles 0 and 1, run one job line each at the same instants
/// (see `flows::process::run_job`).
fn spawn_race(dir: &TempDir, time: u64, lines: &[String]) -> [std::process::Child; 2] {
    let job_file = dir.file("jobs.txt");
    std::fs::write(&job_file, lines.join("\n")).unwrap();
    let meeting = flows::Meeting::new(dir);
    let mut children = [0, 1].map(|role| {
        flows::spawn_worker(&[
            ("PORTAL_MFA_WORKER", "race".to_owned()),
            ("PORTAL_MFA_DB", dir.file("mfa.db").display().to_string()),
            ("PORTAL_MFA_TIME", time.to_string()),
            ("PORTAL_MFA_JOBS", job_file.display().to_string()),
            meeting.env(),
            ("PORTAL_MFA_ROLE", role.to_string()),
            ("PORTAL_MFA_MARKS", dir.0.display().to_string()),
        ])
    });
    meeting.start_when_ready(&mut children);
    children
}

#[test]
fn a_reset_in_one_process_and_a_trusted_browser_sign_in_in_another_take_one_order() {
    let dir = TempDir::new("race-reset");
    let clock = ManualClock::at(T0);
    let portal = portal_on(open(&dir.file("mfa.db")), &clock);
    let jobs = flows::process::reset_race_jobs(flows::Executor::Blocking, &portal, &clock, TRIALS);
    let lines: Vec<String> = jobs.iter().map(|(_, line)| line.clone()).collect();
    let verdicts = flows::process::collect(spawn_race(&dir, portal_mfa::Clock::now(&clock), &lines), TRIALS, 2);
    let (before, refused) = flows::process::assert_one_order(flows::Executor::Blocking, &portal, &jobs, &verdicts);
    println!("{before} trusted sign-ins before the reset, {refused} refused after it");
    assert_eq!(before + refused, TRIALS);
}

#[test]
fn a_reset_in_one_process_and_each_self_service_change_in_another_take_one_order() {
    let dir = TempDir::new("race-changes");
    let clock = ManualClock::at(T0);
    let portal = portal_on(open(&dir.file("mfa.db")), &clock);
    let trials = 3 * flows::change_race::CHANGES.len();
    let jobs = flows::change_race::jobs(flows::Executor::Blocking, &portal, &clock, trials);
    let lines: Vec<String> = jobs.iter().map(|job| job.line.clone()).collect();
    let verdicts = flows::process::collect(spawn_race(&dir, portal_mfa::Clock::now(&clock), &lines), trials, 2);
    let (made, refused) = flows::change_race::assert_one_order(flows::Executor::Blocking, &portal, &jobs, &verdicts);
    println!("{made} changes before the reset, {refused} refused");
    assert_eq!(made + refused, trials);
}

#[test]
fn two_processes_accept_one_totp_code_once() {
    let dir = TempDir::new("race-totp");
    let clock = ManualClock::at(T0);
    let portal = portal_on(open(&dir.file("mfa.db")), &clock);
    let phones: Vec<(UserId, Phone)> = (0..TRIALS)
        .map(|i| {
            let user = UserId::customer(format!("c{i}"));
            let (phone, _) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
            (user, phone)
        })
        .collect();
    let jobs: Vec<(UserId, String)> = phones.into_iter().map(|(u, p)| (u, p.code(&clock))).collect();
    let accepted = race(&dir, portal_mfa::Clock::now(&clock), &jobs);
    assert!(
        accepted.iter().all(|&n| n == 1),
        "per trial, processes that accepted: {accepted:?}"
    );
}

#[test]
fn two_processes_accept_one_backup_code_once() {
    let dir = TempDir::new("race-backup");
    let clock = ManualClock::at(T0);
    let portal = portal_on(open(&dir.file("mfa.db")), &clock);
    let jobs: Vec<(UserId, String)> = (0..TRIALS)
        .map(|i| {
            let user = UserId::customer(format!("b{i}"));
            let (_, codes) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
            (user, codes[i % codes.len()].clone())
        })
        .collect();
    let accepted = race(&dir, portal_mfa::Clock::now(&clock), &jobs);
    assert!(
        accepted.iter().all(|&n| n == 1),
        "per trial, processes that accepted: {accepted:?}"
    );
    for (user, _) in &jobs {
        assert_eq!(
            portal.record(user).run().unwrap().backup_codes().unwrap().remaining(),
            9
        );
    }
}

#[test]
fn a_writer_killed_mid_burst_loses_nothing_it_committed_and_leaves_nothing_half_done() {
    let dir = TempDir::new("kill");
    let db = dir.file("mfa.db");
    // Create the schema first so the worker starts writing at once.
    drop(open(&db));
    let mut child = flows::spawn_worker(&[
        ("PORTAL_MFA_WORKER", "burst".to_owned()),
        ("PORTAL_MFA_DB", db.display().to_string()),
        ("PORTAL_MFA_TIME", T0.to_string()),
    ]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut committed = 0usize;
    while committed < 150 {
        let line = lines.next().expect("worker output").unwrap();
        if line.starts_with("@@ committed ") {
            committed += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no rollback hook runs in the child.
    child.wait().unwrap();
    // Whatever it printed after our count was also committed; read what remains in the pipe.
    committed += lines
        .map_while(Result::ok)
        .filter(|l| l.starts_with("@@ committed "))
        .count();

    let store = SqliteStore::open(&db).expect("the file reopens after the kill");
    store.check_integrity().unwrap();
    let store = flows::bytes(store);
    let clock = ManualClock::at(T0);
    let portal = portal_on(store, &clock);
    // Every reported commit is there, whole; the one in flight (if any) is whole or absent.
    for i in 0..committed + 3 {
        let user = UserId::customer(format!("burst-{i}"));
        let record = portal.record(&user).run().unwrap();
        let events = portal
            .audit_events(EventQuery::portal(portal.id()).user(&user))
            .run()
            .unwrap()
            .items;
        let added = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::AuthenticatorAdded { .. }))
            .count();
        let issued = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::BackupCodesIssued { .. }))
            .count();
        let started = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::EnrolmentStarted { .. }))
            .count();
        if i < committed {
            assert!(record.mfa_enabled(), "user {i} was reported committed");
            assert_eq!(record.backup_codes().unwrap().remaining(), 10);
        }
        // Record and trail agree, whatever the kill interrupted.
        assert_eq!(
            record.mfa_enabled(),
            added == 1 && issued == 1,
            "user {i}: record and events disagree"
        );
        assert_eq!(
            record.pending().is_some() || record.mfa_enabled(),
            started == 1,
            "user {i}"
        );
    }
}

#[cfg(feature = "webauthn")]
#[test]
fn two_processes_accept_one_passkey_response_once() {
    use flows::passkeys::{SoftKey, passkey_user, sign_in_options};
    let dir = TempDir::new("race-passkey");
    let clock = ManualClock::at(T0);
    let portal = portal_on(open(&dir.file("mfa.db")), &clock);
    let jobs: Vec<(UserId, String)> = (0..TRIALS / 2)
        .map(|i| {
            let user = UserId::customer(format!("p{i}"));
            let (mut key, _, _) = passkey_user(flows::Executor::Blocking, &portal, &user, SoftKey::security_key());
            let response = key
                .sign(&sign_in_options(flows::Executor::Blocking, &portal, &user, 0, 1))
                .unwrap();
            (user, response)
        })
        .collect();
    let accepted = race(&dir, portal_mfa::Clock::now(&clock), &jobs);
    assert!(
        accepted.iter().all(|&n| n == 1),
        "per trial, processes that accepted: {accepted:?}"
    );
    for (user, _) in &jobs {
        assert!(
            portal.record(user).run().unwrap().passkeys()[0]
                .last_used_at()
                .is_some()
        );
    }
}

//! PostgreSQL against a real server (see `flows/pg.rs`): acceptance exactly
//! once across OS processes, failures counted exactly, restarts and killed
//! connections that leave nothing half-applied, migrations, and every way a
//! connection can be wrong, each with its typed error. The test binary re-runs
//! itself as the worker processes (`worker`, ignored in normal runs).

#![cfg(feature = "postgres")]

mod flows;

use std::future::IntoFuture;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use flows::PgPair;
use flows::pg::{self, PgServer};
use flows::{Executor, Go, Phone, T0, TempDir, TestPortal, TestStore, enrol, portal_on, wait_until};
use portal_mfa::store::MfaStore;
use portal_mfa::{
    Clock, Error, LockoutRule, ManualClock, PortalPolicy, StorageError, StorageErrorKind, UserId,
    admin::UserQuery,
    audit::{EventKind, EventQuery},
    store::{AsyncPostgresStore, PostgresOptions, PostgresStore},
};

const TRIALS: usize = 200;
const PROCESSES: usize = 4;
const CONNECTIONS: usize = 8;

fn store(pair: PgPair) -> Arc<dyn TestStore> {
    Arc::new(pair)
}

/// The storage error inside `result`, or a failure saying what came instead.
fn storage_error<T: std::fmt::Debug>(result: Result<T, StorageError>) -> StorageError {
    result.expect_err("a storage error")
}

// ---------------------------------------------------------------------------
// Across processes

/// The child side. Modes: `race` (CONNECTIONS threads submit each job's code
/// at its scheduled instant, printing `@@ <trial> ok|err …`) and `migrate`
/// (open the stores on a schema at the race's start, print `@@ migrated`).
/// Each says it is ready at the meeting ([`flows::Meeting`]) and starts when
/// the parent says so; its connections wait up to [`flows::PATIENCE`].
#[test]
#[ignore = "run by the tests in this file as a separate process"]
fn worker() {
    let Ok(mode) = std::env::var("PORTAL_MFA_WORKER") else {
        return;
    };
    let env = |name: &str| std::env::var(name).unwrap();
    let url = env("PORTAL_MFA_PG_URL");
    let schema = env("PORTAL_MFA_PG_SCHEMA");
    let role: usize = env("PORTAL_MFA_ROLE").parse().unwrap();
    let meeting = flows::Meeting::joined();
    let ex = if env("PORTAL_MFA_EXECUTOR") == "async" {
        Executor::Async
    } else {
        Executor::Blocking
    };
    let options = PostgresOptions::new()
        .max_connections(CONNECTIONS)
        .connect_timeout(flows::PATIENCE);
    match mode.as_str() {
        "migrate" => {
            meeting.ready(role);
            let start = meeting.start();
            std::thread::sleep(Duration::from_millis(start.saturating_sub(flows::now_ms())));
            let _stores = PgPair::open(&url, &schema, options);
            println!("\n@@ migrated");
        }
        "race" => {
            let clock = ManualClock::at(env("PORTAL_MFA_TIME").parse().unwrap());
            let portal = portal_on(store(PgPair::open(&url, &schema, options)), &clock).with_max_attempts(64);
            let jobs = std::fs::read_to_string(env("PORTAL_MFA_JOBS")).unwrap();
            let out = Mutex::new(std::io::stdout());
            let connected = Barrier::new(CONNECTIONS + 1);
            std::thread::scope(|s| {
                for _ in 0..CONNECTIONS {
                    s.spawn(|| {
                        // A read each, all at once: the pool's connections are made before the start.
                        portal.policy().go(ex).expect("the store answers before the race");
                        connected.wait();
                        let start = meeting.start();
                        for (trial, line) in jobs.lines().enumerate() {
                            let at = start + trial as u64 * 20;
                            std::thread::sleep(Duration::from_millis(at.saturating_sub(flows::now_ms())));
                            let marks = std::path::PathBuf::from(env("PORTAL_MFA_MARKS"));
                            let verdict = flows::process::run_marked(&portal, ex, line, role, trial, &marks);
                            writeln!(out.lock().unwrap(), "\n@@ {trial} {verdict}").unwrap();
                        }
                    });
                }
                connected.wait();
                meeting.ready(role);
            });
        }
        other => panic!("unknown worker mode {other}"),
    }
}

/// PROCESSES processes (half blocking, half async), CONNECTIONS threads each,
/// submit the same codes at the same instants; returns, per trial, how many accepted.
fn race(url: &str, schema: &str, time: u64, jobs: &[(UserId, String)]) -> Vec<usize> {
    let lines: Vec<String> = jobs.iter().map(|(u, c)| format!("verify {} {c}", u.id())).collect();
    let dir = TempDir::new("pg-race");
    let (accepted, losses) = flows::tally(
        spawn_race(&dir, url, schema, time, &lines),
        jobs.len(),
        PROCESSES * CONNECTIONS,
    );
    for (trial, verdict) in losses {
        assert!(
            // A passkey response's losers find its challenge spent.
            ["ReplayedCode", "WrongCode", "LockedOut", "Conflict", "NoChallenge"]
                .iter()
                .any(|e| verdict.contains(e)),
            "trial {trial}: {verdict}"
        );
    }
    accepted
}

/// PROCESSES processes (half blocking, half async; process `i` in role `i`,
/// see `flows::process::run_job`), CONNECTIONS threads each, run each job
/// line at the same instant.
fn spawn_race(dir: &TempDir, url: &str, schema: &str, time: u64, lines: &[String]) -> Vec<std::process::Child> {
    let job_file = dir.file("jobs.txt");
    std::fs::write(&job_file, lines.join("\n")).unwrap();
    let meeting = flows::Meeting::new(dir);
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            flows::spawn_worker(&[
                ("PORTAL_MFA_WORKER", "race".to_owned()),
                ("PORTAL_MFA_PG_URL", url.to_owned()),
                ("PORTAL_MFA_PG_SCHEMA", schema.to_owned()),
                ("PORTAL_MFA_TIME", time.to_string()),
                ("PORTAL_MFA_JOBS", job_file.display().to_string()),
                meeting.env(),
                ("PORTAL_MFA_ROLE", i.to_string()),
                ("PORTAL_MFA_MARKS", dir.0.display().to_string()),
                (
                    "PORTAL_MFA_EXECUTOR",
                    if i % 2 == 0 { "blocking" } else { "async" }.to_owned(),
                ),
            ])
        })
        .collect();
    meeting.start_when_ready(&mut children);
    children
}

/// A reset race on a fresh schema: `set_up` makes the users and their job
/// lines on `portal`; PROCESSES processes run them; `check` judges the
/// verdicts (per trial, PROCESSES × CONNECTIONS of them).
fn reset_race<J>(
    tag: &str,
    set_up: impl FnOnce(&TestPortal, &ManualClock) -> (Vec<J>, Vec<String>),
    check: impl FnOnce(&TestPortal, &[J], &[Vec<String>]),
) {
    let Some(server) = pg::shared() else {
        return;
    };
    let pair = PgPair::new(server, PostgresOptions::new());
    let schema = pair.schema.clone();
    let clock = ManualClock::at(T0);
    let portal = portal_on(store(pair), &clock);
    let (jobs, lines) = set_up(&portal, &clock);
    let dir = TempDir::new(tag);
    let children = spawn_race(&dir, server.url(), &schema, clock.now(), &lines);
    let verdicts = flows::process::collect(children, lines.len(), PROCESSES * CONNECTIONS);
    check(&portal, &jobs, &verdicts);
}

#[test]
fn a_reset_in_one_process_races_trusted_browser_sign_ins_in_three_and_takes_one_order() {
    reset_race(
        "pg-reset-race",
        |portal, clock| {
            let jobs = flows::process::reset_race_jobs(Executor::Blocking, portal, clock, TRIALS);
            let lines = jobs.iter().map(|(_, line)| line.clone()).collect();
            (jobs, lines)
        },
        |portal, jobs, verdicts| {
            let (before, refused) = flows::process::assert_one_order(Executor::Blocking, portal, jobs, verdicts);
            println!("{before} trusted sign-ins before the reset, {refused} refused after it");
            assert_eq!(before + refused, TRIALS * (PROCESSES - 1) * CONNECTIONS);
        },
    );
}

#[test]
fn a_reset_in_one_process_races_each_self_service_change_in_three_and_takes_one_order() {
    let trials = 2 * flows::change_race::CHANGES.len();
    reset_race(
        "pg-change-race",
        |portal, clock| {
            let jobs = flows::change_race::jobs(Executor::Blocking, portal, clock, trials);
            let lines = jobs.iter().map(|job| job.line.clone()).collect();
            (jobs, lines)
        },
        |portal, jobs, verdicts| {
            let (made, refused) = flows::change_race::assert_one_order(Executor::Blocking, portal, jobs, verdicts);
            println!("{made} changes before the reset, {refused} refused");
            assert_eq!(made + refused, trials * (PROCESSES - 1) * CONNECTIONS);
        },
    );
}

/// Enrols TRIALS users, takes one code from each (`code(i, phone, backup
/// codes, clock)`), and races four processes to sign in with each at once:
/// each code is accepted exactly once. Answers the portal and the users.
fn four_processes_race(
    tag: &str,
    code: impl Fn(usize, Phone, Vec<String>, &ManualClock) -> String,
) -> Option<(TestPortal, Vec<UserId>)> {
    let server = pg::shared()?;
    let pair = PgPair::new(server, PostgresOptions::new());
    let schema = pair.schema.clone();
    let clock = ManualClock::at(T0);
    let portal = portal_on(store(pair), &clock);
    let enrolled: Vec<(UserId, Phone, Vec<String>)> = (0..TRIALS)
        .map(|i| {
            let user = UserId::customer(format!("{tag}{i}"));
            let (phone, codes) = enrol(Executor::Blocking, &portal, &clock, &user);
            (user, phone, codes)
        })
        .collect();
    // Enrolment moved the clock on: every TOTP code is taken now, in one unused step.
    let jobs: Vec<(UserId, String)> = enrolled
        .into_iter()
        .enumerate()
        .map(|(i, (user, phone, codes))| (user, code(i, phone, codes, &clock)))
        .collect();
    let accepted = race(server.url(), &schema, clock.now(), &jobs);
    assert!(accepted.iter().all(|&n| n == 1), "per trial, acceptances: {accepted:?}");
    Some((portal, jobs.into_iter().map(|(user, _)| user).collect()))
}

#[test]
fn four_processes_with_eight_connections_each_accept_one_totp_code_once() {
    let Some((portal, users)) = four_processes_race("c", |_, phone, _, clock| phone.code(clock)) else {
        return;
    };
    for user in &users {
        let trail = portal
            .audit_events(EventQuery::portal(portal.id()).user(user))
            .run()
            .unwrap()
            .items;
        let verified = trail.iter().filter(|e| matches!(e.kind, EventKind::Verified { .. }));
        assert_eq!(verified.count(), 1, "{user:?}: one acceptance, one event");
    }
}

#[test]
fn four_processes_with_eight_connections_each_accept_one_backup_code_once() {
    let Some((portal, users)) = four_processes_race("b", |i, _, codes, _| codes[i % codes.len()].clone()) else {
        return;
    };
    for user in &users {
        let remaining = portal.record(user).run().unwrap().backup_codes().unwrap().remaining();
        assert_eq!(remaining, 9, "{user:?}: exactly one code consumed");
    }
}

#[test]
fn four_processes_starting_at_once_migrate_an_empty_schema_once() {
    let Some(server) = pg::shared() else { return };
    let schema = pg::unique_name("migrate");
    let dir = TempDir::new("pg-migrate");
    let meeting = flows::Meeting::new(&dir);
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            flows::spawn_worker(&[
                ("PORTAL_MFA_WORKER", "migrate".to_owned()),
                ("PORTAL_MFA_PG_URL", server.url().to_owned()),
                ("PORTAL_MFA_PG_SCHEMA", schema.clone()),
                meeting.env(),
                ("PORTAL_MFA_ROLE", i.to_string()),
                (
                    "PORTAL_MFA_EXECUTOR",
                    if i % 2 == 0 { "blocking" } else { "async" }.to_owned(),
                ),
            ])
        })
        .collect();
    meeting.start_when_ready(&mut children);
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a process failed to open the schema");
        assert!(String::from_utf8_lossy(&output.stdout).contains("@@ migrated"));
    }
    let mut admin = server.admin();
    let rows = admin
        .query(
            &format!("SELECT version FROM \"{schema}\".portal_mfa_schema ORDER BY version"),
            &[],
        )
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let expected: Vec<i32> = (1..=portal_mfa::store::POSTGRES_SCHEMA_VERSION).collect();
    assert_eq!(versions, expected, "each migration recorded once");
}

// ---------------------------------------------------------------------------
// Many connections in one process

#[test]
fn sixty_four_concurrent_wrong_codes_are_counted_exactly_up_to_the_lock() {
    let Some(server) = pg::shared() else { return };
    for ex in [Executor::Blocking, Executor::Async] {
        for (max_failures, wrong, locked) in [(100u8, 64, 0), (10, 9, 55)] {
            let clock = ManualClock::at(T0);
            let policy = PortalPolicy::default().with_lockout(LockoutRule::new(max_failures, 60, 3600).unwrap());
            let pair = PgPair::new(server, PostgresOptions::new().max_connections(64));
            let portal = portal_on(store(pair), &clock)
                .with_default_policy(policy)
                .with_max_attempts(200);
            let user = UserId::customer("target");
            let (phone, _) = enrol(ex, &portal, &clock, &user);
            let right = phone.code(&clock);
            let bad = if right == "000000" { "111111" } else { "000000" };
            let barrier = Barrier::new(64);
            let outcomes: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..64)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            portal.verify_sign_in(&user, bad).go(ex)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let record = portal.record(&user).go(ex).unwrap();
            let label = format!("{ex:?}, lock after {max_failures}");
            assert_eq!(
                record.failures().consecutive(),
                u32::from(max_failures).min(64),
                "{label}"
            );
            let count = |f: fn(&Result<_, Error>) -> bool| outcomes.iter().filter(|r| f(r)).count();
            assert_eq!(count(|r| matches!(r, Err(Error::WrongCode { .. }))), wrong, "{label}");
            assert_eq!(count(|r| matches!(r, Err(Error::LockedOut { .. }))), locked, "{label}");
            let trail = portal
                .audit_events(EventQuery::portal(portal.id()).user(&user).limit(1000))
                .go(ex)
                .unwrap()
                .items;
            let failed = trail
                .iter()
                .filter(|e| matches!(e.kind, EventKind::VerificationFailed { .. }))
                .count();
            assert_eq!(
                failed as u32,
                record.failures().consecutive(),
                "{label}: one event per failure"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Faults: restarts, killed connections, read-only roles, timeouts

/// What one signing-in thread saw: its user, the times of the sign-ins
/// reported committed, and the times whose outcome an error left unknown.
struct Burst {
    user: UserId,
    committed: Vec<u64>,
    unknown: Vec<u64>,
    errors: Vec<StorageError>,
    /// Sign-ins committed after the fault was over.
    committed_after: usize,
}

/// THREADS users sign in one after another (each on its own clock, 30 s a
/// step) until `stop`; `fault` runs meanwhile and sets `over` when done.
/// `fault` gets the flag to raise once the fault is over, and the count of
/// calls that failed so far.
fn sign_in_burst(
    store: Arc<dyn TestStore>,
    ex: Executor,
    fault: impl FnOnce(&AtomicBool, &AtomicUsize) + Send,
) -> Vec<Burst> {
    // Enough that some call is always mid-write when the fault strikes (reads are retried unseen).
    const THREADS: usize = 16;
    let setup_clock = ManualClock::at(T0);
    let setup = portal_on(store.clone(), &setup_clock);
    let users: Vec<(UserId, Phone)> = (0..THREADS)
        .map(|i| {
            let user = UserId::customer(format!("burst-{i}"));
            let (phone, _) = enrol(ex, &setup, &setup_clock, &user);
            (user, phone)
        })
        .collect();
    let stop = AtomicBool::new(false);
    let over = AtomicBool::new(false);
    let (signed_in, recovered, failed) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let start_at = setup_clock.now() + 60;
    std::thread::scope(|s| {
        let handles: Vec<_> = users
            .into_iter()
            .map(|(user, phone)| {
                let store = store.clone();
                let (stop, over, signed_in, recovered, failed) = (&stop, &over, &signed_in, &recovered, &failed);
                s.spawn(move || {
                    let clock = ManualClock::at(start_at);
                    let portal = portal_on(store, &clock);
                    let mut burst = Burst {
                        user,
                        committed: Vec::new(),
                        unknown: Vec::new(),
                        errors: Vec::new(),
                        committed_after: 0,
                    };
                    while !stop.load(Ordering::SeqCst) {
                        let code = phone.code(&clock);
                        match portal.verify_sign_in(&burst.user, &code).go(ex) {
                            Ok(_) => {
                                burst.committed.push(clock.now());
                                signed_in.fetch_add(1, Ordering::SeqCst);
                                if over.load(Ordering::SeqCst) {
                                    burst.committed_after += 1;
                                    if burst.committed_after == 1 {
                                        recovered.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                            }
                            Err(Error::Storage(e)) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                burst.unknown.push(clock.now());
                                burst.errors.push(e);
                            }
                            Err(other) => panic!("{:?}: {other:?}", burst.user),
                        }
                        clock.advance(30);
                    }
                    burst
                })
            })
            .collect();
        // Counted, not timed: the fault strikes once every user has signed in
        // a few times, and the burst ends once every user has signed in again
        // after it (the pools recovered by themselves), however slow the machine.
        let _stop_even_if_the_fault_panics = StopOnDrop(&stop);
        wait_until(
            || signed_in.load(Ordering::SeqCst) >= 3 * THREADS,
            "the burst is under way",
        );
        fault(&over, &failed);
        wait_until(
            || recovered.load(Ordering::SeqCst) == THREADS,
            "every user signed in after the fault",
        );
        stop.store(true, Ordering::SeqCst);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Sets the flag when dropped: a burst's workers stop even when the fault
/// panics, so a failed assertion fails the test instead of hanging it.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Every sign-in reported committed has its event; one whose call failed has
/// its event exactly when the record moved on for it; record and trail agree.
fn nothing_half_applied(ex: Executor, portal: &TestPortal, bursts: &[Burst]) {
    for burst in bursts {
        let record = portal.record(&burst.user).go(ex).unwrap();
        let trail = flows::all_pages(ex, portal, EventQuery::portal(portal.id()).user(&burst.user).limit(500));
        let verified: Vec<u64> = trail
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Verified { .. }))
            .map(|e| e.at)
            .collect();
        for at in &burst.committed {
            assert!(
                verified.contains(at),
                "{:?}: the sign-in at {at} has no event",
                burst.user
            );
        }
        for at in &verified {
            assert!(
                burst.committed.contains(at) || burst.unknown.contains(at),
                "{:?}: an event at {at} for no sign-in",
                burst.user
            );
        }
        // The record's last verification is the newest event's.
        assert_eq!(
            record.last_verified_at(),
            verified.iter().max().copied(),
            "{:?}",
            burst.user
        );
    }
}

#[test]
fn a_server_restart_mid_burst_answers_unavailable_and_the_pools_recover_by_themselves() {
    let Some(server) = pg::own(&["-c fsync=off"]) else {
        return;
    };
    for ex in [Executor::Blocking, Executor::Async] {
        let pair = PgPair::new(&server, PostgresOptions::new().connect_timeout(Duration::from_secs(10)));
        let store = store(pair);
        let bursts = sign_in_burst(store.clone(), ex, |over, _| {
            assert!(server.pg_ctl(&["restart", "-m", "fast", "-w"]), "pg_ctl restart");
            over.store(true, Ordering::SeqCst);
        });
        let errors: Vec<&StorageError> = bursts.iter().flat_map(|b| &b.errors).collect();
        assert!(!errors.is_empty(), "{ex:?}: some call was in flight during the restart");
        for e in &errors {
            assert_eq!(e.kind(), StorageErrorKind::Unavailable, "{ex:?}: {e:?}");
        }
        for burst in &bursts {
            assert!(
                burst.committed_after > 0,
                "{ex:?}: {:?} signed in after the restart",
                burst.user
            );
        }
        let clock = ManualClock::at(T0);
        nothing_half_applied(ex, &portal_on(store, &clock), &bursts);
    }
}

#[test]
fn connections_terminated_mid_commit_leave_nothing_half_applied() {
    let Some(server) = pg::shared() else { return };
    for ex in [Executor::Blocking, Executor::Async] {
        let name = format!("victim-{}", pg::unique_name("app"));
        let url = format!("{} application_name={name}", server.url());
        let schema = pg::unique_name("kill");
        let store = store(PgPair::open(&url, &schema, PostgresOptions::new()));
        let mut admin = server.admin();
        let bursts = sign_in_burst(store.clone(), ex, |over, failed| {
            // Terminate writers until one was caught mid-commit and its caller
            // heard of it (a backend terminated just after its statement ended
            // fails only an idle connection, which the pool replaces unseen):
            // counted, not timed, within a bound of tries.
            let mut killed = 0u64;
            for _ in 0..4_000 {
                if killed >= 3 && failed.load(Ordering::SeqCst) > 0 {
                    break;
                }
                let row = admin
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE application_name = $1 AND state = 'active' AND query LIKE 'WITH written%'",
                        &[&name],
                    )
                    .unwrap();
                killed += row.get::<_, i64>(0) as u64;
                std::thread::sleep(Duration::from_millis(15));
            }
            assert!(killed > 0, "some backend was caught mid-commit");
            over.store(true, Ordering::SeqCst);
        });
        let errors: Vec<&StorageError> = bursts.iter().flat_map(|b| &b.errors).collect();
        assert!(!errors.is_empty(), "{ex:?}: some call lost its connection");
        for e in &errors {
            assert_eq!(e.kind(), StorageErrorKind::Unavailable, "{ex:?}: {e:?}");
            assert!(e.is_connection_lost(), "{ex:?}: {e:?}");
        }
        for burst in &bursts {
            assert!(burst.committed_after > 0, "{ex:?}: {:?} went on", burst.user);
        }
        let clock = ManualClock::at(T0);
        nothing_half_applied(ex, &portal_on(store, &clock), &bursts);
    }
}

/// A role for this test, created by the superuser, with `setup` run on it.
fn role(server: &PgServer, schema: &str, setup: &str) -> String {
    let role = pg::unique_name("role");
    let mut admin = server.admin();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA \"{schema}\" TO {role}; {}",
            setup.replace("{role}", &role).replace("{schema}", schema)
        ))
        .unwrap();
    role
}

#[test]
fn a_read_only_role_answers_read_only_and_a_role_without_grants_access_denied() {
    let Some(server) = pg::shared() else { return };
    let Some(_) = server.socket_url("postgres") else {
        return pg::skip("roles need a server these tests started");
    };
    let clock = ManualClock::at(T0);
    let pair = PgPair::new(server, PostgresOptions::new());
    let schema = pair.schema.clone();
    let user = UserId::customer("reader");
    {
        let ex = Executor::Blocking;
        let portal = portal_on(store(pair), &clock);
        enrol(ex, &portal, &clock, &user);
    }
    let cases = [
        (
            "ALTER ROLE {role} SET default_transaction_read_only = on;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{schema}\" TO {role};",
            StorageErrorKind::ReadOnly,
        ),
        (
            "GRANT SELECT ON ALL TABLES IN SCHEMA \"{schema}\" TO {role};",
            StorageErrorKind::AccessDenied,
        ),
    ];
    for (setup, expected) in cases {
        let role = role(server, &schema, setup);
        let url = server.socket_url(&role).unwrap();
        for ex in [Executor::Blocking, Executor::Async] {
            let portal = portal_on(store(PgPair::open(&url, &schema, PostgresOptions::new())), &clock);
            // Reading works; writing answers the typed refusal.
            assert!(portal.record(&user).go(ex).unwrap().mfa_enabled());
            clock.advance(30);
            match portal.verify_sign_in(&user, "000000").go(ex) {
                Err(Error::Storage(e)) => assert_eq!(e.kind(), expected, "{ex:?}: {e}"),
                other => panic!("{ex:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_statement_past_statement_timeout_answers_a_typed_timeout_and_writes_nothing() {
    let Some(server) = pg::shared() else { return };
    let clock = ManualClock::at(T0);
    let pair = PgPair::new(
        server,
        PostgresOptions::new().statement_timeout(Duration::from_millis(300)),
    );
    let schema = pair.schema.clone();
    let ex = Executor::Blocking;
    let portal = portal_on(store(pair), &clock);
    let user = UserId::customer("slow");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let before = portal.record(&user).go(ex).unwrap();
    // Another session holds the user's row: the sign-in's write waits for it past the timeout.
    let mut admin = server.admin();
    let mut holder = admin.transaction().unwrap();
    holder
        .execute(
            &format!("SELECT 1 FROM \"{schema}\".portal_mfa_records WHERE user_id = 'slow' FOR UPDATE"),
            &[],
        )
        .unwrap();
    for ex in [Executor::Blocking, Executor::Async] {
        clock.advance(30);
        let started = Instant::now();
        match portal.verify_sign_in(&user, &phone.code(&clock)).go(ex) {
            Err(Error::Storage(e)) => {
                assert_eq!(e.kind(), StorageErrorKind::Timeout, "{ex:?}: {e}");
                assert!(!e.is_connection_lost());
            }
            other => panic!("{ex:?}: {other:?}"),
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
    holder.rollback().unwrap();
    assert_eq!(
        portal.record(&user).go(ex).unwrap().last_verified_at(),
        before.last_verified_at()
    );
    clock.advance(30);
    portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
}

// ---------------------------------------------------------------------------
// Schema

/// A schema at version 1 (0.2, before trusted browsers) migrates to the
/// current one on open: the trusted-browser and passkey counts are added (0
/// for every existing record),
/// and its users sign in and trust browsers as before.
#[test]
fn a_version_1_schema_gains_the_trusted_browser_and_passkey_counts() {
    let Some(server) = pg::shared() else { return };
    let pair = PgPair::new(server, PostgresOptions::new());
    let schema = pair.schema.clone();
    let clock = ManualClock::at(T0);
    let user = UserId::customer("before");
    let phone = {
        let portal = portal_on(store(pair), &clock);
        enrol(Executor::Blocking, &portal, &clock, &user).0
    };
    // Back to version 1's layout.
    server
        .admin()
        .batch_execute(&format!(
            "ALTER TABLE \"{schema}\".portal_mfa_records DROP COLUMN trusted_browsers;
             ALTER TABLE \"{schema}\".portal_mfa_records DROP COLUMN passkeys;
             ALTER TABLE \"{schema}\".portal_mfa_records DROP COLUMN reset_requested_at;
             DELETE FROM \"{schema}\".portal_mfa_schema WHERE version > 1;"
        ))
        .unwrap();
    let portal = portal_on(
        store(PgPair::open(server.url(), &schema, PostgresOptions::new())),
        &clock,
    );
    let version = server
        .admin()
        .query(&format!("SELECT max(version) FROM \"{schema}\".portal_mfa_schema"), &[])
        .unwrap()[0]
        .get::<_, Option<i32>>(0);
    assert_eq!(version, Some(portal_mfa::store::POSTGRES_SCHEMA_VERSION));
    let listed = &portal.users(UserQuery::new()).run().unwrap().items[0];
    assert_eq!(
        (listed.trusted_browsers, listed.passkeys, listed.authenticators),
        (0, 0, 1)
    );
    portal
        .update_policy(&flows::ADMIN, |p| p.with_trusted_browser_days(7))
        .run()
        .unwrap();
    let stamp = portal.verify_sign_in(&user, &phone.code(&clock)).run().unwrap().session;
    portal.trust_browser(&user, &stamp, "Safari").run().unwrap();
    assert_eq!(
        portal.users(UserQuery::new()).run().unwrap().items[0].trusted_browsers,
        1
    );
}

#[test]
fn a_newer_schema_and_foreign_tables_with_our_names_are_refused() {
    let Some(server) = pg::shared() else { return };
    let mut admin = server.admin();
    let open = |schema: &str| {
        let sync = PostgresStore::connect(server.url(), PostgresOptions::new().schema(schema)).map(drop);
        let nonblocking = flows::runtime()
            .block_on(AsyncPostgresStore::connect(
                server.url(),
                PostgresOptions::new().schema(schema),
            ))
            .map(drop);
        [storage_error(sync), storage_error(nonblocking)]
    };
    // Written by a newer version.
    let newer = PgPair::new(server, PostgresOptions::new()).schema;
    admin
        .batch_execute(&format!(
            "INSERT INTO \"{newer}\".portal_mfa_schema (version) VALUES (99)"
        ))
        .unwrap();
    for e in open(&newer) {
        assert_eq!(e.kind(), StorageErrorKind::IncompatibleSchema, "{e:?}");
    }
    // Someone else's table with our name, and no schema table.
    let foreign = pg::unique_name("foreign");
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA \"{foreign}\"; CREATE TABLE \"{foreign}\".portal_mfa_records (id integer);"
        ))
        .unwrap();
    for e in open(&foreign) {
        assert_eq!(e.kind(), StorageErrorKind::Corrupt, "{e:?}");
        assert!(
            format!("{e} {:?}", std::error::Error::source(&e)).contains("portal_mfa_records"),
            "{e:?}"
        );
    }
    // Someone else's table named like our schema table.
    let foreign = pg::unique_name("foreign");
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA \"{foreign}\"; CREATE TABLE \"{foreign}\".portal_mfa_schema (name text);"
        ))
        .unwrap();
    for e in open(&foreign) {
        assert_eq!(e.kind(), StorageErrorKind::Corrupt, "{e:?}");
        assert!(e.to_string().contains("not created by portal-mfa"), "{e}");
    }
    // The tables are untouched by the refusals.
    let rows = admin
        .query(&format!("SELECT max(version) FROM \"{newer}\".portal_mfa_schema"), &[])
        .unwrap();
    assert_eq!(rows[0].get::<_, Option<i32>>(0), Some(99));
}

#[test]
fn a_portal_wide_page_never_skips_an_event_that_commits_later() {
    let Some(server) = pg::shared() else { return };
    let clock = ManualClock::at(T0);
    let pair = PgPair::new(server, PostgresOptions::new());
    let schema = pair.schema.clone();
    let ex = Executor::Blocking;
    let portal = portal_on(store(pair), &clock);
    let alice = UserId::customer("alice");
    enrol(ex, &portal, &clock, &alice);
    let all = |portal: &TestPortal| flows::all_pages(ex, portal, EventQuery::portal(portal.id()).limit(2));
    let before = all(&portal).len();
    // An older transaction writes an event (a copy of the newest) and stays open…
    let mut admin = server.admin();
    let mut older = admin.transaction().unwrap();
    older
        .batch_execute(&format!(
            "INSERT INTO \"{schema}\".portal_mfa_events (portal, user_kind, user_id, at, kind, event)
             SELECT portal, user_kind, user_id, at, kind, event FROM \"{schema}\".portal_mfa_events
             ORDER BY seq DESC LIMIT 1"
        ))
        .unwrap();
    // …while a newer one commits a sign-in.
    let bob = UserId::vendor("bob");
    enrol(ex, &portal, &clock, &bob);
    let bobs = portal
        .audit_events(EventQuery::portal(portal.id()).user(&bob))
        .go(ex)
        .unwrap()
        .items
        .len();
    assert!(bobs > 0, "one user's trail needs no horizon");
    // The portal-wide trail holds Bob's events back: showing them would let the older one land behind a cursor.
    assert_eq!(all(&portal).len(), before);
    older.commit().unwrap();
    let after = all(&portal);
    assert_eq!(after.len(), before + 1 + bobs, "every event, once, in order");
    assert_eq!(
        after[before].user.as_ref(),
        Some(&alice),
        "the older transaction's event first"
    );
}

// ---------------------------------------------------------------------------
// Connection faults and credentials

#[test]
fn each_bad_connection_answers_its_own_typed_error_without_the_password() {
    let Some(server) = pg::shared() else { return };
    let Some(_) = server.tcp_url("x", "y", "z") else {
        return pg::skip("password checks need a server these tests started");
    };
    const PASSWORD: &str = "Correct-Horse-77";
    const WRONG: &str = "Wrong-Battery-99";
    let role = pg::unique_name("pw");
    server
        .admin()
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'"))
        .unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Accepts connections (the kernel's backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Every case but the silent server answers within PATIENCE on any machine; that one waits its timeout out.
    let options = |case: &str| {
        let timeout = if case == "a server that never answers" {
            Duration::from_millis(500)
        } else {
            flows::PATIENCE
        };
        PostgresOptions::new().connect_timeout(timeout)
    };
    let cases: [(&str, String, StorageErrorKind); 6] = [
        (
            "malformed URL",
            format!("postgres://{role}:{PASSWORD}@[::1/x"),
            StorageErrorKind::InvalidConfig,
        ),
        (
            "wrong password",
            server.tcp_url(&role, WRONG, "postgres").unwrap(),
            StorageErrorKind::AccessDenied,
        ),
        (
            "missing database",
            server.tcp_url(&role, PASSWORD, "no_such_database").unwrap(),
            StorageErrorKind::MissingDatabase,
        ),
        (
            "unreachable server",
            format!("postgres://{role}:{PASSWORD}@127.0.0.1:{closed_port}/postgres"),
            StorageErrorKind::Unavailable,
        ),
        (
            "a server that never answers",
            format!(
                "postgres://{role}:{PASSWORD}@127.0.0.1:{}/postgres",
                silent.local_addr().unwrap().port()
            ),
            StorageErrorKind::Unavailable,
        ),
        (
            "a good URL",
            server.tcp_url(&role, PASSWORD, "postgres").unwrap(),
            StorageErrorKind::Other,
        ),
    ];
    let log = flows::capture_logs(|| {
        for (case, url, expected) in &cases {
            let sync = PostgresStore::connect(url, options(case).schema(pg::unique_name("bad")));
            let nonblocking = flows::runtime().block_on(AsyncPostgresStore::connect(
                url,
                options(case).schema(pg::unique_name("bad")),
            ));
            if *case == "a good URL" {
                // The role may not create a schema: that, too, is typed.
                for e in [storage_error(sync), storage_error(nonblocking)] {
                    assert_eq!(e.kind(), StorageErrorKind::AccessDenied, "{case}: {e:?}");
                }
                continue;
            }
            for e in [storage_error(sync), storage_error(nonblocking)] {
                assert_eq!(e.kind(), *expected, "{case}: {e:?}");
                assert!(!e.is_connection_lost(), "{case}");
                // Nothing was sent: a server not there (yet) is worth another try, the rest are not.
                assert_eq!(
                    e.is_retryable(),
                    *expected == StorageErrorKind::Unavailable,
                    "{case}: {e:?}"
                );
                let shown = format!(
                    "{e} | {e:?} | {:?}",
                    std::error::Error::source(&e).map(|s| s.to_string())
                );
                assert!(!shown.contains(PASSWORD) && !shown.contains(WRONG), "{case}: {shown}");
                #[cfg(feature = "tracing")]
                tracing::warn!("{case}: {e} {e:?}");
            }
        }
    });
    assert!(!log.contains(PASSWORD) && !log.contains(WRONG), "{log}");
}

#[test]
fn a_connection_dropped_mid_call_says_so() {
    let Some(server) = pg::shared() else { return };
    let name = format!("dropped-{}", pg::unique_name("app"));
    let url = format!("{} application_name={name}", server.url());
    let clock = ManualClock::at(T0);
    let pair = PgPair::open(&url, &pg::unique_name("drop"), PostgresOptions::new());
    let schema = pair.schema.clone();
    let ex = Executor::Blocking;
    let portal = portal_on(store(pair), &clock);
    let user = UserId::customer("dropped");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    let mut admin = server.admin();
    for ex in [Executor::Blocking, Executor::Async] {
        // Hold the row so the sign-in's write waits, then end its session.
        let mut holder = admin.transaction().unwrap();
        holder
            .execute(
                &format!("SELECT 1 FROM \"{schema}\".portal_mfa_records WHERE user_id = 'dropped' FOR UPDATE"),
                &[],
            )
            .unwrap();
        clock.advance(30);
        let code = phone.code(&clock);
        let outcome = std::thread::scope(|s| {
            let call = s.spawn(|| portal.verify_sign_in(&user, &code).go(ex));
            let mut killer = server.admin();
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let row = killer
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE application_name = $1 AND wait_event_type = 'Lock'",
                        &[&name],
                    )
                    .unwrap();
                if row.get::<_, i64>(0) > 0 {
                    break;
                }
            }
            call.join().unwrap()
        });
        holder.rollback().unwrap();
        match outcome {
            Err(Error::Storage(e)) => {
                assert_eq!(e.kind(), StorageErrorKind::Unavailable, "{ex:?}: {e}");
                assert!(e.is_connection_lost(), "{ex:?}: {e:?}");
            }
            other => panic!("{ex:?}: {other:?}"),
        }
        // Nothing of it was written, and the next call gets a fresh connection by itself.
        assert!(portal.record(&user).go(ex).unwrap().last_verified_at() < Some(clock.now()));
        portal.verify_sign_in(&user, &code).go(ex).unwrap();
    }
}

#[test]
fn the_blocking_store_works_from_inside_a_tokio_runtime() {
    let Some(server) = pg::shared() else { return };
    let store =
        Arc::new(PostgresStore::connect(server.url(), PostgresOptions::new().schema(pg::unique_name("rt"))).unwrap());
    let portal = portal_mfa::PortalId::new("p");
    let user = UserId::customer("u");
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(current.block_on(async { store.load(&portal, &user) }).unwrap(), None);
    let multi = flows::runtime();
    let task = {
        let store = store.clone();
        let (portal, user) = (portal.clone(), user.clone());
        multi.spawn(async move { store.load(&portal, &user) })
    };
    assert_eq!(multi.block_on(task).unwrap().unwrap(), None);
    let blocking = {
        let store = store.clone();
        multi.spawn_blocking(move || store.load(&portal, &user))
    };
    assert_eq!(multi.block_on(blocking).unwrap().unwrap(), None);
}

#[test]
fn the_main_example_runs_on_postgres_and_finds_its_state_on_the_second_run() {
    let Some(server) = pg::shared() else { return };
    let database = pg::unique_name("example");
    server
        .admin()
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .unwrap();
    let url = server.url().replace("dbname=postgres", &format!("dbname={database}"));
    let dir = TempDir::new("pg-example");
    let run = || {
        let output = Command::new(flows::example_binary())
            .args(["--db", &url])
            .current_dir(&dir.0)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let first = run();
    assert!(first.contains("She must enrol"), "{first}");
    let second = run();
    assert!(
        second.contains("Welcome back: the database already knows Alice"),
        "{second}"
    );
    assert!(second.contains("signed in with Totp(AuthenticatorId(2))"), "{second}");
    assert!(dir.file("portal-mfa-postgres.key").exists());
    // The records hold the secrets sealed: none of the keys printed for typing is in them.
    let mut client = pg::Client::connect(&url);
    let stored: Vec<Vec<u8>> = client
        .query("SELECT record FROM portal_mfa_records", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!stored.is_empty());
    for secret in flows::printed_keys(&first) {
        assert!(
            stored
                .iter()
                .all(|r| !r.windows(secret.len()).any(|w| w == secret.as_slice())),
            "a printed secret is stored in the clear"
        );
    }
}

#[test]
fn serialization_failures_under_serializable_are_retried_as_lost_races() {
    let Some(server) = pg::shared() else { return };
    // Every transaction of these connections SERIALIZABLE: concurrent writers of one row fail with 40001.
    let url = format!(
        "{} options='-c default_transaction_isolation=serializable'",
        server.url()
    );
    for ex in [Executor::Blocking, Executor::Async] {
        let clock = ManualClock::at(T0);
        let lenient = PortalPolicy::default().with_lockout(LockoutRule::new(100, 1, 1).unwrap());
        let portal = portal_on(
            store(PgPair::open(&url, &pg::unique_name("ser"), PostgresOptions::new())),
            &clock,
        )
        .with_default_policy(lenient)
        .with_max_attempts(200);
        let user = UserId::customer("serial");
        let (phone, _) = enrol(ex, &portal, &clock, &user);
        for _ in 0..20 {
            clock.advance(30);
            let code = phone.code(&clock);
            let barrier = Barrier::new(16);
            let outcomes: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..16)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            portal.verify_sign_in(&user, &code).go(ex)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 1, "{ex:?}: {outcomes:?}");
            for r in outcomes.iter().filter(|r| r.is_err()) {
                assert!(
                    matches!(r, Err(Error::ReplayedCode | Error::Conflict { .. })),
                    "{ex:?}: {r:?}"
                );
            }
        }
    }
}

#[test]
fn an_unusable_schema_name_is_a_configuration_error() {
    let Some(server) = pg::shared() else { return };
    for name in ["", "x".repeat(64).as_str(), "nul\0here"] {
        let e = storage_error(PostgresStore::connect(server.url(), PostgresOptions::new().schema(name)).map(drop));
        assert_eq!(e.kind(), StorageErrorKind::InvalidConfig, "{name:?}");
    }
    // Any other name is quoted, not interpreted: this one creates a schema by that very name.
    let odd = format!("{}\"; DROP TABLE x; --", pg::unique_name("odd"));
    PostgresStore::connect(server.url(), PostgresOptions::new().schema(odd.as_str())).unwrap();
    let found: bool = server
        .admin()
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", &[&odd])
        .unwrap()
        .get(0);
    assert!(found);
}

#[test]
fn the_async_store_runs_on_a_pool_the_host_built() {
    let Some(server) = pg::shared() else { return };
    let config: tokio_postgres::Config = server.url().parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(manager).max_size(2).build().unwrap();
    let options = PostgresOptions::new().schema(pg::unique_name("hostpool"));
    let store = flows::runtime()
        .block_on(AsyncPostgresStore::with_pool(pool.clone(), options))
        .unwrap();
    assert_eq!(
        flows::runtime().block_on(store.schema_version()).unwrap(),
        portal_mfa::store::POSTGRES_SCHEMA_VERSION
    );
    let clock = ManualClock::at(T0);
    let portal = portal_mfa::Portal::new(portal_mfa::PortalId::new("acme"), "Acme", store)
        .unwrap()
        .with_keyring(flows::keyring())
        .with_clock(clock.clone());
    let user = UserId::customer("pooled");
    let session = flows::runtime()
        .block_on(portal.begin_sign_in(&user).into_future())
        .unwrap()
        .session()
        .unwrap();
    let started = flows::runtime()
        .block_on(
            portal
                .start_enrolment(
                    &user,
                    &session,
                    "pooled",
                    "phone",
                    portal_mfa::EnrolmentOptions::default(),
                )
                .into_future(),
        )
        .unwrap();
    let phone = Phone::scan(&started.uri);
    flows::runtime()
        .block_on(
            portal
                .confirm_enrolment(&user, &session, &phone.code(&clock))
                .into_future(),
        )
        .unwrap();
    // The store drew its connections from the host's pool, and gave them back.
    let status = pool.status();
    assert!(status.size >= 1 && status.size <= 2, "{status:?}");
    assert_eq!(status.available, status.size, "{status:?}");
}

/// Four processes with eight connections each give one passkey response at
/// once, for each of a few users: each response is accepted exactly once.
#[cfg(feature = "webauthn")]
#[test]
fn four_processes_with_eight_connections_each_accept_one_passkey_response_once() {
    use flows::passkeys::{SoftKey, passkey_user, sign_in_options};
    let Some(server) = pg::shared() else { return };
    let pair = PgPair::new(server, PostgresOptions::new());
    let schema = pair.schema.clone();
    let clock = ManualClock::at(T0);
    let portal = portal_on(store(pair), &clock);
    // Fewer than the code races: every connection checks a signature.
    let jobs: Vec<(UserId, String)> = (0..TRIALS / 8)
        .map(|i| {
            let user = UserId::customer(format!("pk{i}"));
            let (mut key, _, _) = passkey_user(Executor::Blocking, &portal, &user, SoftKey::security_key());
            let response = key
                .sign(&sign_in_options(Executor::Blocking, &portal, &user, 0, 1))
                .unwrap();
            (user, response)
        })
        .collect();
    let accepted = race(server.url(), &schema, clock.now(), &jobs);
    assert!(accepted.iter().all(|&n| n == 1), "per trial, acceptances: {accepted:?}");
    for (user, _) in &jobs {
        let trail = portal
            .audit_events(EventQuery::portal(portal.id()).user(user))
            .run()
            .unwrap()
            .items;
        let verified = trail.iter().filter(|e| matches!(e.kind, EventKind::Verified { .. }));
        assert_eq!(verified.count(), 1, "{user:?}: one acceptance, one event");
    }
}

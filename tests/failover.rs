//! PostgreSQL failover: a primary with a streaming standby (see
//! `flows/pg.rs`, `Cluster`), worker processes signing in with codes and
//! backup codes and sending wrong codes at full speed, the primary killed at a
//! random point of the burst, the standby promoted, the workers reconnecting
//! through the multi-host URL and going on.
//!
//! Checked after every round against the workers' own record of what they
//! were told: each code answered as accepted stays used on the new primary
//! (its replay is refused), each consumed backup code stays consumed, each
//! counted failure is still counted, each acknowledged event is in the trail,
//! the record agrees with its trail, and every call that failed says
//! `Unavailable`. With synchronous replication no round may break any of it;
//! the control, asynchronous replication with a standby that lags, must show
//! the loss PostgreSQL's documentation warns about, so the test can fail.
//!
//! The test binary re-runs itself as the workers (`worker`, ignored in normal
//! runs). Work is bounded by counts: rounds, operations and waits.

#![cfg(feature = "postgres")]

mod flows;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use flows::pg::{self, Cluster, Kill, Replication};
use flows::{Executor, Go, PgPair, Phone, T0, TempDir, TestPortal, portal_on, wait_until};
use portal_mfa::audit::{EventKind, Factor};
use portal_mfa::store::PostgresOptions;
use portal_mfa::{Error, ManualClock, UserId};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const PROCESSES: usize = 2;
const THREADS: usize = 4;
/// Operations each worker thread runs after the failover, on a user enrolled then.
const AFTER: usize = 4;
/// A bound on one thread's operations before the failover.
const MAX_OPS: usize = 20_000;
const SCHEMA: &str = "failover";

/// What one operation of a worker was, and what it was told.
#[derive(Debug, Clone)]
struct Told {
    user: String,
    op: String,
    at: u64,
    input: String,
    verdict: String,
}

/// The child side: enrol one user per thread, write the `ready` file, run
/// the cycle of operations until the `killing` file appears, read the record
/// until the `promoted` file appears, then enrol a second user and run
/// operations on it until AFTER of them were answered. The first user's record is left as the failover
/// left it, so a replay checked afterwards meets that state, not one later
/// sign-ins moved on.
/// Every answer is a line `@@ <user> <op> <at> <input> <verdict>`.
#[test]
#[ignore = "run by the tests in this file as a separate process"]
fn worker() {
    let Ok(dir) = std::env::var("PORTAL_MFA_FAILOVER_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let env = |name: &str| std::env::var(name).unwrap();
    let (url, role, round) = (
        env("PORTAL_MFA_PG_URL"),
        env("PORTAL_MFA_ROLE"),
        env("PORTAL_MFA_ROUND"),
    );
    let ex = if env("PORTAL_MFA_EXECUTOR") == "async" {
        Executor::Async
    } else {
        Executor::Blocking
    };
    let options = PostgresOptions::new()
        .max_connections(THREADS)
        .connect_timeout(Duration::from_secs(5));
    let store: std::sync::Arc<dyn flows::TestStore> = std::sync::Arc::new(PgPair::open(&url, SCHEMA, options));
    let out = Mutex::new(std::io::stdout());
    let say = |told: &Told| {
        writeln!(
            out.lock().unwrap(),
            "\n@@ {} {} {} {} {}",
            told.user,
            told.op,
            told.at,
            told.input,
            told.verdict
        )
        .unwrap();
    };
    let enrolled = std::sync::Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, dir, enrolled, say) = (store.clone(), &dir, &enrolled, &say);
            let user_name = format!("r{round}-p{role}-t{t}");
            s.spawn(move || {
                let clock = ManualClock::at(T0);
                let portal = portal_on(store, &clock).with_max_attempts(1_000);
                let before = UserId::customer(user_name.clone());
                let (phone, mut backup_codes) = enrol_until_done(ex, &portal, &clock, &before, say);
                enrolled.wait();
                for i in 0..MAX_OPS {
                    if dir.join("killing").exists() {
                        break;
                    }
                    let told = operate(ex, &portal, &clock, &before, &phone, &mut backup_codes, i);
                    say(&told);
                    if told.verdict.starts_with("err") {
                        // Not a spin against a dead server; the outcome is never timed.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                // While the primary is down: reads, which must fail and never answer from the standby.
                for _ in 0..12_000 {
                    if dir.join("promoted").exists() {
                        break;
                    }
                    let read = portal.record(&before).go(ex);
                    say(&Told {
                        user: user_name.clone(),
                        op: "read".to_owned(),
                        at: 0,
                        input: "-".to_owned(),
                        verdict: verdict(read.as_ref()),
                    });
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Then on, with a new user, until AFTER answers came back (within a bound).
                let after = UserId::customer(format!("{user_name}-after"));
                let (phone, mut backup_codes) = enrol_until_done(ex, &portal, &clock, &after, say);
                let mut answered = 0;
                for i in 0..1_000 {
                    let told = operate(ex, &portal, &clock, &after, &phone, &mut backup_codes, i);
                    say(&told);
                    if !told.verdict.starts_with("err") {
                        answered += 1;
                        if answered == AFTER {
                            break;
                        }
                    }
                }
            });
        }
        enrolled.wait();
        std::fs::write(dir.join(format!("ready-{role}")), b"").unwrap();
    });
}

/// Enrols `user`, trying again while the store is unavailable (a bounded
/// number of times); each failure is told as an `enrol` operation.
fn enrol_until_done(
    ex: Executor,
    portal: &TestPortal,
    clock: &ManualClock,
    user: &UserId,
    say: &dyn Fn(&Told),
) -> (Phone, Vec<String>) {
    let mut last = None;
    for _ in 0..1_000 {
        let attempt = portal
            .begin_sign_in(user)
            .go(ex)
            .and_then(|step| step.session().ok_or(portal_mfa::Error::ProofRequired))
            .and_then(|session| {
                let started = portal
                    .start_enrolment(user, &session, user.id(), "phone", Default::default())
                    .go(ex)?;
                let phone = Phone::scan(&started.uri);
                let confirmed = portal.confirm_enrolment(user, &session, &phone.code(clock)).go(ex)?;
                Ok((phone, confirmed))
            });
        match attempt {
            Ok((phone, confirmed)) => {
                clock.advance(30);
                let codes = confirmed.backup_codes.unwrap().expose().map(str::to_owned).collect();
                return (phone, codes);
            }
            Err(e) => {
                say(&enrol_failed(user, &e));
                last = Some(e);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    panic!("{user:?} could not enrol: {last:?}");
}

fn enrol_failed(user: &UserId, error: &Error) -> Told {
    Told {
        user: user.id().to_owned(),
        op: "enrol".to_owned(),
        at: 0,
        input: "-".to_owned(),
        verdict: verdict::<()>(Err(error)),
    }
}

/// What a worker tells of an answer.
fn verdict<T>(answer: Result<T, &Error>) -> String {
    match answer {
        Ok(_) => "ok".to_owned(),
        Err(Error::WrongCode { .. }) => "wrong".to_owned(),
        Err(Error::Storage(e)) => format!("err {:?} {}", e.kind(), e.is_connection_lost()),
        Err(other) => format!("refused {}", format!("{other:?}").replace(' ', "")),
    }
}

/// One operation of the cycle (code, wrong code, code, backup code, wrong
/// code, wrong code), each on a time step of its own.
fn operate(
    ex: Executor,
    portal: &TestPortal,
    clock: &ManualClock,
    user: &UserId,
    phone: &Phone,
    backup_codes: &mut Vec<String>,
    i: usize,
) -> Told {
    let code = phone.code(clock);
    let at = portal_mfa::Clock::now(clock);
    let (op, input) = match i % 6 {
        3 if !backup_codes.is_empty() => ("backup", backup_codes.remove(0)),
        1 | 4 | 5 => ("wrong", wrong_code(phone, at)),
        _ => ("code", code),
    };
    let verdict = verdict(portal.verify_sign_in(user, &input).go(ex).as_ref());
    clock.advance(30);
    Told {
        user: user.id().to_owned(),
        op: op.to_owned(),
        at,
        input,
        verdict,
    }
}

/// Six digits that no step within the accepted drift of `at` shows.
fn wrong_code(phone: &Phone, at: u64) -> String {
    let near: Vec<String> = [at - 30, at, at + 30].iter().map(|&t| phone.code_at(t)).collect();
    let mut n: u32 = near[1].parse::<u32>().unwrap() + 500_000;
    loop {
        let candidate = format!("{:06}", n % 1_000_000);
        if !near.contains(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// What the checks found in one configuration's rounds.
#[derive(Debug, Default)]
struct Report {
    rounds: usize,
    accepted_codes: usize,
    consumed_backup_codes: usize,
    counted_failures: usize,
    failed_calls: usize,
    connection_lost: usize,
    /// Acknowledged operations whose event is not in the new primary's trail:
    /// accepted codes, consumed backup codes, counted wrong codes.
    lost_accepted_codes: usize,
    lost_backup_codes: usize,
    lost_failures: usize,
    /// An accepted code or consumed backup code accepted again after the failover.
    replays_accepted: usize,
    /// A record that disagrees with its own trail.
    half_applied: usize,
    /// A failed call that said anything but `Unavailable`, or an answer the operation cannot have.
    wrong_answers: Vec<String>,
}

impl Report {
    fn violations(&self) -> usize {
        self.lost_accepted_codes
            + self.lost_backup_codes
            + self.lost_failures
            + self.replays_accepted
            + self.half_applied
            + self.wrong_answers.len()
    }
}

/// One round: workers start on the cluster, the primary dies after `kill_after`
/// sign-in attempts (first stopping replication when `lag`), the standby is
/// promoted and a new standby added, the workers go on; then the checks.
fn round(cluster: &mut Cluster, n: usize, kill: Kill, lag: bool, kill_after: i64, report: &mut Report) {
    let dir = TempDir::new("failover");
    let children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            flows::spawn_worker(&[
                ("PORTAL_MFA_FAILOVER_DIR", dir.0.display().to_string()),
                ("PORTAL_MFA_PG_URL", cluster.url()),
                ("PORTAL_MFA_ROLE", i.to_string()),
                ("PORTAL_MFA_ROUND", n.to_string()),
                (
                    "PORTAL_MFA_EXECUTOR",
                    if (i + n).is_multiple_of(2) { "blocking" } else { "async" }.to_owned(),
                ),
            ])
        })
        .collect();
    wait_until(
        || (0..PROCESSES).all(|i| dir.0.join(format!("ready-{i}")).exists()),
        "the workers enrolled",
    );
    let mut primary = pg::Client::connect(&cluster.primary_url());
    let count =
        format!("SELECT count(*) FROM {SCHEMA}.portal_mfa_events WHERE kind IN ('verified', 'verification_failed')");
    let attempts = |primary: &mut pg::Client| primary.query_one(&count, &[]).unwrap().get::<_, i64>(0);
    let start = attempts(&mut primary);
    wait_until(
        || attempts(&mut primary) >= start + kill_after,
        "the burst is under way",
    );
    if lag {
        cluster.pause_replication();
        // Counted, not timed: asynchronous commits go on while the standby
        // hears nothing; synchronous ones pile up waiting for it.
        let paused_at = attempts(&mut primary);
        if cluster.replication == Replication::Async {
            wait_until(
                || attempts(&mut primary) >= paused_at + 8,
                "commits while the standby lags",
            );
        } else {
            let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
            wait_until(
                || primary.query_one(waiting, &[]).unwrap().get::<_, i64>(0) >= (PROCESSES * THREADS / 2) as i64,
                "commits waiting for the standby",
            );
        }
    }
    drop(primary);
    std::fs::write(dir.0.join("killing"), b"").unwrap();
    cluster.kill_primary(kill);
    cluster.promote();
    std::fs::write(dir.0.join("promoted"), b"").unwrap();
    cluster
        .add_standby()
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let mut told = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a worker failed\n{}", cluster.logs());
        told.extend(String::from_utf8_lossy(&output.stdout).lines().filter_map(|line| {
            let mut w = line.strip_prefix("@@ ")?.splitn(5, ' ');
            Some(Told {
                user: w.next()?.to_owned(),
                op: w.next()?.to_owned(),
                at: w.next()?.parse().ok()?,
                input: w.next()?.to_owned(),
                verdict: w.next()?.to_owned(),
            })
        }));
    }
    check(cluster, &told, report);
    report.rounds += 1;
}

/// Compares what the workers were told with what the new primary holds.
fn check(cluster: &Cluster, told: &[Told], report: &mut Report) {
    let store: std::sync::Arc<dyn flows::TestStore> =
        std::sync::Arc::new(PgPair::open(&cluster.url(), SCHEMA, PostgresOptions::new()));
    let clock = ManualClock::at(T0);
    let portal = portal_on(store, &clock).with_max_attempts(1_000_000);
    let ex = Executor::Blocking;
    let mut by_user: BTreeMap<&str, Vec<&Told>> = BTreeMap::new();
    for t in told {
        by_user.entry(&t.user).or_default().push(t);
    }
    assert_eq!(by_user.len(), 2 * PROCESSES * THREADS, "every user was heard from");
    for (user, ops) in &by_user {
        let user = UserId::customer(*user);
        // The pools recover by themselves: every worker went on after the failover.
        if user.id().ends_with("-after") && ops.iter().filter(|t| !t.verdict.starts_with("err")).count() < AFTER {
            report.wrong_answers.push(format!("{user:?} did not go on: {ops:?}"));
        }
        let trail = flows::trail_of(ex, &portal, &user);
        let event_at = |at: u64, wanted: fn(&EventKind) -> bool| trail.iter().any(|e| e.at == at && wanted(&e.kind));
        for t in ops {
            match (t.op.as_str(), t.verdict.as_str()) {
                ("code", "ok") => {
                    report.accepted_codes += 1;
                    if !event_at(t.at, |k| {
                        matches!(
                            k,
                            EventKind::Verified {
                                factor: Factor::Totp(_)
                            }
                        )
                    }) {
                        report.lost_accepted_codes += 1;
                    }
                }
                ("backup", "ok") => {
                    report.consumed_backup_codes += 1;
                    if !event_at(t.at, |k| matches!(k, EventKind::BackupCodeUsed { .. })) {
                        report.lost_backup_codes += 1;
                    }
                }
                ("read" | "enrol", "ok") => {}
                ("wrong", "wrong") => {
                    report.counted_failures += 1;
                    if !event_at(t.at, |k| matches!(k, EventKind::VerificationFailed { .. })) {
                        report.lost_failures += 1;
                    }
                }
                (_, verdict) if verdict.starts_with("err ") => {
                    report.failed_calls += 1;
                    let lost = verdict.ends_with(" true");
                    report.connection_lost += usize::from(lost);
                    // A failure that does not say the connection was lost mid-call wrote nothing.
                    let written = t.at != 0 && trail.iter().any(|e| e.at == t.at);
                    if !verdict.starts_with("err Unavailable ") || (!lost && written) {
                        report.wrong_answers.push(format!("{user:?} {t:?}"));
                    }
                }
                _ => report.wrong_answers.push(format!("{user:?} {t:?}")),
            }
        }
        // Nothing half-applied: the record agrees with its own trail.
        let record = portal.record(&user).go(ex).unwrap();
        let verified: Vec<u64> = trail
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Verified { .. }))
            .map(|e| e.at)
            .collect();
        let last_success = verified.iter().max().copied();
        let failures_since = trail
            .iter()
            .filter(|e| matches!(e.kind, EventKind::VerificationFailed { .. }) && Some(e.at) > last_success)
            .count();
        let backup_used = trail
            .iter()
            .filter(|e| matches!(e.kind, EventKind::BackupCodeUsed { .. }))
            .count();
        let agrees = record.last_verified_at() == last_success
            && record.failures().consecutive() as usize == failures_since
            && record.backup_codes().map(|b| b.remaining() as usize) == Some(10 - backup_used);
        report.half_applied += usize::from(!agrees);
        // Replays, last: each accepted code and consumed backup code, typed again at its own time.
        for t in ops.iter().filter(|t| t.verdict == "ok") {
            clock.set(t.at);
            if portal.verify_sign_in(&user, &t.input).go(ex).is_ok() {
                report.replays_accepted += 1;
            }
        }
    }
}

/// Runs `rounds` (each a kill and whether replication lags first) on a new
/// cluster; the primary dies after a random number of attempts (seeded).
fn failover(replication: Replication, rounds: &[(Kill, bool)]) -> Option<Report> {
    let mut cluster = pg::cluster(replication)?;
    // The schema exists before the workers start, so none of them races to create it.
    drop(PgPair::open(&cluster.url(), SCHEMA, PostgresOptions::new()));
    let mut rng = StdRng::seed_from_u64(24);
    let mut report = Report::default();
    for (n, &(kill, lag)) in rounds.iter().enumerate() {
        round(&mut cluster, n, kill, lag, rng.random_range(10..120), &mut report);
    }
    eprintln!("{replication:?}: {report:#?}");
    Some(report)
}

/// Every kind of kill, each with the standby streaming and with it stopped.
const EVERY_KILL: [(Kill, bool); 4] = [
    (Kill::Immediate, false),
    (Kill::Postmaster, false),
    (Kill::Everything, true),
    (Kill::Everything, false),
];

fn assert_nothing_lost(report: &Report) {
    assert_eq!(report.violations(), 0, "{report:#?}");
    assert!(report.accepted_codes > 0 && report.consumed_backup_codes > 0 && report.counted_failures > 0);
    assert!(
        report.connection_lost > 0,
        "some call was in flight at a kill: {report:#?}"
    );
}

#[test]
fn with_a_synchronous_standby_a_failover_loses_no_accepted_code_backup_code_or_failure() {
    let Some(report) = failover(Replication::Sync, &[EVERY_KILL, EVERY_KILL].concat()) else {
        return;
    };
    assert_nothing_lost(&report);
}

#[test]
fn with_remote_apply_a_failover_loses_nothing_either() {
    let Some(report) = failover(Replication::SyncApply, &EVERY_KILL) else {
        return;
    };
    assert_nothing_lost(&report);
}

/// The control: the same rounds with asynchronous replication lose what the
/// primary acknowledged and the standby never heard of, replays accepted.
#[test]
fn with_asynchronous_replication_a_lagging_standby_loses_acknowledged_codes() {
    let Some(report) = failover(Replication::Async, &[(Kill::Everything, true); 3]) else {
        return;
    };
    assert!(report.lost_accepted_codes + report.lost_backup_codes > 0, "{report:#?}");
    assert!(report.replays_accepted > 0, "{report:#?}");
}

/// Waits until the standby has applied everything the primary wrote so far.
fn caught_up(cluster: &Cluster) {
    let mut primary = pg::Client::connect(&cluster.primary_url());
    let lsn: String = primary
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .unwrap()
        .get(0);
    let mut standby = pg::Client::connect(&cluster.standby_url());
    wait_until(
        || {
            standby
                .query_one("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", &[&lsn])
                .unwrap()
                .get(0)
        },
        "the standby caught up",
    );
}

/// With `PostgresOptions::read_standby`, the admin's listing, audit pages and
/// counts come from the standby, and nothing else does: with the standby's
/// replay paused, enrolment, sign-in, wrong codes and a reset all see their
/// own writes (each would fail on the standby's stale state) while the
/// admin's reads still show the past; with the standby gone, sign-in goes on
/// and only the admin's reads answer `Unavailable`.
#[test]
fn the_admins_reads_go_to_the_standby_and_sign_in_never_does() {
    use portal_mfa::admin::{ResetMode, ResetReason, UserQuery};
    use portal_mfa::audit::EventQuery;
    use portal_mfa::{SignInStep, StorageErrorKind};
    let Some(cluster) = pg::cluster(Replication::Sync) else {
        return;
    };
    for ex in [Executor::Blocking, Executor::Async] {
        let schema = pg::unique_name("standby_reads");
        let options = PostgresOptions::new().read_standby(format!("{} password=hunter2", cluster.standby_url()));
        assert!(
            !format!("{options:?}").contains("hunter2"),
            "the standby's URL is never printed"
        );
        let store: std::sync::Arc<dyn flows::TestStore> =
            std::sync::Arc::new(PgPair::open(&cluster.url(), &schema, options));
        let clock = ManualClock::at(T0);
        let portal = portal_on(store, &clock);
        caught_up(&cluster);
        let mut standby = pg::Client::connect(&cluster.standby_url());
        standby.batch_execute("SELECT pg_wal_replay_pause()").unwrap();

        let user = UserId::customer("sam@example.com");
        let (phone, _) = flows::enrol(ex, &portal, &clock, &user);
        let session = portal
            .verify_sign_in(&user, &phone.code(&clock))
            .go(ex)
            .unwrap()
            .session;
        clock.advance(30);
        for left in [4, 3] {
            let wrong = wrong_code(&phone, portal_mfa::Clock::now(&clock));
            assert!(matches!(
                portal.verify_sign_in(&user, &wrong).go(ex),
                Err(Error::WrongCode { attempts_left: Some(n) }) if n == left
            ));
        }
        portal
            .admin_reset(
                &flows::ADMIN,
                &user,
                ResetReason::LostDevice,
                ResetMode::ForceReenrolment,
            )
            .go(ex)
            .unwrap();
        assert!(matches!(
            portal.begin_sign_in(&user).go(ex),
            Ok(SignInStep::MustEnrol { .. })
        ));
        assert!(portal.record(&user).go(ex).unwrap().must_enrol());
        assert!(matches!(
            portal.check_session(&user, &session).go(ex),
            Err(Error::SessionEnded)
        ));
        // The admin's reads: the standby, paused before any of it.
        let events = EventQuery::portal(portal.id()).user(&user);
        assert!(portal.users(UserQuery::new()).go(ex).unwrap().items.is_empty());
        assert!(portal.audit_events(events.clone()).go(ex).unwrap().items.is_empty());
        assert!(portal.event_counts(0, u64::MAX).go(ex).unwrap().is_empty());

        standby.batch_execute("SELECT pg_wal_replay_resume()").unwrap();
        caught_up(&cluster);
        assert_eq!(portal.users(UserQuery::new()).go(ex).unwrap().items.len(), 1);
        let trail = portal.audit_events(events.limit(100)).go(ex).unwrap().items;
        assert!(trail.iter().any(|e| matches!(e.kind, EventKind::MfaReset { .. })));
        assert_eq!(
            portal.event_counts(0, u64::MAX).go(ex).unwrap()["verification_failed"],
            2
        );

        // A standby that is not there: sign-in goes on, the admin's reads say so.
        let gone = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = PostgresOptions::new().read_standby(format!("host=127.0.0.1 port={gone} user=postgres"));
        let store: std::sync::Arc<dyn flows::TestStore> =
            std::sync::Arc::new(PgPair::open(&cluster.url(), &schema, options));
        let portal = portal_on(store, &clock);
        let other = UserId::customer("ada@example.com");
        let (phone, _) = flows::enrol(ex, &portal, &clock, &other);
        portal.verify_sign_in(&other, &phone.code(&clock)).go(ex).unwrap();
        for answer in [
            portal.users(UserQuery::new()).go(ex).map(drop),
            portal.audit_events(EventQuery::portal(portal.id())).go(ex).map(drop),
            portal.event_counts(0, u64::MAX).go(ex).map(drop),
        ] {
            assert!(
                matches!(&answer, Err(Error::Storage(e)) if e.kind() == StorageErrorKind::Unavailable),
                "{answer:?}"
            );
        }
    }
}

/// The README's warning, attacked. A commit that waits for its standby is not
/// cut short by the store's `statement_timeout` (the call goes on waiting); a
/// cancel (`pg_cancel_backend`) makes PostgreSQL report it committed though
/// the standby never had it, so after a failover the same code is accepted
/// again. Hosts must never cancel such a wait.
#[test]
fn a_commit_waiting_for_the_standby_outlasts_statement_timeout_and_a_cancel_loses_it() {
    let Some(mut cluster) = pg::cluster(Replication::Sync) else {
        return;
    };
    let ex = Executor::Blocking;
    let schema = pg::unique_name("cancel");
    let options = PostgresOptions::new().statement_timeout(Duration::from_millis(200));
    let store: std::sync::Arc<dyn flows::TestStore> =
        std::sync::Arc::new(PgPair::open(&cluster.url(), &schema, options));
    let clock = ManualClock::at(T0);
    let portal = portal_on(store, &clock);
    let user = UserId::customer("tim@example.com");
    let (phone, _) = flows::enrol(ex, &portal, &clock, &user);
    let code = phone.code(&clock);
    let mut primary = pg::Client::connect(&cluster.primary_url());
    let waiting = |primary: &mut pg::Client| -> Vec<i32> {
        primary
            .query("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    cluster.pause_replication();
    std::thread::scope(|s| {
        let signing_in = s.spawn(|| portal.verify_sign_in(&user, &code).go(ex));
        wait_until(|| !waiting(&mut primary).is_empty(), "the commit waits for the standby");
        // Five statement timeouts on, it still waits. (A slow machine can
        // only make this more certain: the server's timer would have fired.)
        std::thread::sleep(Duration::from_millis(1_000));
        assert!(!signing_in.is_finished(), "statement_timeout ended the wait");
        for pid in waiting(&mut primary) {
            primary.query("SELECT pg_cancel_backend($1)", &[&pid]).unwrap();
        }
        let answer = signing_in.join().unwrap();
        assert!(answer.is_ok(), "a cancelled wait is reported committed: {answer:?}");
    });
    cluster.kill_primary(Kill::Everything);
    cluster.promote();
    cluster.add_standby().unwrap();
    let store: std::sync::Arc<dyn flows::TestStore> =
        std::sync::Arc::new(PgPair::open(&cluster.url(), &schema, PostgresOptions::new()));
    let portal = portal_on(store, &clock);
    assert!(
        portal.verify_sign_in(&user, &code).go(ex).is_ok(),
        "the promoted standby never had the sign-in: its code is accepted again"
    );
}

//! `portal-mfa-admin` end to end, as a subprocess against a SQLite file and a
//! PostgreSQL schema the test's own portal writes: each subcommand, bad
//! arguments, a missing or wrong key, a busy database (clear messages,
//! non-zero exits, nothing half-done), and a bulk reset killed mid-sweep
//! (the process, not a flag) and resumed.

#[path = "../../tests/flows/patience.rs"]
#[allow(dead_code, unreachable_pub)]
mod patience;
#[path = "../../tests/flows/pg.rs"]
#[allow(dead_code, unreachable_pub)]
mod pg;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

#[allow(unused_imports)]
pub(crate) use patience::{PATIENCE, wait_for, wait_until};
use portal_mfa::admin::ResetReason;
use portal_mfa::audit::Actor;
use portal_mfa::audit::{EventKind, EventQuery};
use portal_mfa::otp::Totp;
use portal_mfa::store::{MfaStore, PostgresOptions, PostgresStore, SqliteStore};
use portal_mfa::{Clock, EnrolmentOptions, Keyring, ManualClock, Portal, PortalId, SignInStep, UserId};

const T0: u64 = 1_763_800_000;
const KEY: [u8; 32] = [7; 32];
const BIN: &str = env!("CARGO_BIN_EXE_portal-mfa-admin");

type TestPortal = Portal<Arc<dyn MfaStore>, ManualClock>;

/// A scratch directory, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("portal-mfa-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_key(path: &Path, id: &str, key: &[u8; 32]) {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(path, format!("portal-mfa-key {id} {hex}\n")).unwrap();
}

/// Where the store is, as the command line is told, and the test's own portal on it.
struct Site {
    dir: Dir,
    args: Vec<String>,
    portal: TestPortal,
    clock: ManualClock,
}

impl Site {
    fn sqlite(name: &str) -> Self {
        let dir = Dir::new(name);
        let db = dir.0.join("mfa.sqlite3");
        let store: Arc<dyn MfaStore> = Arc::new(SqliteStore::open(&db).unwrap());
        let args = vec!["--sqlite".to_owned(), db.display().to_string()];
        Self::on(dir, store, args)
    }

    fn postgres(name: &str) -> Option<Self> {
        let server = pg::shared()?;
        let schema = pg::unique_name("cli");
        let store = PostgresStore::connect(server.url(), PostgresOptions::new().schema(&schema)).unwrap();
        let args = vec![
            "--postgres".to_owned(),
            server.url().to_owned(),
            "--postgres-schema".to_owned(),
            schema,
        ];
        Some(Self::on(Dir::new(name), Arc::new(store), args))
    }

    fn on(dir: Dir, store: Arc<dyn MfaStore>, mut args: Vec<String>) -> Self {
        let key = dir.0.join("keyring.key");
        write_key(&key, "k1", &KEY);
        args.extend([
            "--keyring".to_owned(),
            key.display().to_string(),
            "--portal".to_owned(),
            "acme".to_owned(),
        ]);
        let clock = ManualClock::at(T0);
        let portal = Portal::new(PortalId::new("acme"), "Acme", store)
            .unwrap()
            .with_keyring(Keyring::new("k1", &KEY).unwrap())
            .with_clock(clock.clone());
        Self {
            dir,
            args,
            portal,
            clock,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(&self.args)
            .args(["--operator", "ops@acme.example"])
            .args(args)
            .env_remove("PORTAL_MFA_POSTGRES")
            .current_dir(&self.dir.0);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `args`, which must succeed; answers standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `args`, which must fail with `code`; answers standard error.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.trim().is_empty(), "{args:?}: a failure says why");
        err
    }

    /// Enrols `user` with an authenticator app; answers it.
    fn enrol(&self, user: &UserId) -> Totp {
        let session = match self.portal.begin_sign_in(user).run().unwrap() {
            SignInStep::NoMfaNeeded { session } | SignInStep::MustEnrol { session, .. } => session,
            other => panic!("{other:?}"),
        };
        let started = self
            .portal
            .start_enrolment(user, &session, user.id(), "phone", EnrolmentOptions::default())
            .run()
            .unwrap();
        let totp = Totp::new(started.uri.secret(), *started.uri.params());
        let code = self.code(&totp);
        self.portal.confirm_enrolment(user, &session, &code).run().unwrap();
        self.clock.advance(30);
        totp
    }

    fn code(&self, totp: &Totp) -> String {
        totp.generate(self.clock.now()).unwrap().expose().to_string()
    }

    fn sign_in(&self, user: &UserId, totp: &Totp) {
        self.portal.verify_sign_in(user, &self.code(totp)).run().unwrap();
    }

    fn incident_resets(&self, user: &UserId, incident: &str) -> usize {
        let query = EventQuery::portal(self.portal.id())
            .user(user)
            .limit(portal_mfa::MAX_PAGE);
        self.portal
            .audit_events(query)
            .run()
            .unwrap()
            .items
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::MfaReset { reason: ResetReason::Incident { id, .. }, .. } if &**id == incident))
            .count()
    }
}

fn every_subcommand(site: &Site) {
    let alice = UserId::customer("alice@example.com");
    let bob = UserId::vendor("bob@example.com");
    let carol = UserId::customer("carol@example.com");
    site.enrol(&alice);
    let bob_phone = site.enrol(&bob);
    site.enrol(&carol);
    site.portal.request_reset(&carol, "lost my phone").run().unwrap();

    // Reads.
    let listed = site.ok(&["users"]);
    assert!(
        listed.contains("customer:alice@example.com") && listed.contains("vendor:bob@example.com"),
        "{listed}"
    );
    let requested = site.ok(&["--json", "users", "--status", "reset_requested"]);
    let rows: Vec<serde_json::Value> = requested.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{requested}");
    assert_eq!(rows[0]["user"]["id"], "carol@example.com");
    let vendors = site.ok(&["users", "--kind", "vendor"]);
    assert!(vendors.contains("bob@") && !vendors.contains("alice@"), "{vendors}");
    let shown: serde_json::Value =
        serde_json::from_str(&site.ok(&["--json", "show", "customer:carol@example.com"])).unwrap();
    assert_eq!(shown["authenticator_apps"].as_array().unwrap().len(), 1);
    assert_eq!(shown["reset_request"]["note"], "lost my phone");
    assert!(
        shown["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "reset_requested")
    );
    let text = site.ok(&["show", "customer:carol@example.com"]);
    assert!(
        text.contains("app #1 \"phone\"") && text.contains("reset requested"),
        "{text}"
    );

    // One user's reset: a dry run changes nothing; then the reset, audited as the operator with the reason.
    let dry = site.ok(&["reset", "customer:alice@example.com", "--dry-run"]);
    assert!(
        dry.contains("would reset") && dry.contains("1 authenticator apps"),
        "{dry}"
    );
    assert_eq!(site.portal.record(&alice).run().unwrap().factor_count(), 1);
    let done = site.ok(&[
        "--reason",
        "ticket 12: lost phone",
        "reset",
        "customer:alice@example.com",
    ]);
    assert!(
        done.contains("1 authenticator apps, 0 passkeys and 10 backup codes removed"),
        "{done}"
    );
    let record = site.portal.record(&alice).run().unwrap();
    assert!(record.factor_count() == 0 && record.must_enrol());
    let trail = site
        .portal
        .audit_events(EventQuery::portal(site.portal.id()).user(&alice).newest_first())
        .run()
        .unwrap();
    let reset = trail
        .items
        .iter()
        .find(|e| matches!(e.kind, EventKind::MfaReset { .. }))
        .unwrap();
    assert_eq!(
        reset.actor,
        Actor::Operator {
            name: "ops@acme.example".into(),
            reason: "ticket 12: lost phone".into()
        }
    );

    // Requests: approve Carol's; decline one of Bob's.
    let approved = site.ok(&[
        "--reason",
        "called back, confirmed",
        "--json",
        "approve",
        "customer:carol@example.com",
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&approved).unwrap()["authenticators_removed"],
        1
    );
    assert!(site.portal.record(&carol).run().unwrap().must_enrol());
    site.portal.request_reset(&bob, "help").run().unwrap();
    site.ok(&[
        "--reason",
        "not confirmed",
        "decline",
        "vendor:bob@example.com",
        "--message",
        "Call the help desk.",
    ]);
    let record = site.portal.record(&bob).run().unwrap();
    assert!(record.reset_request().is_none() && record.factor_count() == 1);
    site.sign_in(&bob, &bob_phone);

    // The audit trail, both ways.
    let csv = site.ok(&["export-audit", "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("unix_time,user,actor,event,details"));
    assert!(
        csv.contains("reset_request_declined") && csv.contains("ops@acme.example"),
        "{csv}"
    );
    let jsonl = site.ok(&[
        "export-audit",
        "--format",
        "jsonl",
        "--user",
        "customer:carol@example.com",
    ]);
    let events: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().all(|e| e["user"]["id"] == "carol@example.com"));
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "mfa_reset" && e["reason"]["type"] == "requested")
    );
    let file = site.dir.0.join("trail.csv");
    site.ok(&["export-audit", "--format", "csv", "--output", file.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), csv);

    // The policy: shown; enforcement turned on and off again, each audited with its reason.
    assert!(site.ok(&["policy", "show"]).contains("enforced: false"));
    site.ok(&["--reason", "incident drill", "policy", "set", "--enforcement", "on"]);
    assert!(site.portal.policy().run().unwrap().is_enforced());
    site.ok(&["--reason", "admins locked out", "policy", "set", "--enforcement", "off"]);
    assert!(!site.portal.policy().run().unwrap().is_enforced());
    let portal_events = site
        .portal
        .audit_events(EventQuery::portal(site.portal.id()).newest_first())
        .run()
        .unwrap();
    assert!(portal_events.items.iter().any(|e| e.user.is_none()
        && e.actor
            == Actor::Operator {
                name: "ops@acme.example".into(),
                reason: "admins locked out".into()
            }));

    // Re-sealing under a new key, the old one given to open what it sealed.
    let old = site.dir.0.join("keyring.key");
    let new = site.dir.0.join("new.key");
    write_key(&new, "k2", &[9; 32]);
    let swap = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        v.extend([
            "--keyring".to_owned(),
            new.display().to_string(),
            "--old-key".to_owned(),
            old.display().to_string(),
        ]);
        v
    };
    let preview = site.ok(&swap(&["--json", "reseal", "--dry-run"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let preview: serde_json::Value = serde_json::from_str(&preview).unwrap();
    // Only Bob's record still seals a secret: the resets left Alice's and Carol's with none.
    assert_eq!(
        (preview["examined"].as_u64(), preview["resealed"].as_u64()),
        (Some(3), Some(1)),
        "{preview}"
    );
    site.ok(&swap(&["--reason", "key rotation", "reseal", "--batch", "2"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    // Now the new key alone opens every record; the old one alone does not.
    let only_new = site.run(&["--keyring", new.to_str().unwrap(), "show", "vendor:bob@example.com"]);
    assert!(only_new.status.success(), "{only_new:?}");
    site.fails(&["show", "vendor:bob@example.com"], 6);
}

fn bad_input(site: &Site) {
    let dave = UserId::customer("dave@example.com");
    site.enrol(&dave);
    // Usage: clap's own code 2, with a message.
    site.fails(&["frobnicate"], 2);
    site.fails(&["reset", "customer:dave@example.com"], 2); // no --reason
    site.fails(&["--reason", "x", "reset", "dave@example.com"], 2); // no kind
    site.fails(&["--reason", "x", "reset", "robot:dave"], 2);
    site.fails(&["users", "--status", "sleepy"], 2);
    site.fails(&["--reason", "x", "bulk-reset", "--incident", "", "--dry-run"], 4);
    // Not found.
    site.fails(&["--reason", "x", "reset", "customer:nobody@example.com"], 3);
    site.fails(&["--reason", "x", "approve", "customer:dave@example.com"], 3);
    // Configuration: a missing key file, a key file that is not one, the wrong key.
    site.fails(&["--keyring", "/nonexistent/key", "users"], 6);
    let junk = site.dir.0.join("junk.key");
    std::fs::write(&junk, "not a key").unwrap();
    let err = site.fails(&["--keyring", junk.to_str().unwrap(), "users"], 6);
    assert!(err.contains("not a portal-mfa key file"), "{err}");
    let other = site.dir.0.join("other.key");
    write_key(&other, "k1", &[1; 32]);
    site.fails(
        &[
            "--keyring",
            other.to_str().unwrap(),
            "show",
            "customer:dave@example.com",
        ],
        6,
    );
    assert_eq!(
        site.portal.record(&dave).run().unwrap().factor_count(),
        1,
        "nothing was changed"
    );
    // `--help` everywhere.
    for sub in [
        "users",
        "show",
        "reset",
        "approve",
        "decline",
        "bulk-reset",
        "export-audit",
        "reseal",
        "policy",
    ] {
        let help = site.ok(&[sub, "--help"]);
        assert!(help.contains("Usage:"), "{sub}: {help}");
    }
    assert!(site.ok(&["--help"]).contains("Exit codes"));
}

#[test]
fn every_subcommand_against_sqlite() {
    every_subcommand(&Site::sqlite("all"));
}

#[test]
fn every_subcommand_against_postgres() {
    if let Some(site) = Site::postgres("pg-all") {
        every_subcommand(&site);
    }
}

#[test]
fn bad_arguments_and_keys_fail_clearly_on_sqlite() {
    let site = Site::sqlite("bad");
    bad_input(&site);
    let missing = site.run(&["--sqlite", "/nonexistent/mfa.db", "users"]);
    assert_eq!(missing.status.code(), Some(6), "{missing:?}");
}

#[test]
fn bad_arguments_and_keys_fail_clearly_on_postgres() {
    if let Some(site) = Site::postgres("pg-bad") {
        bad_input(&site);
        let out = site.run(&["--postgres", "postgresql://nobody@127.0.0.1:1/none", "users"]);
        assert_eq!(
            out.status.code(),
            Some(5),
            "an unreachable server is a storage failure: {out:?}"
        );
    }
}

/// A writer holds SQLite's lock past the command line's patience: it gives
/// up with a storage failure, and nothing it meant to do is done.
#[test]
fn a_busy_database_is_a_clear_failure_and_changes_nothing() {
    let site = Site::sqlite("busy");
    let erin = UserId::customer("erin@example.com");
    site.enrol(&erin);
    let db = site.dir.0.join("mfa.sqlite3");
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = site.fails(
        &[
            "--busy-timeout",
            "1",
            "--reason",
            "x",
            "reset",
            "customer:erin@example.com",
        ],
        5,
    );
    assert!(err.to_lowercase().contains("busy") || err.contains("locked"), "{err}");
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(site.portal.record(&erin).run().unwrap().factor_count(), 1);
}

/// Users for the sweep, and the incident's start between their enrolment and a re-enrolment.
fn crash_and_resume(site: &Site) {
    let customers: Vec<(UserId, Totp)> = (0..60)
        .map(|i| {
            let user = UserId::customer(format!("c{i:03}"));
            let totp = site.enrol(&user);
            (user, totp)
        })
        .collect();
    let vendors: Vec<(UserId, Totp)> = (0..4)
        .map(|i| {
            let user = UserId::vendor(format!("v{i}"));
            let totp = site.enrol(&user);
            (user, totp)
        })
        .collect();
    site.clock.advance(600);
    let started_at = site.clock.now().to_string();
    site.clock.advance(600);
    let bulk = [
        "--reason",
        "vendor seed leak",
        "bulk-reset",
        "--incident",
        "INC-9",
        "--started-at",
        &started_at,
        "--kind",
        "customer",
        "--batch",
        "10",
    ];
    let preview = site.ok(&[&bulk[..], &["--dry-run"]].concat());
    assert!(preview.contains("would reset 60"), "{preview}");
    // The sweep stops after 3 batches, before saving its place: killed there.
    let mut child = site
        .command(&bulk)
        .env("PORTAL_MFA_ADMIN_PAUSE_AFTER_BATCHES", "3")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused after 3 batches") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the sweep ended before its pause"
        );
    }
    // While it runs, sign-ins go on: the vendors, and a customer the sweep has not reached.
    for (vendor, totp) in &vendors {
        site.sign_in(vendor, totp);
    }
    site.sign_in(&customers[59].0, &customers[59].1);
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success(), "killed, not finished");
    // Two batches' place was saved; the third was done, then the kill came before its place was saved.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.dir.0.join("bulk-reset-INC-9.json")).unwrap()).unwrap();
    assert_eq!(state["reset"], 20, "{state}");
    assert_eq!(state["complete"], false);
    let reset_so_far = customers
        .iter()
        .filter(|(u, _)| site.incident_resets(u, "INC-9") == 1)
        .count();
    assert_eq!(reset_so_far, 30, "three batches were done before the kill");
    // A customer the unsaved third batch reset enrols again before the sweep resumes (and
    // re-examines that batch): left alone.
    let again = site.enrol(&customers[25].0);
    // Resumed, with sign-ins going on during it.
    let resumed = site
        .command(&bulk)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut signed_in = 0;
    for _ in 0..3 {
        for (vendor, totp) in &vendors {
            site.clock.advance(30);
            site.sign_in(vendor, totp);
            signed_in += 1;
        }
    }
    let out = resumed.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(signed_in, 12);
    for (customer, _) in &customers {
        assert_eq!(site.incident_resets(customer, "INC-9"), 1, "{customer}: once");
    }
    for (vendor, _) in &vendors {
        assert_eq!(site.incident_resets(vendor, "INC-9"), 0, "{vendor}: not selected");
    }
    site.clock.advance(30);
    site.sign_in(&customers[25].0, &again);
    // Run again: complete, nothing more.
    assert!(site.ok(&bulk).contains("complete"));
    let must_reenrol = customers
        .iter()
        .filter(|(u, _)| site.portal.record(u).run().unwrap().must_enrol())
        .count();
    assert_eq!(must_reenrol, 59, "every reset customer but the one who enrolled again");
}

#[test]
fn a_bulk_reset_killed_mid_sweep_resumes_and_resets_each_user_once_on_sqlite() {
    crash_and_resume(&Site::sqlite("crash"));
}

#[test]
fn a_bulk_reset_killed_mid_sweep_resumes_and_resets_each_user_once_on_postgres() {
    if let Some(site) = Site::postgres("pg-crash") {
        crash_and_resume(&site);
    }
}

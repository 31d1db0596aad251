//! An admin's Reset MFA raced against each change a signed-in session makes,
//! as job lines for `process::run_job` (threads or processes, any store).
//! Whatever order each trial took: no change that began after the reset
//! returned succeeds, and no change lands on the reset record.

use portal_mfa::admin::{ResetMode, ResetReason};
use portal_mfa::audit::{Actor, EventKind};
use portal_mfa::session::BrowserId;
use portal_mfa::{AuthenticatorId, EnrolmentOptions, Error, ManualClock, SessionStamp, UserId};

use super::{ADMIN, Executor, Go, Phone, TestPortal};

/// Every self-service change, by its job name. `start-required` is the
/// enrolment a sign-in requires, made with the stamp `MustEnrol` gave.
pub const CHANGES: [&str; 10] = [
    "start",
    "start-required",
    "confirm",
    "cancel",
    "delete",
    "regenerate",
    "trust",
    "forget-one",
    "forget-all",
    "end-others",
];

/// One trial: the user, the job line (`reset …` for role 0, `change …` for
/// the others) and how many of the user's events came before the race.
pub struct ChangeJob {
    pub user: UserId,
    pub line: String,
    pub events_before: usize,
}

/// `trials` users, each set up for one change (the changes taken in turn),
/// with a stamp the change is made from.
pub fn jobs(ex: Executor, portal: &TestPortal, clock: &ManualClock, trials: usize) -> Vec<ChangeJob> {
    portal
        .update_policy(&ADMIN, |p| p.with_trusted_browser_days(30))
        .go(ex)
        .unwrap();
    // Every user is set up from the same instant, and the race runs a minute later
    // (`clock` is left there): each stamp and code is as fresh as its change needs.
    let base = portal_mfa::Clock::now(clock);
    let race_at = base + 60;
    let jobs = (0..trials)
        .map(|i| {
            clock.set(base);
            let kind = CHANGES[i % CHANGES.len()];
            let user = UserId::customer(format!("change-race-{i}"));
            let (phone, codes, session) = super::enrol_signed_in(ex, portal, clock, &user);
            let (session, arg) = set_up(ex, portal, clock, &user, kind, &phone, &codes, session, race_at);
            assert!(portal_mfa::Clock::now(clock) <= race_at);
            ChangeJob {
                line: format!("reset {id}\tchange {id} {kind} {session} {arg}", id = user.id()),
                events_before: super::trail_of(ex, portal, &user).len(),
                user,
            }
        })
        .collect();
    clock.set(race_at);
    jobs
}

/// What `kind` needs before the race: the stamp to make it with and its argument.
#[allow(clippy::too_many_arguments)]
fn set_up(
    ex: Executor,
    portal: &TestPortal,
    clock: &ManualClock,
    user: &UserId,
    kind: &str,
    phone: &Phone,
    codes: &[String],
    session: SessionStamp,
    race_at: u64,
) -> (SessionStamp, String) {
    let spare = |proof: &str| {
        let options = EnrolmentOptions::default().with_proof(proof);
        let started = portal
            .start_enrolment(user, &session, user.id(), "spare", options)
            .go(ex)
            .unwrap();
        Phone::scan(&started.uri)
    };
    match kind {
        "start" | "regenerate" => (session, codes[0].clone()),
        "start-required" => {
            reset(ex, portal, user).unwrap();
            let step = portal.begin_sign_in(user).go(ex).unwrap();
            (step.session().unwrap(), "-".into())
        }
        "confirm" => (session, spare(&codes[1]).code_at(race_at)),
        "cancel" => {
            spare(&codes[1]);
            (session, "-".into())
        }
        "delete" => {
            let id = portal.record(user).go(ex).unwrap().authenticators()[0].id();
            (session, format!("{}:{}", id.0, codes[0]))
        }
        "trust" => (super::signed_in(ex, portal, clock, user, phone), "-".into()),
        "forget-one" | "forget-all" => {
            let session = super::signed_in(ex, portal, clock, user, phone);
            portal.trust_browser(user, &session, "race").go(ex).unwrap();
            let browser = portal.trusted_browsers(user).go(ex).unwrap()[0].id();
            (session, browser.0.to_string())
        }
        "end-others" => (session, "-".into()),
        other => panic!("unknown change {other}"),
    }
}

fn reset(ex: Executor, portal: &TestPortal, user: &UserId) -> Result<(), Error> {
    portal
        .admin_reset(&ADMIN, user, ResetReason::LostDevice, ResetMode::ForceReenrolment)
        .go(ex)
        .map(drop)
}

/// Makes the change a `change <user> <kind> <stamp> <arg>` job names.
pub fn run(ex: Executor, portal: &TestPortal, user: &UserId, words: &[&str]) -> Result<(), Error> {
    let [kind, stamp, arg] = words else {
        panic!("a change job is `change <user> <kind> <stamp> <arg>`: {words:?}")
    };
    let session: SessionStamp = stamp.parse().unwrap();
    let options = EnrolmentOptions::default();
    match *kind {
        "start" => portal
            .start_enrolment(user, &session, user.id(), "new", options.with_proof(arg))
            .go(ex)
            .map(drop),
        "start-required" => portal
            .start_enrolment(user, &session, user.id(), "new", options)
            .go(ex)
            .map(drop),
        "confirm" => portal.confirm_enrolment(user, &session, arg).go(ex).map(drop),
        "cancel" => portal.cancel_enrolment(user, &session).go(ex),
        "delete" => {
            let (id, proof) = arg.split_once(':').unwrap();
            let id = AuthenticatorId(id.parse().unwrap());
            portal.delete_authenticator(user, &session, id, proof).go(ex).map(drop)
        }
        "regenerate" => portal.regenerate_backup_codes(user, &session, arg).go(ex).map(drop),
        "trust" => portal.trust_browser(user, &session, "race").go(ex).map(drop),
        "forget-one" => portal
            .forget_browser(user, &session, BrowserId(arg.parse().unwrap()))
            .go(ex)
            .map(drop),
        "forget-all" => portal.forget_browsers(user, &session).go(ex).map(drop),
        "end-others" => portal.end_sessions(user, Some(&session)).go(ex).map(drop),
        other => panic!("unknown change {other}"),
    }
}

/// What every trial must show, whatever order it took; answers (changes
/// made before the reset, changes refused). A verdict is `reset`, `ok` or
/// `err <error>`, prefixed `late ` when the change began after a reset of
/// the trial had returned.
pub fn assert_one_order(
    ex: Executor,
    portal: &TestPortal,
    jobs: &[ChangeJob],
    verdicts: &[Vec<String>],
) -> (usize, usize) {
    let (mut made, mut refused) = (0, 0);
    for (job, verdicts) in jobs.iter().zip(verdicts) {
        let user = &job.user;
        let kind = job.line.split(' ').nth(3).unwrap();
        for verdict in verdicts.iter().filter(|v| v.trim_start_matches("late ") != "reset") {
            let (late, answer) = match verdict.strip_prefix("late ") {
                Some(answer) => (true, answer),
                None => (false, verdict.as_str()),
            };
            match answer {
                "ok" => {
                    assert!(
                        !late,
                        "{user:?} ({kind}): a change that began after the reset succeeded"
                    );
                    made += 1;
                }
                "err SessionEnded" => refused += 1,
                // Before the reset, a racer may lose to its twin (the same change made
                // at once): the backup code or fresh code was spent, the pending
                // enrolment or the browser already gone; or the driver ran out of attempts.
                other
                    if !late
                        && [
                            "Conflict",
                            "WrongCode",
                            "ReplayedCode",
                            "ProofRequired",
                            "NoPendingEnrolment",
                            "UnknownBrowser",
                            "UnknownAuthenticator",
                            "LockedOut",
                            "NotEnrolled",
                        ]
                        .iter()
                        .any(|e| other.starts_with(&format!("err {e}"))) =>
                {
                    refused += 1
                }
                other => panic!("{user:?} ({kind}): {verdict}: {other}"),
            }
        }
        // Nothing the user's session did landed after the first reset of the race.
        let trail = super::trail_of(ex, portal, user);
        let race = &trail[job.events_before..];
        let reset_at = race
            .iter()
            .position(|e| matches!(e.kind, EventKind::MfaReset { .. }))
            .unwrap_or_else(|| panic!("{user:?}: no reset in {race:?}"));
        assert!(
            race[reset_at..].iter().all(|e| e.actor != Actor::User),
            "{user:?} ({kind}): a change landed on the reset record: {race:?}"
        );
        let record = portal.record(user).go(ex).unwrap();
        assert!(
            record.authenticators().is_empty()
                && record.pending().is_none()
                && record.backup_codes().is_none()
                && record.trusted_browsers().is_empty()
                && record.must_enrol(),
            "{user:?} ({kind}): {record:?}"
        );
        // And made now, long after the reset returned, the change is refused.
        let words: Vec<&str> = job.line.split('\t').nth(1).unwrap().split(' ').skip(2).collect();
        assert!(
            matches!(run(ex, portal, user, &words), Err(Error::SessionEnded)),
            "{user:?} ({kind}) after the reset"
        );
    }
    (made, refused)
}

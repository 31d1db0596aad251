//! Helpers for tests that run other processes: the main example, and workers
//! that race one another on a shared store.

/// The main example's binary, which `cargo test` builds beside the tests.
pub fn example_binary() -> std::path::PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/portal
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    path.pop();
    path.push("examples");
    path.push(format!("portal{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "cargo test builds the examples; missing {}",
        path.display()
    );
    path
}

/// The secrets the main example printed for typing by hand.
pub fn printed_keys(output: &str) -> Vec<Vec<u8>> {
    output
        .lines()
        .filter_map(|l| {
            l.split_once("or type: ")
                .or_else(|| l.split_once("into her new phone: "))
        })
        .map(|(_, key)| {
            portal_mfa::otp::Secret::from_base32(key)
                .unwrap()
                .expose_bytes()
                .to_vec()
        })
        .collect()
}

/// Milliseconds since the Unix epoch: when processes meet.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Runs this test binary's `worker` test in a child process with `env`, its
/// stdout piped back (a test file that calls this has a `worker` test).
pub fn spawn_worker(env: &[(&str, String)]) -> std::process::Child {
    use std::process::{Command, Stdio};
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "worker", "--ignored", "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn worker")
}

/// Runs one race job as process `role` of the race: a job line holds one
/// job per role, tab-separated (a line with fewer serves every role with its
/// last), each `verify <user> <code>`, `reset <user>` or `browser <user> <token>`
/// (customers all). Answers the verdict: `ok` (with the session's stamp after
/// a trusted-browser sign-in), `reset`, `other <step>`, or `err <error>`.
pub fn run_job(portal: &super::TestPortal, ex: super::Executor, line: &str, role: usize) -> String {
    use super::Go;
    let jobs: Vec<&str> = line.split('\t').collect();
    let job = jobs[role.min(jobs.len() - 1)];
    let mut words = job.split(' ');
    let (op, user) = (
        words.next().unwrap(),
        portal_mfa::UserId::customer(words.next().unwrap()),
    );
    let rest: Vec<&str> = words.collect();
    let arg = rest.first().copied().unwrap_or_default();
    let verdict = match op {
        "change" => super::change_race::run(ex, portal, &user, &rest).map(|()| "ok".to_owned()),
        "verify" => portal.verify_sign_in(&user, arg).go(ex).map(|_| "ok".to_owned()),
        "reset" => portal
            .admin_reset(
                &super::ADMIN,
                &user,
                portal_mfa::admin::ResetReason::LostDevice,
                portal_mfa::admin::ResetMode::ForceReenrolment,
            )
            .go(ex)
            .map(|_| "reset".to_owned()),
        "browser" => portal
            .begin_sign_in_with_browser(&user, arg)
            .go(ex)
            .map(|step| match step {
                portal_mfa::SignInStep::TrustedBrowser { session, .. } => format!("ok {session}"),
                other => format!("other {other:?}"),
            }),
        other => panic!("unknown job {other}"),
    };
    verdict.unwrap_or_else(|e| format!("err {e:?}"))
}

/// [`run_job`] for trial `trial`, marking the trial in `marks` once a reset
/// of it has returned, and prefixing `late ` to the verdict of a job that
/// began after such a mark (a directory all racers share).
pub fn run_marked(
    portal: &super::TestPortal,
    ex: super::Executor,
    line: &str,
    role: usize,
    trial: usize,
    marks: &std::path::Path,
) -> String {
    let mark = marks.join(format!("reset-{trial}"));
    let late = mark.exists();
    let verdict = run_job(portal, ex, line, role);
    if verdict == "reset" {
        std::fs::write(&mark, b"").unwrap();
    }
    if late { format!("late {verdict}") } else { verdict }
}

/// A worker's `@@ <trial> <verdict>` lines, as (trial, verdict). The test
/// harness writes its own text around them, which is skipped.
pub fn verdicts(stdout: &[u8]) -> Vec<(usize, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let (trial, verdict) = line.strip_prefix("@@ ")?.split_once(' ')?;
            Some((trial.parse().ok()?, verdict.to_owned()))
        })
        .collect()
}

/// Waits for the race workers and gathers their verdicts, per trial. Each
/// worker must succeed, and every trial be answered `answers` times in all.
pub fn collect(
    children: impl IntoIterator<Item = std::process::Child>,
    trials: usize,
    answers: usize,
) -> Vec<Vec<String>> {
    let mut by_trial = vec![Vec::new(); trials];
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "worker failed");
        for (trial, verdict) in verdicts(&output.stdout) {
            by_trial[trial].push(verdict);
        }
    }
    let answered: Vec<usize> = by_trial.iter().map(Vec::len).collect();
    assert!(
        answered.iter().all(|&n| n == answers),
        "every trial answered {answers} times: {answered:?}"
    );
    by_trial
}

/// [`collect`], counted: per trial, how many accepted, and every refusal as (trial, verdict).
pub fn tally(
    children: impl IntoIterator<Item = std::process::Child>,
    trials: usize,
    answers: usize,
) -> (Vec<usize>, Vec<(usize, String)>) {
    let mut accepted = vec![0usize; trials];
    let mut refused = Vec::new();
    for (trial, verdicts) in collect(children, trials, answers).into_iter().enumerate() {
        for verdict in verdicts {
            if verdict == "ok" {
                accepted[trial] += 1;
            } else {
                refused.push((trial, verdict));
            }
        }
    }
    (accepted, refused)
}

/// Users, each enrolled with a trusted browser, as race jobs: process 0
/// resets each user while the other processes sign in with the browser.
pub fn reset_race_jobs(
    ex: super::Executor,
    portal: &super::TestPortal,
    clock: &portal_mfa::ManualClock,
    trials: usize,
) -> Vec<(portal_mfa::UserId, String)> {
    use super::Go;
    portal
        .update_policy(&super::ADMIN, |p| p.with_trusted_browser_days(30))
        .go(ex)
        .unwrap();
    (0..trials)
        .map(|i| {
            let user = portal_mfa::UserId::customer(format!("reset-race-{i}"));
            let (phone, _) = super::enrol(ex, portal, clock, &user);
            let session = portal.verify_sign_in(&user, &phone.code(clock)).go(ex).unwrap().session;
            let token = portal.trust_browser(&user, &session, "race").go(ex).unwrap().token;
            let job = format!("reset {id}\tbrowser {id} {}", token.expose(), id = user.id());
            (user, job)
        })
        .collect()
}

/// What a reset race must show whatever order each trial took: a sign-in
/// answered is in the trail before the reset, every session it granted has
/// ended, and no browser is trusted afterwards. Answers (sign-ins before the
/// reset, refused).
pub fn assert_one_order(
    ex: super::Executor,
    portal: &super::TestPortal,
    users: &[(portal_mfa::UserId, String)],
    verdicts: &[Vec<String>],
) -> (usize, usize) {
    use super::Go;
    let (mut signed_in, mut refused) = (0, 0);
    for ((user, job), verdicts) in users.iter().zip(verdicts) {
        let token = job.rsplit(' ').next().unwrap();
        let mut granted = 0;
        for verdict in verdicts {
            // `late `: it began after a reset had returned (when the race marks them).
            let late = verdict.starts_with("late ");
            let verdict = verdict.trim_start_matches("late ");
            if let Some(stamp) = verdict.strip_prefix("ok ") {
                assert!(!late, "{user:?}: a trusted browser signed in after the reset");
                granted += 1;
                let stamp: portal_mfa::SessionStamp = stamp.parse().unwrap();
                assert!(matches!(
                    portal.check_session(user, &stamp).go(ex),
                    Err(portal_mfa::Error::SessionEnded)
                ));
            } else if verdict != "reset" {
                refused += 1;
                assert!(
                    verdict.starts_with("other MustEnrol") || verdict.contains("Conflict"),
                    "{user:?}: {verdict}"
                );
            }
        }
        signed_in += granted;
        let trail = super::trail_of(ex, portal, user);
        let first_reset = trail
            .iter()
            .position(|e| matches!(e.kind, portal_mfa::audit::EventKind::MfaReset { .. }))
            .unwrap();
        let used: Vec<usize> = trail
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.kind, portal_mfa::audit::EventKind::TrustedBrowserUsed { .. }))
            .map(|(i, _)| i)
            .collect();
        // The clock stands still: the first use is recorded, the rest within the hour are reads.
        assert_eq!(
            used.len(),
            usize::from(granted > 0),
            "{user:?}: answers and events agree"
        );
        assert!(used.iter().all(|&i| i < first_reset), "{user:?}: {trail:?}");
        assert!(portal.record(user).go(ex).unwrap().trusted_browsers().is_empty());
        assert!(!matches!(
            portal.begin_sign_in_with_browser(user, token).go(ex),
            Ok(portal_mfa::SignInStep::TrustedBrowser { .. })
        ));
    }
    (signed_in, refused)
}

/// Where the processes of a race meet: each child says it is ready (its store
/// open, its connections made), and once every one has, the parent names the
/// instant they all start. A slow start delays the race; it never decides a
/// verdict (see [`super::patience`]).
pub struct Meeting {
    dir: std::path::PathBuf,
}

impl Meeting {
    const ENV: &'static str = "PORTAL_MFA_MEETING";

    /// A meeting place in `dir`, for the parent.
    pub fn new(dir: &super::TempDir) -> Self {
        let dir = dir.file("meeting");
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    /// The variable that tells a child where to meet (pass it to [`spawn_worker`]).
    pub fn env(&self) -> (&'static str, String) {
        (Self::ENV, self.dir.display().to_string())
    }

    /// The meeting place a child was told of.
    pub fn joined() -> Self {
        Self {
            dir: std::env::var(Self::ENV)
                .expect("a race worker is told where to meet")
                .into(),
        }
    }

    /// The child side: says process `role` is ready (the file's existence is the message).
    pub fn ready(&self, role: usize) {
        std::fs::write(self.dir.join(format!("ready-{role}")), b"").unwrap();
    }

    /// The child side: waits for the instant the race starts (ms since the epoch).
    pub fn start(&self) -> u64 {
        super::wait_for(
            || std::fs::read_to_string(self.dir.join("start")).ok()?.parse().ok(),
            "the race's start",
        )
    }

    /// The parent side: waits until every one of `children` is ready (failing
    /// at once if one exits first), then sets the start a moment from now.
    pub fn start_when_ready(&self, children: &mut [std::process::Child]) {
        super::wait_until(
            || {
                for child in children.iter_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("a race process exited before it was ready: {status}");
                    }
                }
                (0..children.len()).all(|role| self.dir.join(format!("ready-{role}")).exists())
            },
            "every race process ready",
        );
        // Written then renamed, so a child never reads half the instant.
        let part = self.dir.join(".start");
        std::fs::write(&part, (now_ms() + 250).to_string()).unwrap();
        std::fs::rename(part, self.dir.join("start")).unwrap();
    }
}

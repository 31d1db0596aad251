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

/// Waits for the race workers and counts their verdicts: per trial, how many
/// accepted, and every refusal as (trial, verdict). Each worker must succeed,
/// and every trial be answered `answers` times in all.
pub fn tally(
    children: impl IntoIterator<Item = std::process::Child>,
    trials: usize,
    answers: usize,
) -> (Vec<usize>, Vec<(usize, String)>) {
    let mut accepted = vec![0usize; trials];
    let mut answered = vec![0usize; trials];
    let mut refused = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "worker failed");
        for (trial, verdict) in verdicts(&output.stdout) {
            answered[trial] += 1;
            if verdict == "ok" {
                accepted[trial] += 1;
            } else {
                refused.push((trial, verdict));
            }
        }
    }
    assert!(
        answered.iter().all(|&n| n == answers),
        "every trial answered {answers} times: {answered:?}"
    );
    (accepted, refused)
}

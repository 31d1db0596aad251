//! The main example on a SQLite file, run twice: the second run finds the
//! state the first one left.

#![cfg(feature = "sqlite")]

mod flows;

use std::process::Command;

fn example_binary() -> std::path::PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/portal
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    path.pop();
    path.push("examples");
    path.push(format!("portal{}", std::env::consts::EXE_SUFFIX));
    path
}

#[test]
fn the_walk_through_persists_across_runs() {
    let binary = example_binary();
    assert!(
        binary.exists(),
        "cargo test builds the examples; missing {}",
        binary.display()
    );
    let dir = flows::TempDir::new("example");
    let db = dir.file("portal.db");
    let run = || {
        let output = Command::new(&binary).arg("--db").arg(&db).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let first = run();
    assert!(first.contains("She must enrol"), "{first}");
    assert!(first.contains("MfaReset"));
    let second = run();
    assert!(
        second.contains("Welcome back: the database already knows Alice"),
        "{second}"
    );
    assert!(second.contains("authenticator #2 \"New phone\""));
    assert!(second.contains("signed in with Totp(AuthenticatorId(2))"));
    assert!(!second.contains("She must enrol"));
}

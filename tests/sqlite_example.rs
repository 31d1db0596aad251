//! The main example on a SQLite file, run twice: the second run finds the
//! state the first one left.

#![cfg(feature = "sqlite")]

mod flows;

use std::process::Command;

#[test]
fn the_walk_through_persists_across_runs() {
    let binary = flows::example_binary();
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
    let printed = flows::printed_keys(&first);
    assert_eq!(printed.len(), 2, "the first and the re-enrolled phone's keys: {first}");
    assert_no_secret_in(&db, &printed);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.file("portal.db.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let second = run();
    assert!(
        second.contains("Welcome back: the database already knows Alice"),
        "{second}"
    );
    assert!(second.contains("authenticator #2 \"New phone\""));
    assert!(second.contains("signed in with Totp(AuthenticatorId(2))"));
    assert!(!second.contains("She must enrol"));
    assert_no_secret_in(&db, &printed);
    // Without its key file the database is refused, not overwritten with a new key.
    std::fs::remove_file(dir.file("portal.db.key")).unwrap();
    let before = std::fs::read(&db).unwrap();
    let output = Command::new(&binary).arg("--db").arg(&db).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("portal.db.key is missing"));
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

/// Neither the database nor its WAL holds any of `secrets`, raw, in base32 or in hex.
fn assert_no_secret_in(db: &std::path::Path, secrets: &[Vec<u8>]) {
    let mut files = vec![std::fs::read(db).unwrap()];
    files.extend(std::fs::read(db.with_extension("db-wal")).ok());
    for secret in secrets {
        let base32 = base32::encode(base32::Alphabet::Rfc4648 { padding: false }, secret);
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let needles = [
            secret.clone(),
            base32.clone().into_bytes(),
            base32.to_lowercase().into_bytes(),
            hex.clone().into_bytes(),
            hex.to_uppercase().into_bytes(),
        ];
        for file in &files {
            for needle in &needles {
                assert!(
                    !file.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "a printed secret is in the database"
                );
            }
        }
    }
}

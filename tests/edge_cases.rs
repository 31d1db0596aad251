//! Regressions for the edge cases an independent host found (one test per
//! behaviour, each on every store where a store is involved: the in-memory
//! store, SQLite, and the README's compare-and-swap key-value store).

#![cfg(feature = "sqlite")]

mod flows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use flows::TestStore;
use flows::{ADMIN, Phone, T0, TempDir, enrol, portal_on};
use portal_mfa::{
    Clock, Enforcement, EnrolmentOptions, Error, Grace, ManualClock, Portal, PortalId, SignInStep, StorageErrorKind,
    UserId,
    audit::{EventKind, EventQuery},
    otp::{CodeFormatError, CodeKind, OtpAuthUri, Secret, TotpParams, UriError},
    store::{MemoryStore, SqliteOptions, SqliteStore},
};

/// Each store, fresh, with what keeps its files alive.
fn stores() -> Vec<(&'static str, Arc<dyn TestStore>, Option<TempDir>)> {
    let dir = TempDir::new("edge");
    let sqlite = SqliteStore::open(dir.file("mfa.db")).unwrap();
    vec![
        ("memory", flows::memory(), None),
        ("sqlite", flows::bytes(sqlite), Some(dir)),
        ("key-value", flows::bytes(flows::kv::KvStore::default()), None),
    ]
}

fn at(clock: &ManualClock) -> u64 {
    Clock::now(clock)
}

fn wrong_code(phone: &Phone, clock: &ManualClock) -> String {
    let now = at(clock);
    let near: Vec<String> = [now.saturating_sub(30), now, now + 30]
        .iter()
        .map(|&t| phone.code_at(t))
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", n * 7_919 % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

// 1 ------------------------------------------------------------------------

/// Every query a host might make of the trail, answered as text.
fn trail_answers(portal: &flows::TestPortal, user: &UserId) -> Vec<String> {
    let half = 1u64 << 63;
    let max = i64::MAX as u64;
    let base = EventQuery::portal(portal.id());
    let mut queries = vec![
        base.clone(),
        base.clone().between(0, u64::MAX),
        base.clone().between(half, u64::MAX),
        base.clone().between(0, half),
        base.clone().between(max, u64::MAX),
        base.clone().between(0, max),
        base.clone().between(max - 500, max),
    ];
    let mut until_only = base.clone();
    until_only.until = Some(max);
    queries.push(until_only);
    let mut from_only = base.clone();
    from_only.from = Some(max - 100);
    queries.push(from_only);
    let per_user: Vec<EventQuery> = queries.iter().map(|q| q.clone().user(user)).collect();
    queries.extend(per_user);
    queries
        .iter()
        .map(|q| {
            format!(
                "{:?}",
                portal
                    .audit_events(q.clone().limit(portal_mfa::MAX_PAGE))
                    .run()
                    .map(|events| events.items.iter().map(|e| (e.at, e.kind.name())).collect::<Vec<_>>())
            )
        })
        .collect()
}

/// The same scenario near time 0, near `i64::MAX` and past it, on every store:
/// the same answers, and the same audit answers, everywhere.
#[test]
fn audit_answers_agree_on_every_store_near_both_ends_of_time() {
    let mut transcripts = Vec::new();
    for (name, store, _dir) in stores() {
        let clock = ManualClock::at(5);
        let portal = portal_on(store, &clock);
        let user = UserId::customer("alice");
        let mut transcript = Vec::new();
        transcript.push(format!(
            "{:?}",
            portal
                .set_enforcement(&ADMIN, Enforcement::Enforced { grace: None })
                .run()
                .map(|_| ())
        ));
        let (phone, _) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
        let sign_in = || {
            format!(
                "{:?}",
                portal
                    .verify_sign_in(&user, &phone.code(&clock))
                    .run()
                    .map(|v| v.factor)
            )
        };
        transcript.push(sign_in());
        let max = i64::MAX as u64;
        for now in [max - 400, max - 30, max] {
            clock.set(now);
            transcript.push(sign_in());
            transcript.push(format!(
                "{:?}",
                portal.verify_sign_in(&user, &wrong_code(&phone, &clock)).run().err()
            ));
        }
        for now in [max + 1, 1 << 63, u64::MAX - 1, u64::MAX] {
            clock.set(now);
            let refused = portal.verify_sign_in(&user, "123456").run();
            assert!(
                matches!(refused, Err(Error::ClockOutOfRange)),
                "{name} at {now}: {refused:?}"
            );
            transcript.push(format!("{refused:?}"));
            transcript.push(format!(
                "{:?}",
                portal.set_enforcement(&ADMIN, Enforcement::SelfConfigured).run().err()
            ));
        }
        transcript.extend(trail_answers(&portal, &user));
        transcripts.push((name, transcript));
    }
    let (first, expected) = &transcripts[0];
    assert!(
        expected.iter().any(|a| a.contains(&format!("{}", i64::MAX))),
        "events at i64::MAX exist"
    );
    for (name, transcript) in &transcripts[1..] {
        for (i, (want, got)) in expected.iter().zip(transcript).enumerate() {
            assert_eq!(got, want, "answer {i}: {name} differs from {first}");
        }
    }
}

// 2 ------------------------------------------------------------------------

/// `Grace::until` is the time after which no grace sign-in is allowed: at it, one
/// still is. The other deadlines end at their time: an enrolment cannot be
/// confirmed from `expires_at` on, and a lock holds until `until`, not at it.
#[test]
fn every_deadline_holds_up_to_its_documented_boundary() {
    for (name, store, _dir) in stores() {
        let clock = ManualClock::at(T0);
        let portal = portal_on(store, &clock);
        let until = T0 + 3_600;
        portal
            .set_enforcement(
                &ADMIN,
                Enforcement::Enforced {
                    grace: Some(Grace::new(Some(until), None)),
                },
            )
            .run()
            .unwrap();
        clock.set(until);
        let step = portal.begin_sign_in(&UserId::customer("at-deadline")).run().unwrap();
        assert!(matches!(step, SignInStep::GraceSignIn { .. }), "{name}: {step:?}");
        clock.set(until + 1);
        let step = portal.begin_sign_in(&UserId::customer("after-deadline")).run().unwrap();
        assert!(matches!(step, SignInStep::MustEnrol { .. }), "{name}: {step:?}");

        // Enrolment expiry: confirmable at expires_at - 1, not at expires_at.
        for (user, offset, confirmable) in [("e1", 1, true), ("e2", 0, false)] {
            let user = UserId::customer(user);
            let session = flows::password_step(flows::Executor::Blocking, &portal, &user);
            let started = portal
                .start_enrolment(&user, &session, "u", "phone", EnrolmentOptions::default())
                .run()
                .unwrap();
            clock.set(started.expires_at - offset);
            let result = portal
                .confirm_enrolment(&user, &session, &Phone::scan(&started.uri).code(&clock))
                .run();
            assert_eq!(result.is_ok(), confirmable, "{name}: {result:?}");
            if !confirmable {
                assert!(matches!(result, Err(Error::EnrolmentExpired)));
            }
            clock.set(until + 1);
        }

        // Lock expiry: locked at until - 1, free at until.
        let user = UserId::customer("locked");
        let (phone, _) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
        let lock_end = (0..5)
            .filter_map(
                |_| match portal.verify_sign_in(&user, &wrong_code(&phone, &clock)).run() {
                    Err(Error::LockedOut { until }) => until,
                    _ => None,
                },
            )
            .last()
            .unwrap();
        clock.set(lock_end - 1);
        assert!(
            matches!(portal.begin_sign_in(&user).run().unwrap(), SignInStep::LockedOut { .. }),
            "{name}"
        );
        clock.set(lock_end);
        assert!(
            matches!(portal.begin_sign_in(&user).run().unwrap(), SignInStep::EnterCode { .. }),
            "{name}"
        );
    }
}

// 3 ------------------------------------------------------------------------

#[test]
fn labels_and_names_refuse_hidden_and_reordering_characters() {
    let bad = [
        "a\u{2028}b",
        "a\u{2029}b",
        "\u{200b}",
        "pay\u{202e}lapyap",
        "\u{feff}phone",
        "line\nbreak",
        "   ",
        "",
    ];
    for (name, store, _dir) in stores() {
        let clock = ManualClock::at(T0);
        let portal = portal_on(store, &clock);
        let user = UserId::customer("c1");
        let session = flows::password_step(flows::Executor::Blocking, &portal, &user);
        for label in bad {
            let refused = portal
                .start_enrolment(&user, &session, "c1@example.com", label, EnrolmentOptions::default())
                .run();
            assert!(
                matches!(refused, Err(Error::InvalidLabel)),
                "{name} {label:?}: {refused:?}"
            );
            let refused = portal
                .start_enrolment(&user, &session, label, "phone", EnrolmentOptions::default())
                .run();
            assert!(
                matches!(refused, Err(Error::InvalidUri(_))),
                "{name} account {label:?}: {refused:?}"
            );
        }
        assert!(
            portal.record(&user).run().unwrap().pending().is_none(),
            "{name}: nothing was started"
        );
        portal
            .start_enrolment(
                &user,
                &session,
                "c1@example.com",
                " Téléphone 📱 ",
                EnrolmentOptions::default(),
            )
            .run()
            .unwrap();
        assert_eq!(
            portal.record(&user).run().unwrap().pending().unwrap().label(),
            "Téléphone 📱"
        );
    }
    let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    for name in bad.iter().filter(|n| !n.trim().is_empty()) {
        assert!(matches!(
            OtpAuthUri::new(name, "alice", secret.clone(), TotpParams::standard()),
            Err(Error::InvalidUri(UriError::UnprintableName))
        ));
        assert!(matches!(
            OtpAuthUri::new("Acme", name, secret.clone(), TotpParams::standard()),
            Err(Error::InvalidUri(UriError::UnprintableName))
        ));
    }
    let parsed = OtpAuthUri::parse("otpauth://totp/Acme:al%E2%80%AEice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert!(matches!(parsed, Err(Error::InvalidUri(UriError::UnprintableName))));
    // The portal's name is checked once, when the portal is built, not at every enrolment.
    for issuer in ["Acme: EU", "Acme\u{202e}", "", "  "] {
        assert!(
            Portal::new(PortalId::new("p"), issuer, MemoryStore::new()).is_err(),
            "{issuer:?}"
        );
    }
}

// 4 ------------------------------------------------------------------------

#[test]
fn mistyped_codes_are_described_in_the_terms_of_their_factor_and_never_counted() {
    for (name, store, _dir) in stores() {
        let clock = ManualClock::at(T0);
        let portal = portal_on(store, &clock);
        let user = UserId::customer("c1");
        let (phone, codes) = enrol(flows::Executor::Blocking, &portal, &clock, &user);
        let backup = &codes[0];
        let malformed = |input: &str| match portal.verify_sign_in(&user, input).run() {
            Err(Error::MalformedCode(reason)) => reason,
            other => panic!("{name} {input:?}: {other:?}"),
        };
        let wrong_letter = format!("{}U", &backup[..backup.len() - 1]);
        let short = &backup[..backup.len() - 1];
        assert_eq!(
            malformed(&wrong_letter),
            CodeFormatError::InvalidCharacter {
                kind: CodeKind::BackupCode
            }
        );
        assert_eq!(
            malformed(short),
            CodeFormatError::WrongLength {
                kind: CodeKind::BackupCode,
                expected: 16,
                found: 15
            }
        );
        assert_eq!(
            malformed(&format!("{backup}!")),
            CodeFormatError::InvalidCharacter {
                kind: CodeKind::BackupCode
            }
        );
        assert_eq!(
            malformed("12345"),
            CodeFormatError::WrongLength {
                kind: CodeKind::Totp,
                expected: 6,
                found: 5
            }
        );
        assert_eq!(
            malformed("12345a"),
            CodeFormatError::InvalidCharacter { kind: CodeKind::Totp }
        );
        let message = Error::MalformedCode(malformed(short)).to_string();
        assert!(
            message.contains("backup code has 16 letters and digits; 15 were entered"),
            "{message}"
        );
        assert!(!message.contains("digits (and spaces"), "{message}");
        // None of that counted as a guess.
        assert_eq!(
            portal.record(&user).run().unwrap().failures().consecutive(),
            0,
            "{name}"
        );
        // A TOTP code typed 123-456, and a backup code pasted with its line ending, sign in.
        let code = phone.code(&clock);
        portal
            .verify_sign_in(&user, &format!("{}-{}", &code[..3], &code[3..]))
            .run()
            .unwrap();
        portal.verify_sign_in(&user, &format!("\t{backup}\r\n")).run().unwrap();
    }
}

// 5 ------------------------------------------------------------------------

#[test]
fn a_pending_enrolment_is_cancelled_after_five_wrong_codes() {
    for (name, store, _dir) in stores() {
        let clock = ManualClock::at(T0);
        let portal = portal_on(store, &clock);
        let user = UserId::customer("c1");
        let session = flows::password_step(flows::Executor::Blocking, &portal, &user);
        let started = portal
            .start_enrolment(&user, &session, "c1", "phone", EnrolmentOptions::default())
            .run()
            .unwrap();
        let phone = Phone::scan(&started.uri);
        let wrong = wrong_code(&phone, &clock);
        for left in (1..5).rev() {
            let answer = portal.confirm_enrolment(&user, &session, &wrong).run();
            assert!(
                matches!(answer, Err(Error::WrongCode { attempts_left: Some(l) }) if l == left),
                "{name}: {answer:?}"
            );
        }
        // Malformed input is not a guess.
        assert!(matches!(
            portal.confirm_enrolment(&user, &session, "12ab").run(),
            Err(Error::MalformedCode(_))
        ));
        assert!(matches!(
            portal.confirm_enrolment(&user, &session, &wrong).run(),
            Err(Error::EnrolmentCancelled)
        ));
        // The secret the guesser was after is gone: even the right code no longer enrols it.
        assert!(matches!(
            portal.confirm_enrolment(&user, &session, &phone.code(&clock)).run(),
            Err(Error::NoPendingEnrolment)
        ));
        let record = portal.record(&user).run().unwrap();
        assert!(record.pending().is_none() && !record.mfa_enabled(), "{name}");
        let trail = portal
            .audit_events(EventQuery::portal(portal.id()).user(&user))
            .run()
            .unwrap()
            .items;
        assert!(
            matches!(
                trail.last().unwrap().kind,
                EventKind::EnrolmentFailed { wrong_codes: 5 }
            ),
            "{name}"
        );
        // Starting again works, with a new secret.
        let again = portal
            .start_enrolment(&user, &session, "c1", "phone", EnrolmentOptions::default())
            .run()
            .unwrap();
        assert_ne!(again.uri.secret(), started.uri.secret());
        portal
            .confirm_enrolment(&user, &session, &Phone::scan(&again.uri).code(&clock))
            .run()
            .unwrap();
    }
}

// 6 ------------------------------------------------------------------------

#[test]
fn periods_longer_than_a_day_are_refused() {
    let alg = portal_mfa::otp::Algorithm::Sha1;
    assert!(TotpParams::new(alg, portal_mfa::otp::Digits::SIX, TotpParams::MAX_PERIOD).is_ok());
    for period in [TotpParams::MAX_PERIOD + 1, 1 << 40, u64::MAX] {
        assert!(matches!(
            TotpParams::new(alg, portal_mfa::otp::Digits::SIX, period),
            Err(Error::InvalidParameters(_))
        ));
        let uri = format!("otpauth://totp/Acme:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&period={period}");
        assert!(matches!(
            OtpAuthUri::parse(&uri),
            Err(Error::InvalidUri(UriError::PeriodTooLong))
        ));
    }
}

// 7 ------------------------------------------------------------------------

#[test]
fn a_small_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = TempDir::new("small");
    for len in 1..=20usize {
        let path = dir.file(&format!("f{len}.db"));
        let bytes: Vec<u8> = (0..len).map(|i| b"x\nSQLite format 2!"[i % 18]).collect();
        std::fs::write(&path, &bytes).unwrap();
        let refused = SqliteStore::open(&path).expect_err("not a database");
        assert_eq!(refused.kind(), StorageErrorKind::Corrupt, "{len} bytes");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{len} bytes: untouched");
    }
    // An empty file is a new database.
    let empty = dir.file("empty.db");
    std::fs::write(&empty, b"").unwrap();
    SqliteStore::open(&empty).unwrap();
}

// 8 ------------------------------------------------------------------------

/// A damaged stored record is `Error::CorruptRecord` on every store that keeps
/// bytes (the memory store keeps records decoded: there are no bytes to damage),
/// and nothing is written over it.
#[test]
fn a_damaged_record_answers_corrupt_record_on_every_store_that_keeps_bytes() {
    let dir = TempDir::new("damaged-record");
    let path = dir.file("mfa.db");
    let kv = Arc::new(flows::kv::KvStore::default());
    let stores: [(&str, Arc<dyn TestStore>); 2] = [
        ("sqlite", flows::bytes(SqliteStore::open(&path).unwrap())),
        ("key-value", flows::bytes::<flows::kv::KvStore>(kv.clone())),
    ];
    for (name, store) in stores {
        let clock = ManualClock::at(T0);
        let portal = portal_on(store, &clock);
        let user = UserId::customer("alice");
        enrol(flows::Executor::Blocking, &portal, &clock, &user);
        for damage in [&b"\x01\x00"[..], b"", b"\x01garbage that is not a record", b"\x09newer"] {
            let stored = match name {
                "sqlite" => {
                    let conn = rusqlite::Connection::open(&path).unwrap();
                    let before: Vec<u8> = conn
                        .query_row("SELECT record FROM portal_mfa_records", [], |r| r.get(0))
                        .unwrap();
                    conn.execute("UPDATE portal_mfa_records SET record = ?1", [damage])
                        .unwrap();
                    before
                }
                _ => {
                    let mut kv = kv.kv();
                    let stored = kv.records.values_mut().next().unwrap();
                    std::mem::replace(&mut stored.bytes, damage.to_vec())
                }
            };
            for answer in [
                portal.begin_sign_in(&user).run().err(),
                portal.verify_sign_in(&user, "123456").run().err(),
            ] {
                let expected = damage.first() == Some(&9);
                assert!(
                    matches!(answer, Some(Error::CorruptRecord(_)))
                        || (expected && matches!(answer, Some(Error::IncompatibleFormat { found: 9, .. }))),
                    "{name} {damage:?}: {answer:?}"
                );
            }
            // Nothing was written over the damaged bytes; restore them.
            match name {
                "sqlite" => {
                    let conn = rusqlite::Connection::open(&path).unwrap();
                    let now: Vec<u8> = conn
                        .query_row("SELECT record FROM portal_mfa_records", [], |r| r.get(0))
                        .unwrap();
                    assert_eq!(now, damage);
                    conn.execute("UPDATE portal_mfa_records SET record = ?1", [&stored])
                        .unwrap();
                }
                _ => {
                    let mut kv = kv.kv();
                    let bytes = &mut kv.records.values_mut().next().unwrap().bytes;
                    assert_eq!(bytes.as_slice(), damage);
                    *bytes = stored;
                }
            }
        }
        assert!(portal.record(&user).run().unwrap().mfa_enabled(), "{name}: whole again");
    }
}

// 9 ------------------------------------------------------------------------

#[test]
fn a_busy_timeout_given_at_open_applies_to_opening_itself() {
    let dir = TempDir::new("busy-open");
    let path = dir.file("mfa.db");
    drop(SqliteStore::open(&path).unwrap());
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let refused = SqliteStore::open_with(&path, SqliteOptions::new().busy_timeout(Duration::from_millis(100)))
        .expect_err("the file is locked");
    assert_eq!(refused.kind(), StorageErrorKind::Busy);
    // The default would wait 5 s.
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    holder.execute_batch("COMMIT").unwrap();
    SqliteStore::open_with(&path, SqliteOptions::new().busy_timeout(Duration::from_millis(100))).unwrap();
}

// 10 -----------------------------------------------------------------------

/// "Oldest first" means commit order, on every store, even when the clock
/// runs backwards between commits.
#[test]
fn audit_events_come_back_in_commit_order_on_every_store() {
    let mut answers = Vec::new();
    for (name, store, _dir) in stores() {
        let clock = ManualClock::at(T0 + 10_000);
        let portal = portal_on(store, &clock);
        let users = [UserId::customer("a"), UserId::vendor("b")];
        let mut committed = Vec::new();
        for (i, now) in [T0 + 10_000, T0 + 5_000, T0 + 20_000, T0 + 100].into_iter().enumerate() {
            clock.set(now);
            let user = &users[i % 2];
            portal
                .admin_reset(
                    &ADMIN,
                    user,
                    portal_mfa::admin::ResetReason::Other(format!("step {i}").into()),
                    Default::default(),
                )
                .run()
                .unwrap();
            committed.push((user.clone(), now));
        }
        let all = portal
            .audit_events(EventQuery::portal(portal.id()).limit(portal_mfa::MAX_PAGE))
            .run()
            .unwrap()
            .items;
        // Each reset is followed by the end of that user's sessions.
        let order: Vec<(UserId, u64)> = all.iter().map(|e| (e.user.clone().unwrap(), e.at)).collect();
        let twice: Vec<(UserId, u64)> = committed.iter().flat_map(|c| [c.clone(), c.clone()]).collect();
        assert_eq!(order, twice, "{name}: commit order, not time order");
        let a: Vec<u64> = portal
            .audit_events(EventQuery::portal(portal.id()).user(&users[0]))
            .run()
            .unwrap()
            .items
            .iter()
            .map(|e| e.at)
            .collect();
        assert_eq!(a, [T0 + 10_000, T0 + 10_000, T0 + 20_000, T0 + 20_000], "{name}");
        answers.push(format!("{all:?}"));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
}

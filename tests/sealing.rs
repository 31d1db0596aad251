//! Secrets at rest: a SQLite file holds none in any readable form, and a key
//! rotation re-seals every record while sign-ins go on, losing nothing.

#![cfg(feature = "sqlite")]

mod flows;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use flows::{ADMIN, T0, TempDir};
use portal_mfa::store::BlockingStore;
use portal_mfa::store::MfaStore;
use portal_mfa::{
    Clock, EnrolmentOptions, Keyring, ManualClock, Portal, PortalId, UserId,
    audit::{EventKind, EventQuery},
    otp::{Secret, Totp, TotpParams},
    record::MfaRecord,
    store::SqliteStore,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Every window of `file` that equals one of `needles` (all of one length), by hashing.
fn found(file: &[u8], needles: &HashSet<Vec<u8>>) -> usize {
    let Some(len) = needles.iter().next().map(Vec::len) else {
        return 0;
    };
    file.windows(len).filter(|w| needles.contains(*w)).count()
}

/// How many of `secrets` appear in `files`: raw, in base32 (either case) or in hex (either case).
fn secrets_in(files: &[Vec<u8>], secrets: &[Secret]) -> usize {
    let raw: HashSet<Vec<u8>> = secrets.iter().map(|s| s.expose_bytes().to_vec()).collect();
    let base32: HashSet<Vec<u8>> = secrets
        .iter()
        .map(|s| s.to_base32().to_lowercase().into_bytes())
        .collect();
    let hex: HashSet<Vec<u8>> = secrets
        .iter()
        .map(|s| {
            s.expose_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes()
        })
        .collect();
    files
        .iter()
        .map(|file| {
            let lower = file.to_ascii_lowercase();
            found(file, &raw) + found(&lower, &base32) + found(&lower, &hex)
        })
        .sum()
}

fn files(db: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = vec![std::fs::read(db).unwrap()];
    out.extend(std::fs::read(db.with_extension("db-wal")).ok());
    out
}

/// A portal on a SQLite file at `db` with `users` users enrolled; their secrets.
fn enrolled(db: &std::path::Path, clock: &ManualClock, users: usize) -> (flows::TestPortal, Vec<Secret>) {
    let portal = flows::portal_on(flows::bytes(SqliteStore::open(db).unwrap()), clock);
    let mut secrets = Vec::new();
    for i in 0..users {
        let user = UserId::customer(format!("user-{i:04}@example.com"));
        let session = flows::password_step(flows::Executor::Blocking, &portal, &user);
        let started = portal
            .start_enrolment(&user, &session, user.id(), "phone", EnrolmentOptions::default())
            .run()
            .unwrap();
        let phone = Totp::new(started.uri.secret(), *started.uri.params());
        portal
            .confirm_enrolment(&user, &session, &phone.generate(clock.now()).unwrap().expose())
            .run()
            .unwrap();
        secrets.push(started.uri.secret().clone());
    }
    (portal, secrets)
}

#[test]
fn after_1000_enrolments_the_database_and_its_wal_hold_no_secret() {
    let dir = TempDir::new("scan");
    let db = dir.file("mfa.db");
    let clock = ManualClock::at(T0);
    let (portal, secrets) = enrolled(&db, &clock, 1_000);
    // Every user is live: a fresh code signs each one in.
    clock.advance(30);
    let user = UserId::customer("user-0999@example.com");
    let code = Totp::new(&secrets[999], TotpParams::standard())
        .generate(clock.now())
        .unwrap();
    portal.verify_sign_in(&user, &code.expose()).run().unwrap();
    assert_eq!(secrets_in(&files(&db), &secrets), 0);
    // The control: the same scan finds the secrets once they are written out in the clear.
    let leaked: Vec<u8> = secrets[..3]
        .iter()
        .flat_map(|s| [s.expose_bytes().to_vec(), s.to_base32().as_bytes().to_vec()].concat())
        .collect();
    assert_eq!(secrets_in(&[leaked], &secrets), 6);
}

#[test]
fn trusted_browser_tokens_never_reach_the_database_or_its_wal() {
    let dir = TempDir::new("tokens");
    let db = dir.file("mfa.db");
    let clock = ManualClock::at(T0);
    let (portal, secrets) = enrolled(&db, &clock, 60);
    portal
        .update_policy(&ADMIN, |p| p.with_trusted_browser_days(30))
        .run()
        .unwrap();
    clock.advance(30);
    let mut tokens = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        let user = UserId::customer(format!("user-{i:04}@example.com"));
        let code = Totp::new(secret, TotpParams::standard()).generate(clock.now()).unwrap();
        let stamp = portal.verify_sign_in(&user, &code.expose()).run().unwrap().session;
        let issued = portal.trust_browser(&user, &stamp, "Firefox").run().unwrap();
        // Each works: the scan below looks for live tokens.
        let step = portal
            .begin_sign_in_with_browser(&user, issued.token.expose())
            .run()
            .unwrap();
        assert!(matches!(step, portal_mfa::SignInStep::TrustedBrowser { .. }));
        tokens.push(issued.token.expose().to_owned());
    }
    let text: HashSet<Vec<u8>> = tokens.iter().map(|t| t.clone().into_bytes()).collect();
    let raw: HashSet<Vec<u8>> = tokens
        .iter()
        .map(|t| base32::decode(base32::Alphabet::Rfc4648Lower { padding: false }, t).unwrap())
        .collect();
    let scan = |files: &[Vec<u8>]| -> usize {
        files
            .iter()
            .map(|f| found(&f.to_ascii_lowercase(), &text) + found(f, &raw))
            .sum()
    };
    assert_eq!(scan(&files(&db)), 0);
    // The control: the scan finds a token written out either way.
    let leaked = [tokens[0].as_bytes(), &raw.iter().next().unwrap()[..]].concat();
    assert_eq!(scan(&[leaked]), 2);
}

const USERS: usize = 10_000;
const SIGNERS: usize = 8;

fn keyring_old() -> Keyring {
    Keyring::new("2025-01", &[0x11; 32]).unwrap()
}

fn keyring_rotated() -> Keyring {
    Keyring::new("2026-11", &[0x22; 32])
        .unwrap()
        .with_old_key("2025-01", &[0x11; 32])
        .unwrap()
}

fn portal<S: BlockingStore>(
    store: S,
    keyring: Keyring,
    clock: &ManualClock,
    seed: u64,
) -> Portal<S, ManualClock, StdRng> {
    Portal::new(PortalId::new("acme-portal"), "Acme Portal", store)
        .unwrap()
        .with_keyring(keyring)
        .with_clock(clock.clone())
        .with_rng(StdRng::seed_from_u64(seed))
        .with_max_attempts(1_000)
}

#[test]
fn rotation_reseals_10000_users_while_8_threads_sign_in_on_sqlite() {
    let dir = TempDir::new("rotation");
    rotation_while_signing_in(Arc::new(SqliteStore::open(dir.file("mfa.db")).unwrap()));
}

/// The same through load and compare-and-swap commit only: the sweep and the
/// sign-ins really conflict, and the driver retries.
#[test]
fn rotation_reseals_10000_users_while_8_threads_sign_in_on_a_compare_and_swap_store() {
    rotation_while_signing_in(Arc::new(flows::kv::KvStore::default()));
}

fn rotation_while_signing_in<S: MfaStore + 'static>(store: Arc<S>) {
    let clock = ManualClock::at(T0);
    // Everyone enrolled under the old key (imported: one transaction each).
    let before = portal(store.clone(), keyring_old(), &clock, 1);
    let mut phones = Vec::with_capacity(USERS);
    let mut rng = StdRng::seed_from_u64(3);
    for i in 0..USERS {
        let user = UserId::customer(format!("c{i:05}"));
        let secret = Secret::generate(&mut rng);
        before
            .import_authenticator(&ADMIN, &user, "phone", secret.clone(), TotpParams::standard())
            .run()
            .unwrap();
        phones.push((user, Totp::new(&secret, TotpParams::standard())));
    }
    drop(before);

    // The host rotates: the new key seals, the old one still opens.
    let signing = portal(store.clone(), keyring_rotated(), &clock, 2);
    let sweeping = portal(store.clone(), keyring_rotated(), &clock, 3);
    let done = AtomicBool::new(false);
    let sign_ins = AtomicUsize::new(0);
    let round = Barrier::new(SIGNERS + 1);
    let problems = std::sync::Mutex::new(Vec::<String>::new());
    // Lockstep: each round the signers sign in at the round's step while this
    // thread runs one batch of the sweep, so the rounds are counted, not timed.
    let (resealed, rounds) = std::thread::scope(|s| {
        for t in 0..SIGNERS {
            let (signing, phones, done, sign_ins, round, clock, problems) =
                (&signing, &phones, &done, &sign_ins, &round, &clock, &problems);
            s.spawn(move || {
                // Each round, every signer signs in 25 of its own users at the round's time step.
                let mut next = t;
                loop {
                    round.wait();
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    for _ in 0..25 {
                        let (user, phone) = &phones[next % USERS];
                        let code = phone.generate(clock.now()).unwrap();
                        // Noted, not panicked on: a thread that left the barriers would hang the rest.
                        match signing.verify_sign_in(user, &code.expose()).run() {
                            Ok(_) => drop(sign_ins.fetch_add(1, Ordering::SeqCst)),
                            Err(e) => problems.lock().unwrap().push(format!("sign-in of {user} failed: {e}")),
                        }
                        next += SIGNERS;
                    }
                    round.wait();
                }
            });
        }
        // A sweep that "crashes" after 10 batches (its cursor is lost), then starts over.
        let mut resealed = 0;
        let mut rounds = 0;
        let mut after: Option<UserId> = None;
        let mut restarted = false;
        loop {
            round.wait(); // signers sign in at this step
            let progress = sweeping.reseal(after.as_ref(), 500).run();
            round.wait(); // and are done with it
            clock.advance(30);
            rounds += 1;
            let progress = match progress {
                Ok(progress) if progress.failed.is_empty() => progress,
                other => {
                    problems.lock().unwrap().push(format!("the sweep failed: {other:?}"));
                    break;
                }
            };
            resealed += progress.resealed;
            after = progress.next;
            if rounds == 10 && !restarted {
                if after.is_none() {
                    problems
                        .lock()
                        .unwrap()
                        .push("the sweep ended before half-way".to_owned());
                    break;
                }
                after = None;
                restarted = true;
            } else if after.is_none() {
                break;
            }
        }
        done.store(true, Ordering::SeqCst);
        round.wait();
        (resealed, rounds)
    });
    assert_eq!(problems.into_inner().unwrap(), Vec::<String>::new());
    // Ten batches, then the whole sweep again (a full last batch cannot tell it
    // was the last, so one more finds nothing): sign-ins ran throughout it.
    assert_eq!(rounds, 10 + USERS / 500 + 1);
    assert_eq!(sign_ins.load(Ordering::SeqCst), rounds * SIGNERS * 25);
    // Signed-in users were re-sealed by their own sign-in; the sweep did the rest.
    assert!(resealed <= USERS && resealed > 0, "{resealed}");

    // Every record now opens with the new key alone.
    let new_only = Keyring::new("2026-11", &[0x22; 32]).unwrap();
    let portal_id = PortalId::new("acme-portal");
    let mut after = None;
    let mut checked = 0;
    loop {
        let page = store.records(&portal_id, after.as_ref(), 1_000).unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (user, stored) in &page {
            MfaRecord::decode(&stored.bytes, &portal_id, user, &new_only)
                .unwrap_or_else(|e| panic!("{user} is not under the new key: {e}"));
            checked += 1;
        }
    }
    assert_eq!(checked, USERS);
    // No event lost: one import and one verification per sign-in, nothing else.
    let mut trail = Vec::new();
    let mut query = Some(EventQuery::portal(&portal_id).limit(portal_mfa::MAX_PAGE));
    while let Some(q) = query.take() {
        let page = signing.audit_events(q.clone()).run().unwrap();
        trail.extend(page.items);
        query = page.next.map(|cursor| q.after(cursor));
    }
    let verified = trail
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Verified { .. }))
        .count();
    let added = trail
        .iter()
        .filter(|e| matches!(e.kind, EventKind::AuthenticatorAdded { .. }))
        .count();
    assert_eq!(verified, sign_ins.load(Ordering::SeqCst));
    assert_eq!(added, USERS);
    assert_eq!(trail.len(), USERS + verified);
    // A second sweep finds nothing left to do.
    let again = sweeping.reseal(None, USERS + 1).run().unwrap();
    assert_eq!((again.examined, again.resealed, again.next.is_none()), (USERS, 0, true));
}

/// With `SqliteOptions::secure_delete`, a record's old sealed secret is gone
/// from the file once the record is rewritten without it; without it (the
/// control), the sealed bytes linger in the page's free space.
#[test]
fn secure_delete_leaves_no_replaced_sealed_secret_in_the_file() {
    let mut lingering = Vec::new();
    for secure in [true, false] {
        let dir = TempDir::new("secure-delete");
        let db = dir.file("mfa.db");
        let clock = ManualClock::at(T0);
        let open =
            || SqliteStore::open_with(&db, portal_mfa::store::SqliteOptions::new().secure_delete(secure)).unwrap();
        let portal = flows::portal_on(flows::bytes(open()), &clock);
        let user = UserId::customer("c");
        flows::enrol(flows::Executor::Blocking, &portal, &clock, &user);
        let sealed: Vec<u8> = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT record FROM portal_mfa_records", [], |r| r.get(0))
            .unwrap();
        // 32 bytes of the old record, from its sealed secret on.
        let needle = sealed[sealed.len() / 3..sealed.len() / 3 + 32].to_vec();
        portal
            .admin_reset(
                &ADMIN,
                &user,
                portal_mfa::admin::ResetReason::LostDevice,
                Default::default(),
            )
            .run()
            .unwrap();
        drop(portal);
        // Closing the last connection checkpoints the WAL into the file.
        let file = std::fs::read(&db).unwrap();
        lingering.push(file.windows(needle.len()).filter(|w| *w == needle.as_slice()).count());
    }
    assert_eq!(lingering[0], 0, "secure_delete: nothing of the old record is left");
    assert!(
        lingering[1] > 0,
        "the control: without it the old bytes linger ({lingering:?})"
    );
}
